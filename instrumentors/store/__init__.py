"""The trace store: by default a local SQLite file every instrumented process can export
into (``SQLiteSpanExporter``); for scale a ClickHouse server or chDB holding the
OpenTelemetry Collector's ``otel_traces`` table. ``TraceStore`` / the ``instrumentors``
CLI query either with the same API.

Where: ``INSTRUMENTORS_STORE_URL`` (a path, ``sqlite:///…``, ``clickhouse://…``,
``chdb:///…``), else ``INSTRUMENTORS_STORE_PATH`` (default ``.instrumentors/traces.db``)::

    from instrumentors.store import TraceStore
    store = TraceStore()
    bad = store.query(filters={"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}, limit=50)
    store.explain(bad[0]["trace_id"])
    store.blame()
"""

from .exporter import SQLiteSpanExporter
from .query import OPERATORS, FilterError
from .errors import StoreCorrupt, StoreError, StoreLocked, StoreNotFound
from .tracestore import TraceNotFound, TraceStore

__all__ = [
    "OPERATORS",
    "FilterError",
    "SQLiteSpanExporter",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreNotFound",
    "TraceNotFound",
    "TraceStore",
]
