"""Retrieval spans shared by the retriever callbacks and the vector-store wrappers.

Why the collector: most vector stores (InMemoryVectorStore included) compute a score
for every hit in an internal ``..._with_score`` method and drop it before
``similarity_search`` or a retriever returns plain documents. Our wrappers around those
internal methods put every ``(document, score)`` they see into the collector of the
retrieval that is running (found in the OTel context), and the retrieval span matches
its returned documents against it, so a plain ``vectorstore.as_retriever()`` still
reports scores.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import _config, _content
from .. import _semconv as sc
from .._spans import end_span, report_internal_error, start_span
from . import _causal
from ._readers import set_span_attributes

COLLECTOR_KEY = otel_context.create_key("instrumentors.langchain.retrieval_collector")

HIGHER = "higher_is_better"
LOWER = "lower_is_better"

#: What ``similarity_search_with_score`` returns per vector store class (its default
#: distance strategy). Relevance-score methods are always higher-is-better (LangChain
#: normalises them to [0, 1]). Unknown classes get no ``retrieval.score_order``.
RAW_SCORE_ORDER = {
    "InMemoryVectorStore": HIGHER,  # cosine similarity
    "FAISS": LOWER,  # L2 distance by default
    "Chroma": LOWER,  # distance
    "PGVector": LOWER,  # distance
    "Redis": LOWER,  # distance
    "LanceDB": LOWER,  # distance
    "SKLearnVectorStore": LOWER,  # distance
    "Pinecone": HIGHER,  # similarity
    "PineconeVectorStore": HIGHER,
    "QdrantVectorStore": HIGHER,  # cosine similarity by default
    "Qdrant": HIGHER,
    "ElasticsearchStore": HIGHER,
    "OpenSearchVectorSearch": HIGHER,
    "WeaviateVectorStore": HIGHER,
    "MongoDBAtlasVectorSearch": HIGHER,
    "AzureSearch": HIGHER,
    "Milvus": LOWER,  # L2 by default
    "DocArrayInMemorySearch": HIGHER,
}

#: Metadata keys some retrievers/rerankers use to report a score (all higher-is-better).
METADATA_SCORE_KEYS = ("relevance_score", "score", "similarity_score", "_score")

#: Metadata keys written on every document even with content capture off: they say
#: where a chunk came from, not what it says.
# Source and freshness metadata: identifiers and dates, never document text, so they are
# kept with content capture off too (explain/blame flag stale documents from the dates).
SOURCE_METADATA_KEYS = ("source", "url", "file_path", "file_name", "filename", "title", "page",
                        "page_number", "row", "start_index", "chunk_id", "doc_id", "document_id",
                        "indexed_at", "updated_at", "last_modified", "created_at", "version")


_SOURCE_ID_ATTRS = ("collection_name", "index_name", "table_name", "namespace")


def data_source_id(vector_store: Any) -> Optional[str]:
    """The store's own name for what it searches (a collection, index or table), when
    it exposes one: it becomes ``gen_ai.data_source.id`` and the span name."""
    try:
        for attr in _SOURCE_ID_ATTRS:
            value = getattr(vector_store, attr, None)
            if isinstance(value, str) and value:
                return value
        collection = getattr(vector_store, "_collection", None)  # Chroma
        name = getattr(collection, "name", None)
        return name if isinstance(name, str) and name else None
    except Exception:  # noqa: BLE001 - a property that raises means "no id"
        return None


def raw_score_order(vector_store: Any) -> Optional[str]:
    for klass in type(vector_store).__mro__:
        order = RAW_SCORE_ORDER.get(klass.__name__)
        if order:
            return order
    return None


class Collector:
    """Scores seen while one retrieval runs, keyed by document identity.

    Documents are kept referenced until the retrieval ends (so ``id()`` cannot be
    reused); the collector dies with the retrieval. Later captures overwrite earlier
    ones: a relevance score (computed from the raw score) wins over the raw one.
    """

    __slots__ = ("by_identity", "by_key")

    def __init__(self) -> None:
        self.by_identity: dict = {}
        self.by_key: dict = {}

    def add(self, result: Any, order: Optional[str]) -> None:
        if not isinstance(result, (list, tuple)):
            return
        for item in result:
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            doc, score = item[0], item[1]
            if not hasattr(doc, "page_content") or not isinstance(score, (int, float)) or isinstance(score, bool):
                continue
            entry = (doc, float(score), order)
            self.by_identity[id(doc)] = entry
            self.by_key[(getattr(doc, "id", None), doc.page_content)] = entry

    def lookup(self, doc: Any) -> tuple:
        entry = self.by_identity.get(id(doc))
        if entry is None or entry[0] is not doc:
            entry = self.by_key.get((getattr(doc, "id", None), getattr(doc, "page_content", None)))
        if entry is None:
            return None, None
        return entry[1], entry[2]


def document_id(doc: Any) -> Optional[str]:
    value = getattr(doc, "id", None)
    if value is None:
        meta = getattr(doc, "metadata", None) or {}
        value = meta.get("id", meta.get("doc_id"))
    return None if value is None else str(value)


def metadata_score(doc: Any) -> Optional[float]:
    meta = getattr(doc, "metadata", None) or {}
    for key in METADATA_SCORE_KEYS:
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def scores_for(docs: Sequence[Any], collector: Optional[Collector]) -> tuple:
    """Per-document scores (None where unknown) and the order they follow."""
    scores: list = []
    orders: set = set()
    for doc in docs:
        score, order = (None, None) if collector is None else collector.lookup(doc)
        if score is None:
            score = metadata_score(doc)
            order = HIGHER if score is not None else None
        scores.append(score)
        if score is not None:
            orders.add(order)
    order = orders.pop() if len(orders) == 1 else None
    return scores, order


def start_retrieval(
    tracer: trace.Tracer,
    data_source: str,
    component: str,
    query: Any,
    top_k: Optional[int],
    parent: Optional[otel_context.Context] = None,
    source_id: Optional[str] = None,
) -> Any:
    """Start a ``retrieval {data source}`` span (consuming the query for causal links);
    the data source is the store's collection/index id when known, else its class."""
    attrs = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_RETRIEVAL,
        sc.GEN_AI_DATA_SOURCE_ID: source_id,
        sc.SPAN_KIND: sc.KIND_RETRIEVER,
        sc.LIBRARY: "langchain",
        sc.COMPONENT: component,
        sc.GEN_AI_REQUEST_TOP_K: top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else None,
        sc.GEN_AI_RETRIEVAL_QUERY_TEXT: _content.text(query) if isinstance(query, str) else None,
    }
    links = None
    if isinstance(query, str) and query and _causal.enabled():
        links = _causal.consume([query], parent, attrs)
    return start_span(tracer, f"{sc.OP_RETRIEVAL} {source_id or data_source}", kind=SpanKind.CLIENT, attributes=attrs,
                      links=links, parent=parent)


def _finite(value: Optional[float]) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


def document_entries(docs: Sequence[Any], scores: Sequence[Optional[float]], limit: int) -> list:
    """The gen_ai.retrieval.documents list: id, score, source metadata; text and full
    metadata only with content capture on."""
    capture = _content.capture_enabled()
    entries = []
    for doc, score in zip(list(docs)[:limit], scores):
        entry: dict = {"id": document_id(doc)}
        if _finite(score) is not None:
            entry["score"] = score
        meta = getattr(doc, "metadata", None) or {}
        if capture:
            if meta:
                entry["metadata"] = {str(k): (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                                     for k, v in meta.items()}
            entry["content"] = getattr(doc, "page_content", None)
        else:
            source = {k: meta[k] for k in SOURCE_METADATA_KEYS
                      if k in meta and isinstance(meta[k], (str, int, float, bool))}
            if source:
                entry["metadata"] = source
        entries.append(entry)
    return entries


def finish_retrieval(span: Any, docs: Iterable[Any], scores: Sequence[Optional[float]], order: Optional[str]) -> None:
    """Documents, summary attributes and causal registration, then end the span."""
    try:
        docs = list(docs or ())
        cfg = _config.get_config()
        entries = document_entries(docs, scores, cfg.max_documents)
        valid = [s for s in scores if _finite(s) is not None]
        set_span_attributes(span, {
            sc.RETRIEVAL_DOCUMENT_COUNT: len(docs),
            sc.RETRIEVAL_TOP_SCORE: max(valid) if valid else None,
            sc.RETRIEVAL_LOWEST_SCORE: min(valid) if valid else None,
            sc.RETRIEVAL_SCORE_ORDER: order if valid else None,
            sc.GEN_AI_RETRIEVAL_DOCUMENTS: (_content.json_value(entries) if cfg.capture_content
                                            else _content.bounded_json(entries)),
        })
        _causal.produce(span, lambda: [
            _causal.Produced(text=getattr(doc, "page_content", "") or "", kind="document",
                             document_id=document_id(doc), rank=rank, score=_finite(score))
            for rank, (doc, score) in enumerate(zip(docs, scores))
        ])
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.retrieval.finish", exc)
    end_span(span)


def split_scored(result: Any) -> tuple:
    """``[(doc, score), ...]`` -> (docs, scores)."""
    docs, scores = [], []
    for item in result or ():
        if isinstance(item, tuple) and len(item) >= 2:
            docs.append(item[0])
            score = item[1]
            scores.append(float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None)
        else:
            docs.append(item)
            scores.append(None)
    return docs, scores
