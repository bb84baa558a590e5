"""INSTRUMENTORS_SEMCONV=openinference on LlamaIndex spans: query engine, retriever,
embeddings, reranker, synthesizer, LLM and tool spans in Phoenix's kinds, rendered from
the same extraction as gen_ai mode."""

from __future__ import annotations

import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.tools import FunctionTool

from instrumentors import _semconv as sc
from instrumentors.llama_index import LlamaIndexInstrumentor
from li_helpers import QUESTION, KeywordRerank, SpanTree, build_index

pytest.importorskip("openinference.semconv.trace")


@pytest.fixture
def li_openinference(tracer_provider, set_config):
    set_config(causal_links=False, semconv="openinference")
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()


def test_query_engine_kinds_documents_and_rerank(li_openinference, span_exporter):
    index = build_index()
    span_exporter.clear()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=3,
                                   node_postprocessors=[KeywordRerank(top_n=2)])
    engine.query(QUESTION)
    tree = SpanTree(span_exporter.get_finished_spans())
    kinds = {s.name: s.attributes.get("openinference.span.kind") for s in tree.spans}
    assert kinds == {
        "query RetrieverQueryEngine": "CHAIN", "retrieval SimpleVectorStore": "RETRIEVER",
        "embeddings keyword-embedding": "EMBEDDING", "rerank KeywordRerank": "RERANKER",
        "synthesize CompactAndRefine": "CHAIN", "text_completion": "LLM"}
    retrieval = tree.one("retrieval SimpleVectorStore").attributes
    assert [retrieval[f"retrieval.documents.{i}.document.id"] for i in range(3)]
    assert retrieval["retrieval.documents.0.document.score"] >= retrieval["retrieval.documents.1.document.score"]
    assert "retrieval.documents.0.document.content" not in retrieval  # capture off
    rerank = tree.one("rerank KeywordRerank").attributes
    assert rerank["reranker.model_name"] == "keyword-rerank-v1" and rerank["reranker.top_k"] == 2
    assert rerank["reranker.output_documents.0.document.score"] == 0.9
    assert "reranker.input_documents.2.document.id" in rerank
    assert not [k for s in tree.spans for k in s.attributes if k.startswith("gen_ai.")]


def test_tool_span(li_openinference, span_exporter, set_config):
    set_config(causal_links=False, semconv="openinference", capture_content=True)

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    FunctionTool.from_defaults(fn=multiply).call(a=6, b=7)
    span = SpanTree(span_exporter.get_finished_spans()).one("execute_tool multiply")
    assert span.attributes["openinference.span.kind"] == "TOOL"
    assert span.attributes["tool.name"] == "multiply"
    assert span.attributes["input.value"] == '{"a": 6, "b": 7}'
    assert span.attributes["output.value"] == "42"
    assert sc.SPAN_KIND in span.attributes
