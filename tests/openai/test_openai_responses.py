"""responses.create (plain, function calls, streamed events) and responses.parse."""

from __future__ import annotations

import json

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import openai_scenarios as S
from instrumentors import _content
from instrumentors import _semconv as sc

pytestmark = pytest.mark.usefixtures("instrument")

BASE = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.SERVER_ADDRESS: "api.openai.com",
    sc.SERVER_PORT: 443,
    sc.SPAN_KIND: "llm",
    sc.LIBRARY: "openai",
    sc.OPENAI_API_TYPE: "responses",
    sc.OPENAI_RESPONSE_SERVICE_TIER: "default",
}


def _requires_responses(client) -> None:
    if not hasattr(client, "responses"):
        pytest.skip(f"openai {openai.__version__} has no Responses API")


async def _run(name: str, is_async: bool, method=None):
    scenario = S.SCENARIOS[name]
    client = S.make_client(scenario, is_async)
    _requires_responses(client)
    if method and not hasattr(client.responses, method.rsplit(".", 1)[-1]):
        pytest.skip(f"openai {openai.__version__} has no client.{method}")
    return await S.call(client, method or scenario.method, **scenario.kwargs)


def _span(exporter, model: str):
    span = S.only_span(exporter)
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    return span


BASIC = {
    **BASE,
    sc.GEN_AI_REQUEST_MODEL: "o4-mini",
    sc.GEN_AI_REQUEST_MAX_TOKENS: 200,
    sc.GEN_AI_RESPONSE_ID: "resp_68a1c0basic0001",
    sc.GEN_AI_RESPONSE_MODEL: "o4-mini-2025-04-16",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    sc.GEN_AI_USAGE_INPUT_TOKENS: 36,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 74,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 64,
}


def _basic() -> dict:
    """BASIC plus the fingerprint of ``instructions`` (computed at call time: the hash
    may be keyed per installation)."""
    return {**BASIC, sc.SYSTEM_PROMPT_HASH: _content.content_hash(S.RESP_INSTRUCTIONS)}


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_basic.yaml")
async def test_responses_create(span_exporter, is_async):
    result = await _run("responses_basic", is_async)
    assert result.output_text == S.RESP_ANSWER
    assert S.attrs(_span(span_exporter, "o4-mini")) == _basic()


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_basic.yaml")
async def test_responses_instructions_are_system_instructions(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    await _run("responses_basic", is_async)
    attrs = S.attrs(_span(span_exporter, "o4-mini"))
    assert json.loads(attrs.pop(sc.GEN_AI_SYSTEM_INSTRUCTIONS)) == [{"type": "text", "content": S.RESP_INSTRUCTIONS}]
    assert json.loads(attrs.pop(sc.GEN_AI_INPUT_MESSAGES)) == [
        {"role": "user", "parts": [{"type": "text", "content": S.RESP_QUESTION}]}]
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": S.RESP_ANSWER}], "finish_reason": "stop"}]
    assert attrs == _basic()


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_function_call.yaml")
async def test_responses_function_call(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    result = await _run("responses_function_call", is_async)
    assert result.output[0].name == "get_weather"
    attrs = S.attrs(_span(span_exporter, "gpt-4o-mini"))
    assert json.loads(attrs.pop(sc.GEN_AI_TOOL_DEFINITIONS)) == [{
        "type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
        "parameters": S.WEATHER_TOOL["function"]["parameters"]}]
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_R4f8", "name": "get_weather",
                   "arguments": {"location": "Paris, France"}}],
        "finish_reason": "tool_call"}]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == {
        **BASE,
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        sc.GEN_AI_RESPONSE_ID: "resp_68a1c0tools0001",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),  # chat's value for the same meaning
        sc.RESPONSE_TOOL_CALLS: '[{"id":"call_R4f8","name":"get_weather","type":"function"}]',
        sc.GEN_AI_USAGE_INPUT_TOKENS: 61,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 18,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
    }


STREAM = {
    **BASE,
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.GEN_AI_REQUEST_STREAM: True,
    sc.GEN_AI_RESPONSE_ID: "resp_68a1c0stream0001",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
}


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_stream.yaml")
async def test_responses_stream(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    stream = await _run("responses_stream", is_async)
    events = await S.drain(stream)
    assert [e.type for e in events][-1] == "response.completed"
    attrs = S.attrs(_span(span_exporter, "gpt-4o-mini"))
    assert attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) >= 0
    assert attrs.pop(sc.STREAM_CHUNK_COUNT) == len(events) == 12
    assert attrs.pop(sc.STREAM_ENDED_BY) == "exhausted"
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [{
        "role": "assistant", "parts": [{"type": "text", "content": "".join(S.RESP_STREAM_PIECES)}],
        "finish_reason": "stop"}]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == STREAM


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_stream.yaml")
async def test_responses_stream_abandoned_midway_keeps_partial_output(span_exporter, set_config, is_async):
    import gc

    set_config(capture_content=True)
    stream = await _run("responses_stream", is_async)
    if is_async:
        for _ in range(6):
            await stream.__anext__()
    else:
        for _ in range(6):
            next(stream)
    del stream
    gc.collect()
    attrs = S.attrs(_span(span_exporter, "gpt-4o-mini"))
    assert attrs[sc.STREAM_ENDED_BY] == "abandoned"
    assert attrs[sc.GEN_AI_RESPONSE_ID] == "resp_68a1c0stream0001"
    assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "Bonjour le"}]


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_parse.yaml")
async def test_responses_parse(span_exporter, is_async):
    result = await _run("responses_parse", is_async, method="responses.parse")
    assert result.output_parsed == S.CalendarEvent(name="Science Fair", date="Friday", participants=["Alice", "Bob"])
    assert S.attrs(_span(span_exporter, "gpt-4o-2024-08-06")) == {
        **BASE,
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-2024-08-06",
        sc.GEN_AI_OUTPUT_TYPE: "json",
        sc.GEN_AI_RESPONSE_ID: "resp_68a1c0parse0001",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 71,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 16,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        sc.SYSTEM_PROMPT_HASH: _content.content_hash("Extract the event information."),  # a system input item
    }


@pytest.mark.vcr
@pytest.mark.default_cassette("responses_basic.yaml")
async def test_responses_with_raw_response(span_exporter, is_async):
    raw = await _run("responses_basic", is_async, method="responses.with_raw_response.create")
    assert raw.parse().output_text == S.RESP_ANSWER
    assert S.attrs(_span(span_exporter, "o4-mini")) == _basic()
