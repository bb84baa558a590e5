"""Retrieval spans: retrievers and vector stores used directly, scores captured where
the store computes them (also for a plain ``as_retriever()``), summary attributes,
document JSON with and without content capture, causal links."""

from __future__ import annotations

import json

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _semconv as sc

from langchain_helpers import (
    canonical,
    DOCS,
    QUESTION,
    KeywordEmbeddings,
    expected_ranking,
    fake_chat,
    make_store,
    one,
    rag_chain,
    tree,
)


class RelevanceStore(InMemoryVectorStore):
    """InMemoryVectorStore does not define a relevance function; this one maps cosine
    similarity [-1, 1] to [0, 1] (defined after instrumenting: __init_subclass__ path)."""

    def _select_relevance_score_fn(self):
        return lambda similarity: (similarity + 1.0) / 2.0


def _retrieval(span_exporter, name="retrieval InMemoryVectorStore"):
    spans = span_exporter.get_finished_spans()
    retrievals = [s for s in spans if s.attributes.get(sc.GEN_AI_OPERATION_NAME) == "retrieval"]
    assert len(retrievals) == 1, [s.name for s in spans]
    span = retrievals[0]
    assert span.name == name
    return span, spans


def _docs(span) -> list:
    return json.loads(span.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])


@pytest.fixture
def store(lc, span_exporter):
    s = make_store()
    span_exporter.clear()
    return s


def test_similarity_search_direct_scores_from_internal_method(store, span_exporter):
    docs = store.similarity_search(QUESTION, k=2)
    assert [d.id for d in docs] == [i for i, _ in expected_ranking(QUESTION, 2)]
    span, spans = _retrieval(span_exporter)
    assert span.kind == SpanKind.CLIENT
    assert tree(spans) == canonical([("retrieval InMemoryVectorStore", [("embeddings", [])])])
    ranking = expected_ranking(QUESTION, 2)
    assert span.attributes[sc.COMPONENT] == "InMemoryVectorStore"
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 2
    assert span.attributes[sc.RETRIEVAL_DOCUMENT_COUNT] == 2
    assert span.attributes[sc.RETRIEVAL_TOP_SCORE] == pytest.approx(ranking[0][1])
    assert span.attributes[sc.RETRIEVAL_LOWEST_SCORE] == pytest.approx(ranking[1][1])
    assert span.attributes[sc.RETRIEVAL_SCORE_ORDER] == "higher_is_better"
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(i, pytest.approx(s)) for i, s in ranking]


def test_similarity_search_with_score_direct(store, span_exporter):
    results = store.similarity_search_with_score(QUESTION, k=3)
    span, _ = _retrieval(span_exporter)
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(d.id, pytest.approx(s)) for d, s in results]
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 3
    assert span.attributes[sc.RETRIEVAL_SCORE_ORDER] == "higher_is_better"


def test_similarity_search_with_relevance_scores_direct(lc, span_exporter):
    store = RelevanceStore(KeywordEmbeddings())
    store.add_documents(DOCS)
    span_exporter.clear()
    results = store.similarity_search_with_relevance_scores(QUESTION, k=2)
    span, spans = _retrieval(span_exporter, "retrieval RelevanceStore")
    assert tree(spans) == canonical([("retrieval RelevanceStore", [("embeddings", [])])])
    ranking = expected_ranking(QUESTION, 2)
    assert [s for _, s in results] == [pytest.approx((s + 1) / 2) for _, s in ranking]
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(i, pytest.approx((s + 1) / 2)) for i, s in ranking]
    assert span.attributes[sc.RETRIEVAL_SCORE_ORDER] == "higher_is_better"


def test_max_marginal_relevance_search_direct(store, span_exporter):
    docs = store.max_marginal_relevance_search(QUESTION, k=2, fetch_k=4)
    span, _ = _retrieval(span_exporter)
    scores = dict(expected_ranking(QUESTION))
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(d.id, pytest.approx(scores[d.id])) for d in docs]
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 2


async def test_async_vector_store_methods(store, span_exporter):
    await store.asimilarity_search(QUESTION, k=2)
    span, spans = _retrieval(span_exporter)
    assert tree(spans) == canonical([("retrieval InMemoryVectorStore", [("embeddings", [])])])
    assert [d["id"] for d in _docs(span)] == [i for i, _ in expected_ranking(QUESTION, 2)]
    assert all("score" in d for d in _docs(span))
    span_exporter.clear()
    await store.asimilarity_search_with_score(QUESTION, k=1)
    span, _ = _retrieval(span_exporter)
    assert _docs(span)[0]["score"] == pytest.approx(expected_ranking(QUESTION, 1)[0][1])
    span_exporter.clear()
    await store.amax_marginal_relevance_search(QUESTION, k=2, fetch_k=4)
    span, _ = _retrieval(span_exporter)
    assert all("score" in d for d in _docs(span))


@pytest.mark.parametrize("search_type,kwargs", [
    ("similarity", {"k": 3}),
    ("mmr", {"k": 2, "fetch_k": 4}),
])
def test_plain_as_retriever_reports_scores(store, span_exporter, search_type, kwargs):
    retriever = store.as_retriever(search_type=search_type, search_kwargs=kwargs)
    docs = retriever.invoke(QUESTION)
    span, spans = _retrieval(span_exporter)
    assert tree(spans) == canonical([("retrieval InMemoryVectorStore", [("embeddings", [])])])
    assert span.attributes[sc.COMPONENT] == "VectorStoreRetriever"
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == kwargs["k"]
    scores = dict(expected_ranking(QUESTION))
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(d.id, pytest.approx(scores[d.id])) for d in docs]
    assert span.attributes[sc.RETRIEVAL_TOP_SCORE] == pytest.approx(max(scores[d.id] for d in docs))
    assert span.attributes[sc.RETRIEVAL_LOWEST_SCORE] == pytest.approx(min(scores[d.id] for d in docs))


def test_score_threshold_retriever_reports_relevance_scores(lc, span_exporter):
    store = RelevanceStore(KeywordEmbeddings())
    store.add_documents(DOCS)
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"k": 4, "score_threshold": 0.8})
    span_exporter.clear()
    docs = retriever.invoke(QUESTION)
    expected = [(i, (s + 1) / 2) for i, s in expected_ranking(QUESTION) if (s + 1) / 2 >= 0.8]
    assert [d.id for d in docs] == [i for i, _ in expected]
    span, _ = _retrieval(span_exporter, "retrieval RelevanceStore")
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(i, pytest.approx(s)) for i, s in expected]
    assert span.attributes[sc.RETRIEVAL_SCORE_ORDER] == "higher_is_better"


async def test_async_retriever(store, span_exporter):
    docs = await store.as_retriever(search_kwargs={"k": 2}).ainvoke(QUESTION)
    span, spans = _retrieval(span_exporter)
    assert tree(spans) == canonical([("retrieval InMemoryVectorStore", [("embeddings", [])])])
    scores = dict(expected_ranking(QUESTION))
    assert [(d["id"], d["score"]) for d in _docs(span)] == [(d.id, pytest.approx(scores[d.id])) for d in docs]


class KeywordRetriever(BaseRetriever):
    """A custom retriever reporting a reranker-style score in metadata."""

    k: int = 2
    with_scores: bool = True

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list:
        out = []
        for rank, doc in enumerate(DOCS[: self.k]):
            meta = dict(doc.metadata)
            if self.with_scores:
                meta["relevance_score"] = 0.9 - rank * 0.25
            out.append(Document(id=doc.id, page_content=doc.page_content, metadata=meta))
        return out


def test_custom_retriever_metadata_scores(lc, span_exporter):
    KeywordRetriever(k=3).invoke("anything")
    span, spans = _retrieval(span_exporter, "retrieval KeywordRetriever")
    assert [s.name for s in spans] == ["retrieval KeywordRetriever"]
    assert span.attributes[sc.GEN_AI_REQUEST_TOP_K] == 3
    assert [(d["id"], d["score"]) for d in _docs(span)] == [
        ("doc-paris", 0.9), ("doc-eiffel", 0.65), ("doc-berlin", pytest.approx(0.4))]
    assert span.attributes[sc.RETRIEVAL_TOP_SCORE] == 0.9
    assert span.attributes[sc.RETRIEVAL_LOWEST_SCORE] == pytest.approx(0.4)
    assert span.attributes[sc.RETRIEVAL_SCORE_ORDER] == "higher_is_better"


def test_custom_retriever_without_scores(lc, span_exporter):
    KeywordRetriever(k=2, with_scores=False).invoke("anything")
    span, _ = _retrieval(span_exporter, "retrieval KeywordRetriever")
    assert _docs(span) == [{"id": "doc-paris", "metadata": {"source": "wiki/paris.md", "title": "Paris"}},
                           {"id": "doc-eiffel", "metadata": {"source": "wiki/eiffel.md"}}]
    assert span.attributes[sc.RETRIEVAL_DOCUMENT_COUNT] == 2
    for key in (sc.RETRIEVAL_TOP_SCORE, sc.RETRIEVAL_LOWEST_SCORE, sc.RETRIEVAL_SCORE_ORDER):
        assert key not in span.attributes


class FailingRetriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list:
        raise ConnectionError("index offline")


def test_retriever_error(lc, span_exporter):
    with pytest.raises(ConnectionError, match="index offline"):
        FailingRetriever().invoke("q")
    span, _ = _retrieval(span_exporter, "retrieval FailingRetriever")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "ConnectionError"


def test_vector_store_error(store, span_exporter, monkeypatch):
    def broken(*args, **kwargs):
        raise TimeoutError("embedding service down")

    monkeypatch.setattr(store.embedding, "embed_query", broken)
    with pytest.raises(TimeoutError):
        store.similarity_search(QUESTION)
    span, _ = _retrieval(span_exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "TimeoutError"


def test_content_capture_on_documents_and_query(store, capture, span_exporter):
    store.similarity_search(QUESTION, k=1)
    span, _ = _retrieval(span_exporter)
    assert span.attributes[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == QUESTION
    doc = DOCS[0]
    assert _docs(span) == [{"id": doc.id, "score": pytest.approx(expected_ranking(QUESTION, 1)[0][1]),
                            "metadata": doc.metadata, "content": doc.page_content}]


def test_content_off_no_text_or_private_metadata(store, span_exporter):
    store.similarity_search(QUESTION, k=4)
    span, _ = _retrieval(span_exporter)
    blob = json.dumps({k: str(v) for k, v in span.attributes.items()})
    assert QUESTION not in blob
    for doc in DOCS:
        assert doc.page_content not in blob
    assert "alice" not in blob  # author metadata is not source metadata
    assert sc.GEN_AI_RETRIEVAL_QUERY_TEXT not in span.attributes


def test_max_documents_bounds_the_list_not_the_summary(store, span_exporter, set_config):
    set_config(max_documents=2)
    store.similarity_search(QUESTION, k=4)
    span, _ = _retrieval(span_exporter)
    assert len(_docs(span)) == 2
    assert span.attributes[sc.RETRIEVAL_DOCUMENT_COUNT] == 4
    assert span.attributes[sc.RETRIEVAL_LOWEST_SCORE] == pytest.approx(expected_ranking(QUESTION)[-1][1])


def test_store_subclass_defined_after_instrumenting_calling_super(lc, span_exporter):
    class LoggingStore(InMemoryVectorStore):
        calls = 0

        def similarity_search(self, query, k=4, **kwargs):
            LoggingStore.calls += 1
            return super().similarity_search(query, k=k, **kwargs)

    store = LoggingStore(KeywordEmbeddings())
    store.add_documents(DOCS)
    span_exporter.clear()
    store.similarity_search(QUESTION, k=2)
    span, spans = _retrieval(span_exporter, "retrieval LoggingStore")
    assert LoggingStore.calls == 1
    assert tree(spans) == canonical([("retrieval LoggingStore", [("embeddings", [])])])
    assert all("score" in d for d in _docs(span))


def test_retrieval_documents_link_to_chat_span(lc, span_exporter, set_config):
    set_config(causal_links=True)
    chain = rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    span_exporter.clear()
    chain.invoke(QUESTION)
    spans = span_exporter.get_finished_spans()
    retrieval = one(spans, "retrieval InMemoryVectorStore")
    chat = one(spans, "chat fake-gpt-1")
    linked = {link.attributes.get(sc.LINK_DOCUMENT_ID): link for link in chat.links}
    top = [i for i, _ in expected_ranking(QUESTION, 2)]
    assert set(linked) == set(top)
    for doc_id, link in linked.items():
        assert link.context.span_id == retrieval.context.span_id
        assert link.attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE] == sc.LINK_INFORMED_BY
        assert link.attributes[sc.LINK_RANK] == top.index(doc_id)


def test_collection_name_becomes_data_source_id(lc, span_exporter):
    class NamedStore(InMemoryVectorStore):
        collection_name = "city-facts"

    store = NamedStore(KeywordEmbeddings())
    store.add_documents(DOCS)
    span_exporter.clear()
    store.similarity_search(QUESTION, k=1)
    store.as_retriever(search_kwargs={"k": 1}).invoke(QUESTION)
    spans = [s for s in span_exporter.get_finished_spans() if s.name.startswith("retrieval")]
    assert [s.name for s in spans] == ["retrieval city-facts"] * 2
    assert [s.attributes[sc.GEN_AI_DATA_SOURCE_ID] for s in spans] == ["city-facts"] * 2
    assert [s.attributes[sc.COMPONENT] for s in spans] == ["NamedStore", "VectorStoreRetriever"]
