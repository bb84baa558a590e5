"""INSTRUMENTORS_SEMCONV: choosing the convention once, the OpenInference renderer's
mapping and bounds, and the fallbacks that keep spans intact."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from instrumentors import _config, _openinference, _render
from instrumentors import _semconv as sc

pytest.importorskip("openinference.semconv.trace")


@pytest.mark.parametrize("raw, expected", [
    (None, "gen_ai"), ("", "gen_ai"), ("gen_ai", "gen_ai"), ("OpenInference", "openinference"),
    ("both", "both"), ("gen-ai", "gen_ai"), ("phoenix", "gen_ai")])
def test_semconv_from_env(raw, expected, caplog):
    env = {} if raw is None else {"INSTRUMENTORS_SEMCONV": raw}
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert _config.from_env(env).semconv == expected
    assert ("INSTRUMENTORS_SEMCONV" in caplog.text) is (raw == "phoenix")


def test_semconv_keyword_override(caplog):
    assert _config.configure(semconv="both").semconv == "both"
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert _config.configure(semconv="zipkin").semconv == "gen_ai"
    assert "zipkin" in caplog.text


def test_gen_ai_mode_returns_the_tracer_itself(tracer_provider):
    tracer = tracer_provider.get_tracer("t")
    assert _render.instrumented_tracer(tracer, "gen_ai") is tracer
    assert isinstance(_render.instrumented_tracer(tracer, "openinference"), _render.RenderingTracer)


def test_missing_package_falls_back_to_gen_ai(set_config, monkeypatch, caplog):
    set_config(semconv="openinference")
    monkeypatch.setattr(_openinference, "_Span", None)
    monkeypatch.setattr(_render, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert _render.mode() == "gen_ai"
        assert _render.mode() == "gen_ai"
    assert caplog.text.count("openinference-semantic-conventions") == 1


def _provider(limit: int = 128):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=limit))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_span_identity_and_context_kept():
    from opentelemetry import trace

    provider, exporter = _provider()
    tracer = _render.instrumented_tracer(provider.get_tracer("t"), "openinference")
    with tracer.start_as_current_span("outer", attributes={sc.SPAN_KIND: sc.KIND_WORKFLOW}) as outer:
        assert trace.get_current_span() is outer
        inner = tracer.start_span("inner", attributes={sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: "m"})
        inner.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 3)
        inner.end()
        inner.end()  # a second end stays a no-op
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert spans["outer"].attributes["openinference.span.kind"] == "CHAIN"
    assert dict(spans["inner"].attributes) == {
        sc.SPAN_KIND: "llm", "openinference.span.kind": "LLM", "llm.model_name": "m",
        "llm.token_count.prompt": 3, "llm.token_count.total": 3}


def test_retriever_documents_with_scores():
    docs = [{"id": "kb/a", "score": 0.91, "metadata": {"source": "a.md"}}, {"id": "kb/b", "score": 0.5}]
    out = _openinference.render({sc.SPAN_KIND: sc.KIND_RETRIEVER,
                                 sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(docs)})
    assert out == {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "kb/a", "retrieval.documents.0.document.score": 0.91,
        "retrieval.documents.0.document.metadata": '{"source":"a.md"}',
        "retrieval.documents.1.document.id": "kb/b", "retrieval.documents.1.document.score": 0.5,
    }


def test_truncated_canonical_json_is_skipped_not_fatal():
    cut = json.dumps([{"id": "a", "score": 1.0}] * 10)[:40] + "…[truncated]"
    out = _openinference.render({sc.SPAN_KIND: sc.KIND_RETRIEVER, sc.GEN_AI_RETRIEVAL_DOCUMENTS: cut})
    assert out == {"openinference.span.kind": "RETRIEVER"}


def test_span_attribute_limit_never_evicts_canonical_attributes():
    """OTel drops the *oldest* attribute of a full span: the renderer stops at a whole
    document within the room left and says which list it cut."""
    provider, exporter = _provider(limit=20)
    tracer = _render.instrumented_tracer(provider.get_tracer("t"), "both")
    docs = [{"id": f"d{i}", "score": 1.0 - i / 100} for i in range(30)]
    span = tracer.start_span("retrieval", attributes={
        sc.SPAN_KIND: sc.KIND_RETRIEVER, sc.GEN_AI_OPERATION_NAME: "retrieval",
        sc.RETRIEVAL_TOP_SCORE: 1.0, sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(docs)})
    span.end()
    attrs = dict(exporter.get_finished_spans()[0].attributes)
    assert attrs[sc.SPAN_KIND] == "retriever" and attrs[sc.GEN_AI_OPERATION_NAME] == "retrieval"
    assert attrs[sc.RETRIEVAL_TOP_SCORE] == 1.0 and sc.GEN_AI_RETRIEVAL_DOCUMENTS in attrs
    assert attrs["openinference.span.kind"] == "RETRIEVER"
    ids = [k for k in attrs if k.endswith(".document.id")]
    assert ids and len(ids) < 30
    assert all(k.replace(".id", ".score") in attrs for k in ids)  # whole documents only
    assert attrs[sc.TRUNCATED] == ("retrieval.documents",)
    assert len(attrs) <= 20


def test_new_kind_plugs_in():
    try:
        _openinference.register_kind("graph_node", "CHAIN", lambda attrs, out: out.put("graph.node.id", attrs["n"]))
        out = _openinference.render({sc.SPAN_KIND: "graph_node", "n": "plan"})
        assert out == {"openinference.span.kind": "CHAIN", "graph.node.id": "plan"}
    finally:
        _openinference.KINDS.pop("graph_node", None)
        _openinference._RENDERERS.pop("graph_node", None)


@pytest.mark.parametrize("kind, expected", [
    (sc.KIND_TOOL, "TOOL"), (sc.KIND_AGENT, "AGENT"), (sc.KIND_RERANKER, "RERANKER"),
    (sc.KIND_EMBEDDING, "EMBEDDING"), (sc.KIND_GUARDRAIL, "GUARDRAIL"), (sc.KIND_STEP, "CHAIN"),
    (sc.KIND_FEEDBACK, "EVALUATOR"), (sc.KIND_PROMPT, "CHAIN"), (sc.KIND_NODE, "CHAIN"), (None, "CHAIN")])
def test_every_kind_has_an_openinference_kind(kind, expected):
    attrs = {} if kind is None else {sc.SPAN_KIND: kind}
    assert _openinference.render(attrs)["openinference.span.kind"] == expected


def test_tool_and_agent_attributes():
    tool = _openinference.render({sc.SPAN_KIND: sc.KIND_TOOL, sc.GEN_AI_TOOL_NAME: "lookup",
                                  sc.GEN_AI_TOOL_CALL_ID: "call_1", sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"q":1}',
                                  sc.GEN_AI_TOOL_CALL_RESULT: "42"})
    assert tool["tool.name"] == "lookup" and tool["tool.id"] == "call_1"
    assert (tool["input.value"], tool["input.mime_type"]) == ('{"q":1}', "application/json")
    assert (tool["output.value"], tool["output.mime_type"]) == ("42", "text/plain")
    agent = _openinference.render({sc.SPAN_KIND: sc.KIND_AGENT, sc.GEN_AI_AGENT_NAME: "planner"})
    assert agent["agent.name"] == "planner"
    node = _openinference.render({sc.SPAN_KIND: sc.KIND_NODE, sc.GRAPH_NODE: "tools", sc.GRAPH_STEP: 2})
    assert node == {"openinference.span.kind": "CHAIN", "graph.node.id": "tools", "graph.node.name": "tools"}


def test_render_failure_still_ends_the_span(monkeypatch, caplog):
    provider, exporter = _provider()
    tracer = _render.instrumented_tracer(provider.get_tracer("t"), "openinference")

    def broken(attrs, room=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(_openinference, "render", broken)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        tracer.start_span("x", attributes={sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: "m"}).end()
    assert [s.name for s in exporter.get_finished_spans()] == ["x"]
    # nothing lost: the canonical names stay when the rendering failed
    assert exporter.get_finished_spans()[0].attributes[sc.GEN_AI_REQUEST_MODEL] == "m"
    assert "semconv.render" in caplog.text


def test_openinference_with_the_embedded_store_warns_once(tmp_path):
    """instrument_all() with no provider sends spans to the store, whose analyses read
    gen_ai.*: openinference mode says so (both keeps everything)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update(PYTHONPATH=str(root), INSTRUMENTORS_STORE_PATH=str(tmp_path / "s.db"))
    code = "import instrumentors; instrumentors.instrument_all(enabled_libraries=set())"
    for semconv, warned in (("openinference", True), ("both", False)):
        proc = subprocess.run([sys.executable, "-c", code], env={**env, "INSTRUMENTORS_SEMCONV": semconv},
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("INSTRUMENTORS_SEMCONV=both to keep both") == (1 if warned else 0), proc.stderr


def test_session_and_user_from_baggage_or_openinference_context():
    from opentelemetry import baggage
    from opentelemetry import context as otel_context

    provider, exporter = _provider()
    tracer = _render.instrumented_tracer(provider.get_tracer("t"), "openinference")
    ctx = baggage.set_baggage("session.id", "sess-1", baggage.set_baggage("user.id", "u-9"))
    tracer.start_span("a", context=ctx).end()
    token = otel_context.attach(otel_context.set_value("session.id", "sess-2"))  # using_session(...)
    try:
        tracer.start_span("b").end()
    finally:
        otel_context.detach(token)
    tracer.start_span("c").end()
    spans = {s.name: dict(s.attributes) for s in exporter.get_finished_spans()}
    assert (spans["a"]["session.id"], spans["a"]["user.id"]) == ("sess-1", "u-9")
    assert spans["b"]["session.id"] == "sess-2" and "user.id" not in spans["b"]
    assert "session.id" not in spans["c"]
