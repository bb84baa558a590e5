"""Make dispatcher-created spans current inside the bodies LlamaIndex scopes itself.

The dispatcher gives our handler no frame around a call body, so its spans are parents
by span id only (see ``_tree``). But llama-index-core wraps most bodies in a legacy
``CallbackManager`` scope, in the same frame: ``BaseQueryEngine.query`` and
``BaseRetriever.retrieve`` run ``_query``/``_retrieve`` inside
``callback_manager.as_trace(...)``, chat engines inside ``trace_method`` (``as_trace``),
synthesizers and embeddings inside ``callback_manager.event(...)``. Wrapping those two
context managers lets us make the span of the running dispatcher call current for
exactly that body (attach and detach in one generator frame), so what runs inside (a
user's own span in a custom retriever, an instrumented vector-store HTTP client, an
OpenAI client called directly from a custom query engine) nests under the LlamaIndex
span instead of beside it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import wrapt
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.instrumentation.span import active_span_id
from opentelemetry import context as otel_context
from opentelemetry import trace

from .._spans import attached, report_internal_error
from ._common import Telemetry

_METHODS = ("as_trace", "event")


class _ScopeWrapper(wrapt.FunctionWrapper):
    """Marks our wrappers (never wrap twice)."""


@contextmanager
def _scoped(manager: Any, ctx: otel_context.Context) -> Iterator[Any]:
    with manager as value:
        with attached(ctx):
            yield value


class CallbackScopes:
    """Wraps ``CallbackManager.as_trace`` / ``.event``; :meth:`restore` undoes it."""

    def __init__(self, tel: Telemetry) -> None:
        self.tel = tel
        self._originals: dict = {}

    def _context(self) -> Optional[otel_context.Context]:
        node = self.tel.tree.get(active_span_id.get())
        if node is None or node.span is None:
            return None
        current = otel_context.get_current()
        if trace.get_current_span(current) is node.span:
            return None
        return trace.set_span_in_context(node.span, current)

    def _wrapper(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            ctx = self._context()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.callback_scope", exc)
            return manager
        return manager if ctx is None else _scoped(manager, ctx)

    def install(self) -> None:
        for name in _METHODS:
            original = CallbackManager.__dict__.get(name)
            if original is None or isinstance(original, _ScopeWrapper):
                continue
            self._originals[name] = original
            setattr(CallbackManager, name, _ScopeWrapper(original, self._wrapper))

    def restore(self) -> None:
        for name, original in self._originals.items():
            if isinstance(CallbackManager.__dict__.get(name), _ScopeWrapper):
                setattr(CallbackManager, name, original)
        self._originals.clear()
