"""Offline LlamaIndex building blocks shared by the tests, the example and the benchmark:
a keyword embedding (deterministic, meaningful cosine scores), a small corpus of nodes
with fixed ids, and helpers to read exported spans as a tree."""

from __future__ import annotations

import re
from typing import Any, Iterable, List, Optional

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

dispatcher = get_dispatcher(__name__)

VOCAB = ("paris", "france", "capital", "seine", "river", "berlin", "germany", "rome", "italy",
         "eiffel", "tower", "landmark", "what", "is", "the", "of")

CORPUS = [
    ("doc-paris", "Paris is the capital of France.", {"file_name": "france.txt", "window": "secret window text"}),
    ("doc-seine", "The Seine river flows through Paris.", {"file_name": "rivers.txt"}),
    ("doc-berlin", "Berlin is the capital of Germany.", {"file_name": "germany.txt"}),
    ("doc-rome", "Rome is in Italy.", {"file_name": "italy.txt"}),
]
QUESTION = "What is the capital of France?"


class KeywordEmbedding(BaseEmbedding):
    """Bag-of-words over a fixed vocabulary plus one constant dimension: deterministic,
    no numpy, cosine scores that rank the relevant node first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_name="keyword-embedding", **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "KeywordEmbedding"

    @staticmethod
    def vector(text: str) -> List[float]:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(w)) for w in VOCAB] + [1.0]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self.vector(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self.vector(text)

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return self.vector(text)


class KeywordRerank(BaseNodePostprocessor):
    """A reranker shaped like LlamaIndex's own (ReRank events around the work): puts
    nodes that mention the query's last word first, with new scores."""

    top_n: int = 2
    model: str = "keyword-rerank-v1"

    @classmethod
    def class_name(cls) -> str:
        return "KeywordRerank"

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model))
        word = query_bundle.query_str.lower().strip("?").split()[-1]
        scored = [NodeWithScore(node=n.node, score=round(0.9 if word in n.node.text.lower() else 0.1 * (i + 1), 3))
                  for i, n in enumerate(nodes)]
        out = sorted(scored, key=lambda n: n.score, reverse=True)[: self.top_n]
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out


def nodes() -> list:
    return [TextNode(id_=node_id, text=text, metadata=dict(meta)) for node_id, text, meta in CORPUS]


def build_index(embed_model: Optional[BaseEmbedding] = None) -> VectorStoreIndex:
    """An in-memory vector index over :data:`CORPUS` (embedding calls happen here)."""
    return VectorStoreIndex(nodes=nodes(), embed_model=embed_model or KeywordEmbedding())


# ---------------------------------------------------------------------------------------
# Reading exported spans
# ---------------------------------------------------------------------------------------


class SpanTree:
    """The finished spans of one test, navigable by name and parent."""

    def __init__(self, spans: Iterable[Any]) -> None:
        self.spans = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def named(self, name: str) -> list:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> Any:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans]}"
        return found[0]

    def parent(self, span: Any) -> Optional[Any]:
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def children(self, span: Any) -> list:
        return sorted((s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id),
                      key=lambda s: s.start_time)

    def names(self) -> list:
        return sorted(s.name for s in self.spans)

    def outline(self, span: Any = None, depth: int = 0) -> list:
        """``["query X", "  retrieval Y", ...]``: the tree below ``span`` (roots if None)."""
        roots = [span] if span is not None else sorted(
            (s for s in self.spans if self.parent(s) is None), key=lambda s: s.start_time)
        out: list = []
        for root in roots:
            out.append("  " * depth + root.name)
            for child in self.children(root):
                out.extend(self.outline(child, depth + 1))
        return out


def finish_chat_stream(response: Any, exporter: Any, name: str, timeout: float = 5.0) -> None:
    """Wait for a streaming chat response's background writer (a thread in 0.12 and
    0.14; 0.14 exposes it, 0.12 does not) so its span has ended before asserting."""
    import time

    thread = getattr(response, "write_response_to_history_thread", None)
    if thread is not None:
        thread.join(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(s.name == name for s in exporter.get_finished_spans()):
        time.sleep(0.005)


class ScriptedLLM(CustomLLM):
    """Answers with the next scripted text (a ReAct agent's thoughts and actions)."""

    script: list = []
    calls: int = 0

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted", is_chat_model=False)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return CompletionResponse(text=text)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        text = self.complete(prompt, formatted=formatted).text

        def gen():
            yield CompletionResponse(text=text, delta=text)

        return gen()
