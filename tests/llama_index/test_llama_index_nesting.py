"""What runs *inside* a LlamaIndex component nests under its span: a user's own span in
a custom retriever or query engine, an OpenAI client span. Parentage via the dispatcher's
span ids stays right when user spans sit between LlamaIndex calls, and threads that copy
the context (LlamaIndex's own Thread) keep the tree."""

from __future__ import annotations

import asyncio
from typing import List

from llama_index.core import QueryBundle
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.llms.mock import MockLLM
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, TextNode
from opentelemetry import trace

from li_helpers import QUESTION, build_index, finish_chat_stream

tracer = trace.get_tracer("test.user")


class TracedRetriever(BaseRetriever):
    """A custom retriever whose own code opens a span (think: a vector DB client)."""

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        with tracer.start_as_current_span("vector db call"):
            return [NodeWithScore(node=TextNode(id_="n1", text="Paris is the capital of France."), score=0.9)]


class MyEngine(CustomQueryEngine):
    """A custom query engine: user span, then LlamaIndex calls inside it."""

    retriever: BaseRetriever

    def custom_query(self, query_str: str) -> str:
        with tracer.start_as_current_span("my step"):
            nodes = self.retriever.retrieve(query_str)
        return MockLLM().complete(nodes[0].node.text).text


def test_user_span_inside_a_custom_retriever_nests_under_retrieval(li, spans):
    with tracer.start_as_current_span("request"):
        TracedRetriever().retrieve("q")
    assert spans().outline() == ["request", "  retrieval TracedRetriever", "    vector db call"]


def test_async_user_span_inside_a_custom_retriever(li, spans):
    async def main():
        with tracer.start_as_current_span("request"):
            await TracedRetriever().aretrieve("q")

    asyncio.run(main())
    assert spans().outline() == ["request", "  retrieval TracedRetriever", "    vector db call"]


def test_user_span_between_llama_index_calls(li, spans):
    engine = MyEngine(retriever=TracedRetriever())
    with tracer.start_as_current_span("request"):
        assert engine.query(QUESTION).response == "Paris is the capital of France."
    assert spans().outline() == [
        "request",
        "  query MyEngine",
        "    my step",
        "      retrieval TracedRetriever",
        "        vector db call",
        "    text_completion",
    ]


def test_callback_scopes_restored(tracer_provider):
    from instrumentors.llama_index import LlamaIndexInstrumentor

    before = {name: CallbackManager.__dict__[name] for name in ("as_trace", "event")}
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert all(CallbackManager.__dict__[n] is not f for n, f in before.items())
    finally:
        instrumentor.uninstrument()
    assert all(CallbackManager.__dict__[n] is f for n, f in before.items())


def test_chat_engine_thread_keeps_the_tree(li, spans, span_exporter):
    """SimpleChatEngine.stream_chat writes to memory from a context-copying Thread."""
    engine = build_index().as_chat_engine(chat_mode="simple", llm=MockLLM(max_tokens=3))
    span_exporter.clear()
    with tracer.start_as_current_span("request"):
        response = engine.stream_chat("hi")
        for _ in response.response_gen:
            pass
    finish_chat_stream(response, span_exporter, "chat SimpleChatEngine")
    assert spans().outline() == ["request", "  chat SimpleChatEngine", "    chat"]
