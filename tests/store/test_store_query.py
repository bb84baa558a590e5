"""TraceStore.query: every operator, trace-level vs span-level, the seed's call, errors,
read-only access."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from instrumentors.store import FilterError, StoreCorrupt, StoreNotFound, TraceNotFound, TraceStore
from instrumentors.store.query import filters_from_where, parse_where
from instrumentors.store.schema import MAX_INDEXED_STRING

LONG_TEXT = "The refund window is 30 days. " * 20  # > MAX_INDEXED_STRING: long text is indexed too


@pytest.fixture
def dataset(store_provider, store_path):
    """Four traces with known attributes; returns {label: trace id}."""
    assert len(LONG_TEXT) > MAX_INDEXED_STRING
    tracer = store_provider.get_tracer("q")
    ids = {}
    t0 = 1_700_000_000_000_000_000

    def make(label, start, spans):
        root = tracer.start_span(f"root-{label}", start_time=start)
        ctx = trace.set_span_in_context(root)
        for i, (name, attrs, status, dur_ms) in enumerate(spans):
            s = tracer.start_span(name, context=ctx, attributes=attrs, start_time=start + i * 10)
            if status:
                s.set_status(Status(StatusCode.ERROR, "bad"))
            s.end(end_time=start + i * 10 + int(dur_ms * 1e6))
        root.end(end_time=start + 10 ** 9)
        ids[label] = format(root.get_span_context().trace_id, "032x")

    # A: the seed's bad trace -- low score and negative feedback on different spans
    make("A", t0, [("retrieval", {"retrieval.top_score": 0.41, "model": "m1", "tags": ("x", "y")}, False, 5),
                   ("feedback", {"feedback.score": 0.0, "instrumentors.span.kind": "feedback"}, False, 0)])
    # B: good retrieval, negative feedback
    make("B", t0 + 10 ** 10, [("retrieval", {"retrieval.top_score": 0.9, "model": "m2", "flag": True}, False, 50),
                              ("feedback", {"feedback.score": 0.2, "instrumentors.span.kind": "feedback"}, False, 0)])
    # C: low score, positive feedback, an error, long text
    make("C", t0 + 2 * 10 ** 10, [("retrieval", {"retrieval.top_score": 0.6, "model": "m1", "answer": LONG_TEXT,
                                                 "user.id": "123"}, True, 500),
                                  ("feedback", {"feedback.score": 1.0, "instrumentors.span.kind": "feedback"}, False, 0)])
    # D: both attributes on ONE span (span-level semantics), no feedback span
    make("D", t0 + 3 * 10 ** 10, [("combo", {"retrieval.top_score": 0.3, "feedback.score": 0.1, "flag": False}, False, 1)])
    return ids


def _labels(rows, ids):
    back = {v: k for k, v in ids.items()}
    return sorted(back[r["trace_id"]] for r in rows)


@pytest.mark.parametrize("filters, expected", [
    ({"retrieval.top_score": {"lt": 0.6}}, ["A", "D"]),
    ({"retrieval.top_score": {"lte": 0.6}}, ["A", "C", "D"]),
    ({"retrieval.top_score": {"gt": 0.6}}, ["B"]),
    ({"retrieval.top_score": {"gte": 0.6}}, ["B", "C"]),
    ({"retrieval.top_score": {"eq": 0.9}}, ["B"]),
    ({"retrieval.top_score": 0.9}, ["B"]),
    ({"retrieval.top_score": {"ne": 0.9}}, ["A", "C", "D"]),
    ({"retrieval.top_score": {"gte": 0.35, "lt": 0.9}}, ["A", "C"]),
    ({"retrieval.top_score": {"in": [0.41, 0.3]}}, ["A", "D"]),
    ({"model": {"eq": "m1"}}, ["A", "C"]),
    ({"model": {"ne": "m1"}}, ["B"]),
    ({"model": {"in": ["m2", "zz"]}}, ["B"]),
    ({"model": {"contains": "1"}}, ["A", "C"]),
    ({"model": {"lt": "m2"}}, ["A", "C"]),
    ({"tags": "y"}, ["A"]),
    ({"tags": {"contains": "x"}}, ["A"]),
    ({"flag": True}, ["B"]),
    ({"flag": {"eq": False}}, ["D"]),
    ({"flag": {"ne": True}}, ["D"]),
    ({"answer": {"contains": "refund window is 30"}}, ["C"]),
    ({"answer": {"eq": LONG_TEXT}}, ["C"]),
    ({"answer": {"exists": True}}, ["C"]),
    ({"user.id": 123}, ["C"]),
    ({"model": {"exists": True}}, ["A", "B", "C"]),
    ({"model": {"exists": False}}, ["D"]),
    ({"never.seen": {"exists": False}}, ["A", "B", "C", "D"]),
    ({"never.seen": {"eq": 1}}, []),
    ({"name": "combo"}, ["D"]),
    ({"name": {"contains": "root-"}}, ["A", "B", "C", "D"]),
    ({"status": "error"}, ["C"]),
    ({"duration_ms": {"gte": 50}}, ["A", "B", "C", "D"]),  # every root lasts 1 s
    ({"duration_ms": {"gte": 50}, "name": "retrieval"}, ["A", "B", "C"]),
])
def test_trace_level_operators(dataset, store_path, filters, expected):
    with TraceStore(store_path) as store:
        rows = store.query(filters, limit=None)
        assert _labels(rows, dataset) == expected
        assert store.count(filters) == len(expected)


def test_span_level_requires_the_same_span(dataset, store_path):
    filters = {"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}
    with TraceStore(store_path) as store:
        # TraceQL: { .retrieval.top_score < 0.6 } && { .feedback.score < 0.5 } -- any spans
        assert _labels(store.query(filters), dataset) == ["A", "D"]
        spans = store.query(filters, level="span")
        assert [(s["name"], s["trace_id"]) for s in spans] == [("combo", dataset["D"])]
        assert spans[0]["attributes"] == {"retrieval.top_score": 0.3, "feedback.score": 0.1, "flag": False}
        assert store.count(filters, level="span") == 1
        durations = store.query({"duration_ms": {"gte": 50}, "name": "retrieval"}, level="span")
        assert sorted(s["duration_ms"] for s in durations) == [50.0, 500.0]


def test_the_seed_call_and_summary_fields(dataset, store_path):
    store = TraceStore(store_path)
    bad = store.query(filters={"user_feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}, limit=50)
    assert [t["trace_id"] for t in bad] == [dataset["D"], dataset["A"]]  # newest first
    a = bad[1]
    assert a["retrieval.top_score"] == 0.41 and a["input.query"] is None
    assert (a["root_name"], a["span_count"], a["error"], a["duration_ms"]) == ("root-A", 3, False, 1000.0)
    assert a["feedback.score"] == 0.0 and a["feedback.count"] == 1  # a feedback-kind span is a record
    assert bad[0]["feedback.score"] == 0.1 and bad[0]["feedback.count"] == 0  # set by hand on a plain span
    assert a["start_time"] == "2023-11-14T22:13:20.000Z"
    assert store.query(limit=1)[0]["trace_id"] == dataset["D"]
    assert store.query(limit=0) == []
    store.close()


def test_bad_filters_raise_clear_errors(dataset, store_path):
    with TraceStore(store_path) as store:
        cases = [
            ({"x": {"lessthan": 1}}, "unknown operator 'lessthan'"),
            ({"x": {"lt": float("nan")}}, "finite number"),
            ({"x": {"in": []}}, "at least one value"),
            ({"x": {"in": "abc"}}, "list of values"),
            ({"x": {"exists": "yes"}}, "true or false"),
            ({"x": {"contains": 3}}, "takes a string"),
            ({"x": {"lt": True}}, "boolean"),
            ({"x": None}, "no condition"),
            ({"x": {}}, "empty condition"),
            ({"x": {"exists": False, "eq": 1}}, "cannot be combined"),
            ({"x": {"lt": [1]}}, "number, string or boolean"),
            ({"duration_ms": "long"}, "takes numbers"),
            ({"status": {"exists": True}}, "intrinsic"),
            (["x"], "mapping"),
        ]
        for filters, message in cases:
            with pytest.raises(FilterError, match=message):
                store.query(filters)
        assert issubclass(FilterError, ValueError)
        with pytest.raises(ValueError, match="limit"):
            store.query(None, limit=-1)
        with pytest.raises(FilterError, match="level"):
            store.query(None, level="spans")


@pytest.mark.parametrize("text, parsed", [
    ("retrieval.top_score<0.6", ("retrieval.top_score", "lt", 0.6)),
    ("feedback.score <= 0.5", ("feedback.score", "lte", 0.5)),
    ("x>3", ("x", "gt", 3)),
    ("x>=-1.5", ("x", "gte", -1.5)),
    ("gen_ai.request.model=gpt-4o", ("gen_ai.request.model", "eq", "gpt-4o")),
    ("gen_ai.request.model == 'gpt 4o'", ("gen_ai.request.model", "eq", "gpt 4o")),
    ("user.id=\"123\"", ("user.id", "eq", "123")),
    ("flag=true", ("flag", "eq", True)),
    ("x!=a", ("x", "ne", "a")),
    ("answer~refund window", ("answer", "contains", "refund window")),
    ("answer contains 'refund'", ("answer", "contains", "refund")),
    ("model in gpt-4o, gpt-4o-mini", ("model", "in", ["gpt-4o", "gpt-4o-mini"])),
    ("feedback.score exists", ("feedback.score", "exists", True)),
    ("feedback.score !exists", ("feedback.score", "exists", False)),
    ("feedback.score missing", ("feedback.score", "exists", False)),
])
def test_where_syntax(text, parsed):
    assert parse_where(text) == parsed


@pytest.mark.parametrize("text", ["", "retrieval.top_score", "<0.6", "x<", "x<<3", "x in", "x=>3", "1x=2",
                                  "x<true"])
def test_malformed_where_raises(text):
    with pytest.raises(FilterError):
        parse_where(text)


def test_where_merges_one_key_into_one_condition():
    assert filters_from_where(["x>0.2", "x<0.6", "y=1"]) == {"x": {"gt": 0.2, "lt": 0.6}, "y": {"eq": 1}}
    with pytest.raises(FilterError, match="already has"):
        filters_from_where(["x<1", "x<2"])


def _fingerprint(path):
    out = {}
    for suffix in ("", "-wal"):
        p = path + suffix
        if os.path.exists(p):
            with open(p, "rb") as fh:
                out[suffix] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns, os.stat(p).st_size)
    return out


@pytest.mark.sqlite_only  # chDB: test_store_backends.test_read_commands_never_write
def test_reads_never_change_the_file(dataset, store_path):
    before = _fingerprint(store_path)
    with TraceStore(store_path) as store:
        store.query({"retrieval.top_score": {"lt": 0.6}})
        store.query(None, level="span", limit=None)
        store.trace(dataset["A"])
        store.explain(dataset["A"])
        store.blame()
        store.compare_prompts()
        store.stats()
        with pytest.raises(sqlite3.OperationalError):  # the connection itself refuses writes
            store.reader._conn.execute("DELETE FROM spans")
    assert _fingerprint(store_path) == before


def test_trace_ids_prefixes_and_unknown_ids(dataset, store_path):
    with TraceStore(store_path) as store:
        full = dataset["A"]
        assert store.resolve(full[:8]) == full
        assert store.resolve("0x" + full.upper()) == full
        assert store.resolve(f"00-{full}-{'1' * 16}-01") == full
        assert store.trace(full[:10])["trace_id"] == full
        with pytest.raises(TraceNotFound, match="no trace"):
            store.trace("f" * 32)
        with pytest.raises(ValueError, match="not a trace id"):
            store.trace("xyz")


def test_missing_and_corrupt_stores(tmp_path):
    with pytest.raises(StoreNotFound, match="no trace store at"):
        TraceStore(str(tmp_path / "nope.db"))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorrupt, match="not a readable trace store"):
        TraceStore(str(garbage))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t(x)")
    with pytest.raises(StoreCorrupt, match="not an instrumentors trace store"):
        TraceStore(str(other))
    with pytest.raises(StoreNotFound, match="directory"):
        TraceStore(str(tmp_path))


def test_dataframe_export(dataset, store_path):
    pd = pytest.importorskip("pandas")
    with TraceStore(store_path) as store:
        frame = store.to_dataframe({"retrieval.top_score": {"lt": 0.6}})
        assert isinstance(frame, pd.DataFrame)
        assert sorted(frame["retrieval.top_score"]) == [0.3, 0.41]
        spans = store.to_dataframe({"model": "m1"}, level="span")
        assert sorted(spans["retrieval.top_score"]) == [0.41, 0.6]


def test_dataframe_dtypes_are_phoenix_like(dataset, store_path, store_provider):
    """Times are datetimes (not ISO strings), integers nullable Int64 (not floats),
    booleans boolean, ids the index: what Phoenix's span dataframe gives."""
    pd = pytest.importorskip("pandas")
    tracer = store_provider.get_tracer("q")
    tracer.start_span("tokens", start_time=1_700_000_050_000_000_000,
                      attributes={"gen_ai.usage.input_tokens": 7}).end(end_time=1_700_000_050_000_123_456)
    with TraceStore(store_path) as store:
        traces = store.to_dataframe()
        spans = store.to_dataframe(level="span", limit=None)
        empty = store.to_dataframe({"name": "no such span"}, level="span")
    assert traces.index.name == "trace_id" and set(traces.index) >= set(dataset.values())
    assert str(traces["start_time"].dtype) == str(traces["end_time"].dtype) == "datetime64[ns, UTC]"
    assert traces.loc[dataset["A"], "start_time"] == pd.Timestamp(1_700_000_000_000_000_000, unit="ns", tz="UTC")
    assert traces.loc[dataset["A"], "end_time"] - traces.loc[dataset["A"], "start_time"] == pd.Timedelta(seconds=1)
    assert str(traces["span_count"].dtype) == str(traces["error_count"].dtype) == "Int64"
    assert str(traces["error"].dtype) == "boolean"
    assert traces["retrieval.top_score"].dtype == "float64"
    assert spans.index.name == "span_id" and spans.index.is_unique and "trace_id" in spans.columns
    assert str(spans["start_time"].dtype) == "datetime64[ns, UTC]"
    tokens = spans[spans["name"] == "tokens"].iloc[0]
    assert tokens["end_time"] - tokens["start_time"] == pd.Timedelta(nanoseconds=123_456)
    assert str(spans["gen_ai.usage.input_tokens"].dtype) == "Int64"  # 7, not 7.0; missing -> <NA>
    assert spans["gen_ai.usage.input_tokens"].isna().sum() == len(spans) - 1
    assert str(spans["flag"].dtype) == "boolean"
    assert spans["retrieval.top_score"].dtype == "float64"
    assert [v for v in spans["tags"] if isinstance(v, list)] == [["x", "y"]]
    assert empty.empty and empty.index.name == "span_id" and "start_time" in empty.columns


def test_time_window(dataset, store_path):
    t0 = 1_700_000_000  # the dataset's first trace starts here (epoch seconds); one every 10 s
    with TraceStore(store_path) as store:
        assert _labels(store.query(None, limit=None, since=t0 + 15), dataset) == ["C", "D"]
        assert _labels(store.query(None, limit=None, until=t0 + 15), dataset) == ["A", "B"]
        assert _labels(store.query({"model": "m1"}, limit=None, since=t0 + 5, until=t0 + 25), dataset) == ["C"]
        assert [s["name"] for s in store.query({"model": "m1"}, level="span", since=t0 + 15)] == ["retrieval"]


@pytest.mark.sqlite_only  # the Collector's layout keeps values as text: "10" reads as a number there
def test_numbers_and_strings_of_one_key_never_match_each_others_comparisons(store_path):
    """Mixed types under one key (the store types values by SQLite's ordering of numbers
    before strings): expectations checked against the previous one-row-per-value index."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from instrumentors.store import SQLiteSpanExporter

    values = {1: 5, 2: "abc", 3: 0.5, 4: "10", 5: True, 6: ("z", 7), 7: (3.5, "a"), 8: False, 9: "", 10: ("", 0)}
    exporter = SQLiteSpanExporter(store_path)
    exporter.export([ReadableSpan("s", SpanContext(t, 1, False, TraceFlags(1)), None, attributes={"v": v},
                                  start_time=t, end_time=t + 1) for t, v in values.items()])
    exporter.shutdown()
    cases = [
        ({"gt": 1}, [1, 6, 7]), ({"gte": 1}, [1, 5, 6, 7]), ({"lt": 1}, [3, 8, 10]), ({"lte": 1}, [3, 5, 8, 10]),
        ({"gt": "a"}, [2, 6]), ({"gte": "a"}, [2, 6, 7]), ({"lt": "b"}, [2, 4, 7, 9, 10]), ({"lte": "10"}, [4, 9, 10]),
        ({"lt": ""}, []), ({"gte": ""}, [2, 4, 6, 7, 9, 10]), ({"contains": "5"}, []), ({"contains": "b"}, [2]),
        ({"contains": ""}, [2, 4, 6, 7, 9, 10]), ({"eq": 10}, [4]), ({"eq": 1}, [5]), ({"eq": 0}, [8, 10]),
        ({"ne": 5}, [2, 3, 4, 5, 6, 7, 8, 9, 10]), ({"in": [0.5, "abc", 7]}, [2, 3, 6]), ({"in": [True, "z"]}, [5, 6]),
        ({"eq": True}, [5]), ({"ne": True}, [1, 2, 3, 4, 6, 7, 8, 9, 10]), ({"eq": False}, [8, 10]),
        ({"ne": "abc"}, [1, 3, 4, 5, 6, 7, 8, 9, 10]), ({"exists": True}, list(values)), ({"exists": False}, []),
        ({"eq": ""}, [9, 10]), ({"gte": 0.5, "lt": 5}, [3, 5, 7]),
    ]
    with TraceStore(store_path) as store:
        for spec, expected in cases:
            found = sorted(int(r["trace_id"], 16) for r in store.query({"v": spec}, limit=None))
            assert (spec, found) == (spec, expected)
