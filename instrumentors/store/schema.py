"""The embedded store's SQLite schema and how to open it for writing or reading.

Why this layout (measured, see ``benchmarks/bench_store.py``):

* The attribute index is *transposed in blocks*: ``attr_blocks`` holds, per export
  batch and attribute key, one row whose ``data`` is a JSON object mapping each span
  ref (decimal) to that span's value, e.g. ``{"2199023255553": 0.42, ...}``. SQLite's
  per-row cost (about 1 us for any B-tree insert) made one index row per attribute
  (7-10 per span) the largest part of ingest; a block is ~30 rows per 512-span batch,
  built by the exporter from the dicts it already holds. A filter on one key reads
  that key's blocks (index ``attr_blocks_key``) and walks them with ``json_each`` at
  ~100 ns per value: a two-filter trace-level query over 1M spans takes 50-100 ms
  (the one-row-per-value index answered in 30-60 ms, at half the ingest rate). ``arrays`` marks
  blocks holding array values; each element of an array is matched on its own.
  Every attribute is indexed, long strings too (``contains`` works on captured
  text), except the causal fingerprint digests (:data:`analysis.NOT_INDEXED`).
* Span refs carry their trace: ``spans.id = trace_ref << SPAN_BITS | n`` (n counts the
  trace's spans), so a value found in a block gives its trace with a shift, without
  touching ``spans``; trace-level filters stay a scan of one key's blocks.
* The view ``attrs(key, span, pos, trace, num, str)`` shows the blocks as one row per
  value (numbers and booleans in ``num``, strings in ``str``) for ad-hoc SQL.
* ``spans.attributes`` keeps the exact attributes as JSON (types, array order) for
  ``trace()``/``explain()``.
* ``links`` are clustered by ``(trace, span, pos)`` and read per trace (``trace()``,
  ``explain()``, ``blame()``); there is no index on ``document_id`` (it took random
  B-tree inserts and no query used it). Document ids are filterable as span attributes.
* New files use 16 KiB pages (:data:`PAGE_SIZE`): fewer WAL frames per commit.
* ``traces`` is one summary row per trace, upserted per export batch.
* ``feedback`` is derived from the ``feedback`` spans (the span is the record).

Writers use WAL with a busy timeout, so several processes can export at once; readers
open the file with ``mode=ro`` so a read can never change or lose stored data.
A store written by an older schema is refused with a message saying what to do.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Optional

from .errors import StoreCorrupt, StoreError, StoreLocked, StoreNotFound  # noqa: F401 - re-exported

SCHEMA_VERSION = 2
#: ``spans.id = trace_ref << SPAN_BITS | n``: up to 2**24 spans per trace, 2**39 traces.
SPAN_BITS = 24
MAX_SPANS_PER_TRACE = 1 << SPAN_BITS
#: strings up to this long are "short" (kept only for tests and tools that split on it).
MAX_INDEXED_STRING = 256
PAGE_SIZE = 16384
#: the writer checkpoints the WAL into the database file when it holds this much
WAL_CHECKPOINT_BYTES = 64 << 20
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
CREATE TABLE IF NOT EXISTS attr_blocks (
    id     INTEGER PRIMARY KEY,
    key    INTEGER NOT NULL,
    arrays INTEGER NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attr_blocks_key ON attr_blocks(key, arrays);
CREATE VIEW IF NOT EXISTS attrs(key, span, pos, trace, num, str) AS
    SELECT b.key, CAST(e.key AS INTEGER), 0, CAST(e.key AS INTEGER) >> {SPAN_BITS},
           CASE WHEN e.type IN ('integer', 'real', 'true', 'false') THEN e.value END,
           CASE WHEN e.type = 'text' THEN e.value END
    FROM attr_blocks b, json_each(b.data) e WHERE b.arrays = 0 AND e.type NOT IN ('null', 'array', 'object')
    UNION ALL
    SELECT b.key, CAST(e.key AS INTEGER), a.key, CAST(e.key AS INTEGER) >> {SPAN_BITS},
           CASE WHEN a.type IN ('integer', 'real', 'true', 'false') THEN a.value END,
           CASE WHEN a.type = 'text' THEN a.value END
    FROM attr_blocks b, json_each(b.data) e, json_each(CASE WHEN e.type = 'array' THEN e.value ELSE '[]' END) a
    WHERE b.arrays = 1 AND a.type NOT IN ('null', 'array', 'object');
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
""".replace("{SPAN_BITS}", str(SPAN_BITS))

REQUIRED_TABLES = ("keys", "resources", "traces", "spans", "attr_blocks", "events", "links", "feedback")


def version_message(path: str, version: int) -> str:
    """Why a store of another schema version is refused, and what to do about it."""
    if version < SCHEMA_VERSION:
        return (f"{path} is a trace store of an older instrumentors (schema version {version}; this one uses "
                f"{SCHEMA_VERSION} and does not convert old stores): move the file aside or point "
                f"INSTRUMENTORS_STORE_PATH / --store to a new file")
    return (f"{path} is a trace store of a newer instrumentors (schema version {version}; this one understands "
            f"{SCHEMA_VERSION}): upgrade instrumentors or use another file")


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
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):  # refused before anything (journal mode) is changed
            raise StoreCorrupt(version_message(path, version))
        # 16 KiB pages for a new file (no effect on an existing one): a commit writes a
        # quarter of the WAL frames it would with 4 KiB ones; measured ~10% of ingest.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a filesystem without shared memory
            raise StoreError(f"cannot switch {path} to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~64 MB of WAL instead of the default 1000 pages: each checkpoint
        # waits for two fsyncs in the exporting thread (with 16 MB they took a third of
        # the wall time of an export), and pages rewritten by several commits are copied
        # once. 64 MB of 16 KiB frames is still one wal-index segment, so reads stay fast.
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA wal_autocheckpoint={max(1000, WAL_CHECKPOINT_BYTES // page)}")
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
                    raise StoreCorrupt(version_message(path, version))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return conn
    except BaseException:
        conn.close()
        raise


def close_writer(conn: sqlite3.Connection) -> None:
    """Close a writer, leaving the file at rest in rollback-journal mode when it was the
    last connection.

    Why: a ``mode=ro`` reader of a WAL-mode file that has no ``-wal``/``-shm`` beside it
    must create both and, being read-only, cannot remove them, so ``instrumentors list``
    on a store at rest would leave two files behind. A rollback-mode file is read with a
    shared lock and nothing else. Leaving WAL needs an exclusive lock: while another
    writer or reader is connected the switch fails at once (busy timeout 0) and the file
    stays in WAL for them; the next writer switches back to WAL when it connects.
    """
    try:
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass  # someone else is connected: they keep the WAL, and the last one out switches
    finally:
        conn.close()


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
        # one read transaction: the version and the tables from the same snapshot (two
        # autocommit reads could straddle a writer creating the schema: "version 0, tables")
        conn.execute("BEGIN")
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.execute("ROLLBACK")
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
    if version != SCHEMA_VERSION and version and "spans" in tables:
        conn.close()
        raise StoreCorrupt(version_message(path, version))
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing or version != SCHEMA_VERSION:
        conn.close()
        raise StoreCorrupt(
            f"{path} is not an instrumentors trace store of schema version {SCHEMA_VERSION} "
            f"(version {version}, missing tables: {', '.join(missing) or 'none'})"
        )
    return conn
