"""``TraceStore``: the read side of the embedded store (query, trace, explain, blame, prompts).

Opened read-only (``mode=ro``): nothing here can change or lose stored data, so it is
safe to point it at the file a running app is exporting into.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .. import _semconv as sc
from . import schema
from .query import Condition, FilterError, compile_filters, parse_filters

TimeLike = Union[datetime, float, int, None]

#: attributes every trace summary carries (None when absent).
SUMMARY_KEYS = ("retrieval.top_score", "input.query", "gen_ai.request.model",
                "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


class TraceNotFound(schema.StoreError, KeyError):
    """No trace with that id (or prefix) in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "trace not found"


def iso_time(ns: Optional[int]) -> Optional[str]:
    if ns is None or ns <= 0 or ns >= schema.NO_START:
        return None
    dt = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _to_ns(value: TimeLike) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1e9)
    raise ValueError(f"expected a datetime or epoch seconds, not {value!r}")


def normalize_trace_id(value: Any) -> str:
    """A trace id as lower-case hex: accepts 32 hex digits, ``0x...``, a W3C
    ``traceparent`` or a prefix of at least 4 hex digits (for the CLI)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, "032x")
    if not isinstance(value, str):
        raise ValueError(f"trace id must be a hex string, not {type(value).__name__}")
    text = value.strip().lower()
    parts = text.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        text = parts[1]
    if text.startswith("0x"):
        text = text[2:]
    if not (4 <= len(text) <= 32) or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a trace id: {value!r} (expected up to 32 hex digits)")
    return text


class TraceStore:
    """Read-only access to a trace store file.

    ``TraceStore()`` opens ``INSTRUMENTORS_STORE_PATH`` (default ``.instrumentors/traces.db``).
    Raises :class:`~instrumentors.store.schema.StoreError` subclasses with a clear message
    when the file is missing, locked or not a trace store.
    """

    def __init__(self, path: Optional[str] = None, *, timeout: float = 5.0) -> None:
        self.path = str(path or schema.default_path())
        self._conn = schema.connect_reader(self.path, busy_timeout_ms=int(timeout * 1000))
        self._lock = threading.RLock()

    # -- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

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

    def _key_ids(self, names: Sequence[str]) -> dict:
        names = [n for n in dict.fromkeys(names)]
        if not names:
            return {}
        found = dict(self._rows(f"SELECT name, id FROM keys WHERE name IN ({','.join('?' * len(names))})", names))
        return {n: found.get(n) for n in names}

    # -- query ------------------------------------------------------------------------

    def _compiled(self, filters: Optional[Mapping], level: str) -> tuple:
        conditions = parse_filters(filters)
        key_ids = self._key_ids([c.key for c in conditions if not c.intrinsic])
        params: list = []
        sql = compile_filters(conditions, key_ids, level, params)
        return conditions, sql, params

    def query(self, filters: Optional[Mapping[str, Any]] = None, limit: Optional[int] = 50, *,
              level: str = "trace", since: TimeLike = None, until: TimeLike = None) -> list:
        """Traces (``level="trace"``, newest first) or spans (``level="span"``) matching ``filters``.

        A trace summary is a dict: ``trace_id``, ``root_name``, ``start_time`` (ISO, UTC),
        ``start_ns``, ``duration_ms``, ``span_count``, ``error`` / ``error_count``,
        ``feedback.score`` (the lowest recorded, as the filter sees it), ``feedback.count``,
        and key attributes (``retrieval.top_score`` = the lowest top score of the trace's
        retrievals, ``input.query`` when captured, model, token sums) plus the value of
        every filtered attribute. Missing values are None, so ``trace["input.query"]``
        never raises.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, not {limit!r}")
        conditions, sql, params = self._compiled(filters, level)
        if level == "span":
            return self._span_query(sql, params, limit, since, until)
        rows = self._trace_rows(sql, params, limit, since, until)
        return self._summaries(rows, conditions)

    def count(self, filters: Optional[Mapping[str, Any]] = None, *, level: str = "trace") -> int:
        """How many traces (or spans) match ``filters``."""
        _, sql, params = self._compiled(filters, level)
        table = "traces" if level == "trace" else "spans"
        if sql is None:
            return self._rows(f"SELECT count(*) FROM {table}")[0][0]
        return self._rows(f"SELECT count(*) FROM ({sql})", params)[0][0]

    def _time_where(self, since: TimeLike, until: TimeLike, column: str, params: list) -> list:
        parts = []
        lo, hi = _to_ns(since), _to_ns(until)
        if lo is not None:
            parts.append(f"{column} >= ?")
            params.append(lo)
        if hi is not None:
            parts.append(f"{column} < ?")
            params.append(hi)
        return parts

    def _trace_rows(self, sql: Optional[str], params: list, limit: Optional[int],
                    since: TimeLike, until: TimeLike) -> list:
        cols = "id, trace_id, start_ns, end_ns, span_count, error_count, root_span_id, root_name"
        where = []
        where_params: list = []
        if sql is not None:
            where.append(f"id IN ({sql})")
            where_params.extend(params)
        where += self._time_where(since, until, "start_ns", where_params)
        lim = -1 if limit is None else limit
        base = " AND ".join(where)
        first = f"SELECT {cols} FROM traces WHERE start_ns < {schema.NO_START}" + (f" AND {base}" if base else "")
        rows = self._rows(first + " ORDER BY start_ns DESC LIMIT ?", [*where_params, lim])
        if (limit is None or len(rows) < limit) and since is None and until is None:
            # traces known only from their feedback (their spans went elsewhere): last
            rest = f"SELECT {cols} FROM traces WHERE start_ns >= {schema.NO_START}" + (f" AND {base}" if base else "")
            more = -1 if limit is None else limit - len(rows)
            rows += self._rows(rest + " ORDER BY trace_id LIMIT ?", [*where_params, more])
        return rows

    def _spans_of(self, trace_refs: Sequence[int]) -> dict:
        """trace ref -> list of span dicts (attributes parsed)."""
        out: dict = {ref: [] for ref in trace_refs}
        refs = list(trace_refs)
        for i in range(0, len(refs), 500):
            chunk = refs[i:i + 500]
            for row in self._rows(
                "SELECT id, trace, span_id, parent_span_id, parent_remote, name, kind, start_ns, end_ns, status,"
                " status_message, resource, scope, attributes FROM spans WHERE trace IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY start_ns, id", chunk):
                out[row[1]].append(_span_dict(row))
        return out

    def _feedback_of(self, trace_refs: Sequence[int]) -> dict:
        out: dict = {ref: [] for ref in trace_refs}
        refs = list(trace_refs)
        for i in range(0, len(refs), 500):
            chunk = refs[i:i + 500]
            for row in self._rows(
                "SELECT trace, trace_id, span_id, target_span_id, key, score, reason, step_blamed, time_ns, attributes"
                f" FROM feedback WHERE trace IN ({','.join('?' * len(chunk))}) ORDER BY time_ns, id", chunk):
                out[row[0]].append(_feedback_dict(row))
        return out

    def _summaries(self, rows: list, conditions: Sequence[Condition] = ()) -> list:
        refs = [r[0] for r in rows]
        spans = self._spans_of(refs)
        feedback = self._feedback_of(refs)
        extra_keys = [c.key for c in conditions if not c.intrinsic]
        return [summarize(row, spans[row[0]], feedback[row[0]], extra_keys) for row in rows]

    def _span_query(self, sql: Optional[str], params: list, limit: Optional[int],
                    since: TimeLike, until: TimeLike) -> list:
        where = []
        all_params: list = []
        if sql is not None:
            where.append(f"s.id IN ({sql})")
            all_params.extend(params)
        where += self._time_where(since, until, "s.start_ns", all_params)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._rows(
            "SELECT s.id, s.trace, s.span_id, s.parent_span_id, s.parent_remote, s.name, s.kind, s.start_ns,"
            " s.end_ns, s.status, s.status_message, s.resource, s.scope, s.attributes, t.trace_id"
            f" FROM spans s JOIN traces t ON t.id = s.trace {clause} ORDER BY s.start_ns DESC, s.id DESC LIMIT ?",
            [*all_params, -1 if limit is None else limit])
        out = []
        for row in rows:
            span = _span_dict(row[:14])
            del span["_rowid"]
            span["trace_id"] = row[14]
            out.append(span)
        return out

    # -- one trace ----------------------------------------------------------------------

    def resolve(self, trace_id: Any) -> str:
        """The full trace id for an id, ``0x`` id, traceparent or unique prefix (>= 4 digits)."""
        return self._resolve(trace_id)[1]

    def _resolve(self, trace_id: Any) -> tuple:
        text = normalize_trace_id(trace_id)
        if len(text) == 32:
            rows = self._rows("SELECT id, trace_id FROM traces WHERE trace_id = ?", (text,))
        else:
            rows = self._rows("SELECT id, trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
                              (text, text + "g"))
            if len(rows) > 1:
                raise TraceNotFound(f"trace id prefix {text!r} is ambiguous; give more digits")
        if not rows:
            raise TraceNotFound(f"no trace {text} in {self.path}")
        return rows[0]

    def load(self, trace_id: Any) -> dict:
        """One trace as flat data: ``meta``, ``spans`` (dicts with ``links`` and ``events``,
        in start order) and ``feedback``. ``explain``/``blame`` build on this."""
        ref, trace_hex = self._resolve(trace_id)
        return self._load_refs([ref])[ref]

    def _load_refs(self, refs: Sequence[int]) -> dict:
        metas = {}
        refs = list(refs)
        for i in range(0, len(refs), 500):
            chunk = refs[i:i + 500]
            for row in self._rows(
                "SELECT id, trace_id, start_ns, end_ns, span_count, error_count, root_span_id, root_name FROM traces"
                f" WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                metas[row[0]] = row
        spans = self._spans_of(refs)
        feedback = self._feedback_of(refs)
        links: dict = {}
        events: dict = {}
        for i in range(0, len(refs), 500):
            chunk = refs[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._rows(
                "SELECT span, linked_trace_id, linked_span_id, link_type, document_id, source_kind, score, coverage,"
                f" attributes FROM links WHERE trace IN ({marks}) ORDER BY span, pos", chunk):
                links.setdefault(row[0], []).append({
                    "trace_id": row[1], "span_id": row[2], "link_type": row[3], "document_id": row[4],
                    "source_kind": row[5], "score": row[6], "coverage": row[7], "attributes": json.loads(row[8]),
                })
            for row in self._rows(
                f"SELECT span, name, time_ns, attributes FROM events WHERE trace IN ({marks}) ORDER BY span, pos",
                chunk):
                events.setdefault(row[0], []).append(
                    {"name": row[1], "time_ns": row[2], "attributes": json.loads(row[3])})
        out = {}
        for ref in refs:
            meta = metas.get(ref)
            if meta is None:
                continue
            for span in spans[ref]:
                span["links"] = links.get(span["_rowid"], [])
                span["events"] = events.get(span["_rowid"], [])
            out[ref] = {
                "meta": _trace_meta(meta), "spans": spans[ref], "feedback": feedback[ref],
            }
        return out

    def trace(self, trace_id: Any) -> dict:
        """One trace as a tree: ``{"trace_id", ..., "feedback": [...], "roots": [span, ...]}``
        where each span has ``children`` (by start time) and ``links`` (each naming the
        linked span when it is in the store). A feedback span whose parent is not in the
        store (recorded before the root was exported) is shown under the root."""
        data = self.load(trace_id)
        meta = data["meta"]
        by_id = {s["span_id"]: s for s in data["spans"]}
        self._name_links(data["spans"], meta["trace_id"], by_id)
        roots = []
        root_id = meta.get("root_span_id")
        for span in data["spans"]:
            span["children"] = []
        for span in data["spans"]:
            parent = by_id.get(span["parent_span_id"]) if span["parent_span_id"] else None
            if parent is None and span["attributes"].get(sc.SPAN_KIND) == sc.KIND_FEEDBACK and root_id in by_id \
                    and span["span_id"] != root_id:
                parent = by_id[root_id]
                span["synthetic_parent"] = True
            if parent is not None:
                parent["children"].append(span)
            else:
                roots.append(span)
        for span in data["spans"]:
            span.pop("_rowid", None)
        return {**meta, "feedback": data["feedback"], "roots": roots}

    def _name_links(self, spans: Sequence[dict], trace_hex: str, by_id: Mapping[str, dict]) -> None:
        foreign = set()
        for span in spans:
            for link in span.get("links", ()):
                if link["trace_id"] == trace_hex and link["span_id"] in by_id:
                    link["name"] = by_id[link["span_id"]]["name"]
                else:
                    foreign.add((link["trace_id"], link["span_id"]))
        if not foreign:
            return
        names = {}
        for trace_id, span_id in list(foreign)[:200]:
            rows = self._rows("SELECT s.name FROM spans s JOIN traces t ON t.id = s.trace"
                              " WHERE t.trace_id = ? AND s.span_id = ?", (trace_id, span_id))
            if rows:
                names[(trace_id, span_id)] = rows[0][0]
        for span in spans:
            for link in span.get("links", ()):
                if "name" not in link:
                    link["name"] = names.get((link["trace_id"], link["span_id"]))

    def feedback(self, trace_id: Any = None, limit: Optional[int] = 100) -> list:
        """Recorded feedback, newest first (of one trace, or of all)."""
        if trace_id is not None:
            ref, _ = self._resolve(trace_id)
            return list(reversed(self._feedback_of([ref])[ref]))
        rows = self._rows(
            "SELECT trace, trace_id, span_id, target_span_id, key, score, reason, step_blamed, time_ns, attributes"
            " FROM feedback ORDER BY time_ns DESC, id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [_feedback_dict(r) for r in rows]

    def root_span_id(self, trace_id: Any) -> Optional[str]:
        """The root span id of a stored trace (None when unknown); record_feedback uses it."""
        try:
            ref, _ = self._resolve(trace_id)
        except TraceNotFound:
            return None
        rows = self._rows("SELECT root_span_id FROM traces WHERE id = ?", (ref,))
        return rows[0][0] if rows else None

    def stats(self) -> dict:
        """Counts and size, for ``instrumentors info``."""
        import os

        counts = {t: self._rows(f"SELECT count(*) FROM {t}")[0][0] for t in ("traces", "spans", "links", "feedback")}
        span_range = self._rows(f"SELECT min(start_ns), max(start_ns) FROM traces WHERE start_ns < {schema.NO_START}")[0]
        size = sum(os.path.getsize(self.path + s) for s in ("", "-wal") if os.path.exists(self.path + s))
        return {"path": os.path.abspath(self.path), "bytes": size, **counts,
                "first_trace": iso_time(span_range[0]), "last_trace": iso_time(span_range[1])}

    def traces_with_feedback(self, key: Optional[str] = None, limit: Optional[int] = None) -> list:
        """(trace ref, lowest feedback score) of traces with feedback, newest first."""
        params: list = []
        where = ""
        if key is not None:
            where = "WHERE f.key = ?"
            params.append(key)
        params.append(-1 if limit is None else limit)
        return self._rows(
            f"SELECT f.trace, min(f.score) FROM feedback f {where} GROUP BY f.trace"
            " ORDER BY max(f.time_ns) DESC LIMIT ?", params)

    def iter_loaded(self, refs: Sequence[int], chunk: int = 500) -> Iterator[tuple]:
        """(ref, loaded trace) for many traces, loading ``chunk`` at a time."""
        refs = list(refs)
        for i in range(0, len(refs), chunk):
            loaded = self._load_refs(refs[i:i + chunk])
            for ref in refs[i:i + chunk]:
                if ref in loaded:
                    yield ref, loaded[ref]

    def iter_lean(self, refs: Sequence[int], chunk: int = 500) -> Iterator[tuple]:
        """(ref, trace) for many traces with only what ``blame()`` reads: ``meta``
        (``trace_id``, ``root_span_id``, ``start_ns``) and ``spans`` (ids, parent, name,
        times, status, parsed attributes, and ``links`` holding only the causal ones,
        without their attributes). No events, feedback, ISO times or link attributes
        are decoded: over thousands of traces that decoding was most of the loading."""
        refs = list(refs)
        for i in range(0, len(refs), chunk):
            part = refs[i:i + chunk]
            marks = ",".join("?" * len(part))
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
                    yield ref, {"meta": meta, "spans": spans[ref]}

    # -- analyses (separate modules) ---------------------------------------------------------

    def explain(self, trace_id: Any, *, low_score: float = 0.6, feedback_threshold: float = 0.5,
                stale_after_days: Optional[float] = 180.0) -> dict:
        """Walk back from the final output through parents and causal links; see
        :func:`instrumentors.store.explain.explain`."""
        from .explain import explain

        return explain(self, trace_id, low_score=low_score, feedback_threshold=feedback_threshold,
                       stale_after_days=stale_after_days)

    def blame(self, *, threshold: float = 0.5, filters: Optional[Mapping[str, Any]] = None,
              feedback_key: Optional[str] = None, max_traces: int = 5000, top: int = 10,
              min_support: int = 3, stale_after_days: Optional[float] = 180.0) -> dict:
        """Rank what separates negatively judged traces from the others; see
        :func:`instrumentors.store.blame.blame`."""
        from .blame import blame

        return blame(self, threshold=threshold, filters=filters, feedback_key=feedback_key,
                     max_traces=max_traces, top=top, min_support=min_support, stale_after_days=stale_after_days)

    def compare_prompts(self, *, threshold: float = 0.5, feedback_key: Optional[str] = None,
                        max_traces: int = 5000, filters: Optional[Mapping[str, Any]] = None) -> list:
        """Feedback per prompt template / system prompt fingerprint; see
        :func:`instrumentors.store.prompts.compare_prompts`."""
        from .prompts import compare_prompts

        return compare_prompts(self, threshold=threshold, feedback_key=feedback_key,
                               max_traces=max_traces, filters=filters)

    def to_dataframe(self, filters: Optional[Mapping[str, Any]] = None, limit: Optional[int] = None, *,
                     level: str = "trace"):
        """The query result as a pandas DataFrame (pandas is optional: imported here)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from exc
        rows = self.query(filters, limit, level=level)
        if level == "span":
            flat = []
            for row in rows:
                item = {k: v for k, v in row.items() if k not in ("attributes", "links", "events", "_rowid")}
                for key, value in row["attributes"].items():
                    item[key] = list(value) if isinstance(value, (list, tuple)) else value
                flat.append(item)
            rows = flat
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# row -> dict helpers (module level: explain/blame/prompts use them too)
# ---------------------------------------------------------------------------------------


def _span_dict(row: Sequence) -> dict:
    start, end = row[7], row[8]
    return {
        "_rowid": row[0],
        "span_id": row[2],
        "parent_span_id": row[3],
        "parent_remote": bool(row[4]),
        "name": row[5],
        "kind": row[6],
        "start_ns": start,
        "end_ns": end,
        "start_time": iso_time(start),
        "duration_ms": round((end - start) / 1e6, 3),
        "status": row[9],
        "status_message": row[10],
        "scope": row[12],
        "attributes": json.loads(row[13]),
    }


def _feedback_dict(row: Sequence) -> dict:
    return {
        "trace_id": row[1], "span_id": row[2], "target_span_id": row[3], "key": row[4], "score": row[5],
        "reason": row[6], "step_blamed": row[7], "time": iso_time(row[8]), "time_ns": row[8],
        "attributes": json.loads(row[9]),
    }


def _trace_meta(row: Sequence) -> dict:
    start, end = row[2], row[3]
    has_spans = start < schema.NO_START
    return {
        "trace_id": row[1],
        "root_name": row[7],
        "root_span_id": row[6],
        "start_ns": start if has_spans else None,
        "start_time": iso_time(start) if has_spans else None,
        "duration_ms": round((end - start) / 1e6, 3) if has_spans else None,
        "span_count": row[4],
        "error_count": row[5],
        "error": row[5] > 0,
    }


def summarize(row: Sequence, spans: Sequence[dict], feedback: Sequence[dict], extra_keys: Sequence[str] = ()) -> dict:
    """One trace summary (see :meth:`TraceStore.query`)."""
    out = _trace_meta(row)
    scores = [f["score"] for f in feedback]
    lowest = min(feedback, key=lambda f: f["score"]) if feedback else None
    if lowest is None:  # feedback.score set by hand on a span (no record_feedback): what the filter saw
        hand = [v for s in spans if (v := s["attributes"].get(sc.FEEDBACK_SCORE)) is not None
                and isinstance(v, (int, float)) and not isinstance(v, bool)]
        out["feedback.score"] = min(hand) if hand else None
    else:
        out["feedback.score"] = lowest["score"]
    out["feedback.count"] = len(scores)
    out["feedback.reason"] = lowest["reason"] if lowest else None
    out["feedback.step_blamed"] = lowest["step_blamed"] if lowest else None
    top_scores = []
    model = None
    tokens_in = tokens_out = None
    for span in spans:
        attrs = span["attributes"]
        value = attrs.get(sc.RETRIEVAL_TOP_SCORE)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            top_scores.append(value)
        if model is None and isinstance(attrs.get(sc.GEN_AI_REQUEST_MODEL), str):
            model = attrs[sc.GEN_AI_REQUEST_MODEL]
        for key, current in ((sc.GEN_AI_USAGE_INPUT_TOKENS, "in"), (sc.GEN_AI_USAGE_OUTPUT_TOKENS, "out")):
            tokens = attrs.get(key)
            if isinstance(tokens, int) and not isinstance(tokens, bool):
                if current == "in":
                    tokens_in = (tokens_in or 0) + tokens
                else:
                    tokens_out = (tokens_out or 0) + tokens
    out["retrieval.top_score"] = min(top_scores) if top_scores else None
    out["input.query"] = input_query(spans, out.get("root_span_id"))
    out[sc.GEN_AI_REQUEST_MODEL] = model
    out[sc.GEN_AI_USAGE_INPUT_TOKENS] = tokens_in
    out[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = tokens_out
    for key in extra_keys:
        if key in out:
            continue
        values = [s["attributes"][key] for s in spans if key in s["attributes"]]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[key] = min(numbers) if numbers else (values[0] if values else None)
    return out


def input_query(spans: Sequence[dict], root_span_id: Optional[str] = None) -> Optional[str]:
    """The user's question when it was captured: the root's ``input.query`` or input
    value, else any span's ``input.query``, else the first retrieval query text."""
    root = next((s for s in spans if s["span_id"] == root_span_id), None)
    candidates = []
    if root is not None:
        candidates += [root["attributes"].get("input.query"), root["attributes"].get(sc.INPUT_VALUE)]
    candidates += [s["attributes"].get("input.query") for s in spans]
    candidates += [s["attributes"].get(sc.GEN_AI_RETRIEVAL_QUERY_TEXT) for s in spans]
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    return None


__all__ = ["TraceStore", "TraceNotFound", "FilterError", "normalize_trace_id", "iso_time", "summarize"]
