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
span instead of beside it. Tools use no such scope; their call sites are wrapped
instead (``_tools``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.instrumentation.span import active_span_id
from opentelemetry import context as otel_context
from opentelemetry import trace

from .._spans import report_internal_error
from ._common import Telemetry

_METHODS = ("as_trace", "event")
_MARK = "_instrumentors_scope_wrapper"  # set on our wrappers (never wrap twice)


class _Scoped:
    """``with manager as value:`` with ``ctx`` attached inside it: entered after the
    manager, detached before it exits (the very token attached, in the same contextvars
    Context, as ``_spans.attached``). A class rather than a generator context manager:
    ten of these run per query."""

    __slots__ = ("_manager", "_ctx", "_token")

    def __init__(self, manager: Any, ctx: otel_context.Context) -> None:
        self._manager = manager
        self._ctx = ctx
        self._token: Any = None

    def __enter__(self) -> Any:
        value = self._manager.__enter__()
        self._token = otel_context.attach(self._ctx)
        return value

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        otel_context.detach(self._token)
        return self._manager.__exit__(exc_type, exc, tb)


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

    def _wrap(self, original: Callable) -> Callable:
        context = self._context

        @functools.wraps(original)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)
            try:
                ctx = context()
            except Exception as exc:  # noqa: BLE001
                report_internal_error("llama_index.callback_scope", exc)
                return manager
            return manager if ctx is None else _Scoped(manager, ctx)

        setattr(scoped, _MARK, True)
        return scoped

    def install(self) -> None:
        for name in _METHODS:
            original = CallbackManager.__dict__.get(name)
            if original is None or getattr(original, _MARK, False) or not callable(original):
                continue
            self._originals[name] = original
            setattr(CallbackManager, name, self._wrap(original))

    def restore(self) -> None:
        for name, original in self._originals.items():
            if getattr(CallbackManager.__dict__.get(name), _MARK, False):
                setattr(CallbackManager, name, original)
        self._originals.clear()
