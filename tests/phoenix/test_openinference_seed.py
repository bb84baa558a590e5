"""The seed pipeline in INSTRUMENTORS_SEMCONV=openinference, in process: every library's
spans (raw OpenAI, LangChain retriever, user steps, feedback) rendered from the one
extraction into the kinds and attributes Phoenix reads; content off leaks no text."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import instrumentors
import seed_pipeline
from instrumentors import _semconv as sc


def _run(seed_provider, tmp_path, semconv: str, capture: bool = False, questions: int = 2):
    exporter = InMemorySpanExporter()
    provider = seed_provider(SimpleSpanProcessor(exporter))
    instrumentors.instrument_all(tracer_provider=provider, semconv=semconv, capture_content=capture,
                                 enabled_libraries={"openai", "langchain"})
    results = seed_pipeline.run(provider, questions, str(tmp_path / "none.db"))
    return exporter.get_finished_spans(), results


def _kind(span) -> str:
    return span.attributes.get("openinference.span.kind")


def test_every_seed_step_has_its_phoenix_kind(seed_provider, tmp_path):
    spans, results = _run(seed_provider, tmp_path, "openinference")
    assert len(results) == 2
    for trace_id, _answer, feedback in results:
        mine = [s for s in spans if format(s.context.trace_id, "032x") == trace_id]
        kinds = {s.name: _kind(s) for s in mine}
        assert kinds["chat gpt-4o-mini"] == "LLM" and kinds["chat gpt-4o"] == "LLM"
        assert kinds["retrieval InMemoryVectorStore"] == "RETRIEVER"
        assert kinds["context assembler"] == "CHAIN" and kinds["output validator"] == "CHAIN"
        assert kinds["feedback"] == "EVALUATOR"
        assert kinds["rag_pipeline"] is None  # the app's own span: not ours to render
        retrieval = next(s for s in mine if s.name.startswith("retrieval"))
        docs = {k: v for k, v in retrieval.attributes.items() if k.startswith("retrieval.documents.")}
        assert docs["retrieval.documents.0.document.id"].startswith("kb/")
        assert 0 < docs["retrieval.documents.0.document.score"] <= 1
        assert "retrieval.documents.1.document.score" in docs
        # the seed's filter keys stay (they are ours, not gen_ai)
        assert retrieval.attributes[sc.RETRIEVAL_TOP_SCORE] == docs["retrieval.documents.0.document.score"]
        for llm in (s for s in mine if _kind(s) == "LLM"):
            assert llm.attributes["llm.token_count.total"] == (
                llm.attributes["llm.token_count.prompt"] + llm.attributes["llm.token_count.completion"])
            assert not [k for k in llm.attributes if k.startswith("gen_ai.")]
        fb = next(s for s in mine if s.name == "feedback")
        assert fb.attributes[sc.FEEDBACK_SCORE] == feedback.score
        assert format(fb.parent.span_id, "016x") == feedback.parent_span_id  # the real root, not synthetic
        assert feedback.parent_source == "span"


def test_causal_links_stay_span_links_and_are_listed_for_phoenix(seed_provider, tmp_path):
    """Phoenix drops OTLP span links when it stores a span, so openinference/both also list
    the linked span ids on the span (the links themselves are unchanged)."""
    spans, _ = _run(seed_provider, tmp_path, "openinference", questions=1)
    by_id = {s.context.span_id: s for s in spans}
    answer = next(s for s in spans if s.name == "chat gpt-4o")
    assert answer.links, "the answer generator links to what fed it"
    linked = [format(link.context.span_id, "016x") for link in answer.links]
    assert list(answer.attributes[sc.CAUSAL_LINKED_SPAN_IDS]) == linked
    assert list(answer.attributes[sc.CAUSAL_LINK_TYPES]) == [
        link.attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE] for link in answer.links]
    assert {by_id[link.context.span_id].name for link in answer.links} >= {"context assembler"}


def test_capture_off_no_text_in_any_convention(seed_provider, tmp_path):
    spans, results = _run(seed_provider, tmp_path, "both", questions=2)
    demo = seed_pipeline.demo_module()
    texts = [q for q, _a, _f in demo.QUESTIONS[:2]] + [a for _t, a, _f in results]
    texts += list(demo.FRESH_ARTICLES.values()) + list(demo.STALE_ARTICLES.values())
    texts += [demo.REWRITER_PROMPT, demo.ANSWER_PROMPT]
    for span in spans:
        if span.name == "rag_pipeline":
            continue  # the app wrote its own input.query/output.answer attributes
        written = repr(dict(span.attributes)) + repr([dict(link.attributes) for link in span.links])
        for text in texts:
            assert text not in written, (span.name, text)


def test_capture_on_phoenix_sees_messages_and_document_text(seed_provider, tmp_path):
    spans, results = _run(seed_provider, tmp_path, "openinference", capture=True, questions=1)
    answer = next(s for s in spans if s.name == "chat gpt-4o")
    assert answer.attributes["llm.input_messages.0.message.role"] == "system"
    assert answer.attributes["output.value"] == results[0][1]
    retrieval = next(s for s in spans if s.name.startswith("retrieval"))
    assert retrieval.attributes["retrieval.documents.0.document.content"]
    assert json.loads(retrieval.attributes["retrieval.documents.0.document.metadata"])["indexed_at"]
    assert retrieval.attributes["input.value"]  # the rewritten query
    step = next(s for s in spans if s.name == "context assembler")
    assert step.attributes["input.mime_type"] == "application/json"
    assert step.attributes["output.value"]


@pytest.mark.parametrize("semconv", ["gen_ai", "both"])
def test_gen_ai_names_kept_unless_openinference(seed_provider, tmp_path, semconv):
    spans, _ = _run(seed_provider, tmp_path, semconv, questions=1)
    llm = next(s for s in spans if s.name == "chat gpt-4o")
    assert llm.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert ("openinference.span.kind" in llm.attributes) is (semconv == "both")
