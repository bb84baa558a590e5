"""``ClickHouseReader``: traces in a ClickHouse table of the OpenTelemetry Collector
exporter's ``otel_traces`` layout (see :mod:`.clickhouse_layout`), on a server or chDB.

Filters are compiled to one SQL statement each and run by the engine: a span-level
filter is a ``WHERE`` over the span rows; a trace-level one groups the rows by
``TraceId`` with one ``countIf`` per condition (TraceQL's "some span of the trace
satisfies it", each condition on possibly another span). Attribute values are map
lookups (``SpanAttributes['key']``); an array value (JSON text, as the Collector writes
it) is matched element by element with ``arrayExists`` over ``JSONExtractArrayRaw``.
Only the traces a query returns are loaded into Python. Refs are trace ids.

Nothing here writes: reads are ``SELECT`` statements only (a missing table is reported,
never created).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from .. import _semconv as sc
from . import clickhouse_layout as layout
from .analysis import NOT_INDEXED
from .clickhouse_engine import check_layout, connect, quote
from .model import TraceNotFound, feedback_record, iso_time, span_record, trace_meta
from .query import ORDERING, Condition, FilterError
from .reader import TraceReader
from .url import StoreURL

_NUM = layout.SQL_NUMBER_PATTERN
_FEEDBACK = f"SpanAttributes[{quote(sc.SPAN_KIND)}] = {quote(sc.KIND_FEEDBACK)}"
_CREATE_HINT = ("point the Collector's clickhouseexporter (traces_table_name) or instrumentors' exporter at it,"
                " or give ?table=NAME")


def _num_text(value: Any) -> str:
    """A number's decimal form as the Collector writes it (``0.5``, ``3``)."""
    return layout.attribute_text(value)


def _is_num(x: str) -> str:
    return f"match({x}, '{_NUM}')"


def _is_text(x: str) -> str:
    return f"(NOT {_is_num(x)} AND {x} NOT IN ('true', 'false'))"


def _value_sql(op: str, value: Any, x: str) -> str:
    """A condition on one atom ``x`` (the text of a scalar value or of one array element),
    with the typed semantics of :mod:`.query`: a number compares with numbers (and equals
    its decimal string), a string with strings, a boolean with booleans."""
    if op == "exists":
        return "1"
    if op == "contains":
        return f"({_is_text(x)} AND position({x}, {quote(value)}) > 0)"
    if op == "in":
        return "(" + " OR ".join(_value_sql("eq", v, x) for v in value) + ")"
    if isinstance(value, bool):
        literal = "'true'" if value else "'false'"
        return f"{x} = {literal}" if op == "eq" else f"{x} != {literal}"
    if isinstance(value, (int, float)):
        # the float comparison first: the canonical-number regex then runs only on the rows it passed
        equal = f"({x} = {quote(_num_text(value))} OR (toFloat64OrZero({x}) = {float(value)!r} AND {_is_num(x)}))"
        if op == "eq":
            return equal
        if op == "ne":
            return f"NOT {equal}"
        return f"(toFloat64OrZero({x}) {ORDERING[op]} {float(value)!r} AND {_is_num(x)})"
    if op == "eq":
        return f"{x} = {quote(value)}"
    if op == "ne":
        return f"{x} != {quote(value)}"
    return f"({_is_text(x)} AND {x} {ORDERING[op]} {quote(value)})"


def _atoms_condition(key: str, ops: Sequence) -> str:
    """The span has ``key`` and one of its atoms satisfies every op (the same atom)."""
    v = f"SpanAttributes[{quote(key)}]"
    scalar = " AND ".join(_value_sql(op, val, v) for op, val in ops)
    element = " AND ".join(_value_sql(op, val, "e") for op, val in ops)
    # an array of scalars (JSON text) is matched element by element, string elements unquoted
    raw = f"JSONExtractArrayRaw({v})"
    elements = f"arrayMap(r -> if(startsWith(r, '\"'), JSONExtractString(concat('[', r, ']'), 1), r), {raw})"
    is_array = (f"(startsWith({v}, '[') AND endsWith({v}, ']') AND isValidJSON({v}) AND notEmpty({raw})"
                f" AND arrayAll(r -> NOT (startsWith(r, '{{') OR startsWith(r, '[')), {raw}))")
    return (f"(mapContains(SpanAttributes, {quote(key)})"
            f" AND if({is_array}, arrayExists(e -> {element}, {elements}), {scalar}))")


def _intrinsic_sql(cond: Condition) -> str:
    if cond.key == "duration_ms":
        column = "(Duration / 1e6)"

        def literal(value: Any) -> str:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(f"filter 'duration_ms' takes numbers, not {value!r}")
            return repr(float(value))
    else:
        column = {"name": "SpanName", "status": layout.SQL_STATUS, "kind": layout.SQL_KIND}[cond.key]

        def literal(value: Any) -> str:
            if isinstance(value, bool):
                value = "true" if value else "false"
            return quote(str(value) if cond.key == "name" else str(value).lower())
    parts = []
    for op, value in cond.ops:
        if op == "in":
            parts.append(f"{column} IN ({', '.join(literal(v) for v in value)})")
        elif op == "contains":
            parts.append(f"position({column}, {literal(value)}) > 0")
        elif op == "eq":
            parts.append(f"{column} = {literal(value)}")
        elif op == "ne":
            parts.append(f"{column} != {literal(value)}")
        else:
            parts.append(f"{column} {ORDERING[op]} {literal(value)}")
    return "(" + (" AND ".join(parts) or "1") + ")"


def span_condition(cond: Condition) -> str:
    """SQL true for a span row satisfying ``cond`` (``exists: false``: lacking the key)."""
    if cond.intrinsic:
        return _intrinsic_sql(cond)
    if cond.key in NOT_INDEXED:  # as in the SQLite store: digests are never filterable
        return "0" if not cond.exists_false else "1"
    if cond.exists_false:
        return f"NOT mapContains(SpanAttributes, {quote(cond.key)})"
    return _atoms_condition(cond.key, cond.ops)


def _having(conditions: Sequence[Condition]) -> str:
    parts = []
    for cond in conditions:
        if cond.exists_false and not cond.intrinsic:
            inner = span_condition(Condition(cond.key, (("exists", True),)))
            parts.append(f"countIf({inner}) = 0")
        else:
            parts.append(f"countIf({span_condition(cond)}) > 0")
    return " AND ".join(parts)


def _limit_sql(limit: Optional[int], offset: int = 0) -> str:
    """`` LIMIT n OFFSET m`` (no limit with an offset: the largest UInt64)."""
    if limit is None and not offset:
        return ""
    count = (1 << 64) - 1 if limit is None else int(limit)
    return f" LIMIT {count}" + (f" OFFSET {int(offset)}" if offset else "")


class ClickHouseReader(TraceReader):
    """Read-only access to an ``otel_traces`` table. See the module docstring."""

    def __init__(self, location: StoreURL, *, timeout: float = 5.0) -> None:
        self.url = location
        self.location = location.masked
        self._engine = connect(location, timeout)
        try:
            columns = check_layout(self._engine, _CREATE_HINT)
        except BaseException:
            self._engine.close()
            raise
        self._table = f"{location.database}.{location.table}"
        self._scope = "ScopeName" if "ScopeName" in columns else "''"

    def close(self) -> None:
        self._engine.close()

    def _rows(self, sql: str) -> list:
        return self._engine.rows(sql)

    # -- filtering ------------------------------------------------------------------------

    def _trace_select(self, conditions: Sequence[Condition], since_ns: Optional[int],
                      until_ns: Optional[int]) -> str:
        """TraceId, start (NULL: feedback only) of each matching trace."""
        having = [_having(conditions)] if conditions else []
        start = f"minIf(toUnixTimestamp64Nano(Timestamp), NOT ({_FEEDBACK}))"
        if since_ns is not None or until_ns is not None:
            having.append(f"countIf(NOT ({_FEEDBACK})) > 0")
            if since_ns is not None:
                having.append(f"{start} >= {int(since_ns)}")
            if until_ns is not None:
                having.append(f"{start} < {int(until_ns)}")
        clause = (" HAVING " + " AND ".join(having)) if having else ""
        return (f"SELECT TraceId, if(countIf(NOT ({_FEEDBACK})) > 0, {start}, NULL) AS start FROM {self._table}"
                f" WHERE TraceId != '' GROUP BY TraceId{clause}")

    @staticmethod
    def _positive(conditions: Sequence[Condition]) -> bool:
        """Every condition asks for *some* span satisfying it (none is ``exists: false`` on
        an attribute): then only the spans satisfying one of them decide whether a trace
        matches, and the engine reads just those rows (the key bloom-filter index of the
        Collector's layout skips the granules without the keys)."""
        return bool(conditions) and not any(c.exists_false and not c.intrinsic for c in conditions)

    def _matching_sql(self, conditions: Sequence[Condition]) -> str:
        """TraceId of each trace matching every condition (no time bounds)."""
        if self._positive(conditions):
            parts = [span_condition(c) for c in conditions]
            where = " OR ".join(f"({p})" for p in parts)
            having = " AND ".join(f"countIf({p}) > 0" for p in parts)
            return (f"SELECT TraceId FROM {self._table} WHERE TraceId != '' AND ({where})"
                    f" GROUP BY TraceId HAVING {having}")
        return f"SELECT TraceId FROM ({self._trace_select(conditions, None, None)})"

    def _time_range(self) -> tuple:
        """(first, last span start in ns, spans) of the table (part metadata: cheap)."""
        first, last, spans = self._rows(f"SELECT toUnixTimestamp64Nano(min(Timestamp)),"
                                        f" toUnixTimestamp64Nano(max(Timestamp)), count() FROM {self._table}")[0]
        return int(first or 0), int(last or 0), int(spans)

    def _window_sql(self, conditions: Sequence[Condition], after_ns: int, since_ns: Optional[int],
                    until_ns: Optional[int], want: int) -> str:
        """The ``want`` newest matching traces among those starting at or after ``after_ns``.

        A trace starting at or after ``after_ns`` has all its non-feedback spans there,
        so it is among the traces with a span in ``[after_ns, ...)``; each such trace is
        then judged on *all* its spans (wherever their times), so the answer is exact for
        the traces starting in the window."""
        fb = f"NOT ({_FEEDBACK})"
        start = f"minIf(toUnixTimestamp64Nano(Timestamp), {fb})"
        lower = after_ns if since_ns is None else max(after_ns, int(since_ns))
        having = ([_having(conditions)] if conditions else []) + [f"countIf({fb}) > 0", f"{start} >= {lower}"]
        if until_ns is not None:
            having.append(f"{start} < {int(until_ns)}")
        recent = f"SELECT TraceId FROM {self._table} WHERE Timestamp >= fromUnixTimestamp64Nano({int(after_ns)})"
        return (f"SELECT TraceId, {start} AS start FROM {self._table} WHERE TraceId IN ({recent})"
                f" AND TraceId != '' GROUP BY TraceId HAVING {' AND '.join(having)}"
                f" ORDER BY start DESC, TraceId LIMIT {int(want)}")

    #: spans in the first time window a limited trace query looks at (at least 16 per trace
    #: wanted; then 4x per round). Small on purpose: the TraceId bloom filter skips granules
    #: well for a few hundred traces, hardly for thousands (its false positives add up)
    WINDOW_SPANS = 1024

    def find_traces(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                    until_ns: Optional[int], offset: int = 0) -> list:
        # With a limit only the newest traces matter: look at the traces of a recent time
        # window first (the sort key and the TraceId bloom filter let the engine read only
        # those) and widen it 4x while it holds fewer than offset + limit matches; the
        # whole table is the last resort. So the cost follows the window, not the table.
        want = (int(limit) + int(offset)) if limit is not None else 0
        if want > 0:
            first, last, spans = self._time_range()
            if not spans:
                return []
            top = last if until_ns is None else min(last, int(until_ns))
            window = max(self.WINDOW_SPANS, 16 * want)
            while window < spans:
                after = top - (last - first) * window // spans
                if after <= first or (since_ns is not None and after <= since_ns):
                    break
                rows = self._rows(self._window_sql(conditions, after, since_ns, until_ns, want))
                if len(rows) >= want:
                    return [r[0] for r in rows][int(offset):]
                window *= 4
        rows = self._rows(f"SELECT TraceId FROM ({self._trace_select(conditions, since_ns, until_ns)})"
                          f" ORDER BY isNull(start), start DESC, TraceId{_limit_sql(limit, offset)}")
        return [r[0] for r in rows]

    def count(self, conditions: Sequence[Condition], level: str, since_ns: Optional[int] = None,
              until_ns: Optional[int] = None) -> int:
        if level == "span":
            where = " AND ".join(self._span_where(conditions, since_ns, until_ns)) or "1"
            return int(self._rows(f"SELECT count() FROM {self._table} WHERE {where}")[0][0])
        if since_ns is None and until_ns is None:
            if not conditions:
                return int(self._rows(f"SELECT uniqExact(TraceId) FROM {self._table} WHERE TraceId != ''")[0][0])
            return int(self._rows(f"SELECT count() FROM ({self._matching_sql(conditions)})")[0][0])
        return int(self._rows(f"SELECT count() FROM ({self._trace_select(conditions, since_ns, until_ns)})")[0][0])

    @staticmethod
    def _span_where(conditions: Sequence[Condition], since_ns: Optional[int], until_ns: Optional[int]) -> list:
        where = [span_condition(c) for c in conditions]
        if since_ns is not None:
            where.append(f"toUnixTimestamp64Nano(Timestamp) >= {int(since_ns)}")
        if until_ns is not None:
            where.append(f"toUnixTimestamp64Nano(Timestamp) < {int(until_ns)}")
        return where

    def find_spans(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                   until_ns: Optional[int], offset: int = 0) -> list:
        clause = " AND ".join(self._span_where(conditions, since_ns, until_ns)) or "1"
        limit_sql = _limit_sql(limit, offset)
        rows = self._rows(f"SELECT {self._span_columns(events=True)} FROM {self._table} WHERE {clause}"
                          f" ORDER BY Timestamp DESC, TraceId DESC, SpanId DESC{limit_sql}")
        out = []
        for row in rows:
            span = self._span(row)
            span["trace_id"] = row[0]
            del span["links"], span["events"]
            out.append(span)
        return out

    def scored_traces(self, key: Optional[str], limit: Optional[int], conditions: Sequence[Condition]) -> list:
        score = f"SpanAttributes[{quote(sc.FEEDBACK_SCORE)}]"
        fb_key = f"if(SpanAttributes[{quote(sc.FEEDBACK_KEY)}] = '', 'user', SpanAttributes[{quote(sc.FEEDBACK_KEY)}])"
        where = [_FEEDBACK, _is_num(score)]
        if key is not None:
            where.append(f"{fb_key} = {quote(key)}")
        if conditions:
            where.append(f"TraceId IN ({self._matching_sql(conditions)})")
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._rows(
            f"SELECT TraceId, min(toFloat64OrZero({score})) FROM {self._table} WHERE {' AND '.join(where)}"
            f" GROUP BY TraceId ORDER BY max(Timestamp) DESC, TraceId{limit_sql}")
        return [(r[0], float(r[1])) for r in rows]

    # -- loading ----------------------------------------------------------------------------

    def resolve(self, text: str) -> tuple:
        if len(text) == 32:
            rows = self._rows(f"SELECT TraceId FROM {self._table} WHERE TraceId = {quote(text)} LIMIT 1")
        else:
            rows = self._rows(f"SELECT DISTINCT TraceId FROM {self._table} WHERE startsWith(TraceId, {quote(text)})"
                              " LIMIT 2")
            if len(rows) > 1:
                raise TraceNotFound(f"trace id prefix {text!r} is ambiguous; give more digits")
        if not rows:
            raise TraceNotFound(f"no trace {text} in {self.location}")
        return rows[0][0], rows[0][0]

    def _span_columns(self, events: bool) -> str:
        cols = ["TraceId", "SpanId", "ParentSpanId", "toString(SpanName)", "toString(SpanKind)",
                "toUnixTimestamp64Nano(Timestamp)", "Duration", "toString(StatusCode)", "StatusMessage",
                self._scope, "SpanAttributes", "Links.TraceId", "Links.SpanId", "Links.Attributes"]
        if events:
            cols += ["arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp)", "Events.Name", "Events.Attributes"]
        return ", ".join(cols)

    def _span(self, row: Sequence) -> dict:
        (trace_id, span_id, parent, name, kind, start, duration, status, message, scope, attrs,
         link_traces, link_spans, link_attrs) = row[:14]
        start, duration = int(start), int(duration)
        attributes = layout.typed_map(attrs)
        if not scope and "otel.scope.name" in attributes and self._scope == "''":  # older exporter versions
            scope = attributes.pop("otel.scope.name")
            attributes.pop("otel.scope.version", None)
        # parent_remote: the layout does not keep it; a parent outside the loaded trace (_load_rows)
        span = span_record(span_id, parent or None, False, name, layout.kind_name(kind), start, start + duration,
                           layout.status_name(status), message or None, scope or None, attributes)
        span["links"] = [_link(t, s, a) for t, s, a in zip(link_traces, link_spans, link_attrs)]
        if len(row) > 14:
            span["events"] = [{"name": n, "time_ns": int(t), "attributes": layout.typed_map(a)}
                              for t, n, a in zip(row[14], row[15], row[16])]
        else:
            span["events"] = []
        return span

    def _load_rows(self, refs: Sequence[Any], events: bool, lean: bool = False) -> dict:
        """trace id -> its spans in start order (one copy of each: the Collector may
        insert a retried batch twice). ``lean``: only what blame() reads."""
        out: dict = {ref: [] for ref in refs}
        refs = list(dict.fromkeys(refs))
        make = self._lean_span if lean else self._span
        for i in range(0, len(refs), 2000):
            chunk = refs[i:i + 2000]
            rows = self._rows(f"SELECT {self._span_columns(events)} FROM {self._table}"
                              f" WHERE TraceId IN ({', '.join(quote(r) for r in chunk)})")
            seen: set = set()
            for row in rows:
                ident = (row[0], row[1])
                if ident in seen:
                    continue
                seen.add(ident)
                out[row[0]].append(make(row))
        for spans in out.values():
            spans.sort(key=lambda s: (s["start_ns"], s["span_id"]))
            ids = {s["span_id"] for s in spans}
            for span in spans:
                span["parent_remote"] = bool(span["parent_span_id"]) and span["parent_span_id"] not in ids
        return out

    @staticmethod
    def _lean_span(row: Sequence) -> dict:
        start = int(row[5])
        links = []
        for trace_id, span_id, text_attrs in zip(row[11], row[12], row[13]):
            link = _link(trace_id, span_id, text_attrs)
            if link["link_type"] or link["source_kind"] or link["document_id"]:  # analysis.causal_links
                links.append({"span_id": span_id, "link_type": link["link_type"], "document_id": link["document_id"],
                              "source_kind": link["source_kind"]})
        return {"span_id": row[1], "parent_span_id": row[2] or None, "name": row[3], "start_ns": start,
                "end_ns": start + int(row[6]), "status": layout.status_name(row[7]),
                "attributes": layout.typed_map(row[10]), "links": links}

    def load(self, refs: Sequence[Any], *, links: bool = True) -> dict:
        grouped = self._load_rows(refs, events=links)
        out = {}
        for ref, spans in grouped.items():
            if not spans:
                continue
            if not links:
                for span in spans:
                    span["links"] = []
            out[ref] = {"meta": _meta(ref, spans), "spans": spans, "feedback": _feedback(ref, spans)}
        return out

    def load_lean(self, refs: Sequence[Any]) -> dict:
        out = {}
        for ref, spans in self._load_rows(refs, events=False, lean=True).items():
            if not spans:
                continue
            meta = _meta(ref, spans)
            for span in spans:
                del span["parent_remote"]
            out[ref] = {"meta": {"trace_id": ref, "root_span_id": meta["root_span_id"], "start_ns": meta["start_ns"]},
                        "spans": spans}
        return out

    def recent_feedback(self, limit: Optional[int]) -> list:
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._rows(f"SELECT {self._span_columns(events=False)} FROM {self._table} WHERE {_FEEDBACK}"
                          f" ORDER BY Timestamp DESC, SpanId DESC{limit_sql}")
        out = []
        for row in rows:
            record = _feedback_of_span(row[0], self._span(row))
            if record is not None:
                out.append(record)
        return out

    def span_names(self, pairs: Sequence[tuple]) -> dict:
        if not pairs:
            return {}
        tuples = ", ".join(f"({quote(t)}, {quote(s)})" for t, s in pairs)
        rows = self._rows(f"SELECT TraceId, SpanId, toString(SpanName) FROM {self._table}"
                          f" WHERE (TraceId, SpanId) IN ({tuples})")
        return {(t, s): n for t, s, n in rows}

    def root_span_id(self, ref: Any) -> Optional[str]:
        loaded = self.load([ref], links=False)
        return loaded[ref]["meta"]["root_span_id"] if ref in loaded else None

    def version(self) -> tuple:
        # rows are only ever inserted (feedback too is a span row); a bare count() is
        # answered from the parts' metadata, without reading a column
        return (int(self._rows(f"SELECT count() FROM {self._table}")[0][0]),)

    def stats(self) -> dict:
        spans, traces, links, feedback = self._rows(
            f"SELECT count(), uniqExact(TraceId), sum(length(Links.TraceId)), countIf({_FEEDBACK})"
            f" FROM {self._table}")[0]
        first, last = self._rows(
            f"SELECT min(s), max(s) FROM (SELECT minIf(toUnixTimestamp64Nano(Timestamp), NOT ({_FEEDBACK})) AS s"
            f" FROM {self._table} GROUP BY TraceId HAVING countIf(NOT ({_FEEDBACK})) > 0)")[0]
        try:
            size = self._rows(
                f"SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = {quote(self.url.database)}"
                f" AND table = {quote(self.url.table)}")[0][0]
        except Exception:  # noqa: BLE001 - system.parts may be closed to this user
            size = 0
        return {"path": self.location, "bytes": int(size or 0), "traces": int(traces), "spans": int(spans),
                "links": int(links or 0), "feedback": int(feedback),
                "first_trace": iso_time(int(first)) if spans and first else None,
                "last_trace": iso_time(int(last)) if spans and last else None}


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _link(trace_id: str, span_id: str, text_attrs: dict) -> dict:
    attrs = layout.typed_map(text_attrs)
    doc = attrs.get(sc.LINK_DOCUMENT_ID)
    score, coverage = _number(attrs.get(sc.LINK_SCORE)), _number(attrs.get(sc.LINK_COVERAGE))
    return {"trace_id": trace_id, "span_id": span_id, "link_type": attrs.get(sc.GEN_AI_ATTRIBUTION_LINK_TYPE),
            "document_id": str(doc) if doc is not None else None, "source_kind": attrs.get(sc.LINK_SOURCE_KIND),
            "score": float(score) if score is not None else None,
            "coverage": float(coverage) if coverage is not None else None, "attributes": attrs}


def _is_feedback(span: dict) -> bool:
    return span["attributes"].get(sc.SPAN_KIND) == sc.KIND_FEEDBACK


def _meta(trace_id: str, spans: Sequence[dict]) -> dict:
    """A trace's facts from its spans, as the SQLite exporter sums them up: feedback
    never stretches a trace nor is its root; the root is a span without parent, else one
    whose parent is not in the trace (the first such by start)."""
    real = [s for s in spans if not _is_feedback(s)]
    start = min((s["start_ns"] for s in real), default=None)
    end = max((s["end_ns"] for s in real), default=None)
    errors = sum(1 for s in spans if s["status"] == "ERROR")
    root = None
    best = 0
    for span in real:
        rank = 2 if not span["parent_span_id"] else (1 if span["parent_remote"] else 0)
        if rank > best:
            root, best = span, rank
    return trace_meta(trace_id, start, end, len(spans), errors, root["span_id"] if root else None,
                      root["name"] if root else None)


def _feedback_of_span(trace_id: str, span: dict) -> Optional[dict]:
    attrs = span["attributes"]
    if attrs.get(sc.SPAN_KIND) != sc.KIND_FEEDBACK:
        return None
    score = _number(attrs.get(sc.FEEDBACK_SCORE))
    if score is None:
        return None
    extra = {k: v for k, v in attrs.items() if not k.startswith("feedback.") and k != sc.SPAN_KIND}
    reason, step = attrs.get(sc.FEEDBACK_REASON), attrs.get(sc.FEEDBACK_STEP_BLAMED)
    return feedback_record(trace_id, span["span_id"], attrs.get(sc.FEEDBACK_TARGET_SPAN_ID) or span["parent_span_id"],
                           str(attrs.get(sc.FEEDBACK_KEY) or "user"), float(score),
                           str(reason) if reason is not None else None, str(step) if step is not None else None,
                           span["start_ns"], extra)


def _feedback(trace_id: str, spans: Sequence[dict]) -> list:
    out = [r for s in spans if (r := _feedback_of_span(trace_id, s)) is not None]
    out.sort(key=lambda f: f["time_ns"])
    return out
