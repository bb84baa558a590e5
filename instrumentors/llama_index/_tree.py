"""Mirror of LlamaIndex's span tree in OpenTelemetry contexts, without attaching any.

LlamaIndex's dispatcher gives every decorated call an id and the id of the call it runs
in (``active_span_id``, a contextvar, so async tasks and context-copying threads keep
the right parent). It does *not* give us a frame around the call body, so our handler
cannot make its OTel span current there (attaching in ``span_enter`` and detaching in
``span_exit`` would cross frames, the classic "Failed to detach context" source).

Instead, every open dispatcher span gets a :class:`Node` here: the OTel context its
children should start in (``ctx``) and the OTel context that was current when it
started (``entered_under``). A child resolves its parent with one identity test:

* the current OTel context is still the one its dispatcher parent started under: nobody
  made another span current in between, so the parent is the dispatcher parent's ``ctx``;
* otherwise something made a span current in between (our LLM wrapper, the user's own
  ``start_as_current_span`` inside a tool, an OpenAI client span): that span is the
  innermost one, so the child starts in the current context.

OTel contexts are immutable, so ``is`` is exact. Nodes are removed when the dispatcher
span exits; the map also has a hard cap so a span that never exits cannot grow it.

Most dispatcher calls make no span (about 14 per query, 5 spans). They cost no node:
an untraced call whose parent resolved to a node maps to that same node (an *alias*:
its children resolve exactly as they would under a node of its own, which would hold
the same two contexts), and one whose parent did not resolve maps to nothing (its
children then start in the current context, as they would under a node of its own
holding the current context twice). :meth:`SpanTree.get` and :meth:`SpanTree.pop`
return a call's *own* node only, so an alias never lends a span, kind or owner.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from .._spans import end_span, report_internal_error

#: most open dispatcher spans tracked at once; the oldest is ended and forgotten beyond it.
MAX_OPEN_SPANS = 10_000


class Node:
    """One open LlamaIndex dispatcher span as we track it."""

    __slots__ = ("ctx", "entered_under", "span", "kind", "owner", "data", "id", "token")

    def __init__(
        self,
        ctx: otel_context.Context,
        entered_under: otel_context.Context,
        span: Optional[Span] = None,
        kind: Optional[str] = None,
        owner: Any = None,
        data: Any = None,
    ) -> None:
        self.ctx = ctx  # where children start
        self.entered_under = entered_under  # OTel context current at span_enter
        self.span = span  # our OTel span, None for calls we do not trace
        self.kind = kind  # our classification (see _handler.Kind), None when untraced
        self.owner = owner  # the LlamaIndex object whose method this is (traced nodes only)
        self.data = data  # per-kind state gathered between enter and exit
        self.id: Optional[str] = None  # the dispatcher span id it was added under
        self.token: Any = None  # set when its context was attached at enter (a workflow run's task)


class SpanTree:
    """Thread-safe map of dispatcher span id -> :class:`Node`, capped at ``max_open``."""

    def __init__(self, max_open: int = MAX_OPEN_SPANS) -> None:
        self.max_open = max_open
        self._nodes: dict = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, span_id: Optional[str]) -> Optional[Node]:
        """The call's own node (None for an untraced call, even one with an alias)."""
        if span_id is None:
            return None
        node = self._nodes.get(span_id)
        return node if node is not None and node.id == span_id else None

    def resolve(self, parent_id: Optional[str]) -> tuple:
        """``(parent context, parent node or None, current context)`` for a call whose
        dispatcher parent is ``parent_id``; the node is returned only when it really is
        the innermost parent."""
        current = otel_context.get_current()
        node = self._nodes.get(parent_id) if parent_id is not None else None
        if node is not None and node.entered_under is current:
            return node.ctx, node, current
        return current, None, current

    def add(self, span_id: str, node: Node) -> None:
        node.id = span_id
        nodes = self._nodes
        if len(nodes) >= self.max_open:
            self._evict()
        nodes[span_id] = node  # a single dict store: atomic, no lock needed

    def alias(self, span_id: str, parent: Optional[Node]) -> None:
        """An untraced call whose parent resolved to ``parent`` (None: it did not)."""
        if parent is None:
            return
        nodes = self._nodes
        if len(nodes) >= self.max_open:
            self._evict()
        nodes[span_id] = parent

    def enter_untraced(self, span_id: str, parent_id: Optional[str]) -> None:
        """:meth:`resolve` and :meth:`alias` for a call that makes no span, in one step."""
        if parent_id is None:
            return
        node = self._nodes.get(parent_id)
        if node is not None and node.entered_under is otel_context.get_current():
            nodes = self._nodes
            if len(nodes) >= self.max_open:
                self._evict()
            nodes[span_id] = node

    def _evict(self) -> None:
        evicted = []
        with self._lock:
            while len(self._nodes) >= self.max_open:
                try:
                    key = next(iter(self._nodes))
                    node = self._nodes.pop(key)
                except (StopIteration, KeyError, RuntimeError):
                    break
                if node.id == key:  # an alias's node is ended under its own key
                    evicted.append(node)
        for node in evicted:
            if node.span is not None:
                # Its dispatcher exit never came (or is very late): end it rather than leak it.
                end_span(node.span)

    def pop(self, span_id: str) -> Optional[Node]:
        """Forget the call; its own node (None for an untraced call)."""
        node = self._nodes.pop(span_id, None)
        return node if node is not None and node.id == span_id else None

    def clear(self) -> None:
        """Forget every node, ending the spans still open (used by uninstrument)."""
        with self._lock:
            nodes = [node for key, node in self._nodes.items() if node.id == key]
            self._nodes.clear()
        for node in nodes:
            if node.span is not None:
                try:
                    end_span(node.span)
                except Exception as exc:  # noqa: BLE001
                    report_internal_error("llama_index.tree.clear", exc)
