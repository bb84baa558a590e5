"""Offline LangChain building blocks shared by the tests, the example and the benchmark:
a keyword embedding (deterministic, meaningful cosine scores), a small corpus, a fake
chat model with a model name and usage, and the RAG chain."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Iterable, Optional

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

VOCAB = ("paris", "france", "capital", "seine", "river", "berlin", "germany", "rome", "italy",
         "eiffel", "tower", "landmark", "what", "is", "the", "of")


class KeywordEmbeddings(Embeddings):
    """Bag-of-words over a fixed vocabulary plus one constant dimension: deterministic,
    no numpy, and cosine scores that rank the relevant document first."""

    def _vector(self, text: str) -> list:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(w)) for w in VOCAB] + [1.0]

    def embed_documents(self, texts: list) -> list:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list:
        return self._vector(text)


def cosine(a: list, b: list) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


DOCS = [
    Document(id="doc-paris", page_content="Paris is the capital of France and sits on the river Seine.",
             metadata={"source": "wiki/paris.md", "title": "Paris", "author": "alice"}),
    Document(id="doc-eiffel", page_content="The Eiffel Tower is a landmark of Paris in France.",
             metadata={"source": "wiki/eiffel.md"}),
    Document(id="doc-berlin", page_content="Berlin is a large city in Germany.",
             metadata={"source": "wiki/berlin.md"}),
    Document(id="doc-rome", page_content="Rome is the capital of Italy.",
             metadata={"source": "wiki/rome.md"}),
]
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def expected_ranking(query: str, k: int = 4) -> list:
    """(doc id, cosine score) best first, as InMemoryVectorStore ranks them."""
    emb = KeywordEmbeddings()  # _vector: the untraced computation
    q = emb._vector(query)
    scored = [(d.id, cosine(q, emb._vector(d.page_content))) for d in DOCS]
    return sorted(scored, key=lambda item: -item[1])[:k]


def make_store(docs: Iterable[Document] = DOCS) -> InMemoryVectorStore:
    store = InMemoryVectorStore(KeywordEmbeddings())
    store.add_documents([d.model_copy() for d in docs])
    return store


class FakeChat(GenericFakeChatModel):
    """GenericFakeChatModel with a model name and parameters, like a real provider."""

    model: str = "fake-gpt-1"
    temperature: float = 0.2

    @property
    def _identifying_params(self) -> dict:
        return {"model": self.model, "temperature": self.temperature}


USAGE = {"input_tokens": 42, "output_tokens": 7, "total_tokens": 49}


def answer_message(text: str = ANSWER, usage: Optional[dict] = None, **extra: Any) -> AIMessage:
    return AIMessage(content=text, usage_metadata=usage or dict(USAGE),
                     response_metadata={"model_name": "fake-gpt-1-0001", "finish_reason": "stop"}, **extra)


def fake_chat(*messages: Any, repeat: bool = True) -> FakeChat:
    messages = messages or (answer_message(),)
    source = itertools.cycle(messages) if repeat else iter(messages)
    return FakeChat(messages=source)


SYSTEM_TEMPLATE = "Answer using only this context:\n{context}"
PROMPT = ChatPromptTemplate.from_messages([("system", SYSTEM_TEMPLATE), ("human", "{question}")])


def format_docs(docs: list) -> str:
    return "\n\n".join(d.page_content for d in docs)


def rag_chain(retriever: Any, model: Any) -> Any:
    """{context: retriever | format_docs, question: passthrough} | prompt | model | parser"""
    return ({"context": retriever | format_docs, "question": RunnablePassthrough()}
            | PROMPT | model | StrOutputParser())


# ---------------------------------------------------------------------------------------
# Span tree helpers
# ---------------------------------------------------------------------------------------


def tree(spans: list, root: Any = None) -> list:
    """Nested (name, [children]) lists in a canonical order (sorted), so trees with
    concurrent branches (RunnableParallel, batch) compare deterministically; roots are
    spans whose parent is not among ``spans`` (or the children of ``root``). Sequence
    order is checked separately with :func:`ordered_children`."""
    ids = {s.context.span_id for s in spans}

    def kids(parent_id: Optional[int]) -> list:
        return [s for s in spans if (s.parent.span_id if s.parent else None) == parent_id]

    if root is not None:
        top = kids(root.context.span_id)
    else:
        top = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    return canonical([(s.name, _subtree(s, kids)) for s in top])


def _subtree(span: Any, kids: Any) -> list:
    return [(c.name, _subtree(c, kids)) for c in kids(span.context.span_id)]


def canonical(nodes: list) -> list:
    return sorted(((name, canonical(children)) for name, children in nodes), key=repr)


def ordered_children(spans: list, parent: Any) -> list:
    """Names of ``parent``'s children in start order."""
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return [s.name for s in sorted(kids, key=lambda s: s.start_time)]


def one(spans: list, name: str) -> Any:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


def parent_of(spans: list, span: Any) -> Any:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)
