"""Causal registry calls: retrievers produce each node (id, rank, score) and consume the
query, rerankers produce their output nodes, LLM spans consume the prompt and produce
the completion, tools consume arguments and produce results; the LLM that read the
retrieved text links back to the step that produced it. Text is only hashed."""

from __future__ import annotations

import json

import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.tools import FunctionTool

from instrumentors import _semconv as sc
from li_helpers import CORPUS, QUESTION, KeywordRerank, build_index


@pytest.fixture
def causal_on(set_config):
    set_config(causal_links=True, causal_scope="trace")


def _produced(span) -> list:
    """``[(kind, rank, score, document_id)]`` from the span's produced digests."""
    out = []
    for entry in span.attributes.get(sc.CAUSAL_PRODUCED_DIGESTS, ())[1:]:
        kind, rank, score, _words, _sketch, doc = entry.split(";", 5)
        out.append((kind, int(rank) if rank else None, float(score) if score else None, doc or None))
    return out


def test_query_produces_and_consumes(li, causal_on, spans, span_exporter, tracer_provider):
    index = build_index()
    span_exporter.clear()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=3), similarity_top_k=3,
                                   node_postprocessors=[KeywordRerank(top_n=2)])
    with tracer_provider.get_tracer("t").start_as_current_span("request"):
        response = engine.query(QUESTION)
    tree = spans()
    retrieval = tree.one("retrieval SimpleVectorStore")
    retrieved = index.as_retriever(similarity_top_k=3).retrieve(QUESTION)
    assert _produced(retrieval) == [("document", i, n.score, n.node.node_id) for i, n in enumerate(retrieved)]
    assert retrieval.attributes[sc.CAUSAL_CONSUMED_DIGESTS]  # the query
    rerank = tree.one("rerank KeywordRerank")
    assert _produced(rerank) == [("document", i, n.score, n.node.node_id)
                                 for i, n in enumerate(response.source_nodes)]
    llm = tree.one("text_completion")
    assert _produced(llm) == [("generation", None, None, None)]
    # The prompt holds the reranked documents: the LLM span links to where they came from.
    linked = {link.attributes.get(sc.LINK_DOCUMENT_ID) for link in llm.links}
    assert {n.node.node_id for n in response.source_nodes} <= linked
    producers = {link.context.span_id for link in llm.links}
    assert producers <= {retrieval.context.span_id, rerank.context.span_id}
    # Only fingerprints: no document text in any causal attribute or link.
    blob = json.dumps([{k: str(v) for k, v in s.attributes.items()} for s in tree.spans])
    blob += json.dumps([{k: str(v) for k, v in ln.attributes.items()} for s in tree.spans for ln in s.links])
    for _, text, _ in CORPUS:
        assert text not in blob


def test_tool_consumes_arguments_and_produces_result(li, causal_on, spans):
    def lookup(city: str) -> str:
        """Look a city up."""
        return "Paris has 2.1 million inhabitants and is the capital of France."

    FunctionTool.from_defaults(fn=lookup).call(city="Paris")
    span = spans().one("execute_tool lookup")
    assert _produced(span) == [("tool_result", None, None, None)]
    assert span.attributes[sc.CAUSAL_CONSUMED_DIGESTS]


def test_causal_off_adds_nothing(li, spans, span_exporter):
    index = build_index()
    span_exporter.clear()
    index.as_query_engine(llm=MockLLM(max_tokens=3), similarity_top_k=2).query(QUESTION)
    for span in spans().spans:
        assert not [k for k in span.attributes if k.startswith("instrumentors.causal.")], span.name
        assert list(span.links) == []
