"""SQLiteSpanExporter: exact round trip, concurrent writers, duplicates, fail-open."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import multiprocessing
import os
import sqlite3

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from instrumentors import _semconv as sc
from instrumentors.store import SQLiteSpanExporter, TraceStore
from instrumentors.store.schema import MAX_INDEXED_STRING, NO_START

LONG = "x" * (MAX_INDEXED_STRING + 50)


def _db(path):
    return sqlite3.connect(path)


def test_round_trip_keeps_every_field(store_provider, store_path):
    tracer = store_provider.get_tracer("t", "1.2")
    with tracer.start_as_current_span("root", attributes={"input.query": "q?"}) as root:
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, attributes={
            "s": "text", "long": LONG, "i": 7, "f": 0.25, "b": True, "arr": ("a", "b"), "nums": (1.5, 2.5),
        }) as child:
            child.add_event("retry", {"attempt": 2})
        linked = tracer.start_span("consumer", links=[Link(child.get_span_context(), {
            sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY, sc.LINK_DOCUMENT_ID: "doc-1", sc.LINK_RANK: 0,
            sc.LINK_SCORE: 0.8, sc.LINK_COVERAGE: 0.95, sc.LINK_SOURCE_KIND: "document"})])
        linked.set_status(Status(StatusCode.ERROR, "boom"))
        linked.end()
    trace_id = format(root.get_span_context().trace_id, "032x")

    with TraceStore(store_path) as store:
        data = store.trace(trace_id)
    assert data["trace_id"] == trace_id
    assert data["root_name"] == "root"
    assert data["span_count"] == 3
    assert data["error_count"] == 1
    [root_node] = data["roots"]
    assert root_node["attributes"] == {"input.query": "q?"}
    assert [c["name"] for c in root_node["children"]] == ["child", "consumer"]
    child_node, consumer = root_node["children"]
    assert child_node["kind"] == "CLIENT"
    assert child_node["scope"] == "t"
    assert child_node["attributes"] == {"s": "text", "long": LONG, "i": 7, "f": 0.25, "b": True,
                                        "arr": ["a", "b"], "nums": [1.5, 2.5]}
    assert child_node["parent_span_id"] == root_node["span_id"]
    assert [(e["name"], e["attributes"]) for e in child_node["events"]] == [("retry", {"attempt": 2})]
    assert consumer["status"] == "ERROR" and consumer["status_message"] == "boom"
    [link] = consumer["links"]
    assert link["span_id"] == child_node["span_id"] and link["trace_id"] == trace_id
    assert (link["link_type"], link["document_id"], link["score"], link["coverage"], link["source_kind"]) == (
        sc.LINK_INFORMED_BY, "doc-1", 0.8, 0.95, "document")
    assert link["attributes"][sc.LINK_RANK] == 0
    assert link["name"] == "child"

    with _db(store_path) as db:
        rows = db.execute(
            "SELECT k.name, a.pos, a.num, a.str FROM attrs a JOIN keys k ON k.id = a.key "
            "JOIN spans s ON s.id = a.span WHERE s.name = 'child' ORDER BY k.name, a.pos").fetchall()
        assert rows == [("arr", 0, None, "a"), ("arr", 1, None, "b"), ("b", 0, 1.0, None), ("f", 0, 0.25, None),
                        ("i", 0, 7.0, None), ("long", 0, None, LONG), ("nums", 0, 1.5, None), ("nums", 1, 2.5, None),
                        ("s", 0, None, "text")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        resource = json.loads(db.execute("SELECT attributes FROM resources").fetchone()[0])
        assert resource["service.name"] == "store-tests"


def test_digests_are_kept_but_not_indexed(store_provider, store_path):
    tracer = store_provider.get_tracer("t")
    digest = ("fp1 k=5 n=3", "00000000000000aa", "00000000000000bb")
    with tracer.start_as_current_span("consumer", attributes={sc.CAUSAL_CONSUMED_DIGESTS: digest}) as span:
        pass
    with TraceStore(store_path) as store:
        stored = store.trace(format(span.get_span_context().trace_id, "032x"))["roots"][0]
    assert stored["attributes"][sc.CAUSAL_CONSUMED_DIGESTS] == list(digest)
    with _db(store_path) as db:
        assert db.execute("SELECT count(*) FROM keys WHERE name = ?", (sc.CAUSAL_CONSUMED_DIGESTS,)).fetchone()[0] == 0


def _span(trace_id: int, span_id: int, parent: int = 0, name: str = "s", attrs=None, start=1000, end=2000):
    ctx = SpanContext(trace_id, span_id, False, TraceFlags(1))
    parent_ctx = SpanContext(trace_id, parent, False, TraceFlags(1)) if parent else None
    return ReadableSpan(name, ctx, parent_ctx, Resource.create({"service.name": "raw"}), attrs or {},
                        start_time=start, end_time=end)


def test_duplicate_spans_are_stored_once(store_path):
    exporter = SQLiteSpanExporter(store_path)
    batch = [_span(1, 1, name="root", attrs={"a": 1}), _span(1, 2, 1, attrs={"a": 2})]
    assert exporter.export(batch) == SpanExportResult.SUCCESS
    assert exporter.export(batch + [_span(1, 3, 1, attrs={"a": 3})]) == SpanExportResult.SUCCESS
    assert exporter.export([_span(1, 3, 1, attrs={"a": 3}), _span(1, 3, 1, attrs={"a": 3})]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT count(*) FROM spans").fetchone()[0] == 3
        assert db.execute("SELECT span_count FROM traces").fetchone()[0] == 3
        assert sorted(r[0] for r in db.execute("SELECT num FROM attrs")) == [1.0, 2.0, 3.0]


def test_feedback_span_fills_the_feedback_table_and_never_stretches_the_trace(store_path):
    exporter = SQLiteSpanExporter(store_path)
    exporter.export([_span(5, 1, name="root", start=1_000, end=9_000), _span(5, 2, 1, start=2_000, end=3_000)])
    exporter.export([_span(5, 3, 1, name="feedback", start=10 ** 15, end=10 ** 15, attrs={
        sc.SPAN_KIND: sc.KIND_FEEDBACK, sc.FEEDBACK_SCORE: 0.0, sc.FEEDBACK_KEY: "user",
        sc.FEEDBACK_REASON: "stale", sc.FEEDBACK_STEP_BLAMED: "retrieval", "ticket": "T-1"})])
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT start_ns, end_ns, span_count, root_span_id, root_name FROM traces").fetchall() == [
            (1_000, 9_000, 3, format(1, "016x"), "root")]
        row = db.execute("SELECT trace_id, span_id, target_span_id, key, score, reason, step_blamed, time_ns,"
                         " attributes FROM feedback").fetchone()
    assert row == (format(5, "032x"), format(3, "016x"), format(1, "016x"), "user", 0.0, "stale", "retrieval",
                   10 ** 15, '{"ticket":"T-1"}')


def test_trace_known_only_from_feedback_has_no_start(store_path):
    exporter = SQLiteSpanExporter(store_path)
    exporter.export([_span(6, 3, 99, name="feedback", attrs={sc.SPAN_KIND: sc.KIND_FEEDBACK, sc.FEEDBACK_SCORE: 1.0})])
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT start_ns, end_ns, root_span_id FROM traces").fetchone() == (NO_START, 0, None)
    with TraceStore(store_path) as store:
        [summary] = store.query()
    assert summary["start_time"] is None and summary["duration_ms"] is None and summary["feedback.score"] == 1.0


def test_local_root_under_a_remote_parent_is_the_root(store_path):
    exporter = SQLiteSpanExporter(store_path)
    remote = SpanContext(7, 77, True, TraceFlags(1))
    server = ReadableSpan("GET /ask", SpanContext(7, 1, False, TraceFlags(1)), remote, start_time=1, end_time=5)
    exporter.export([_span(7, 2, 1, name="inner"), server])
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT root_span_id, root_name FROM traces").fetchone() == (format(1, "016x"), "GET /ask")
        assert db.execute("SELECT parent_remote FROM spans WHERE name = 'GET /ask'").fetchone() == (1,)


def _writer(path: str, worker: int, traces: int, start, spans_per_trace: int = 5) -> None:
    exporter = SQLiteSpanExporter(path, busy_timeout_ms=60_000)
    start.wait()
    batch = []
    for t in range(traces):
        trace_id = (worker << 64) | (t + 1)
        batch.append(_span(trace_id, 1, name="root", attrs={"worker": worker}))
        for s in range(2, spans_per_trace + 1):
            batch.append(_span(trace_id, s, 1, name="step", attrs={"worker": worker, "n": s}))
        if len(batch) >= 40:
            assert exporter.export(batch) == SpanExportResult.SUCCESS
            batch = []
    if batch:
        assert exporter.export(batch) == SpanExportResult.SUCCESS
    exporter.shutdown()


def test_several_processes_write_at_once(store_path):
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    workers = [ctx.Process(target=_writer, args=(store_path, w, 120, start)) for w in range(1, 5)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with _db(store_path) as db:
        assert db.execute("SELECT count(*) FROM spans").fetchone()[0] == 4 * 120 * 5
        assert db.execute("SELECT count(*), min(span_count), max(span_count) FROM traces").fetchone() == (480, 5, 5)
        assert db.execute("SELECT count(DISTINCT id) FROM spans").fetchone()[0] == 2400
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_worker = dict(db.execute(
            "SELECT a.num, count(*) FROM attrs a JOIN keys k ON k.id = a.key WHERE k.name = 'worker' GROUP BY a.num"))
    assert per_worker == {1.0: 600, 2.0: 600, 3.0: 600, 4.0: 600}
    with TraceStore(store_path) as store:
        assert store.count({"worker": 3}) == 120
        assert store.count({"worker": 3, "n": {"gte": 5}}, level="span") == 120


def test_export_failure_is_reported_not_raised(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    exporter = SQLiteSpanExporter(str(blocker / "traces.db"))
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert exporter.export([_span(1, 1)]) == SpanExportResult.FAILURE
        assert exporter.export([_span(1, 2)]) == SpanExportResult.FAILURE
    reports = [r for r in caplog.records if "internal error in store export" in r.getMessage()]
    assert len(reports) == 1  # rate-limited


def test_export_after_shutdown_fails_and_empty_batch_succeeds(store_path):
    exporter = SQLiteSpanExporter(store_path)
    assert exporter.export([]) == SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    exporter.shutdown()
    assert exporter.export([_span(1, 1)]) == SpanExportResult.FAILURE


def test_default_path_comes_from_config(tmp_path, set_config):
    set_config(store_path=str(tmp_path / "cfg" / "t.db"))
    exporter = SQLiteSpanExporter()
    assert exporter.path == str(tmp_path / "cfg" / "t.db")
    assert exporter.export([_span(1, 1)]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert os.path.exists(tmp_path / "cfg" / "t.db")


def test_entry_point_is_the_sqlite_exporter():
    eps = importlib.metadata.entry_points(group="opentelemetry_traces_exporter")
    [ep] = [e for e in eps if e.name == "instrumentors"]
    assert ep.load() is SQLiteSpanExporter


def test_sdk_provider_with_the_exporter_never_raises_into_the_app(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(str(blocker / "t.db"))))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("app") as span:
        value = 41 + 1
    assert value == 42 and not span.is_recording()
    provider.shutdown()
    assert trace.get_current_span() is trace.INVALID_SPAN or not trace.get_current_span().is_recording()


def test_caches_are_bounded(store_path, monkeypatch):
    from instrumentors.store import exporter as exporter_module

    monkeypatch.setattr(exporter_module, "_MAX_CACHED_KEYS", 8)
    monkeypatch.setattr(exporter_module, "_MAX_CACHED_RESOURCES", 2)
    exporter = SQLiteSpanExporter(store_path)
    for i in range(40):
        span = ReadableSpan("s", SpanContext(1, i + 1, False, TraceFlags(1)), None,
                            Resource.create({"service.name": f"svc-{i}"}), {f"key.{i}": i, "shared": 1},
                            start_time=1, end_time=2)
        assert exporter.export([span]) == SpanExportResult.SUCCESS
        assert len(exporter._keys) <= 8 and len(exporter._resources) <= 2
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT count(*) FROM keys").fetchone()[0] == 41
        assert db.execute("SELECT count(*) FROM resources").fetchone()[0] == 40
        assert db.execute("SELECT count(*) FROM attrs").fetchone()[0] == 80


def test_non_finite_numbers_are_stored_as_null(store_path):
    exporter = SQLiteSpanExporter(store_path)
    assert exporter.export([_span(9, 1, attrs={"nan": float("nan"), "inf": (1.0, float("inf")), "ok": 2.5})]) == \
        SpanExportResult.SUCCESS
    exporter.shutdown()
    with _db(store_path) as db:
        assert json.loads(db.execute("SELECT attributes FROM spans").fetchone()[0]) == {
            "nan": None, "inf": [1.0, None], "ok": 2.5}
        assert db.execute("SELECT a.num FROM attrs a JOIN keys k ON k.id = a.key ORDER BY k.name, a.pos").fetchall() == [
            (1.0,), (2.5,)]


class _PublicOnlySpan:
    """A span-like object with only the public ReadableSpan API (no SDK private fields)."""

    def __init__(self, inner: ReadableSpan) -> None:
        for name in ("context", "parent", "start_time", "end_time", "status", "kind", "resource",
                     "instrumentation_scope", "name", "events", "links", "attributes"):
            setattr(self, name, getattr(inner, name))


def test_spans_without_sdk_private_fields_are_exported_too(store_path):
    exporter = SQLiteSpanExporter(store_path)
    inner = _span(11, 1, name="public", attrs={"x": 1, "tags": ("a",)})
    assert exporter.export([_PublicOnlySpan(inner)]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    with TraceStore(store_path) as store:
        [root] = store.trace(format(11, "032x"))["roots"]
        assert (root["name"], root["attributes"]) == ("public", {"x": 1, "tags": ["a"]})
        assert store.count({"tags": "a"}) == 1


def test_span_refs_carry_their_trace_across_batches(store_path):
    from instrumentors.store.schema import SPAN_BITS

    exporter = SQLiteSpanExporter(store_path)
    exporter.export([_span(21, 1, name="root", attrs={"a": 1}), _span(22, 1, name="other", attrs={"a": 5})])
    exporter.export([_span(21, 2, 1, attrs={"a": 2}), _span(21, 3, 1, attrs={"a": 3})])  # same trace, later batch
    exporter.shutdown()
    with _db(store_path) as db:
        rows = db.execute("SELECT s.id, s.trace, s.span_id FROM spans s ORDER BY s.trace, s.id").fetchall()
        t21, t22 = (db.execute("SELECT id FROM traces WHERE trace_id = ?", (format(t, "032x"),)).fetchone()[0]
                    for t in (21, 22))
        assert rows == [((t21 << SPAN_BITS) | 0, t21, format(1, "016x")), ((t21 << SPAN_BITS) | 1, t21, format(2, "016x")),
                        ((t21 << SPAN_BITS) | 2, t21, format(3, "016x")), ((t22 << SPAN_BITS) | 0, t22, format(1, "016x"))]
        # the attrs view derives each value's trace from its span ref
        assert sorted(db.execute("SELECT span, trace, num FROM attrs").fetchall()) == sorted(
            (sid, trace, float(n)) for (sid, trace, _), n in zip(rows, (1, 2, 3, 5)))
    with TraceStore(store_path) as store:
        assert store.count({"a": {"gte": 2}}) == 2 and store.count({"a": {"gte": 2}}, level="span") == 3
        assert store.count({"a": 2, "name": "other"}) == 0


def test_a_key_with_scalar_and_array_values_in_one_batch(store_path):
    exporter = SQLiteSpanExporter(store_path)
    exporter.export([_span(31, 1, name="root", attrs={"k": "a", "n": 1}), _span(31, 2, 1, attrs={"k": ("b", "c")}),
                     _span(32, 1, name="root", attrs={"k": (), "n": (2, 3)}),
                     _span(33, 1, name="root", attrs={"k": "x[y]"}), _span(34, 1, name="root", attrs={})])
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT count(*), sum(arrays) FROM attr_blocks").fetchone() == (4, 2)
    with TraceStore(store_path) as store:
        def traces(filters, level="trace"):
            return store.count(filters, level=level)
        assert [traces({"k": v}) for v in ("a", "b", "c", "d", "x[y]")] == [1, 1, 1, 0, 1]
        assert traces({"k": {"in": ["a", "c"]}}, "span") == 2
        assert traces({"k": {"contains": "["}}) == 1
        assert traces({"k": {"exists": True}}) == 2  # an empty array holds no value
        assert traces({"k": {"exists": False}}) == 2
        assert traces({"n": {"gt": 1}}) == 1 and traces({"n": {"lte": 1}}) == 1 and traces({"n": 3}) == 1


def test_a_store_of_an_older_schema_is_refused_clearly_and_left_untouched(store_path, caplog):
    from instrumentors.store import StoreCorrupt
    from instrumentors.store.schema import APPLICATION_ID

    with _db(store_path) as db:
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute("PRAGMA user_version=1")
        db.execute("CREATE TABLE spans (id INTEGER PRIMARY KEY, attributes TEXT)")
        db.execute("CREATE TABLE attrs (key INTEGER, span INTEGER, num REAL)")
        db.execute("INSERT INTO spans VALUES (1, '{}')")
    before = open(store_path, "rb").read()
    exporter = SQLiteSpanExporter(store_path)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert exporter.export([_span(1, 1)]) == SpanExportResult.FAILURE
    exporter.shutdown()
    [report] = [r for r in caplog.records if "internal error in store export" in r.getMessage()]
    assert "older instrumentors (schema version 1" in str(report.exc_info[1])
    assert "move the file aside" in str(report.exc_info[1])
    with pytest.raises(StoreCorrupt, match=r"older instrumentors \(schema version 1; this one uses 2"):
        TraceStore(store_path)
    assert open(store_path, "rb").read() == before


def test_a_trace_beyond_the_span_limit_fails_open_and_keeps_what_was_stored(store_path, monkeypatch):
    from instrumentors.store import schema as schema_module

    monkeypatch.setattr(schema_module, "MAX_SPANS_PER_TRACE", 3)
    exporter = SQLiteSpanExporter(store_path)
    assert exporter.export([_span(41, 1, name="root"), _span(41, 2, 1)]) == SpanExportResult.SUCCESS
    assert exporter.export([_span(41, 3, 1), _span(41, 4, 1)]) == SpanExportResult.FAILURE
    assert exporter.export([_span(41, 3, 1), _span(42, 1, name="next")]) == SpanExportResult.SUCCESS
    exporter.shutdown()
    with _db(store_path) as db:
        assert db.execute("SELECT count(*) FROM spans").fetchone()[0] == 4
        assert db.execute("SELECT span_count FROM traces ORDER BY id").fetchall() == [(3,), (1,)]


def _same_traces_writer(path: str, worker: int, start) -> None:
    exporter = SQLiteSpanExporter(path, busy_timeout_ms=60_000)
    start.wait()
    for rnd in range(5):
        # every worker writes spans of the same 30 traces, interleaved batch by batch
        batch = [_span(1000 + t, (worker << 8) | (rnd + 1), attrs={"worker": worker, "round": rnd}) for t in range(30)]
        assert exporter.export(batch) == SpanExportResult.SUCCESS
    exporter.shutdown()


def test_processes_writing_spans_of_the_same_traces_get_distinct_span_refs(store_path):
    from instrumentors.store.schema import SPAN_BITS

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    workers = [ctx.Process(target=_same_traces_writer, args=(store_path, w, start)) for w in range(1, 4)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    with _db(store_path) as db:
        assert db.execute("SELECT count(*), count(DISTINCT id) FROM spans").fetchone() == (450, 450)
        assert db.execute(f"SELECT count(*) FROM spans WHERE id >> {SPAN_BITS} != trace").fetchone()[0] == 0
        assert db.execute("SELECT count(*), min(span_count), max(span_count) FROM traces").fetchone() == (30, 15, 15)
        # each trace's refs are 0..14 after its trace ref
        assert db.execute(f"SELECT count(*) FROM spans WHERE id - (trace << {SPAN_BITS}) NOT BETWEEN 0 AND 14"
                          ).fetchone()[0] == 0
    with TraceStore(store_path) as store:
        assert store.count({"worker": 2, "round": 4}, level="span") == 30
        assert store.count({"worker": 2, "round": 4}) == 30
