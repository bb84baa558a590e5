"""``TraceStore``: the read side of the trace store (query, trace, explain, blame, prompts),
the same API on every engine.

``TraceStore(url)`` opens the reader the URL names (see :mod:`.url`): the embedded
SQLite file by default, a ClickHouse server or chDB for scale. The reader pushes filters
down to its engine and loads traces as plain dicts; the analyses here (explain, blame,
compare_prompts) run on those loaded traces and never know which engine answered.

Reads never write: the SQLite file is opened ``mode=ro``, ClickHouse with readonly
queries, so it is safe to point a store at the data a running app is exporting into.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .. import _semconv as sc
from . import blame as _blame
from . import explain as _explain
from . import prompts as _prompts
from . import url as _url
from .errors import StoreError
from .model import (SUMMARY_KEYS, TimeLike, TraceNotFound, iso_time, normalize_trace_id, summarize,  # noqa: F401
                    to_ns)
from .query import FilterError, parse_filters
from .reader import TraceReader


def open_reader(url: Union[str, "_url.StoreURL", None] = None, *, timeout: float = 5.0) -> TraceReader:
    """The reader for a store URL or path (None: the configured store)."""
    location = url if isinstance(url, _url.StoreURL) else _url.parse(url)
    if location.is_sqlite:
        from .sqlite_reader import SQLiteReader

        return SQLiteReader(location.path, timeout=timeout)
    from .clickhouse_reader import ClickHouseReader

    return ClickHouseReader(location, timeout=timeout)


class TraceStore:
    """Read-only access to a trace store.

    ``TraceStore()`` opens ``INSTRUMENTORS_STORE_URL`` (else ``INSTRUMENTORS_STORE_PATH``,
    default ``.instrumentors/traces.db``); ``TraceStore(url)`` a path, ``sqlite:///…``,
    ``clickhouse://…`` or ``chdb:///…``. Raises
    :class:`~instrumentors.store.errors.StoreError` subclasses with a one-line message
    naming the store (password masked) when it is missing, unreachable, refused or not a
    trace store.
    """

    def __init__(self, url: Optional[str] = None, *, timeout: float = 5.0) -> None:
        self._reader = open_reader(url, timeout=timeout)
        #: the store's location for messages (the file path; a URL with its password masked)
        self.path = self._reader.location

    # -- plumbing ---------------------------------------------------------------------

    @property
    def reader(self) -> TraceReader:
        return self._reader

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- query ------------------------------------------------------------------------

    def query(self, filters: Optional[Mapping[str, Any]] = None, limit: Optional[int] = 50, *,
              level: str = "trace", since: TimeLike = None, until: TimeLike = None, offset: int = 0) -> list:
        """Traces (``level="trace"``, newest first) or spans (``level="span"``) matching ``filters``.

        A trace summary is a dict: ``trace_id``, ``root_name``, ``start_time`` (ISO, UTC),
        ``start_ns``, ``duration_ms``, ``span_count``, ``error`` / ``error_count``,
        ``feedback.score`` (the lowest recorded, as the filter sees it), ``feedback.count``,
        and key attributes (``retrieval.top_score`` = the lowest top score of the trace's
        retrievals, ``input.query`` when captured, model, token sums) plus the value of
        every filtered attribute. Missing values are None, so ``trace["input.query"]``
        never raises.

        ``offset`` skips that many matches first (a page of a long result, in the same
        order); with :meth:`count` it pages through a large store without loading it.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, not {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, not {offset!r}")
        conditions = self._conditions(filters, level)
        lo, hi = to_ns(since), to_ns(until)
        if level == "span":
            return self._reader.find_spans(conditions, limit, lo, hi, offset)
        refs = self._reader.find_traces(conditions, limit, lo, hi, offset)
        loaded = self._reader.load(refs, links=False)
        extra_keys = [c.key for c in conditions if not c.intrinsic]
        return [summarize(loaded[r]["meta"], loaded[r]["spans"], loaded[r]["feedback"], extra_keys)
                for r in refs if r in loaded]

    def count(self, filters: Optional[Mapping[str, Any]] = None, *, level: str = "trace",
              since: TimeLike = None, until: TimeLike = None) -> int:
        """How many traces (or spans) match ``filters`` (started in ``[since, until)`` when
        given): the total that :meth:`query` pages through."""
        return self._reader.count(self._conditions(filters, level), level, to_ns(since), to_ns(until))

    @staticmethod
    def _conditions(filters: Optional[Mapping], level: str) -> list:
        if level not in ("trace", "span"):
            raise FilterError(f"level must be 'trace' or 'span', not {level!r}")
        return parse_filters(filters)

    # -- one trace ----------------------------------------------------------------------

    def resolve(self, trace_id: Any) -> str:
        """The full trace id for an id, ``0x`` id, traceparent or unique prefix (>= 4 digits)."""
        return self._resolve(trace_id)[1]

    def _resolve(self, trace_id: Any) -> tuple:
        return self._reader.resolve(normalize_trace_id(trace_id))

    def load(self, trace_id: Any) -> dict:
        """One trace as flat data: ``meta``, ``spans`` (dicts with ``links`` and ``events``,
        in start order) and ``feedback``. ``explain``/``blame`` build on this."""
        ref, _ = self._resolve(trace_id)
        loaded = self._reader.load([ref])
        if ref not in loaded:  # pragma: no cover - resolved a moment ago
            raise TraceNotFound(f"no trace {trace_id} in {self.path}")
        return loaded[ref]

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
        names = self._reader.span_names(sorted(foreign)[:200])
        for span in spans:
            for link in span.get("links", ()):
                if "name" not in link:
                    link["name"] = names.get((link["trace_id"], link["span_id"]))

    def feedback(self, trace_id: Any = None, limit: Optional[int] = 100) -> list:
        """Recorded feedback, newest first (of one trace, or of all)."""
        if trace_id is not None:
            return list(reversed(self.load(trace_id)["feedback"]))
        return self._reader.recent_feedback(limit)

    def root_span_id(self, trace_id: Any) -> Optional[str]:
        """The root span id of a stored trace (None when unknown); record_feedback uses it."""
        try:
            ref, _ = self._resolve(trace_id)
        except TraceNotFound:
            return None
        return self._reader.root_span_id(ref)

    def stats(self) -> dict:
        """Counts and size, for ``instrumentors info``."""
        return self._reader.stats()

    def version(self) -> Any:
        """Changes whenever spans or feedback are added (None: this engine cannot tell)."""
        return self._reader.version()

    # -- many traces ----------------------------------------------------------------------

    def traces_with_feedback(self, key: Optional[str] = None, limit: Optional[int] = None,
                             filters: Optional[Mapping[str, Any]] = None) -> list:
        """(ref, lowest feedback score) of traces with feedback (matching ``filters``),
        most recently judged first. Refs are the reader's handles for ``iter_loaded``."""
        return self._reader.scored_traces(key, limit, self._conditions(filters, "trace"))

    def iter_loaded(self, refs: Sequence[Any], chunk: int = 500) -> Iterator[tuple]:
        """(ref, loaded trace) for many traces, loading ``chunk`` at a time."""
        refs = list(refs)
        for i in range(0, len(refs), chunk):
            loaded = self._reader.load(refs[i:i + chunk])
            for ref in refs[i:i + chunk]:
                if ref in loaded:
                    yield ref, loaded[ref]

    def iter_lean(self, refs: Sequence[Any], chunk: int = 500) -> Iterator[tuple]:
        """(ref, trace) for many traces with only what ``blame()`` reads (see
        :meth:`TraceReader.load_lean`)."""
        refs = list(refs)
        for i in range(0, len(refs), chunk):
            loaded = self._reader.load_lean(refs[i:i + chunk])
            for ref in refs[i:i + chunk]:
                if ref in loaded:
                    yield ref, loaded[ref]

    def _scored(self, loader, feedback_key: Optional[str], max_traces: Optional[int],
                filters: Optional[Mapping]) -> Iterator[tuple]:
        scored = self.traces_with_feedback(key=feedback_key, limit=max_traces, filters=filters)
        scores = dict(scored)
        for ref, loaded in loader([ref for ref, _ in scored]):
            yield loaded, scores[ref]

    # -- analyses (on loaded traces: explain.py, blame.py, prompts.py) ---------------------------

    def explain(self, trace_id: Any, *, low_score: float = 0.6, feedback_threshold: float = 0.5,
                stale_after_days: Optional[float] = 180.0) -> dict:
        """Walk back from the final output through parents and causal links; see
        :func:`instrumentors.store.explain.explain`."""
        return _explain.explain(self.load(trace_id), low_score=low_score, feedback_threshold=feedback_threshold,
                                stale_after_days=stale_after_days)

    def blame(self, *, threshold: float = 0.5, filters: Optional[Mapping[str, Any]] = None,
              feedback_key: Optional[str] = None, max_traces: int = 5000, top: int = 10,
              min_support: int = 3, stale_after_days: Optional[float] = 180.0) -> dict:
        """Rank what separates negatively judged traces from the others over the
        ``max_traces`` most recently judged ones (matching ``filters``); see
        :func:`instrumentors.store.blame.blame`."""
        return _blame.blame(self._scored(self.iter_lean, feedback_key, max_traces, filters), threshold=threshold,
                            feedback_key=feedback_key, top=top, min_support=min_support,
                            stale_after_days=stale_after_days)

    def compare_prompts(self, *, threshold: float = 0.5, feedback_key: Optional[str] = None,
                        max_traces: int = 5000, filters: Optional[Mapping[str, Any]] = None) -> list:
        """Feedback per prompt template / system prompt fingerprint; see
        :func:`instrumentors.store.prompts.compare_prompts`."""
        return _prompts.compare_prompts(self._scored(self.iter_loaded, feedback_key, max_traces, filters),
                                        threshold=threshold)

    def to_dataframe(self, filters: Optional[Mapping[str, Any]] = None, limit: Optional[int] = None, *,
                     level: str = "trace"):
        """The query result as a pandas DataFrame (pandas is optional: imported here).

        Typed as Phoenix's span dataframe is, so it can be filtered and plotted without
        conversions: indexed by ``trace_id`` (``level="trace"``) or ``span_id``
        (``level="span"``, with ``trace_id`` as a column); ``start_time``/``end_time``
        are ``datetime64[ns, UTC]``; integer columns (token counts, span counts,
        integer attributes) are nullable ``Int64``, booleans ``boolean``, other numbers
        ``float64``; array attributes stay lists. Span-level attributes are flattened
        into one column per key.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_dataframe() needs pandas: pip install pandas") from exc
        rows = self.query(filters, limit, level=level)
        flat = []
        for row in rows:
            item = {k: v for k, v in row.items() if k not in ("attributes", "links", "events", "_rowid")}
            if level == "span":
                for key, value in row["attributes"].items():
                    item.setdefault(key, list(value) if isinstance(value, (list, tuple)) else value)
            item["start_time"], item["end_time"] = item.get("start_ns"), item.get("end_ns")
            flat.append(item)
        index = "span_id" if level == "span" else "trace_id"
        names: dict = {}  # every key, in first-seen order
        for item in flat:
            names.update(dict.fromkeys(item))
        if not names:
            names = dict.fromkeys(["trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time",
                                   "duration_ms", "status"] if level == "span" else [
                "trace_id", "root_name", "start_time", "end_time", "duration_ms", "span_count", "error_count"])
        frame = pd.DataFrame({name: _typed_column(pd, name, [item.get(name) for item in flat]) for name in names})
        return frame.set_index(index)


def _typed_column(pd: Any, name: str, values: list) -> Any:
    """One dataframe column typed by the values it holds (see ``to_dataframe``): typed
    before pandas sees it, since a missing value would otherwise turn ints into floats."""
    if name in ("start_time", "end_time"):
        return pd.to_datetime(pd.array(values, dtype="Int64"), unit="ns", utc=True)
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.array(values, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.array([float("nan") if v is None else float(v) for v in values], dtype="float64")
    return pd.array(values, dtype=object)


__all__ = ["TraceStore", "TraceNotFound", "FilterError", "StoreError", "normalize_trace_id", "iso_time",
           "summarize", "open_reader"]
