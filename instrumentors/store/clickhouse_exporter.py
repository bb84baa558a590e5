"""``ClickHouseSpanExporter``: spans into a ClickHouse table of the OpenTelemetry
Collector exporter's ``otel_traces`` layout, for users without a Collector.

Each span becomes the row the Collector would write for it (attribute values as text,
``Duration`` in ns, ``Client`` / ``Error`` spellings, scope in ``ScopeName``), so the
same table can be filled by a Collector and by this exporter at once, and
:class:`TraceStore` reads both the same way. The database and table are created when
missing (``CREATE ... IF NOT EXISTS``: the exporter writes; read commands never do).

Like every exporter here it never breaks the host app: a failure is reported once
(rate-limited) and the batch reported as failed to the SDK.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any, Optional, Sequence, Union

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from .._spans import report_internal_error
from . import clickhouse_layout as layout
from . import url as _url

_KIND = {SpanKind.INTERNAL: "Internal", SpanKind.SERVER: "Server", SpanKind.CLIENT: "Client",
         SpanKind.PRODUCER: "Producer", SpanKind.CONSUMER: "Consumer"}
_STATUS = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}


def _time(ns: int) -> str:
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def collector_row(span: ReadableSpan) -> dict:
    """The row the Collector's ClickHouse exporter writes for ``span`` (JSONEachRow)."""
    ctx = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    scope = span.instrumentation_scope
    start = span.start_time or 0
    end = span.end_time or start
    events = span.events or ()
    links = span.links or ()
    return {
        "Timestamp": _time(start),
        "TraceId": format(ctx.trace_id, "032x"),
        "SpanId": format(ctx.span_id, "016x"),
        "ParentSpanId": format(parent.span_id, "016x") if parent is not None and parent.is_valid else "",
        "TraceState": ctx.trace_state.to_header() if ctx.trace_state else "",
        "SpanName": span.name,
        "SpanKind": _KIND.get(span.kind, "Unspecified"),
        "ServiceName": str(resource.get("service.name", "")),
        "ResourceAttributes": layout.text_map(resource),
        "ScopeName": scope.name if scope is not None else "",
        "ScopeVersion": (scope.version or "") if scope is not None else "",
        "SpanAttributes": layout.text_map(span.attributes),
        "Duration": max(0, end - start),
        "StatusCode": _STATUS.get(span.status.status_code, "Unset"),
        "StatusMessage": span.status.description or "",
        "Events.Timestamp": [_time(e.timestamp) for e in events],
        "Events.Name": [e.name for e in events],
        "Events.Attributes": [layout.text_map(e.attributes) for e in events],
        "Links.TraceId": [format(l.context.trace_id, "032x") for l in links],
        "Links.SpanId": [format(l.context.span_id, "016x") for l in links],
        "Links.TraceState": [l.context.trace_state.to_header() if l.context.trace_state else "" for l in links],
        "Links.Attributes": [layout.text_map(l.attributes) for l in links],
    }


class ClickHouseSpanExporter(SpanExporter):
    """Writes finished spans to ``url`` (``clickhouse://…`` or ``chdb:///…``; default
    ``INSTRUMENTORS_STORE_URL``) in the Collector's ``otel_traces`` layout."""

    def __init__(self, url: Union[str, "_url.StoreURL", None] = None, *, timeout: float = 10.0) -> None:
        self.location = url if isinstance(url, _url.StoreURL) else _url.parse(url)
        if self.location.is_sqlite:
            raise ValueError(f"{self.location.masked} is an SQLite store: use SQLiteSpanExporter")
        self.url = self.location.masked
        self._timeout = timeout
        self._engine: Any = None
        self._lock = threading.Lock()
        self._shutdown = False

    def _connected(self) -> Any:
        if self._engine is None:
            from .clickhouse_engine import connect

            engine = connect(self.location, self._timeout)
            try:
                engine.execute(f"CREATE DATABASE IF NOT EXISTS {self.location.database}")
                engine.execute(layout.create_table_sql(self.location.database, self.location.table))
            except BaseException:
                engine.close()
                raise
            self._engine = engine
        return self._engine

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            lines = [json.dumps(collector_row(s), ensure_ascii=False, separators=(",", ":")) for s in spans
                     if s.context is not None]
            with self._lock:
                engine = self._connected()
                engine.insert_json_rows(f"{self.location.database}.{self.location.table}", lines)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001 - never raise into the SDK / host app
            report_internal_error(f"store export to {self.url}", exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export inserts before returning


def span_exporter_for(url: Optional[str]) -> SpanExporter:
    """The exporter writing into the store ``url`` names (SQLite file or ClickHouse)."""
    location = _url.parse(url)
    if location.is_sqlite:
        from .exporter import SQLiteSpanExporter

        return SQLiteSpanExporter(location.path)
    return ClickHouseSpanExporter(location)
