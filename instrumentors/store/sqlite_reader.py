"""``SQLiteReader``: the embedded store's read side (the file ``SQLiteSpanExporter``
writes, layout in :mod:`.schema`).

Opened read-only (``mode=ro``): nothing here can change or lose stored data, so it is
safe to point it at the file a running app is exporting into. Filters are compiled to
SQL over the transposed attribute blocks (see :mod:`.schema` for why that layout).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from typing import Any, Mapping, Optional, Sequence

from . import schema
from .model import TraceNotFound, feedback_record, iso_time, span_record, trace_meta
from .query import ORDERING as _SQL_OPS
from .query import Condition, FilterError
from .reader import TraceReader
from .schema import SPAN_BITS

# ---------------------------------------------------------------------------------------
# SQL compilation
# ---------------------------------------------------------------------------------------


def _num_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _value_sql(op: str, value: Any, x: str, params: list) -> str:
    """SQL condition on one stored value ``x`` (a ``json_each`` atom: a number, 1/0 for
    a boolean, a string; NULL for null).

    Typed without asking SQLite for the JSON type (that doubled the cost of a scan):
    SQLite orders every number before every string, so ``x < ''`` holds exactly for
    numbers and ``x >= ''`` exactly for strings, and a number never equals a string."""
    if op == "exists":
        return f"{x} IS NOT NULL"
    if op == "contains":
        params.append(value)
        return f"({x} >= '' AND instr({x}, ?) > 0)"
    if op == "in":
        values = [float(v) if isinstance(v, bool) else v for v in value]
        values += [_num_str(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        params.extend(values)
        return f"{x} IN ({','.join('?' * len(values))})"
    if isinstance(value, bool):
        params.append(1.0 if value else 0.0)
        return f"{x} = ?" if op == "eq" else f"{x} != ?"
    if isinstance(value, (int, float)):
        if op == "eq":
            params.extend((value, _num_str(value)))
            return f"{x} IN (?, ?)"
        if op == "ne":
            params.extend((value, _num_str(value)))
            return f"({x} != ? AND {x} != ?)"
        params.append(value)
        if op in ("lt", "lte"):
            return f"{x} {_SQL_OPS[op]} ?"  # a string is never below a number
        return f"({x} {_SQL_OPS[op]} ? AND {x} < '')"
    # string
    params.append(value)
    if op in ("eq", "ne"):
        return f"{x} {'=' if op == 'eq' else '!='} ?"
    if op in ("gt", "gte"):
        return f"{x} {_SQL_OPS[op]} ?"  # a number is never above a string
    return f"({x} {_SQL_OPS[op]} ? AND {x} >= '')"


def _intrinsic_sql(cond: Condition, params: list) -> str:
    if cond.key == "duration_ms":
        column = "((end_ns - start_ns) / 1e6)"

        def norm(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(f"filter 'duration_ms' takes numbers, not {value!r}")
            return value
    else:
        column = "name" if cond.key == "name" else f"lower({cond.key})"

        def norm(value: Any) -> Any:
            if isinstance(value, bool):
                value = "true" if value else "false"
            return str(value) if cond.key == "name" else str(value).lower()

    parts = []
    for op, value in cond.ops:
        if op == "in":
            values = [norm(v) for v in value]
            params.extend(values)
            parts.append(f"{column} IN ({','.join('?' * len(values))})")
        elif op == "contains":
            params.append(norm(value))
            parts.append(f"instr({column}, ?) > 0")
        elif op == "eq":
            params.append(norm(value))
            parts.append(f"{column} = ?")
        elif op == "ne":
            params.append(norm(value))
            parts.append(f"{column} != ?")
        else:
            params.append(norm(value))
            parts.append(f"{column} {_SQL_OPS[op]} ?")
    return " AND ".join(parts) or "1"


def _value_rows(key_id: int, column: str, ops: Sequence, params: list) -> str:
    """SELECT of ``column`` (span or trace ref) for each stored value of the key that
    satisfies every op: scalar blocks, then each element of array blocks."""
    selects = []
    for arrays, alias, source in (
            (0, "e", "attr_blocks b, json_each(b.data) e"),
            (1, "a", "attr_blocks b, json_each(b.data) e, json_each(e.value) a")):
        row_params: list = [key_id]
        # ``atom``: the value, NULL for arrays and objects (nested ones are not matched)
        row_sql = " AND ".join(_value_sql(op, v, f"{alias}.atom", row_params) for op, v in ops)
        params.extend(row_params)
        selects.append(f"SELECT {column} FROM {source} WHERE b.key = ? AND b.arrays = {arrays} AND {row_sql}")
    return " UNION ALL ".join(selects)


def condition_sql(cond: Condition, key_id: Optional[int], level: str, params: list) -> str:
    """A SELECT returning trace refs (level 'trace') or span ids (level 'span') for which
    ``cond`` holds. ``key_id`` is None when no span ever had the key."""
    if cond.intrinsic:
        where = _intrinsic_sql(cond, params)
        return f"SELECT {'trace' if level == 'trace' else 'id'} FROM spans WHERE {where}"
    universe = "SELECT id FROM traces" if level == "trace" else "SELECT id FROM spans"
    # a span ref carries its trace ref in its high bits (schema.SPAN_BITS)
    column = f"CAST(e.key AS INTEGER) >> {SPAN_BITS}" if level == "trace" else "CAST(e.key AS INTEGER)"
    if cond.exists_false:
        if key_id is None:
            return universe
        return f"{universe} EXCEPT SELECT * FROM ({_value_rows(key_id, column, (('exists', True),), params)})"
    if key_id is None:
        return "SELECT id FROM traces WHERE 0"
    return _value_rows(key_id, column, cond.ops, params)


def compile_filters(conditions: Sequence[Condition], key_ids: Mapping[str, Optional[int]], level: str,
                    params: list) -> Optional[str]:
    """INTERSECT of the conditions' selects, or None when there are no conditions."""
    if level not in ("trace", "span"):
        raise FilterError(f"level must be 'trace' or 'span', not {level!r}")
    selects = []
    for cond in conditions:
        sub_params: list = []
        sql = condition_sql(cond, key_ids.get(cond.key), level, sub_params)
        selects.append(f"SELECT * FROM ({sql})")
        params.extend(sub_params)
    if not selects:
        return None
    if len(selects) == 1:
        return "SELECT DISTINCT" + selects[0][len("SELECT"):]
    return " INTERSECT ".join(selects)




# ---------------------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------------------

_SPAN_COLS = ("id, trace, span_id, parent_span_id, parent_remote, name, kind, start_ns, end_ns, status,"
              " status_message, resource, scope, attributes")
_FEEDBACK_COLS = "trace, trace_id, span_id, target_span_id, key, score, reason, step_blamed, time_ns, attributes"
_TRACE_COLS = "id, trace_id, start_ns, end_ns, span_count, error_count, root_span_id, root_name"


def _one_snapshot(method):
    """Run a reader method's SELECTs in one read transaction: a trace's summary row, its
    spans and its feedback then come from the same committed state, never from both sides
    of a writer's commit (the hardening suite saw ``span_count`` 2 with 5 spans read)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            conn = self._conn
            if conn is None or conn.in_transaction:
                return method(self, *args, **kwargs)
            conn.execute("BEGIN")
            try:
                return method(self, *args, **kwargs)
            finally:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:  # pragma: no cover - a read transaction has nothing to lose
                    pass

    return wrapper


class SQLiteReader(TraceReader):
    """Read-only access to a trace store file. Refs are ``traces.id`` row ids.

    Raises :class:`~instrumentors.store.errors.StoreError` subclasses with a clear message
    when the file is missing, locked or not a trace store.
    """

    def __init__(self, path: Optional[str] = None, *, timeout: float = 5.0) -> None:
        self.path = str(path or schema.default_path())
        self.location = self.path
        self._conn = schema.connect_reader(self.path, busy_timeout_ms=int(timeout * 1000))
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _rows(self, sql: str, params: Sequence = ()) -> list:
        with self._lock:
            if self._conn is None:
                raise schema.StoreError("this TraceStore is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise schema.StoreLocked(f"trace store {self.path} is locked: {exc}") from exc
                raise schema.StoreCorrupt(f"cannot read trace store {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise schema.StoreCorrupt(f"trace store {self.path} is damaged: {exc}") from exc

    def _chunks(self, refs: Sequence[Any], size: int = 500):
        refs = list(refs)
        for i in range(0, len(refs), size):
            chunk = refs[i:i + size]
            yield chunk, ",".join("?" * len(chunk))

    def _key_ids(self, names: Sequence[str]) -> dict:
        names = [n for n in dict.fromkeys(names)]
        if not names:
            return {}
        found = dict(self._rows(f"SELECT name, id FROM keys WHERE name IN ({','.join('?' * len(names))})", names))
        return {n: found.get(n) for n in names}

    def _compiled(self, conditions: Sequence[Condition], level: str) -> tuple:
        key_ids = self._key_ids([c.key for c in conditions if not c.intrinsic])
        params: list = []
        sql = compile_filters(conditions, key_ids, level, params)
        return sql, params

    @staticmethod
    def _time_where(since_ns: Optional[int], until_ns: Optional[int], column: str, params: list) -> list:
        parts = []
        if since_ns is not None:
            parts.append(f"{column} >= ?")
            params.append(since_ns)
        if until_ns is not None:
            parts.append(f"{column} < ?")
            params.append(until_ns)
        return parts

    # -- filtering ------------------------------------------------------------------------

    def _where(self, conditions: Sequence[Condition], level: str, since_ns: Optional[int],
               until_ns: Optional[int], alias: str = "") -> tuple:
        """(SQL conditions, their parameters) selecting the matching rows of ``traces``
        (level trace) or ``spans`` (``alias``: the table's alias in the query)."""
        sql, params = self._compiled(conditions, level)
        where = []
        all_params: list = []
        if sql is not None:
            where.append(f"{alias}id IN ({sql})")
            all_params.extend(params)
        where += self._time_where(since_ns, until_ns, f"{alias}start_ns", all_params)
        return where, all_params

    def count(self, conditions: Sequence[Condition], level: str, since_ns: Optional[int] = None,
              until_ns: Optional[int] = None) -> int:
        table = "traces" if level == "trace" else "spans"
        where, all_params = self._where(conditions, level, since_ns, until_ns)
        if level == "trace" and (since_ns is not None or until_ns is not None):
            where.append(f"start_ns < {schema.NO_START}")  # as find_traces: feedback-only traces have no time
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return self._rows(f"SELECT count(*) FROM {table}{clause}", all_params)[0][0]

    def find_traces(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                    until_ns: Optional[int], offset: int = 0) -> list:
        where, where_params = self._where(conditions, "trace", since_ns, until_ns)
        lim = -1 if limit is None else limit
        base = " AND ".join(where)
        first = f"SELECT id FROM traces WHERE start_ns < {schema.NO_START}" + (f" AND {base}" if base else "")
        refs = [r[0] for r in self._rows(first + " ORDER BY start_ns DESC, id DESC LIMIT ? OFFSET ?",
                                         [*where_params, lim, offset])]
        if (limit is None or len(refs) < limit) and since_ns is None and until_ns is None:
            # traces known only from their feedback (their spans went elsewhere): last
            if refs or not offset:
                skip = 0
            else:  # the page starts past the timed traces: how far past
                skip = max(0, offset - self._rows(f"SELECT count(*) FROM ({first})", where_params)[0][0])
            rest = f"SELECT id FROM traces WHERE start_ns >= {schema.NO_START}" + (f" AND {base}" if base else "")
            more = -1 if limit is None else limit - len(refs)
            refs += [r[0] for r in self._rows(rest + " ORDER BY trace_id LIMIT ? OFFSET ?", [*where_params, more, skip])]
        return refs

    def find_spans(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                   until_ns: Optional[int], offset: int = 0) -> list:
        where, all_params = self._where(conditions, "span", since_ns, until_ns, alias="s.")
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        cols = ", ".join("s." + c.strip() for c in _SPAN_COLS.split(","))
        rows = self._rows(
            f"SELECT {cols}, t.trace_id FROM spans s JOIN traces t ON t.id = s.trace {clause}"
            " ORDER BY s.start_ns DESC, s.id DESC LIMIT ? OFFSET ?",
            [*all_params, -1 if limit is None else limit, offset])
        out = []
        for row in rows:
            span = _span_dict(row[:14])
            span["trace_id"] = row[14]
            out.append(span)
        return out

    def scored_traces(self, key: Optional[str], limit: Optional[int], conditions: Sequence[Condition]) -> list:
        params: list = []
        where = []
        if key is not None:
            where.append("f.key = ?")
            params.append(key)
        if conditions:
            sql, filter_params = self._compiled(conditions, "trace")
            where.append(f"f.trace IN ({sql})")
            params.extend(filter_params)
        params.append(-1 if limit is None else limit)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._rows(
            f"SELECT f.trace, min(f.score) FROM feedback f {clause} GROUP BY f.trace"
            " ORDER BY max(f.time_ns) DESC LIMIT ?", params)

    # -- loading ----------------------------------------------------------------------------

    def resolve(self, text: str) -> tuple:
        if len(text) == 32:
            rows = self._rows("SELECT id, trace_id FROM traces WHERE trace_id = ?", (text,))
        else:
            rows = self._rows("SELECT id, trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
                              (text, text + "g"))
            if len(rows) > 1:
                raise TraceNotFound(f"trace id prefix {text!r} is ambiguous; give more digits")
        if not rows:
            raise TraceNotFound(f"no trace {text} in {self.path}")
        return tuple(rows[0])

    def _spans_of(self, refs: Sequence[int]) -> dict:
        """trace ref -> list of (rowid, span dict)."""
        out: dict = {ref: [] for ref in refs}
        for chunk, marks in self._chunks(refs):
            for row in self._rows(f"SELECT {_SPAN_COLS} FROM spans WHERE trace IN ({marks}) ORDER BY start_ns, id",
                                  chunk):
                out[row[1]].append((row[0], _span_dict(row)))
        return out

    def _feedback_of(self, refs: Sequence[int]) -> dict:
        out: dict = {ref: [] for ref in refs}
        for chunk, marks in self._chunks(refs):
            for row in self._rows(
                    f"SELECT {_FEEDBACK_COLS} FROM feedback WHERE trace IN ({marks}) ORDER BY time_ns, id", chunk):
                out[row[0]].append(_feedback_dict(row))
        return out

    @_one_snapshot
    def load(self, refs: Sequence[Any], *, links: bool = True) -> dict:
        metas = {}
        for chunk, marks in self._chunks(refs):
            for row in self._rows(f"SELECT {_TRACE_COLS} FROM traces WHERE id IN ({marks})", chunk):
                metas[row[0]] = _trace_meta(row)
        spans = self._spans_of(refs)
        feedback = self._feedback_of(refs)
        link_rows: dict = {}
        events: dict = {}
        if links:
            for chunk, marks in self._chunks(refs):
                for row in self._rows(
                        "SELECT span, linked_trace_id, linked_span_id, link_type, document_id, source_kind, score,"
                        f" coverage, attributes FROM links WHERE trace IN ({marks}) ORDER BY span, pos", chunk):
                    link_rows.setdefault(row[0], []).append({
                        "trace_id": row[1], "span_id": row[2], "link_type": row[3], "document_id": row[4],
                        "source_kind": row[5], "score": row[6], "coverage": row[7],
                        "attributes": json.loads(row[8]),
                    })
                for row in self._rows(
                        f"SELECT span, name, time_ns, attributes FROM events WHERE trace IN ({marks})"
                        " ORDER BY span, pos", chunk):
                    events.setdefault(row[0], []).append(
                        {"name": row[1], "time_ns": row[2], "attributes": json.loads(row[3])})
        out = {}
        for ref in refs:
            meta = metas.get(ref)
            if meta is None:
                continue
            loaded_spans = []
            for rowid, span in spans[ref]:
                span["links"] = link_rows.get(rowid, [])
                span["events"] = events.get(rowid, [])
                loaded_spans.append(span)
            out[ref] = {"meta": meta, "spans": loaded_spans, "feedback": feedback[ref]}
        return out

    @_one_snapshot
    def load_lean(self, refs: Sequence[Any]) -> dict:
        """No events, feedback, ISO times or link attributes are decoded: over thousands
        of traces that decoding was most of the loading."""
        out = {}
        for part, marks in self._chunks(refs):
            metas = {}
            for ref, trace_id, start, root_span_id in self._rows(
                    f"SELECT id, trace_id, start_ns, root_span_id FROM traces WHERE id IN ({marks})", part):
                metas[ref] = {"trace_id": trace_id, "root_span_id": root_span_id,
                              "start_ns": start if start < schema.NO_START else None}
            links: dict = {}
            for span, linked_span_id, link_type, document_id, source_kind in self._rows(
                    "SELECT span, linked_span_id, link_type, document_id, source_kind FROM links"
                    f" WHERE trace IN ({marks}) ORDER BY span, pos", part):
                if link_type or source_kind or document_id:  # analysis.causal_links
                    links.setdefault(span, []).append({"span_id": linked_span_id, "link_type": link_type,
                                                       "document_id": document_id, "source_kind": source_kind})
            spans: dict = {ref: [] for ref in part}
            loads = json.loads
            for rowid, trace, span_id, parent, name, start, end, status, attributes in self._rows(
                    "SELECT id, trace, span_id, parent_span_id, name, start_ns, end_ns, status, attributes"
                    f" FROM spans WHERE trace IN ({marks}) ORDER BY start_ns, id", part):
                spans[trace].append({"span_id": span_id, "parent_span_id": parent, "name": name, "start_ns": start,
                                     "end_ns": end, "status": status, "attributes": loads(attributes),
                                     "links": links.get(rowid, [])})
            for ref in part:
                meta = metas.get(ref)
                if meta is not None:
                    out[ref] = {"meta": meta, "spans": spans[ref]}
        return out

    def recent_feedback(self, limit: Optional[int]) -> list:
        rows = self._rows(f"SELECT {_FEEDBACK_COLS} FROM feedback ORDER BY time_ns DESC, id DESC LIMIT ?",
                          (-1 if limit is None else limit,))
        return [_feedback_dict(r) for r in rows]

    def span_names(self, pairs: Sequence[tuple]) -> dict:
        names = {}
        for trace_id, span_id in pairs:
            rows = self._rows("SELECT s.name FROM spans s JOIN traces t ON t.id = s.trace"
                              " WHERE t.trace_id = ? AND s.span_id = ?", (trace_id, span_id))
            if rows:
                names[(trace_id, span_id)] = rows[0][0]
        return names

    def root_span_id(self, ref: Any) -> Optional[str]:
        rows = self._rows("SELECT root_span_id FROM traces WHERE id = ?", (ref,))
        return rows[0][0] if rows else None

    @_one_snapshot
    def version(self) -> tuple:
        # spans and feedback are insert-only: their largest rowids move with every write
        return tuple(self._rows("SELECT (SELECT max(rowid) FROM spans), (SELECT max(rowid) FROM feedback)")[0])

    def stats(self) -> dict:
        counts = {t: self._rows(f"SELECT count(*) FROM {t}")[0][0] for t in ("traces", "spans", "links", "feedback")}
        span_range = self._rows(f"SELECT min(start_ns), max(start_ns) FROM traces WHERE start_ns < {schema.NO_START}")[0]
        size = sum(os.path.getsize(self.path + s) for s in ("", "-wal") if os.path.exists(self.path + s))
        return {"path": os.path.abspath(self.path), "bytes": size, **counts,
                "first_trace": iso_time(span_range[0]), "last_trace": iso_time(span_range[1])}


def _span_dict(row: Sequence) -> dict:
    return span_record(row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[12],
                       json.loads(row[13]))


def _feedback_dict(row: Sequence) -> dict:
    return feedback_record(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], json.loads(row[9]))


def _trace_meta(row: Sequence) -> dict:
    start = row[2] if row[2] < schema.NO_START else None
    return trace_meta(row[1], start, row[3], row[4], row[5], row[6], row[7])
