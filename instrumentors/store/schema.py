"""The embedded store's SQLite schema and how to open it for writing or reading.

Why this layout (measured, see ``benchmarks/bench_store.py``):

* ``attrs`` is one ``WITHOUT ROWID`` table clustered by ``(key, span, pos)``. Span ids
  only grow, so every insert appends at the end of its key's region (a handful of hot
  pages) instead of landing at a random place of a value index (which measured 3-4x
  slower to ingest), and a filter on one key scans only that key's rows (a range of
  the primary key, ~10M rows/s), so a two-filter trace-level query over 1M spans takes
  tens of milliseconds. Values have typed columns: ``num`` for numbers and booleans
  (1/0), ``str`` for strings up to :data:`MAX_INDEXED_STRING` characters. Each element
  of an array attribute is its own row (``pos`` = element index). The exporter has
  SQLite derive these rows from the span's JSON (``json_each``).
* Longer strings (captured prompts, completions) go to ``attr_text`` so they do not
  bloat the clustered table; ``contains``/``eq`` filters look there too.
* ``spans.attributes`` keeps the exact attributes as JSON (types, array order) for
  ``trace()``/``explain()``; the ``attrs`` rows are the index over it.
* ``traces`` is one summary row per trace, upserted per export batch.
* ``feedback`` is derived from the ``feedback`` spans (the span is the record).

Writers use WAL with a busy timeout, so several processes can export at once; readers
open the file with ``mode=ro`` so a read can never change or lose stored data.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Optional

SCHEMA_VERSION = 1
#: longest string kept in the clustered ``attrs`` index; longer go to ``attr_text``.
MAX_INDEXED_STRING = 256
#: array attributes: elements beyond this many are kept in the JSON only.
MAX_INDEXED_ARRAY_ELEMENTS = 64
APPLICATION_ID = 0x494E5354  # "INST": marks the file as ours
#: ``traces.start_ns`` of a trace that so far holds only feedback spans: feedback
#: recorded later must not stretch a trace's start/end/duration.
NO_START = 1 << 62

DDL = """
CREATE TABLE IF NOT EXISTS keys (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS resources (
    id         INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS traces (
    id            INTEGER PRIMARY KEY,
    trace_id      TEXT NOT NULL UNIQUE,
    start_ns      INTEGER NOT NULL,
    end_ns        INTEGER NOT NULL,
    span_count    INTEGER NOT NULL,
    error_count   INTEGER NOT NULL,
    root_rank     INTEGER NOT NULL DEFAULT 0,
    root_span_id  TEXT,
    root_name     TEXT
);
CREATE INDEX IF NOT EXISTS traces_start ON traces(start_ns);
CREATE TABLE IF NOT EXISTS spans (
    id             INTEGER PRIMARY KEY,
    trace          INTEGER NOT NULL,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    parent_remote  INTEGER NOT NULL DEFAULT 0,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    status         TEXT NOT NULL,
    status_message TEXT,
    resource       INTEGER,
    scope          TEXT,
    attributes     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_trace ON spans(trace, span_id);
CREATE TABLE IF NOT EXISTS attrs (
    key   INTEGER NOT NULL,
    span  INTEGER NOT NULL,
    pos   INTEGER NOT NULL,
    trace INTEGER NOT NULL,
    num   REAL,
    str   TEXT,
    PRIMARY KEY (key, span, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attr_text (
    key   INTEGER NOT NULL,
    span  INTEGER NOT NULL,
    pos   INTEGER NOT NULL,
    trace INTEGER NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attr_text_key ON attr_text(key, span);
CREATE TABLE IF NOT EXISTS events (
    trace      INTEGER NOT NULL,
    span       INTEGER NOT NULL,
    pos        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    time_ns    INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (trace, span, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (
    trace           INTEGER NOT NULL,
    span            INTEGER NOT NULL,
    pos             INTEGER NOT NULL,
    linked_trace_id TEXT NOT NULL,
    linked_span_id  TEXT NOT NULL,
    link_type       TEXT,
    document_id     TEXT,
    source_kind     TEXT,
    score           REAL,
    coverage        REAL,
    attributes      TEXT NOT NULL,
    PRIMARY KEY (trace, span, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_document ON links(document_id) WHERE document_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS feedback (
    id             INTEGER PRIMARY KEY,
    trace          INTEGER NOT NULL,
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    target_span_id TEXT,
    key            TEXT NOT NULL,
    score          REAL NOT NULL,
    reason         TEXT,
    step_blamed    TEXT,
    time_ns        INTEGER NOT NULL,
    attributes     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_trace ON feedback(trace);
"""

REQUIRED_TABLES = ("keys", "resources", "traces", "spans", "attrs", "attr_text", "events", "links", "feedback")


class StoreError(Exception):
    """A trace store cannot be read; the message says why and what to do."""


class StoreNotFound(StoreError):
    pass


class StoreCorrupt(StoreError):
    pass


class StoreLocked(StoreError):
    pass


def default_path() -> str:
    """``INSTRUMENTORS_STORE_PATH`` or ``.instrumentors/traces.db`` (see ``_config``)."""
    from .._config import get_config

    return get_config().store_path


def connect_writer(path: str, busy_timeout_ms: int = 30_000) -> sqlite3.Connection:
    """Open (creating if needed) the store for writing: WAL, schema in place.

    Several processes may call this at once on a new file: the schema is created inside
    an immediate transaction, so one creates it and the others find it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a filesystem without shared memory
            raise StoreError(f"cannot switch {path} to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=NORMAL")
        # checkpoint every ~16 MB of WAL instead of 4 MB: fewer, larger copies per commit
        conn.execute("PRAGMA wal_autocheckpoint=4000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                    if tables and app_id != APPLICATION_ID:
                        raise StoreCorrupt(f"{path} is an SQLite database but not an instrumentors trace store")
                    for statement in DDL.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                elif version != SCHEMA_VERSION:
                    raise StoreCorrupt(
                        f"{path} has trace-store schema version {version}; this instrumentors expects {SCHEMA_VERSION}"
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return conn
    except BaseException:
        conn.close()
        raise


def connect_reader(path: Optional[str] = None, busy_timeout_ms: int = 5_000) -> sqlite3.Connection:
    """Open an existing store read-only (``mode=ro``): reads never change the file.

    Raises :class:`StoreNotFound`, :class:`StoreCorrupt` or :class:`StoreLocked` with a
    message a person can act on.
    """
    path = path or default_path()
    p = Path(path)
    if not p.exists():
        raise StoreNotFound(
            f"no trace store at {path} (run an instrumented app first, or point to one with "
            f"--store PATH / INSTRUMENTORS_STORE_PATH)"
        )
    if p.is_dir():
        raise StoreNotFound(f"{path} is a directory, not a trace store file")
    uri = p.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open trace store {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA query_only=1")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreLocked(f"trace store {path} is locked by another process ({exc}); retry later") from exc
        raise StoreCorrupt(f"cannot read trace store {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreCorrupt(f"{path} is not a readable trace store ({exc}); it may be corrupt") from exc
    if version == 0 and not tables:
        conn.close()
        raise StoreCorrupt(f"{path} is empty: no trace store schema (was anything exported to it yet?)")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing or version != SCHEMA_VERSION:
        conn.close()
        raise StoreCorrupt(
            f"{path} is not an instrumentors trace store of schema version {SCHEMA_VERSION} "
            f"(version {version}, missing tables: {', '.join(missing) or 'none'})"
        )
    return conn
