"""Streaming query responses and streaming chat engines: every span ends when the stream
is fully read, closed, abandoned (garbage-collected) or fails midway, in sync and async
code, with no background sweeper; the spans stay correctly nested."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.mock import MockLLM
from opentelemetry.trace import StatusCode

from instrumentors import _semconv as sc
from li_helpers import QUESTION, build_index, finish_chat_stream

STREAM_TREE = [
    "query RetrieverQueryEngine",
    "  retrieval SimpleVectorStore",
    "    embeddings keyword-embedding",
    "  synthesize CompactAndRefine",
    "    text_completion",
]


class BreakingLLM(MockLLM):
    """Streams two tokens, then the connection breaks."""

    @llm_completion_callback()
    def stream_complete(self, prompt, formatted=False, **kwargs):
        def gen():
            yield CompletionResponse(text="text", delta="text")
            yield CompletionResponse(text="text text", delta=" text")
            raise ConnectionResetError("peer reset")

        return gen()


def _engine(llm=None):
    return build_index().as_query_engine(llm=llm or MockLLM(max_tokens=4), similarity_top_k=1, streaming=True)


def _no_threads_started(before):
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_streaming_query_fully_read(li, spans, span_exporter, capture):
    before = set(threading.enumerate())
    engine = _engine()
    span_exporter.clear()
    response = engine.query(QUESTION)
    assert spans().names() == ["embeddings keyword-embedding", "retrieval SimpleVectorStore"]
    text = "".join(response.response_gen)
    assert text.strip() == "text text text text"
    tree = spans()
    assert tree.outline() == STREAM_TREE
    for name in ("query RetrieverQueryEngine", "synthesize CompactAndRefine", "text_completion"):
        span = tree.one(name)
        assert span.attributes[sc.STREAM_ENDED_BY] == "exhausted", name
        assert span.attributes[sc.STREAM_CHUNK_COUNT] == 4, name
        assert span.status.status_code is StatusCode.UNSET
    assert tree.one("query RetrieverQueryEngine").attributes[sc.OUTPUT_VALUE] == text
    # Inner spans end first.
    synth, query = tree.one("synthesize CompactAndRefine"), tree.one("query RetrieverQueryEngine")
    assert tree.one("text_completion").end_time <= synth.end_time <= query.end_time
    assert _no_threads_started(before) == []


def test_streaming_query_print_and_get_response(li, spans, span_exporter, capsys):
    engine = _engine()
    span_exporter.clear()
    engine.query(QUESTION).print_response_stream()
    assert capsys.readouterr().out.strip() == "text text text text"
    assert spans().outline() == STREAM_TREE
    span_exporter.clear()
    assert str(engine.query(QUESTION).get_response()).strip() == "text text text text"
    assert spans().outline() == STREAM_TREE


def test_streaming_query_abandoned(li, spans, span_exporter):
    engine = _engine()
    span_exporter.clear()
    response = engine.query(QUESTION)
    next(response.response_gen)
    del response
    gc.collect()
    tree = spans()
    assert tree.outline() == STREAM_TREE
    for name in ("query RetrieverQueryEngine", "synthesize CompactAndRefine", "text_completion"):
        assert tree.one(name).attributes[sc.STREAM_ENDED_BY] == "abandoned", name


def test_streaming_query_never_iterated_and_abandoned(li, spans, span_exporter):
    engine = _engine()
    span_exporter.clear()
    engine.query(QUESTION)  # the response is dropped at once
    gc.collect()
    tree = spans()
    assert tree.one("query RetrieverQueryEngine").attributes[sc.STREAM_ENDED_BY] == "abandoned"
    assert tree.one("synthesize CompactAndRefine").attributes[sc.STREAM_CHUNK_COUNT] == 0
    # Lazily streamed (llama-index 0.14) or started eagerly (0.12): either way it ended.
    for span in tree.named("text_completion"):
        assert span.attributes[sc.STREAM_ENDED_BY] == "abandoned"


def test_streaming_query_closed_early(li, spans, span_exporter):
    engine = _engine()
    span_exporter.clear()
    response = engine.query(QUESTION)
    next(response.response_gen)
    response.response_gen.close()
    tree = spans()
    assert tree.one("query RetrieverQueryEngine").attributes[sc.STREAM_ENDED_BY] == "closed"
    assert tree.one("synthesize CompactAndRefine").attributes[sc.STREAM_ENDED_BY] == "closed"
    gc.collect()
    assert tree.one("query RetrieverQueryEngine").end_time is not None
    assert len(spans().named("text_completion")) == 1


def test_streaming_query_error_midway(li, spans, span_exporter):
    engine = _engine(BreakingLLM())
    span_exporter.clear()
    response = engine.query(QUESTION)
    got = []
    with pytest.raises(ConnectionResetError, match="peer reset"):
        for token in response.response_gen:
            got.append(token)
    assert got == ["text", " text"]
    tree = spans()
    assert tree.outline() == STREAM_TREE
    for name in ("query RetrieverQueryEngine", "synthesize CompactAndRefine", "text_completion"):
        span = tree.one(name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert span.attributes[sc.ERROR_TYPE] == "ConnectionResetError", name
        assert span.attributes[sc.STREAM_ENDED_BY] == "error", name


def test_async_streaming_query(li, spans, span_exporter):
    engine = _engine()
    span_exporter.clear()

    async def main():
        response = await engine.aquery(QUESTION)
        return [t async for t in response.async_response_gen()]

    assert "".join(asyncio.run(main())).strip() == "text text text text"
    tree = spans()
    assert tree.outline() == STREAM_TREE
    assert tree.one("query RetrieverQueryEngine").attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert tree.one("text_completion").attributes[sc.STREAM_ENDED_BY] == "exhausted"


def test_async_streaming_query_abandoned(li, spans, span_exporter):
    engine = _engine()
    span_exporter.clear()

    async def main():
        response = await engine.aquery(QUESTION)
        gen = response.async_response_gen()
        await gen.__anext__()
        await gen.aclose()
        del response, gen

    asyncio.run(main())
    gc.collect()
    tree = spans()
    assert tree.one("query RetrieverQueryEngine").attributes[sc.STREAM_ENDED_BY] in ("abandoned", "closed")
    for span in tree.spans:
        assert span.end_time is not None


@pytest.mark.parametrize("mode", ["simple", "context", "condense_plus_context"])
def test_streaming_chat_engine(li, spans, span_exporter, mode):
    index = build_index()
    engine = index.as_chat_engine(chat_mode=mode, llm=MockLLM(max_tokens=3), similarity_top_k=1)
    span_exporter.clear()
    response = engine.stream_chat("Tell me about Paris")
    text = "".join(response.response_gen)
    assert text.strip() == "text text text"
    finish_chat_stream(response, span_exporter, f"chat {type(engine).__name__}")
    tree = spans()
    chat = tree.one(f"chat {type(engine).__name__}")
    assert tree.parent(chat) is None
    assert chat.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert chat.status.status_code is StatusCode.UNSET
    llm = [s for s in tree.spans if s.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM]
    assert llm and all(s.attributes[sc.STREAM_ENDED_BY] == "exhausted" for s in llm if
                       s.attributes.get(sc.GEN_AI_REQUEST_STREAM))
    for span in tree.spans:
        assert _root(tree, span) is chat, span.name


def test_async_streaming_chat_engine(li, spans, span_exporter):
    index = build_index()
    engine = index.as_chat_engine(chat_mode="simple", llm=MockLLM(max_tokens=3))
    span_exporter.clear()

    async def main():
        response = await engine.astream_chat("hello")
        return [t async for t in response.async_response_gen()]

    assert "".join(asyncio.run(main())).strip() == "text text text"
    tree = spans()
    assert tree.outline() == ["chat SimpleChatEngine", "  chat"]
    assert tree.one("chat SimpleChatEngine").attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert tree.one("chat").attributes[sc.STREAM_ENDED_BY] == "exhausted"


def _root(tree, span):
    while tree.parent(span) is not None:
        span = tree.parent(span)
    return span
