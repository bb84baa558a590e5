"""Query engines, retrievers and synthesizers: exact span tree, attributes, parentage
(under the user's span, in sync and async code) and the content-capture switch."""

from __future__ import annotations

import asyncio
import json

import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT_TMPL
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _content
from instrumentors import _semconv as sc
from li_helpers import CORPUS, QUESTION, build_index

QUERY_TREE = [
    "user request",
    "  query RetrieverQueryEngine",
    "    retrieval SimpleVectorStore",
    "      embeddings keyword-embedding",
    "    synthesize CompactAndRefine",
    "      text_completion",
]


def _expected_documents(source_nodes, capture=False):
    out = []
    for nws in source_nodes:
        entry = {"id": nws.node.node_id, "score": nws.score}
        meta = {k: v for k, v in nws.node.metadata.items()}
        if capture:
            entry["metadata"] = meta
            entry["content"] = nws.node.text
        else:
            entry["metadata"] = {"file_name": meta["file_name"]}
        out.append(entry)
    return out


def _query(engine, is_async, question=QUESTION):
    if is_async:
        return asyncio.run(engine.aquery(question))
    return engine.query(question)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_query_engine_span_tree_and_attributes(li, spans, span_exporter, tracer_provider, is_async):
    index = build_index()
    span_exporter.clear()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2)
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("user request"):
        if is_async:
            async def run():
                return await engine.aquery(QUESTION)

            response = asyncio.run(run())
        else:
            response = engine.query(QUESTION)

    assert str(response) == "text text text text"
    tree = spans()
    assert tree.outline() == QUERY_TREE
    assert all(s.context.trace_id == tree.one("user request").context.trace_id for s in tree.spans)

    query = tree.one("query RetrieverQueryEngine")
    assert query.kind is SpanKind.INTERNAL
    assert query.status.status_code is StatusCode.UNSET
    assert dict(query.attributes) == {
        sc.SPAN_KIND: sc.KIND_WORKFLOW, sc.LIBRARY: "llama_index", sc.COMPONENT: "RetrieverQueryEngine",
    }

    retrieval = tree.one("retrieval SimpleVectorStore")
    assert retrieval.kind is SpanKind.CLIENT
    source = response.source_nodes
    assert [n.node.node_id for n in source] == ["doc-paris", "doc-berlin"]
    assert source[0].score > source[1].score
    assert dict(retrieval.attributes) == {
        sc.SPAN_KIND: sc.KIND_RETRIEVER,
        sc.LIBRARY: "llama_index",
        sc.COMPONENT: "VectorIndexRetriever",
        sc.GEN_AI_OPERATION_NAME: "retrieval",
        sc.GEN_AI_DATA_SOURCE_ID: index.index_id,
        sc.GEN_AI_REQUEST_TOP_K: 2,
        sc.RETRIEVAL_DOCUMENT_COUNT: 2,
        sc.RETRIEVAL_TOP_SCORE: source[0].score,
        sc.RETRIEVAL_LOWEST_SCORE: source[1].score,
        sc.RETRIEVAL_SCORE_ORDER: "higher_is_better",
        sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(_expected_documents(source), separators=(",", ":")),
    }

    embedding = tree.one("embeddings keyword-embedding")
    assert embedding.kind is SpanKind.CLIENT
    assert dict(embedding.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "embeddings",
        sc.GEN_AI_PROVIDER_NAME: "llama_index",
        sc.GEN_AI_REQUEST_MODEL: "keyword-embedding",
        sc.SPAN_KIND: sc.KIND_EMBEDDING,
        sc.LIBRARY: "llama_index",
        sc.COMPONENT: "KeywordEmbedding",
        sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 17,
    }

    synth = tree.one("synthesize CompactAndRefine")
    assert synth.kind is SpanKind.INTERNAL
    assert dict(synth.attributes) == {
        sc.SPAN_KIND: sc.KIND_WORKFLOW, sc.LIBRARY: "llama_index", sc.COMPONENT: "CompactAndRefine",
    }

    llm = tree.one("text_completion")
    assert llm.kind is SpanKind.CLIENT
    assert dict(llm.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "text_completion",
        sc.GEN_AI_PROVIDER_NAME: "llama_index",
        sc.GEN_AI_REQUEST_MAX_TOKENS: 4,
        sc.SPAN_KIND: sc.KIND_LLM,
        sc.LIBRARY: "llama_index",
        sc.COMPONENT: "MockLLM",
        # the synthesizer's text_qa_template (MockLLM is no chat model: the default template)
        sc.PROMPT_TEMPLATE_HASH: _content.content_hash(DEFAULT_TEXT_QA_PROMPT_TMPL),
    }


def test_capture_on_records_query_documents_and_messages(li, spans, span_exporter, capture):
    index = build_index()
    span_exporter.clear()
    response = index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2).query(QUESTION)
    tree = spans()
    query = tree.one("query RetrieverQueryEngine")
    assert query.attributes[sc.INPUT_VALUE] == QUESTION
    assert query.attributes[sc.OUTPUT_VALUE] == "text text text text"
    assert tree.one("synthesize CompactAndRefine").attributes[sc.INPUT_VALUE] == QUESTION
    retrieval = tree.one("retrieval SimpleVectorStore")
    assert retrieval.attributes[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == QUESTION
    assert json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]) == _expected_documents(
        response.source_nodes, capture=True)
    llm = tree.one("text_completion")
    prompt = json.loads(llm.attributes[sc.GEN_AI_INPUT_MESSAGES])
    assert prompt[0]["role"] == "user" and "Paris is the capital of France." in prompt[0]["parts"][0]["content"]
    assert json.loads(llm.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "text text text text"}], "finish_reason": "stop"}
    ]


def test_capture_off_leaks_no_text(li, spans, span_exporter):
    """No query, document, metadata window, prompt or completion text anywhere."""
    index = build_index()
    span_exporter.clear()
    index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=4).query(QUESTION)
    secrets = [QUESTION, "text text", "secret window text"] + [text for _, text, _ in CORPUS]
    for span in spans().spans:
        blob = json.dumps({k: str(v) for k, v in span.attributes.items()}) + span.name
        blob += json.dumps([{k: str(v) for k, v in e.attributes.items()} for e in span.events])
        for secret in secrets:
            assert secret not in blob, (span.name, secret)


def test_capture_off_keeps_source_and_freshness_metadata_only(li, spans, span_exporter):
    """Dates and versions say how fresh a document is, not what it says: they are kept
    with capture off, in the listed order; text-bearing keys are not."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from li_helpers import KeywordEmbedding

    metadata = {"window": "secret window text", "version": 3, "created_at": "2026-01-02",
                "last_modified": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02", "summary": "secret summary",
                "indexed_at": "2026-11-03", "file_name": "france.txt", "tags": ["a"]}
    node = TextNode(id_="doc-fresh", text="Paris is the capital of France.", metadata=metadata)
    retriever = VectorStoreIndex([node], embed_model=KeywordEmbedding()).as_retriever(similarity_top_k=1)
    span_exporter.clear()
    [got] = retriever.retrieve(QUESTION)
    documents = spans().one("retrieval SimpleVectorStore").attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]
    assert documents == json.dumps([{"id": "doc-fresh", "score": got.score, "metadata": {
        "file_name": "france.txt", "indexed_at": "2026-11-03", "updated_at": "2026-11-02",
        "last_modified": "2026-11-01T10:00:00Z", "created_at": "2026-01-02", "version": 3}}],
        separators=(",", ":"))


def test_redaction_hook_applies_to_documents(li, spans, span_exporter, set_config):
    set_config(capture_content=True, redact=lambda s: s.replace("Paris", "[CITY]"))
    index = build_index()
    span_exporter.clear()
    index.as_retriever(similarity_top_k=1).retrieve(QUESTION)
    retrieval = spans().one("retrieval SimpleVectorStore")
    documents = json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert documents[0]["content"] == "[CITY] is the capital of France."


def test_max_documents_bounds_the_list_not_the_summary(li, spans, span_exporter, set_config):
    set_config(max_documents=2)
    index = build_index()
    span_exporter.clear()
    result = index.as_retriever(similarity_top_k=4).retrieve(QUESTION)
    retrieval = spans().one("retrieval SimpleVectorStore")
    assert len(json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])) == 2
    assert retrieval.attributes[sc.RETRIEVAL_DOCUMENT_COUNT] == 4
    assert retrieval.attributes[sc.RETRIEVAL_LOWEST_SCORE] == min(n.score for n in result)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_retriever_direct(li, spans, span_exporter, is_async):
    index = build_index()
    span_exporter.clear()
    retriever = index.as_retriever(similarity_top_k=3)
    result = asyncio.run(retriever.aretrieve(QUESTION)) if is_async else retriever.retrieve(QUESTION)
    tree = spans()
    assert tree.outline() == ["retrieval SimpleVectorStore", "  embeddings keyword-embedding"]
    retrieval = tree.one("retrieval SimpleVectorStore")
    documents = json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])
    assert [d["id"] for d in documents] == [n.node.node_id for n in result] == ["doc-paris", "doc-berlin", "doc-seine"]
    assert [d["score"] for d in documents] == [n.score for n in result]
    assert retrieval.attributes[sc.RETRIEVAL_TOP_SCORE] == result[0].score


def test_concurrent_async_queries_nest_in_their_own_trees(li, spans, span_exporter, tracer_provider):
    """asyncio.gather of queries, each under its own user span: no cross-talk."""
    index = build_index()
    span_exporter.clear()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1)
    tracer = tracer_provider.get_tracer("test")

    async def one(i):
        with tracer.start_as_current_span(f"request {i}"):
            await asyncio.sleep(0)
            return await engine.aquery(QUESTION)

    async def main():
        return await asyncio.gather(*(one(i) for i in range(5)))

    asyncio.run(main())
    tree = spans()
    for i in range(5):
        root = tree.one(f"request {i}")
        assert tree.outline(root) == [
            f"request {i}",
            "  query RetrieverQueryEngine",
            "    retrieval SimpleVectorStore",
            "      embeddings keyword-embedding",
            "    synthesize CompactAndRefine",
            "      text_completion",
        ]
        assert {s.context.trace_id for s in tree.spans if tree.outline(s) and _root(tree, s) is root} == {
            root.context.trace_id}


def _root(tree, span):
    while tree.parent(span) is not None:
        span = tree.parent(span)
    return span


def test_query_engine_error_is_recorded_and_propagates(li, spans, span_exporter):
    class Boom(RuntimeError):
        pass

    class FailingLLM(MockLLM):
        def complete(self, prompt, formatted=False, **kwargs):
            raise Boom("model down")

    index = build_index()
    span_exporter.clear()
    engine = index.as_query_engine(llm=FailingLLM(), similarity_top_k=1)
    with pytest.raises(Boom) as info:
        engine.query(QUESTION)
    assert str(info.value) == "model down"
    tree = spans()
    for name in ("query RetrieverQueryEngine", "synthesize CompactAndRefine", "text_completion"):
        span = tree.one(name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert span.attributes[sc.ERROR_TYPE] == "test_query_engine_error_is_recorded_and_propagates.<locals>.Boom"
    assert tree.one("retrieval SimpleVectorStore").status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_score_order_left_out_for_stores_with_index_dependent_scores(li, spans):
    """A FAISS store's scores are L2 distances or inner products depending on the index."""
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class FaissVectorStore:  # stands in for llama_index.vector_stores.faiss.FaissVectorStore
        pass

    class FaissRetriever(BaseRetriever):
        def __init__(self):
            super().__init__()
            self._vector_store = FaissVectorStore()

        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(id_="a", text="x"), score=0.2),
                    NodeWithScore(node=TextNode(id_="b", text="y"), score=1.7)]

    FaissRetriever().retrieve("q")
    span = spans().one("retrieval FaissVectorStore")
    assert span.attributes[sc.RETRIEVAL_TOP_SCORE] == 1.7
    assert span.attributes[sc.RETRIEVAL_LOWEST_SCORE] == 0.2
    assert sc.RETRIEVAL_SCORE_ORDER not in span.attributes
