"""``SQLiteSpanExporter``: the embedded trace store's writer.

The default traces exporter (entry point ``instrumentors``): ``instrument_all()`` and
``opentelemetry-instrument`` use it when no exporter is configured. Spans land in one
SQLite file (``INSTRUMENTORS_STORE_PATH``, default ``.instrumentors/traces.db``) that
``instrumentors`` (CLI) and :class:`instrumentors.store.TraceStore` query.

Why it is built this way:

* One transaction per export batch, rows inserted with ``executemany``: the batch is
  the unit the SDK's BatchSpanProcessor hands over, and SQLite's cost is per commit.
* ``BEGIN IMMEDIATE`` + WAL + a busy timeout: several processes (gunicorn workers, a
  feedback endpoint, a batch job) can export into the same file at once; writers queue
  on the lock, readers are never blocked.
* Span refs are assigned inside the write lock as ``trace_ref << SPAN_BITS | n``, so an
  indexed value names its trace without a join (see ``schema``).
* The attribute index is built here, from the attribute dicts the spans already hold:
  one JSON object per key per batch (``attr_blocks``), a few dozen rows per batch where
  one row per attribute value cost a microsecond each, a third of the whole budget.
* It never breaks the host app: any failure is reported once (rate-limited) and the
  batch is reported as failed to the SDK; nothing raises into the caller.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import OrderedDict
from typing import Any, Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import Attributes

from .. import _digest_key
from .. import _semconv as sc
from .._spans import report_internal_error
from . import schema
from .analysis import NOT_INDEXED  # kept in the span's JSON, not indexed

_log = logging.getLogger("instrumentors")

_MAX_CACHED_KEYS = 10_000
_MAX_CACHED_RESOURCES = 64

_INSERT_SPAN = (
    "INSERT OR IGNORE INTO spans(id, trace, span_id, parent_span_id, parent_remote, name, kind, start_ns, end_ns,"
    " status, status_message, resource, scope, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_TRACE = (
    "INSERT INTO traces(trace_id, start_ns, end_ns, span_count, error_count, root_rank, root_span_id, root_name)"
    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(trace_id) DO UPDATE SET"
    " start_ns = min(start_ns, excluded.start_ns),"
    " end_ns = max(end_ns, excluded.end_ns),"
    " span_count = span_count + excluded.span_count,"
    " error_count = error_count + excluded.error_count,"
    " root_span_id = CASE WHEN excluded.root_rank > root_rank THEN excluded.root_span_id ELSE root_span_id END,"
    " root_name = CASE WHEN excluded.root_rank > root_rank THEN excluded.root_name ELSE root_name END,"
    " root_rank = max(root_rank, excluded.root_rank)"
)
_INSERT_FEEDBACK = (
    "INSERT INTO feedback(trace, trace_id, span_id, target_span_id, key, score, reason, step_blamed, time_ns,"
    " attributes) VALUES (?,?,?,?,?,?,?,?,?,?)"
)

_KIND_NAMES: dict = {}  # id(SpanKind member) -> name (enum attribute access is slow)
_STATUS_NAMES = {id(code): code.name for code in StatusCode}  # by identity: Enum.__hash__ is Python code

_SEQUENCES = (tuple, list)
_SPAN_BITS = schema.SPAN_BITS
_INSERT_BLOCK = "INSERT INTO attr_blocks(key, arrays, data) VALUES (?,?,?)"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
_dumps = _ENCODER.encode
try:  # the C encoder straight, without JSONEncoder.encode's per-call setup (a third of its cost)
    from json.encoder import c_make_encoder as _c_make_encoder
    from json.encoder import encode_basestring as _encode_basestring
except ImportError:  # pragma: no cover - a Python without the C accelerator
    _c_make_encoder = None
if _c_make_encoder is not None and _encode_basestring.__module__ != "json.encoder":
    # no circular check: span attributes are scalars and flat sequences (a cycle would
    # raise RecursionError, reported like any other export failure)
    _c_encode = _c_make_encoder(None, str, _encode_basestring, None, ":", ",", False, False, False)

    def _dumps(obj: Any, _join: Any = "".join, _encode: Any = _c_encode) -> str:  # noqa: F811
        return _join(_encode(obj, 0))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(obj: dict) -> str:
    """Strict JSON (SQLite's json_each must parse it): a NaN or infinity becomes null."""
    try:
        return _dumps(obj)
    except ValueError:
        return _dumps({k: _finite(v) for k, v in obj.items()})


def _attr_dict(attributes: Any) -> dict:
    """The attributes as a plain dict, without copying BoundedAttributes twice."""
    if type(attributes) is dict:
        return attributes
    if attributes is None:
        return {}
    inner = getattr(attributes, "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(attributes)


def _view(span: ReadableSpan) -> tuple:
    """(context, parent, start, end, status, kind, resource, scope, name, events, links,
    attributes) of a span. Reads the SDK's fields directly when it can: the public
    properties copy tuples and cost 4 us per span, a fifth of the whole budget."""
    try:
        return (span._context, span._parent, span._start_time, span._end_time, span._status, span._kind,
                span._resource, span._instrumentation_scope, span._name, span._events or (), span._links or (),
                _attr_dict(span._attributes))
    except AttributeError:
        return (span.context, span.parent, span.start_time, span.end_time, span.status, span.kind, span.resource,
                span.instrumentation_scope, span.name, span.events, span.links, _attr_dict(span.attributes))


def _feedback_row(trace_ref: int, trace_hex: str, span_hex: str, parent_hex: Optional[str],
                  attributes: dict, time_ns: int) -> Optional[tuple]:
    if attributes.get(sc.SPAN_KIND) != sc.KIND_FEEDBACK:
        return None
    score = attributes.get(sc.FEEDBACK_SCORE)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return None
    extra = {k: v for k, v in attributes.items() if not k.startswith("feedback.") and k != sc.SPAN_KIND}
    return (
        trace_ref, trace_hex, span_hex,
        attributes.get(sc.FEEDBACK_TARGET_SPAN_ID) or parent_hex,
        str(attributes.get(sc.FEEDBACK_KEY) or "user"),
        float(score),
        attributes.get(sc.FEEDBACK_REASON),
        attributes.get(sc.FEEDBACK_STEP_BLAMED),
        time_ns,
        _json(extra),
    )


class SQLiteSpanExporter(SpanExporter):
    """Writes finished spans to the embedded SQLite trace store.

    ``path`` defaults to ``INSTRUMENTORS_STORE_PATH`` / ``.instrumentors/traces.db``,
    resolved to an absolute path when the exporter is created (a later ``chdir`` in the
    app does not move the store).
    """

    def __init__(self, path: Optional[str] = None, busy_timeout_ms: int = 30_000, *,
                 keys_digests: bool = True) -> None:
        if path is None:
            path = schema.default_path()
        self.path = os.path.abspath(os.fspath(path))
        self._busy_timeout_ms = busy_timeout_ms
        #: the exception of the last failed export (None after a successful one)
        self.last_error: Optional[BaseException] = None
        if keys_digests:  # this process writes spans here: the digest key file lives beside them
            _digest_key.note_store(self.path)
        self._lock = threading.Lock()
        self._conn = None
        self._pid: Optional[int] = None
        self._shutdown = False
        self._keys: dict = {}
        self._resources: "OrderedDict[str, int]" = OrderedDict()

    # -- connection -------------------------------------------------------------------

    def _connection(self):
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            # After a fork the inherited connection must not be used or closed (SQLite
            # locks are per process): drop it and open our own.
            if os.path.isdir(self.path):
                raise IsADirectoryError(f"{self.path} is a directory, not a trace store file")
            self._conn = schema.connect_writer(self.path, self._busy_timeout_ms)
            self._pid = pid
            self._keys = {}
            self._resources.clear()
        return self._conn

    # -- SpanExporter -----------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            with self._lock:
                conn = self._connection()
                self._write(conn, spans)
            self.last_error = None
            return SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001 - never raise into the SDK / host app
            self.last_error = exc
            report_internal_error(f"store export to {self.path}", exc)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            if self._conn is not None and self._pid == os.getpid():
                try:
                    schema.close_writer(self._conn)
                except Exception as exc:  # noqa: BLE001
                    report_internal_error("store shutdown", exc)
            self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export commits before returning

    # -- writing ----------------------------------------------------------------------

    def _key_id(self, conn, name: str) -> int:
        kid = self._keys.get(name)
        if kid is None:
            conn.execute("INSERT OR IGNORE INTO keys(name) VALUES (?)", (name,))
            kid = conn.execute("SELECT id FROM keys WHERE name = ?", (name,)).fetchone()[0]
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys.clear()
            self._keys[name] = kid
        return kid

    def _resource_id(self, conn, resource: Any) -> Optional[int]:
        if resource is None:
            return None
        attrs = _attr_dict(resource.attributes)
        digest = _json(dict(sorted(attrs.items())))
        rid = self._resources.get(digest)
        if rid is None:
            conn.execute("INSERT OR IGNORE INTO resources(digest, attributes) VALUES (?, ?)", (digest, _json(attrs)))
            rid = conn.execute("SELECT id FROM resources WHERE digest = ?", (digest,)).fetchone()[0]
            if len(self._resources) >= _MAX_CACHED_RESOURCES:
                self._resources.popitem(last=False)
            self._resources[digest] = rid
        return rid

    def _block_rows(self, conn, blocks: dict) -> list:
        """(key id, arrays, JSON) rows of the attribute index: array values go to blocks
        of their own (``arrays`` = 1) so scalar filters never expand them."""
        rows = []
        key_id = self._key_id
        dumps = _json
        sequences = _SEQUENCES
        for key, block in blocks.items():
            if key in NOT_INDEXED:
                continue
            text = dumps(block)
            if "[" in text:  # maybe arrays (or a bracket inside a string): look closer
                arrays = {s: v for s, v in block.items() if isinstance(v, sequences)}
                if arrays:
                    if len(arrays) < len(block):
                        rows.append((key_id(conn, key), 0,
                                     dumps({s: v for s, v in block.items() if not isinstance(v, sequences)})))
                        text = dumps(arrays)
                    rows.append((key_id(conn, key), 1, text))
                    continue
            rows.append((key_id(conn, key), 0, text))
        return rows

    def _write(self, conn, spans: Sequence[ReadableSpan]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted = self._write_in_transaction(conn, spans, skip=None)
            if inserted is not None:
                # Some spans were already stored (a retried batch): redo without them.
                conn.execute("ROLLBACK")
                self._keys.clear()
                self._resources.clear()
                conn.execute("BEGIN IMMEDIATE")
                self._write_in_transaction(conn, spans, skip=self._existing(conn, spans))
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the transaction may already be gone
                pass
            # ids cached during the failed transaction may not exist: forget them.
            self._keys.clear()
            self._resources.clear()
            raise

    @staticmethod
    def _existing(conn, spans: Sequence[ReadableSpan]) -> set:
        pairs = set()
        by_trace: dict = {}
        for span in spans:
            ctx = span.context
            by_trace.setdefault(format(ctx.trace_id, "032x"), []).append(format(ctx.span_id, "016x"))
        for trace_hex, span_ids in by_trace.items():
            marks = ",".join("?" * len(span_ids))
            rows = conn.execute(
                f"SELECT s.span_id FROM spans s JOIN traces t ON t.id = s.trace WHERE t.trace_id = ?"
                f" AND s.span_id IN ({marks})", (trace_hex, *span_ids)).fetchall()
            pairs.update((trace_hex, r[0]) for r in rows)
        return pairs

    def _write_in_transaction(self, conn, spans: Sequence[ReadableSpan], skip: Optional[set]):
        """Insert the batch; returns None, or a marker when duplicates need a redo.

        The per-span work is written out inline (no helper calls, hex ids formatted once
        per trace, enum members compared by identity): at ~50k spans/s a microsecond per
        span is 5% of the budget."""
        # Pass 1: which spans, per-trace summaries.
        items = []
        seen: set = set()
        traces: dict = {}
        trace_hexes: dict = {}
        kind_key, feedback_kind, no_start = sc.SPAN_KIND, sc.KIND_FEEDBACK, schema.NO_START
        error_code = StatusCode.ERROR
        for span in spans:
            view = _view(span)
            ctx = view[0]
            if ctx is None:
                continue
            trace_id = ctx.trace_id
            trace_hex = trace_hexes.get(trace_id)
            if trace_hex is None:
                trace_hex = trace_hexes[trace_id] = "%032x" % trace_id
            span_hex = "%016x" % ctx.span_id
            ident = (trace_hex, span_hex)
            if ident in seen or (skip is not None and ident in skip):
                continue
            seen.add(ident)
            attributes = view[11]
            start = view[2] or 0
            end = view[3] or start
            status = view[4].status_code
            error = 1 if status is error_code else 0
            parent = view[1]
            name = view[8]
            if attributes.get(kind_key) == feedback_kind:
                # feedback never stretches a trace and is never its root
                t_start, t_end, rank = no_start, 0, 0
            else:
                t_start, t_end = start, end
                rank = 2 if parent is None or not parent.is_valid else (1 if parent.is_remote else 0)
            summary = traces.get(trace_hex)
            if summary is None:
                traces[trace_hex] = [t_start, t_end, 1, error, rank, span_hex if rank else None,
                                     name if rank else None]
            else:
                if t_start < summary[0]:
                    summary[0] = t_start
                if t_end > summary[1]:
                    summary[1] = t_end
                summary[2] += 1
                summary[3] += error
                if rank > summary[4]:
                    summary[4], summary[5], summary[6] = rank, span_hex, name
            items.append((view, trace_hex, span_hex, status))
        if not items:
            return None
        conn.executemany(_UPSERT_TRACE, [(t, *s) for t, s in traces.items()])
        # trace hex -> [trace ref, next span ref]: a trace's spans are numbered from its
        # ref (see schema.SPAN_BITS), after those already stored.
        refs: dict = {}
        hexes = list(traces)
        for i in range(0, len(hexes), 500):
            chunk = hexes[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for ref, trace_hex, last in conn.execute(
                    f"SELECT t.id, t.trace_id, (SELECT max(s.id) FROM spans s WHERE s.id BETWEEN t.id << {_SPAN_BITS}"
                    f" AND ((t.id + 1) << {_SPAN_BITS}) - 1) FROM traces t WHERE t.trace_id IN ({marks})", chunk):
                first = ref << _SPAN_BITS
                following = first if last is None else last + 1
                if following - first + traces[trace_hex][2] > schema.MAX_SPANS_PER_TRACE:
                    raise ValueError(f"trace {trace_hex} has more than {schema.MAX_SPANS_PER_TRACE} spans; "
                                     "the store keeps no more of it")
                refs[trace_hex] = [ref, following]

        # Pass 2: rows. The attribute index is one JSON object per key for the whole
        # batch (span ref -> value), array values in a block of their own (see schema).
        span_rows = []
        event_rows = []
        link_rows = []
        feedback_rows = []
        blocks: dict = {}  # key -> {span ref (decimal text): value}
        resource_id = self._resource_id
        last_resource = None
        last_rid = None
        kind_names = _KIND_NAMES
        status_names = _STATUS_NAMES
        dumps = _json
        feedback_score = sc.FEEDBACK_SCORE
        link_type_key, link_doc_key, link_source_key = (sc.GEN_AI_ATTRIBUTION_LINK_TYPE, sc.LINK_DOCUMENT_ID,
                                                        sc.LINK_SOURCE_KIND)
        link_score_key, link_coverage_key = sc.LINK_SCORE, sc.LINK_COVERAGE
        for view, trace_hex, span_hex, status in items:
            ref = refs[trace_hex]
            tref = ref[0]
            sid = ref[1]
            ref[1] = sid + 1
            parent = view[1]
            parent_hex = "%016x" % parent.span_id if parent is not None and parent.is_valid else None
            kind = view[5]
            kind_name = kind_names.get(id(kind))
            if kind_name is None:
                kind_name = kind_names[id(kind)] = kind.name
            resource = view[6]
            if resource is not last_resource:
                last_rid = resource_id(conn, resource)
                last_resource = resource
            attributes = view[11]
            if attributes:
                text = dumps(attributes)
                sid_text = str(sid)  # once per span, not once per value inside the encoder
                for key, value in attributes.items():
                    block = blocks.get(key)
                    if block is None:
                        block = blocks[key] = {}
                    block[sid_text] = value
            else:
                text = "{}"
            scope = view[7]
            start = view[2] or 0
            span_rows.append((
                sid, tref, span_hex, parent_hex, 1 if parent_hex and parent.is_remote else 0, view[8],
                kind_name, start, view[3] or start, status_names[id(status)], view[4].description,
                last_rid, scope.name if scope is not None else None, text,
            ))
            events = view[9]
            if events:
                for pos, event in enumerate(events):
                    event_rows.append((tref, sid, pos, event.name, event.timestamp,
                                       dumps(_attr_dict(event.attributes))))
            links = view[10]
            if links:
                for pos, link in enumerate(links):
                    lattrs = _attr_dict(link.attributes)
                    lctx = link.context
                    linked_trace = lctx.trace_id
                    linked_hex = trace_hexes.get(linked_trace)  # most links stay in their trace
                    if linked_hex is None:
                        linked_hex = "%032x" % linked_trace
                    score = lattrs.get(link_score_key)
                    coverage = lattrs.get(link_coverage_key)
                    doc = lattrs.get(link_doc_key)
                    link_rows.append((
                        tref, sid, pos, linked_hex, "%016x" % lctx.span_id,
                        lattrs.get(link_type_key),
                        str(doc) if doc is not None else None,
                        lattrs.get(link_source_key),
                        score if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
                        coverage if isinstance(coverage, (int, float)) and not isinstance(coverage, bool) else None,
                        dumps(lattrs),
                    ))
            if feedback_score in attributes:
                row = _feedback_row(tref, trace_hex, span_hex, parent_hex, attributes, start)
                if row is not None:
                    feedback_rows.append(row)

        cur = conn.executemany(_INSERT_SPAN, span_rows)
        if cur.rowcount != len(span_rows):
            if skip is not None:  # pragma: no cover - a concurrent writer raced the redo
                raise RuntimeError("span rows conflicted twice; batch dropped")
            return "duplicates"
        conn.executemany(_INSERT_BLOCK, self._block_rows(conn, blocks))
        if event_rows:
            conn.executemany("INSERT INTO events(trace, span, pos, name, time_ns, attributes) VALUES (?,?,?,?,?,?)",
                             event_rows)
        if link_rows:
            conn.executemany(
                "INSERT INTO links(trace, span, pos, linked_trace_id, linked_span_id, link_type, document_id,"
                " source_kind, score, coverage, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?)", link_rows)
        if feedback_rows:
            conn.executemany(_INSERT_FEEDBACK, feedback_rows)
        return None


def attributes_to_json(attributes: Attributes) -> str:
    """The JSON the store keeps for a span's attributes (used by tests and tools)."""
    return _json(_attr_dict(attributes))
