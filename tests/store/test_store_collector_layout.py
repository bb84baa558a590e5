"""Traces written by the OpenTelemetry Collector's ClickHouse exporter, read as they are.

The table is created with the exporter's published traces DDL (its
``internal/sql_templates/traces_table.sql``: columns, codecs, bloom-filter indexes,
MergeTree partitioning and order, with the database/table name and engine filled in as
the exporter does), and rows are inserted the way the exporter inserts them: every
attribute value as text (pdata ``AsString``: ``0.41``, ``true``, ``["stop"]``), kinds and
statuses as ``Client`` / ``Error``, ``Duration`` in ns, the scope in ``ScopeName``,
events and links in the nested columns. Nothing of instrumentors writes here; then
query, explain and blame must answer over it.
"""

from __future__ import annotations

import json
import random

import pytest

from instrumentors import _semconv as sc
from instrumentors.cli import main
from instrumentors.store import TraceStore

pytest.importorskip("chdb")

BASE = 1_795_176_000  # 2026-11-20 12:00:00 UTC

#: the exporter's traces table DDL (%s filled in: name, cluster, engine, TTL)
COLLECTOR_TRACES_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
TTL toDateTime(Timestamp) + toIntervalDay(180)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""

INSERT_COLUMNS = ("Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,"
                  " ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,"
                  " Events.Timestamp, Events.Name, Events.Attributes, Links.TraceId, Links.SpanId, Links.TraceState,"
                  " Links.Attributes")


def _s(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _map(values: dict) -> str:
    return "map(" + ", ".join(f"{_s(k)}, {_s(v)}" for k, v in values.items()) + ")" if values else "map()"


def _ts(ns: int) -> str:
    return f"toDateTime64({ns // 10**9}.{ns % 10**9:09d}, 9, 'UTC')"


class CollectorTraces:
    """Rows as the Collector writes them for the seed pipeline (its own spellings)."""

    def __init__(self) -> None:
        self.rows: list = []
        self.rnd = random.Random(3)

    def _id(self, bits: int) -> str:
        return format(self.rnd.getrandbits(bits), f"0{bits // 4}x")

    def span(self, trace_id, span_id, parent, name, kind, start_ms, dur_ms, attrs, status="Unset",
             message="", links=(), events=()):
        start = BASE * 10**9 + int(start_ms * 1e6)
        self.rows.append("(" + ", ".join([
            _ts(start), _s(trace_id), _s(span_id), _s(parent), "''", _s(name), _s(kind), "'rag-service'",
            _map({"service.name": "rag-service", "telemetry.sdk.language": "python"}),
            "'tests.collector'", "'1.0'", _map(attrs), str(int(dur_ms * 1e6)), _s(status), _s(message),
            "[" + ", ".join(_ts(start + int(t * 1e6)) for t, _, _ in events) + "]",
            "[" + ", ".join(_s(n) for _, n, _ in events) + "]",
            "[" + ", ".join(_map(a) for _, _, a in events) + "]",
            "[" + ", ".join(_s(t) for t, _, _ in links) + "]",
            "[" + ", ".join(_s(s) for _, s, _ in links) + "]",
            "[" + ", ".join("''" for _ in links) + "]",
            "[" + ", ".join(_map(a) for _, _, a in links) + "]",
        ]) + ")")

    def pipeline(self, i: int, stale: bool) -> str:
        trace_id, t = self._id(128), i * 1000.0
        root, rewriter, retrieval, generator, feedback = (self._id(64) for _ in range(5))
        top = "0.41" if stale else "0.87"
        doc = "kb/pricing-2025" if stale else "kb/refunds"
        indexed = "2026-03-15" if stale else "2026-11-01"
        self.span(trace_id, root, "", "rag_pipeline", "Server", t, 120, {"input.query": f"question {i}"})
        self.span(trace_id, rewriter, root, "chat gpt-4o-mini", "Client", t + 5, 10, {
            sc.GEN_AI_OPERATION_NAME: "chat", sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: "30", sc.GEN_AI_RESPONSE_FINISH_REASONS: '["stop"]'})
        self.span(trace_id, retrieval, root, "retrieval kb", "Client", t + 20, 15, {
            sc.GEN_AI_OPERATION_NAME: "retrieval", sc.SPAN_KIND: sc.KIND_RETRIEVER, sc.RETRIEVAL_TOP_SCORE: top,
            sc.RETRIEVAL_DOCUMENT_COUNT: "1", sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(
                [{"id": doc, "score": float(top), "metadata": {"indexed_at": indexed}}])},
            status="Error" if i == 1 else "Unset", message="slow index" if i == 1 else "",
            events=[(2.0, "cache miss", {"cache.key": f"k{i}"})])
        self.span(trace_id, generator, root, "chat gpt-4o", "Client", t + 40, 60, {
            sc.GEN_AI_OPERATION_NAME: "chat", sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: "80", sc.GEN_AI_RESPONSE_FINISH_REASONS: '["stop"]'},
            links=[(trace_id, retrieval, {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY,
                                          sc.LINK_SOURCE_KIND: "document", sc.LINK_DOCUMENT_ID: doc,
                                          sc.LINK_RANK: "0", sc.LINK_SCORE: top, sc.LINK_COVERAGE: "1"})])
        self.span(trace_id, feedback, root, "feedback", "Internal", t + 500, 0, {
            sc.SPAN_KIND: sc.KIND_FEEDBACK, sc.FEEDBACK_SCORE: "0" if stale else "1", sc.FEEDBACK_KEY: "user",
            sc.FEEDBACK_TARGET_SPAN_ID: root, **({sc.FEEDBACK_REASON: "outdated price"} if stale else {})})
        return trace_id


@pytest.fixture(scope="module")
def collector_store(chdb_dir):
    from instrumentors.store.clickhouse_engine import connect
    from instrumentors.store.url import parse

    url = f"chdb://{chdb_dir}?database=otel"
    engine = connect(parse(url))
    traces = CollectorTraces()
    ids = {"bad": [], "good": []}
    for i in range(16):
        stale = i % 2 == 1
        ids["bad" if stale else "good"].append(traces.pipeline(i, stale))
    try:
        engine.execute("CREATE DATABASE IF NOT EXISTS otel")
        engine.execute(COLLECTOR_TRACES_DDL.format(table="otel.otel_traces"))
        engine.execute(f"INSERT INTO otel.otel_traces ({INSERT_COLUMNS}) VALUES " + ", ".join(traces.rows))
    finally:
        engine.close()
    return url, ids


def test_query_over_the_collector_layout(collector_store):
    url, ids = collector_store
    with TraceStore(url) as store:
        bad = store.query({"retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}}, limit=None)
        assert sorted(r["trace_id"] for r in bad) == sorted(ids["bad"])
        first = bad[0]
        assert first["root_name"] == "rag_pipeline" and first["span_count"] == 5
        assert (first["retrieval.top_score"], first["feedback.score"], first["feedback.reason"]) == (
            0.41, 0.0, "outdated price")
        assert first["gen_ai.request.model"] == "gpt-4o-mini" and first["duration_ms"] == 120.0
        assert store.count({sc.GEN_AI_RESPONSE_FINISH_REASONS: "stop"}) == 16  # an array, matched by element
        assert store.count({"status": "error"}) == 1 and store.count({"kind": "server"}, level="span") == 16
        spans = store.query({sc.GEN_AI_USAGE_INPUT_TOKENS: {"gte": 30}}, level="span", limit=3)
        assert spans[0]["attributes"][sc.GEN_AI_USAGE_INPUT_TOKENS] == 30  # text back to a number
        assert spans[0]["kind"] == "CLIENT" and spans[0]["scope"] == "tests.collector"
        tree = store.trace(ids["bad"][0][:8])
        [root] = tree["roots"]
        retrieval = next(s for s in root["children"] if s["name"] == "retrieval kb")
        assert retrieval["events"][0]["name"] == "cache miss"
        generator = next(s for s in root["children"] if s["name"] == "chat gpt-4o")
        assert generator["links"][0]["name"] == "retrieval kb"
        assert generator["links"][0]["document_id"] == "kb/pricing-2025"
        assert generator["links"][0]["score"] == 0.41


def test_explain_and_blame_over_the_collector_layout(collector_store, capsys):
    url, ids = collector_store
    with TraceStore(url) as store:
        explained = store.explain(ids["bad"][2])
        cause = explained["likely_cause"]
        assert cause["step"] == "retrieval kb" and cause["kind"] in ("low_score", "stale_documents")
        assert explained["feedback_score"] == 0.0
        report = store.blame()
        assert (report["negative"], report["positive"]) == (8, 8)
        top = report["findings"][0]
        assert top["difference"] == 1.0 and "kb/pricing-2025" in top["description"] + str(top.get("documents"))
    assert main(["--store", url, "blame"]) == 0
    assert "kb/pricing-2025" in capsys.readouterr().out
