"""The same traces in SQLite and in chDB (the Collector's ``otel_traces`` layout) give
the same answers: queries at both levels with every operator, trace trees, explain,
blame (every case of the blame snapshot, which chDB must reproduce too), prompts,
feedback, counts; and the CLI on a chDB URL, including that reads never write.

One provider sends every span to both stores, so ids, times and feedback are identical.
Differences the layout forces are normalised away, and only those: numbers compare as
floats (the Collector keeps ``1.0`` as the text ``1``), ``parent_remote`` is not part of
the layout, an attribute set to None has no form in it (OTLP has no null), and the
store's location differs.
"""

from __future__ import annotations

import json
import math

import pytest
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from instrumentors import _semconv as sc
from instrumentors.cli import main
from instrumentors.store import TraceStore
from instrumentors.store.clickhouse_exporter import ClickHouseSpanExporter

from .test_store_blame_snapshot import CASES, SNAPSHOT, build_store

pytest.importorskip("chdb")


def normalized(value):
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()
                if k not in ("parent_remote", "path", "bytes") and not (v is None and "." in k)}
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else str(value)
    return value


@pytest.fixture(scope="module")
def both(tmp_path_factory, chdb_dir):
    sqlite_path = str(tmp_path_factory.mktemp("both") / "traces.db")
    url = f"chdb://{chdb_dir}?database=both"
    processor = BatchSpanProcessor(ClickHouseSpanExporter(url), max_queue_size=1 << 20,
                                   max_export_batch_size=1 << 16, schedule_delay_millis=3_600_000)
    build_store(sqlite_path, also=[processor])  # shuts the provider down: everything flushed
    return sqlite_path, url


def _answers(store: TraceStore) -> dict:
    filters = {
        "seed": {"retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}},
        "eq_str": {sc.GEN_AI_REQUEST_MODEL: "gpt-4o"},
        "ne_str": {sc.GEN_AI_REQUEST_MODEL: {"ne": "gpt-4o"}},
        "in_mixed": {sc.PROMPT_TEMPLATE_HASH: {"in": ["tpl-v2", "rewrite-v1"]}},
        "array": {sc.GEN_AI_RESPONSE_FINISH_REASONS: "length"},
        "range": {sc.GEN_AI_USAGE_OUTPUT_TOKENS: {"gte": 50, "lt": 120}},
        "contains": {"input.query": {"contains": "extra 1"}},
        "exists_false": {"audit.flag": {"exists": False}},
        "bool": {"cache.hit": True},
        "intrinsics": {"name": {"in": ["rank", "lookup"]}, "status": "error"},
        "duration": {"duration_ms": {"gt": 30}},
        "kind": {"kind": "client", sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"},
        "gt_str": {"lookup.region": {"gt": "f"}},
        "alias": {"user_feedback.score": {"gte": 0.5}},
        "unknown_key": {"no.such.key": 1},
    }
    out: dict = {}
    for name, spec in filters.items():
        out[name] = {"traces": store.query(spec, limit=None), "count": store.count(spec),
                     "spans": store.query(spec, limit=None, level="span"),
                     "span_count": store.count(spec, level="span")}
    out["recent"] = store.query(None, limit=7)
    out["all_count"] = store.count()
    ids = [row["trace_id"] for row in store.query({"feedback.score": {"lt": 0.5}}, limit=6)]
    ids += [row["trace_id"] for row in store.query({"name": "plain pipeline"}, limit=2)]
    out["trees"] = [store.trace(i) for i in ids] + [store.trace("ab" * 16)]
    out["explain"] = [store.explain(i) for i in ids]
    out["prefix"] = store.resolve(ids[0][:10])
    out["prompts"] = store.compare_prompts()
    out["prompts_judge"] = store.compare_prompts(feedback_key="judge", filters={"name": "plain pipeline"})
    out["feedback"] = store.feedback(limit=None)
    out["feedback_of"] = store.feedback(ids[0])
    out["root"] = store.root_span_id(ids[0])
    stats = store.stats()
    out["stats"] = {k: stats[k] for k in ("traces", "spans", "links", "feedback", "first_trace", "last_trace")}
    return out


def test_sqlite_and_chdb_give_identical_answers(both):
    sqlite_path, url = both
    with TraceStore(sqlite_path) as lite, TraceStore(url) as ch:
        a, b = _answers(lite), _answers(ch)
    assert a["all_count"] == 341 and a["seed"]["count"] > 50  # the data set is not trivial
    assert {n for n, v in a.items() if isinstance(v, dict) and "count" in v and v["count"]} >= {
        "seed", "eq_str", "array", "range", "contains", "exists_false", "bool", "intrinsics", "duration"}
    for key in a:  # one answer at a time: a readable diff
        assert normalized(a[key]) == normalized(b[key]), key


@pytest.mark.parametrize("window", [1, 64, 1 << 30])
def test_limited_trace_queries_match_sqlite_whatever_the_time_window(both, monkeypatch, window):
    """chDB answers a limited trace query from a recent time window first, widened while
    it holds too few matches (ClickHouseReader.WINDOW_SPANS): from a window of one span
    (many rounds), a small one, and none at all (the whole table at once), every page is
    SQLite's, with time bounds too."""
    from instrumentors.store.clickhouse_reader import ClickHouseReader

    monkeypatch.setattr(ClickHouseReader, "WINDOW_SPANS", window)
    sqlite_path, url = both
    with TraceStore(sqlite_path) as lite, TraceStore(url) as ch:
        middle = lite.query(limit=None)[170]["start_ns"] / 1e9
        for spec in (None, {"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}},
                     {"name": "output validator"}, {"audit.flag": {"exists": False}}, {"no.such.key": 1}):
            for limit, offset in ((1, 0), (7, 0), (25, 30), (50, 300)):
                for bounds in ({}, {"until": middle}, {"since": middle}):
                    a = [t["trace_id"] for t in lite.query(spec, limit=limit, offset=offset, **bounds)]
                    b = [t["trace_id"] for t in ch.query(spec, limit=limit, offset=offset, **bounds)]
                    assert a == b, (spec, limit, offset, bounds)
            assert lite.count(spec) == ch.count(spec), spec


def test_chdb_reproduces_the_blame_snapshot(both):
    sqlite_path, url = both
    expected = json.loads(SNAPSHOT.read_text())
    with TraceStore(url) as ch, TraceStore(sqlite_path) as lite:
        for name, kwargs in CASES.items():
            report = json.loads(json.dumps(ch.blame(**kwargs)))
            assert normalized(report) == normalized(expected[name]), name
            assert normalized(report) == normalized(json.loads(json.dumps(lite.blame(**kwargs)))), name


def _chdb_state(url: str) -> list:
    """Every table and part of the chDB directory, with rows and modification times."""
    from instrumentors.store.clickhouse_engine import connect
    from instrumentors.store.url import parse

    engine = connect(parse(url))
    try:
        return engine.rows("SELECT database, table, name, rows, modification_time FROM system.parts"
                           " WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')"
                           " ORDER BY database, table, name") + engine.rows(
            "SELECT database, name FROM system.tables WHERE database NOT IN"
            " ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name")
    finally:
        engine.close()


def test_cli_on_chdb_and_reads_never_write(both, capsys, monkeypatch):
    _, url = both
    before = _chdb_state(url)
    bad = None
    for argv, expect in (
            (["list", "-n", "3"], "3 of 341 traces"),
            (["query", "-w", "retrieval.top_score<0.6", "-w", "feedback.score<0.5"], "of 80 traces matching"),
            (["query", "--span-level", "-w", "name=output validator", "-n", "2"], "2 of 300 spans"),
            (["blame"], "stale: kb/pricing-2025"),
            (["prompts"], "tpl-v1"),
            (["info"], "traces    341"),
    ):
        assert main(["--store", url, *argv]) == 0, argv
        out = capsys.readouterr().out
        assert expect in out, (argv, out)
        if argv[0] == "query" and bad is None:
            bad = json.loads(json.dumps(TraceStore(url).query({"feedback.score": {"lt": 0.5}}, limit=1)))[0][
                "trace_id"]
    for argv in (["show", bad[:8]], ["explain", bad], ["explain", bad, "--json"], ["graph", bad, "-o", "-"]):
        assert main(["--store", url, *argv]) == 0, argv
        assert bad[:8] in capsys.readouterr().out
    monkeypatch.setenv("INSTRUMENTORS_STORE_URL", url)
    assert main(["info"]) == 0
    assert "chdb://" in capsys.readouterr().out
    assert _chdb_state(url) == before


def test_cli_feedback_lands_in_chdb(tmp_path, chdb_dir, capsys):
    url = f"chdb://{chdb_dir}?database=cli_feedback"
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ClickHouseSpanExporter(url)))
    with provider.get_tracer("t").start_as_current_span("answer") as root:
        pass
    provider.shutdown()
    trace_hex = format(root.get_span_context().trace_id, "032x")
    span_hex = format(root.get_span_context().span_id, "016x")
    assert main(["--store", url, "feedback", trace_hex[:12], "--score", "0", "--reason", "wrong",
                 "--step", "retrieval"]) == 0
    assert "under the root span" in capsys.readouterr().out
    with TraceStore(url) as store:
        [record] = store.feedback(trace_hex)
        assert (record["score"], record["reason"], record["step_blamed"], record["target_span_id"]) == (
            0.0, "wrong", "retrieval", span_hex)
        assert store.query({"feedback.score": {"lt": 0.5}})[0]["trace_id"] == trace_hex


def test_store_url_setting_picks_the_exporter_and_the_reader(set_config, monkeypatch, chdb_dir, tmp_path):
    """INSTRUMENTORS_STORE_URL: the default exporter writes the Collector layout there,
    TraceStore() reads it; a plain path keeps the SQLite store."""
    from instrumentors import _config
    from instrumentors._distro import default_span_exporter
    from instrumentors.store import SQLiteSpanExporter

    url = f"chdb://{chdb_dir}?database=by_setting"
    monkeypatch.setenv("INSTRUMENTORS_STORE_URL", url)
    assert _config.from_env().store_url == url
    set_config(store_url=url)
    exporter = default_span_exporter()
    assert isinstance(exporter, ClickHouseSpanExporter) and exporter.url.startswith(f"chdb://{chdb_dir}")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("by setting", attributes={"answer.score": 0.25}):
        pass
    provider.shutdown()
    with TraceStore() as store:
        assert [r["root_name"] for r in store.query({"answer.score": {"lt": 0.5}})] == ["by setting"]
    set_config(store_url=str(tmp_path / "plain.db"))
    assert isinstance(default_span_exporter(), SQLiteSpanExporter)
