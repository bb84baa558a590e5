"""TraceStore.explain: the causal walk and every anomaly it must flag."""

from __future__ import annotations

from instrumentors import record_feedback
from instrumentors.store import TraceStore

from .conftest import FRESH, STALE  # noqa: F401  (importlib mode: conftest is a module here)


def _explain(store_path, trace_id, **kw):
    with TraceStore(store_path) as store:
        return store.explain(trace_id, **kw)


def _kinds(result):
    return [(a["kind"], a["step"]) for a in result["anomalies"]]


def test_walks_back_from_the_output_through_links(rag, store_path):
    trace_id = rag.run(docs=[("kb/pricing-2025", 0.45, STALE), ("kb/plans", 0.41, FRESH)])
    record_feedback(trace_id, 0.0, reason="price is outdated", tracer_provider=rag.provider, store_path=store_path)
    result = _explain(store_path, trace_id)
    steps = [(s["name"], s["reached_via"], s["role"]) for s in result["steps"]]
    assert steps == [
        ("rag_pipeline", None, "span"),
        ("output validator", "child", "step"),
        ("chat gpt-4o", "link", "llm"),
        ("context assembler", "link", "step"),
        ("retrieval kb", "link", "retriever"),
        ("chat gpt-4o-mini", "link", "llm"),
    ]
    assembler = result["steps"][3]
    assert [(l["document_id"], l["rank"], l["score"], l["step"]) for l in assembler["inputs"]["linked_from"]] == [
        ("kb/pricing-2025", 0, 0.45, "retrieval kb"), ("kb/plans", 1, 0.41, "retrieval kb")]
    retrieval = result["steps"][4]
    assert [(d["id"], d["score"], d["metadata"]["indexed_at"]) for d in retrieval["outputs"]["documents"]] == [
        ("kb/pricing-2025", 0.45, STALE), ("kb/plans", 0.41, FRESH)]
    assert retrieval["outputs"]["top_score"] == 0.45
    assert retrieval["used_by"] == ["context assembler", "context assembler"]
    generator = result["steps"][2]
    assert generator["inputs"]["tokens"] == 400 and generator["outputs"]["tokens"] == 60
    assert generator["outputs"]["finish_reasons"] == ["stop"]
    assert result["input"] == "what is the refund window?"
    assert result["feedback_score"] == 0.0
    assert _kinds(result) == [
        ("low_score", "retrieval kb"),
        ("stale_documents", "retrieval kb"),
        ("low_score_input", "context assembler"),
        ("negative_feedback", None),
    ]
    stale = result["anomalies"][1]
    assert stale["documents"] == ["kb/pricing-2025"]
    assert "kb/pricing-2025 (indexed_at 2026-03-15, 251 days old)" in stale["message"]
    cause = result["likely_cause"]
    assert (cause["kind"], cause["step"], cause["message"]) == ("low_score", "retrieval kb",
                                                                "top retrieval score 0.45 < 0.6")
    assert cause["also"][0].startswith("stale documents (> 180 days): kb/pricing-2025")


def test_healthy_trace_has_no_anomaly(rag, store_path):
    trace_id = rag.run()
    record_feedback(trace_id, 1.0, tracer_provider=rag.provider, store_path=store_path)
    result = _explain(store_path, trace_id)
    assert result["anomalies"] == [] and result["likely_cause"] is None


def test_thresholds_are_configurable(rag, store_path):
    trace_id = rag.run(docs=[("kb/pricing-2025", 0.45, STALE)])
    assert _kinds(_explain(store_path, trace_id, low_score=0.4, stale_after_days=None)) == []
    assert _kinds(_explain(store_path, trace_id, low_score=0.4, stale_after_days=400)) == []
    assert _kinds(_explain(store_path, trace_id, low_score=0.5, stale_after_days=None)) == [
        ("low_score", "retrieval kb"), ("low_score_input", "context assembler")]


def test_errors_empty_retrieval_unused_truncation_and_validator(rag, store_path):
    errored = rag.run(error_at="retrieval")
    result = _explain(store_path, errored)
    assert _kinds(result) == [("error", "retrieval kb")]
    assert result["likely_cause"]["message"] == "failed: TimeoutError index unavailable"

    empty = rag.run(empty=True)
    assert _kinds(_explain(store_path, empty)) == [("empty_retrieval", "retrieval kb")]

    unused = rag.run(docs=[("kb/a", 0.9, FRESH), ("kb/b", 0.8, FRESH)], used=["kb/b"])
    result = _explain(store_path, unused)
    assert _kinds(result) == [("retrieved_unused", "context assembler")]
    assert result["anomalies"][0]["documents"] == ["kb/a"]
    assert result["steps"][3]["inputs"]["retrieved_but_unused"] == ["kb/a"]

    truncated = rag.run(finish="length", validator="fail")
    result = _explain(store_path, truncated)
    assert _kinds(result) == [("finish_length", "chat gpt-4o"), ("validator_failed", "output validator")]  # upstream first
    # the cause is upstream of the symptom: the truncated generation, not the validator
    assert result["likely_cause"]["kind"] == "finish_length"


def test_step_blamed_by_negative_feedback(rag, store_path):
    trace_id = rag.run()
    record_feedback(trace_id, 0.0, step_blamed="retrieval", reason="wrong doc", tracer_provider=rag.provider,
                    store_path=store_path)
    record_feedback(trace_id, 1.0, step_blamed="generator", key="judge", tracer_provider=rag.provider,
                    store_path=store_path)
    record_feedback(trace_id, 0.2, step_blamed="reranker", key="qa", tracer_provider=rag.provider,
                    store_path=store_path)
    result = _explain(store_path, trace_id)
    assert [(a["kind"], a["step"], a["message"]) for a in result["anomalies"]] == [
        ("feedback_blame", "retrieval kb", "user feedback 0: 'wrong doc' blames 'retrieval'"),
        ("feedback_blame", None, "qa feedback 0.2 blames 'reranker' (no step by that name)"),
    ]


def test_side_call_is_not_on_the_causal_path(rag, store_path):
    trace_id = rag.run(audit="on")
    result = _explain(store_path, trace_id)
    on_path = {s["name"]: s["on_causal_path"] for s in result["steps"]}
    assert on_path == {"rag_pipeline": True, "output validator": True, "chat audit": False, "chat gpt-4o": True,
                       "context assembler": True, "retrieval kb": True, "chat gpt-4o-mini": True}


def test_links_are_rebuilt_from_digests_when_a_trace_has_none(store_provider, store_path, set_config):
    """Steps in different processes share no registry: the store rebuilds the links from
    the fingerprint digests the spans carry (instrumentors.causal.rebuild_links)."""
    from opentelemetry import trace

    from instrumentors import _semconv as sc
    from instrumentors import causal

    set_config(causal_links=True)
    doc_a = "Refunds are accepted within thirty days of purchase when the original receipt is shown at the desk."
    doc_b = "Gift cards can never be exchanged for cash and they expire two years after the day they were issued."
    tracer = store_provider.get_tracer("split")
    with tracer.start_as_current_span("rag_pipeline") as root:
        retrieval = tracer.start_span("retrieval", attributes={sc.SPAN_KIND: sc.KIND_RETRIEVER})
        causal.produce(retrieval, [causal.Produced(doc_a, "document", "doc-a", 0, 0.41),
                                   causal.Produced(doc_b, "document", "doc-b", 1, 0.33)])
        retrieval.end()
        prompt = f"Answer from this context:\n{doc_a}\nQuestion: can I return my shoes?"
        consumption = causal.consume([prompt], trace.set_span_in_context(root))
        assert consumption is not None and consumption.links  # in-process it links...
        generator = tracer.start_span("generator", attributes={
            sc.SPAN_KIND: sc.KIND_LLM, **consumption.attributes})  # ...but this process never saw them
        generator.end()
    trace_id = format(root.get_span_context().trace_id, "032x")
    result = _explain(store_path, trace_id)
    assert result["links_rebuilt"] is True
    [gen] = [s for s in result["steps"] if s["name"] == "generator"]
    assert [(l["document_id"], l["rank"], l["score"], l["step"], l["rebuilt"]) for l in gen["inputs"]["linked_from"]] == [
        ("doc-a", 0, 0.41, "retrieval", True)]
    assert gen["reached_via"] == "child" and result["steps"][2]["name"] == "retrieval"
    assert result["steps"][2]["reached_via"] == "link"


def test_question_is_the_users_not_the_rewritten_retriever_query(store_path, store_provider, set_config):
    """Capture on, the seed's pipeline on the real instrumentors (raw OpenAI query
    rewriter -> LangChain retriever) under a root span that carries no input: explain's
    "Question:" and the query summary's input.query are the user's question, not the
    rewritten query the retriever was given."""
    import sys
    from pathlib import Path

    pytest = __import__("pytest")
    pytest.importorskip("openai")
    pytest.importorskip("langchain_core")
    from instrumentors.langchain import LangChainInstrumentor
    from instrumentors.openai import OpenAIInstrumentor
    from instrumentors.store import render

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "causal"))
    try:
        from test_causal_cross_library import QUESTION, REWRITTEN, langchain_retriever, openai_client
    finally:
        sys.path.pop(0)
    set_config(capture_content=True, causal_links=True)
    provider = store_provider
    active = [OpenAIInstrumentor(), LangChainInstrumentor()]
    for instrumentor in active:
        instrumentor.instrument(tracer_provider=provider)
    try:
        client, _ = openai_client(REWRITTEN)
        with provider.get_tracer("app").start_as_current_span("handle request") as root:
            rewritten = client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "system", "content": "Rewrite the question as a search query."},
                {"role": "user", "content": QUESTION}]).choices[0].message.content
            langchain_retriever().invoke(rewritten)
        trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        for instrumentor in reversed(active):
            instrumentor.uninstrument()
    with TraceStore(store_path) as store:
        result = store.explain(trace_id)
        [summary] = store.query()
    assert result["input"] == QUESTION
    assert summary["input.query"] == QUESTION
    assert f"Question: {QUESTION}" in render.explain_text(result)
    assert REWRITTEN not in render.explain_text(result).split("Walking back")[0]
