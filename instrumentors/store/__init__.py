"""The embedded trace store: a local SQLite file every instrumented process can export
into (``SQLiteSpanExporter``) and ``TraceStore`` / the ``instrumentors`` CLI query.

Path: ``INSTRUMENTORS_STORE_PATH`` (default ``.instrumentors/traces.db``)::

    from instrumentors.store import TraceStore
    store = TraceStore()
    bad = store.query(filters={"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}, limit=50)
    store.explain(bad[0]["trace_id"])
    store.blame()
"""

from .exporter import SQLiteSpanExporter
from .query import OPERATORS, FilterError
from .schema import StoreCorrupt, StoreError, StoreLocked, StoreNotFound
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
