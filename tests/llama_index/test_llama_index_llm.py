"""LLM and embedding spans from the call-site wrappers: chat, complete and their stream
and async variants, the exact attributes, one span per logical call, errors, and that
the span is current while the model runs (also while a stream is read)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.mock import MockLLM
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _semconv as sc
from instrumentors._spans import current_llm_frame
from li_helpers import KeywordEmbedding

MESSAGES = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Say hi")]


class EchoLLM(CustomLLM):
    """A CustomLLM with a model name, sampling parameters and token usage, which records
    the span that is current while it runs (what a provider client span would nest in)."""

    model: str = "echo-1"
    temperature: float = 0.3
    seen: list = []
    fail_after: int = -1

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.seen.append(trace.get_current_span())
        return CompletionResponse(text=f"echo: {prompt}", raw={
            "id": "resp-1", "model": "echo-1-2025", "choices": [{"finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        def gen():
            text = ""
            for i, piece in enumerate(["echo", ":", " ", "hi"]):
                if i == self.fail_after:
                    raise ConnectionError("stream broke")
                self.seen.append(trace.get_current_span())
                text += piece
                raw = {"id": "resp-2", "model": "echo-1-2025", "choices": [{"finish_reason": None}]}
                if i == 3:
                    raw = {"id": "resp-2", "model": "echo-1-2025", "choices": [{"finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 4}}
                yield CompletionResponse(text=text, delta=piece, raw=raw)

        return gen()


BASE = {
    sc.GEN_AI_PROVIDER_NAME: "llama_index",
    sc.GEN_AI_REQUEST_MODEL: "echo-1",
    sc.GEN_AI_REQUEST_TEMPERATURE: 0.3,
    sc.SPAN_KIND: sc.KIND_LLM,
    sc.LIBRARY: "llama_index",
    sc.COMPONENT: "EchoLLM",
}


async def _drain_async(stream):
    out = []
    async for item in stream:
        out.append(item)
    return out


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_complete(li, spans, is_async):
    llm = EchoLLM(seen=[])
    result = asyncio.run(llm.acomplete("hi")) if is_async else llm.complete("hi")
    assert result.text == "echo: hi"
    span = spans().one("text_completion echo-1")
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        **BASE,
        sc.GEN_AI_OPERATION_NAME: "text_completion",
        sc.GEN_AI_RESPONSE_ID: "resp-1",
        sc.GEN_AI_RESPONSE_MODEL: "echo-1-2025",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 7,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
    }
    # The LLM span is current while the model runs (a client span would nest in it).
    assert [s.get_span_context() for s in llm.seen] == [span.get_span_context()]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_through_custom_llm_is_one_span(li, spans, capture, is_async):
    """CustomLLM.chat calls self.complete: one chat span, not a chat and a completion."""
    llm = EchoLLM(seen=[])
    result = asyncio.run(llm.achat(MESSAGES)) if is_async else llm.chat(MESSAGES)
    tree = spans()
    assert tree.names() == ["chat echo-1"]
    span = tree.one("chat echo-1")
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert json.loads(span.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]},
    ]
    assert json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": result.message.content}],
         "finish_reason": "stop"}]
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert llm.seen[0].get_span_context() == span.get_span_context()


def test_stream_complete_fully_read(li, spans, capture):
    llm = EchoLLM(seen=[])
    stream = llm.stream_complete("hi")
    assert spans().spans == []  # the span is open until the stream ends
    chunks = list(stream)
    assert [c.delta for c in chunks] == ["echo", ":", " ", "hi"]
    span = spans().one("text_completion echo-1")
    attrs = dict(span.attributes)
    assert attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) >= 0
    assert attrs == {
        **BASE,
        sc.GEN_AI_OPERATION_NAME: "text_completion",
        sc.GEN_AI_REQUEST_STREAM: True,
        sc.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
                                             separators=(",", ":")),
        sc.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "echo: hi"}], "finish_reason": "stop"}], separators=(",", ":")),
        sc.GEN_AI_RESPONSE_ID: "resp-2",
        sc.GEN_AI_RESPONSE_MODEL: "echo-1-2025",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 5,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
        sc.STREAM_CHUNK_COUNT: 4,
        sc.STREAM_ENDED_BY: "exhausted",
    }
    # Current during every next(), long after stream_complete() returned.
    assert [s.get_span_context() for s in llm.seen] == [span.get_span_context()] * 4
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_stream_chat_async_fully_read(li, spans):
    llm = EchoLLM(seen=[])

    async def main():
        stream = await llm.astream_chat(MESSAGES)
        return await _drain_async(stream)

    chunks = asyncio.run(main())
    assert chunks[-1].message.content.startswith("echo: ")
    tree = spans()
    assert tree.names() == ["chat echo-1"]
    span = tree.one("chat echo-1")
    assert span.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 4
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert [s.get_span_context() for s in llm.seen] == [span.get_span_context()] * 4


def test_stream_abandoned_ends_on_gc(li, spans):
    import gc

    llm = EchoLLM(seen=[])
    stream = llm.stream_complete("hi")
    next(stream)
    del stream
    gc.collect()
    span = spans().one("text_completion echo-1")
    assert span.attributes[sc.STREAM_ENDED_BY] == "abandoned"
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 1
    assert span.status.status_code is StatusCode.UNSET


def test_stream_closed_early(li, spans):
    llm = EchoLLM(seen=[])
    stream = llm.stream_complete("hi")
    next(stream)
    stream.close()
    span = spans().one("text_completion echo-1")
    assert span.attributes[sc.STREAM_ENDED_BY] == "closed"


def test_stream_error_midway_propagates_and_ends_span(li, spans):
    llm = EchoLLM(seen=[], fail_after=2)
    stream = llm.stream_complete("hi")
    with pytest.raises(ConnectionError, match="stream broke"):
        for _ in stream:
            pass
    span = spans().one("text_completion echo-1")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "ConnectionError"
    assert span.attributes[sc.STREAM_ENDED_BY] == "error"
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 2


def test_llm_error_is_the_same_object(li, spans):
    error = TimeoutError("slow")

    class Failing(EchoLLM):
        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            raise error

    with pytest.raises(TimeoutError) as info:
        Failing(seen=[]).complete("x")
    assert info.value is error
    span = spans().one("text_completion echo-1")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "TimeoutError"


def test_mock_llm_predict_and_stream(li, spans):
    """LLM.predict / LLM.stream (dispatcher spans of their own) add no extra span."""
    from llama_index.core.prompts import PromptTemplate

    llm = MockLLM()
    assert llm.predict(PromptTemplate("Hello {name}"), name="Ada") == "Hello Ada"
    assert "".join(llm.stream(PromptTemplate("Hi {name}"), name="Bo")) == "Hi Bo"
    tree = spans()
    assert tree.outline() == ["text_completion", "text_completion"]
    assert [s.attributes.get(sc.GEN_AI_REQUEST_STREAM) for s in sorted(tree.spans, key=lambda s: s.start_time)] == [
        None, True]  # the convention sets it only when the request streams


def test_llm_frame_is_set_for_nested_clients(li, spans):
    """What the OpenAI instrumentor sees inside a LlamaIndex LLM call."""
    frames = []

    class FrameLLM(EchoLLM):
        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            frames.append(current_llm_frame())
            return CompletionResponse(text="ok")

    FrameLLM(seen=[]).complete("x")
    span = spans().one("text_completion echo-1")
    assert frames[0] is not None and frames[0].span.get_span_context() == span.get_span_context()
    assert current_llm_frame() is None


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embeddings(li, spans, is_async):
    embed = KeywordEmbedding()

    async def run_async():
        return await embed.aget_query_embedding("paris"), await embed.aget_text_embedding_batch(["a", "b", "c"])

    if is_async:
        query, batch = asyncio.run(run_async())
    else:
        query, batch = embed.get_query_embedding("paris"), embed.get_text_embedding_batch(["a", "b", "c"])
    assert len(query) == 17 and len(batch) == 3
    tree = spans()
    assert tree.names() == ["embeddings keyword-embedding", "embeddings keyword-embedding"]
    for span in tree.spans:
        assert tree.parent(span) is None
        assert dict(span.attributes) == {
            sc.GEN_AI_OPERATION_NAME: "embeddings",
            sc.GEN_AI_PROVIDER_NAME: "llama_index",
            sc.GEN_AI_REQUEST_MODEL: "keyword-embedding",
            sc.SPAN_KIND: sc.KIND_EMBEDDING,
            sc.LIBRARY: "llama_index",
            sc.COMPONENT: "KeywordEmbedding",
            sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 17,
        }


def test_metrics(li, spans, metric_reader):
    EchoLLM(seen=[]).complete("hi")
    data = metric_reader.get_metrics_data()
    points = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    points.setdefault(metric.name, []).append((dict(point.attributes), point.sum, point.count))
    base = {sc.GEN_AI_OPERATION_NAME: "text_completion", sc.GEN_AI_PROVIDER_NAME: "llama_index",
            sc.GEN_AI_REQUEST_MODEL: "echo-1", sc.GEN_AI_RESPONSE_MODEL: "echo-1-2025"}
    assert [(a, c) for a, _s, c in points[sc.METRIC_OPERATION_DURATION]] == [(base, 1)]
    assert sorted((a[sc.GEN_AI_TOKEN_TYPE], s) for a, s, _c in points[sc.METRIC_TOKEN_USAGE]) == [
        ("input", 7), ("output", 3)]


def test_tool_definitions_from_chat_kwargs(li, spans):
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    EchoLLM(seen=[]).chat(MESSAGES, tools=tools)
    span = spans().one("chat echo-1")
    assert json.loads(span.attributes[sc.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]


def test_tool_definitions_from_chat_kwargs_with_capture(li, spans, capture):
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    EchoLLM(seen=[]).chat(MESSAGES, tools=tools)
    span = spans().one("chat echo-1")
    assert json.loads(span.attributes[sc.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "lookup", "description": "Look up.",
         "parameters": {"type": "object", "properties": {}}}]


def test_chat_response_tool_calls_are_read(li, spans, capture):
    from llama_index.core.llms.callbacks import llm_chat_callback

    class ToolLLM(EchoLLM):
        @llm_chat_callback()
        def chat(self, messages, **kwargs):
            message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]})
            return ChatResponse(message=message, raw={"choices": [{"finish_reason": "tool_calls"}]})

    ToolLLM(seen=[]).chat(MESSAGES)
    span = spans().one("chat echo-1")
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [{
        "role": "assistant", "finish_reason": "tool_call",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "x"}}]}]


def test_astream_complete_abandoned_and_exhausted(li, spans):
    import gc

    llm = EchoLLM(seen=[])

    async def main():
        full = [c.delta async for c in await llm.astream_complete("hi")]
        partial = await llm.astream_complete("hi")
        await partial.__anext__()
        del partial
        gc.collect()
        return full

    assert asyncio.run(main()) == ["echo", ":", " ", "hi"]
    gc.collect()
    ended = sorted(s.attributes[sc.STREAM_ENDED_BY] for s in spans().named("text_completion echo-1"))
    assert ended == ["abandoned", "exhausted"]
