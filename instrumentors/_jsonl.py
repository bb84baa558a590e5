"""A JSON-lines span exporter: one span a line, for `tail -f` and quick scripts.

Registered as the ``instrumentors_jsonl`` traces exporter (``OTEL_TRACES_EXPORTER=instrumentors_jsonl``);
the file is ``INSTRUMENTORS_JSONL_PATH`` (default ``traces.jsonl``).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_to_dict(span: ReadableSpan) -> dict:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "resource": dict(span.resource.attributes) if span.resource else {},
    }


class JSONLinesSpanExporter(SpanExporter):
    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path or os.environ.get("INSTRUMENTORS_JSONL_PATH") or "traces.jsonl"
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            lines = "".join(json.dumps(span_to_dict(s), default=str) + "\n" for s in spans)
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
            return SpanExportResult.SUCCESS
        except Exception:  # noqa: BLE001
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
