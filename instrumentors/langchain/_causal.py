"""The causal-registry calls of the LangChain spans, guarded and skipped outright when
causal links are off (so no input text is even collected on the hot path)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link

from .. import _config, causal
from .. import _semconv as sc
from .._spans import report_internal_error


def enabled() -> bool:
    return _config.get_config().causal_links


def consume(texts: list, parent: Optional[otel_context.Context], attrs: dict) -> Optional[list]:
    """Links for a span about to start; adds the summary attributes to ``attrs``."""
    if not texts:
        return None
    try:
        consumption = causal.consume(texts, parent)
    except Exception as exc:  # noqa: BLE001 - the registry never breaks the traced call
        report_internal_error("langchain.causal.consume", exc)
        return None
    if consumption is None:
        return None
    attrs.update(consumption.attributes)
    return consumption.links


def produce(span: Any, build: Callable[[], list]) -> None:
    """Register a span's outputs; ``build`` makes the ``Produced`` list only when needed."""
    if not enabled():
        return
    try:
        produced = build()
        if produced:
            causal.produce(span, produced)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.causal.produce", exc)


Produced = causal.Produced


class ToolCallSpans:
    """Which span ran which tool call: ``(trace id, tool call id) -> span context``.

    A model call whose input holds a ``ToolMessage`` links the tool span that produced it
    (``CAUSED_BY_TOOL``) by the call id, also when the result has no text to match (an
    empty result, a number): the next turn read it all the same. Content matching links
    the non-empty ones already; this adds only what it missed. Bounded: the oldest entries
    are evicted first. Keyed by trace so ids that repeat across runs ("call_0") never
    cross traces."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._spans: "OrderedDict[tuple, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._spans)

    def put(self, span: Any, call_id: Any) -> None:
        if not isinstance(call_id, str) or not call_id:
            return
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return
        with self._lock:
            self._spans[(ctx.trace_id, call_id)] = ctx
            while len(self._spans) > self.max_entries:
                self._spans.popitem(last=False)

    def links(self, messages: list, parent: Optional[otel_context.Context], existing: Optional[list]) -> list:
        """Links to the tool spans of the ``ToolMessage``s in ``messages`` not linked yet."""
        if not self._spans:
            return []
        trace_id = None
        out: list = []
        linked = {link.context.span_id for link in existing or ()}
        for message in messages:
            if getattr(message, "type", None) != "tool":
                continue
            call_id = getattr(message, "tool_call_id", None)
            if trace_id is None:
                current = trace.get_current_span(parent).get_span_context()
                if not current.is_valid:
                    return []
                trace_id = current.trace_id
            ctx = self._spans.get((trace_id, call_id))
            if ctx is None or ctx.span_id in linked:
                continue
            linked.add(ctx.span_id)
            out.append(Link(ctx, {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_TOOL,
                                  sc.LINK_SOURCE_KIND: "tool_result", sc.GEN_AI_TOOL_CALL_ID: call_id}))
        return out

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()


TOOL_CALLS = ToolCallSpans()
