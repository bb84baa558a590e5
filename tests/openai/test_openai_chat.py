"""chat.completions: create (plain, n>1, tools, tool results, streams), parse, Azure,
.with_raw_response and .with_streaming_response, replayed from cassettes."""

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
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.SPAN_KIND: "llm",
    sc.LIBRARY: "openai",
    sc.OPENAI_API_TYPE: "chat_completions",
    sc.OPENAI_RESPONSE_SERVICE_TIER: "default",
    sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: "fp_b376dfbbd5",
}

BASIC = {
    **BASE,
    sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
    sc.GEN_AI_REQUEST_TOP_P: 0.9,
    sc.GEN_AI_REQUEST_MAX_TOKENS: 50,
    sc.GEN_AI_REQUEST_SEED: 42,
    sc.GEN_AI_REQUEST_STOP_SEQUENCES: ("\n\n",),
    sc.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.1,
    sc.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.2,
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4basic0001",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    sc.GEN_AI_USAGE_INPUT_TOKENS: 24,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 16,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
}



def _basic() -> dict:
    """BASIC plus the system-prompt fingerprint (computed at call time: the hash may be
    keyed per installation)."""
    return {**BASIC, sc.SYSTEM_PROMPT_HASH: _content.content_hash(S.SYSTEM)}


# With content capture on: the definitions in full.
TOOL_DEFINITIONS = [
    {"type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
     "parameters": S.WEATHER_TOOL["function"]["parameters"]},
    {"type": "function", "name": "get_time", "description": "Get the local time in a timezone.",
     "parameters": S.TIME_TOOL["function"]["parameters"]},
]
# With capture off: names and the parameters' names and types, no description or enum values.
TOOL_SHAPES = [
    {"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["location"]}},
    {"type": "function", "name": "get_time", "parameters": {
        "type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}},
]
TOOL_CALLS = [
    {"id": "call_W7x1", "name": "get_weather", "type": "function"},
    {"id": "call_T9k2", "name": "get_time", "type": "function"},
]


def _check_span(span, attributes: dict) -> None:
    assert span.name == f"chat {attributes[sc.GEN_AI_REQUEST_MODEL]}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert S.attrs(span) == attributes


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_chat_basic(span_exporter, is_async):
    result = await S.run(S.SCENARIOS["chat_basic"], is_async)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    assert result.choices[0].message.content == S.ANSWER
    span = S.only_span(span_exporter)
    _check_span(span, _basic())
    assert span.parent is None


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_chat_basic_captures_messages(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    await S.run(S.SCENARIOS["chat_basic"], is_async)
    attrs = S.attrs(S.only_span(span_exporter))
    assert json.loads(attrs.pop(sc.GEN_AI_INPUT_MESSAGES)) == [
        {"role": "system", "parts": [{"type": "text", "content": S.SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": S.QUESTION}]},
    ]
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": S.ANSWER}], "finish_reason": "stop"},
    ]
    assert attrs == _basic()  # chat history system messages stay in input messages (semconv)


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_content_is_truncated_at_the_limit(span_exporter, set_config, is_async):
    set_config(capture_content=True, max_attribute_length=40)
    await S.run(S.SCENARIOS["chat_basic"], is_async)
    attrs = S.only_span(span_exporter).attributes
    assert len(attrs[sc.GEN_AI_INPUT_MESSAGES]) == 40
    assert attrs[sc.GEN_AI_INPUT_MESSAGES].endswith("…[truncated]")
    assert len(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == 40


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_redaction_hook_applies_to_messages(span_exporter, set_config, is_async):
    set_config(capture_content=True, redact=lambda text: text.replace("Paris", "[CITY]"))
    await S.run(S.SCENARIOS["chat_basic"], is_async)
    out = json.loads(S.only_span(span_exporter).attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert out[0]["parts"][0]["content"] == "The capital of France is [CITY]."


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_n2.yaml")
async def test_chat_n_choices(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    result = await S.run(S.SCENARIOS["chat_n2"], is_async)
    assert [c.message.content for c in result.choices] == ["Blue.", "Crimson red is a"]
    attrs = S.attrs(S.only_span(span_exporter))
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Blue."}], "finish_reason": "stop"},
        {"role": "assistant", "parts": [{"type": "text", "content": "Crimson red is a"}], "finish_reason": "length"},
    ]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == {
        **BASE,
        sc.GEN_AI_REQUEST_CHOICE_COUNT: 2,
        sc.GEN_AI_REQUEST_MAX_TOKENS: 5,
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4n2000001",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop", "length"),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 11,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
    }


TOOLS_RESULT = {
    **BASE,
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4tools0001",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
    sc.RESPONSE_TOOL_CALLS: json.dumps(TOOL_CALLS, separators=(",", ":")),
    sc.GEN_AI_USAGE_INPUT_TOKENS: 88,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 46,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
}


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_tools.yaml")
async def test_chat_parallel_tool_calls(span_exporter, is_async):
    result = await S.run(S.SCENARIOS["chat_tools"], is_async)
    assert [c.function.name for c in result.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    attrs = S.attrs(S.only_span(span_exporter))
    assert json.loads(attrs.pop(sc.GEN_AI_TOOL_DEFINITIONS)) == TOOL_SHAPES
    assert attrs == TOOLS_RESULT
    assert S.WEATHER_ARGS not in str(attrs)  # arguments are content


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_tools.yaml")
async def test_chat_tool_calls_in_output_messages(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    await S.run(S.SCENARIOS["chat_tools"], is_async)
    attrs = S.only_span(span_exporter).attributes
    assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == [{
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_W7x1", "name": "get_weather", "arguments": {"location": "Paris, France"}},
            {"type": "tool_call", "id": "call_T9k2", "name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
        ],
        "finish_reason": "tool_call",
    }]


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_tool_result.yaml")
async def test_chat_tool_results_in_input_messages(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    await S.run(S.SCENARIOS["chat_tool_result"], is_async)
    attrs = S.only_span(span_exporter).attributes
    assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": S.TOOLS_QUESTION}]},
        {"role": "assistant", "parts": [
            {"type": "tool_call", "id": "call_W7x1", "name": "get_weather", "arguments": {"location": "Paris, France"}},
            {"type": "tool_call", "id": "call_T9k2", "name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
        ]},
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "call_W7x1", "response": '{"temp_c": 18, "sky": "sunny"}'}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_T9k2", "response": '{"time": "14:05"}'}]},
    ]
    assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def _stream_attrs(attrs: dict, chunks: int) -> dict:
    """Pop and check the stream-only attributes; returns the rest."""
    attrs = dict(attrs)
    ttfc = attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    assert isinstance(ttfc, float) and ttfc >= 0
    assert attrs.pop(sc.STREAM_CHUNK_COUNT) == chunks
    assert attrs.pop(sc.STREAM_ENDED_BY) == "exhausted"
    return attrs


STREAM = {
    **BASE,
    sc.GEN_AI_REQUEST_STREAM: True,
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4stream0001",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
}
STREAM_USAGE = {
    **STREAM,
    sc.GEN_AI_USAGE_INPUT_TOKENS: 13,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 6,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
}


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_stream.yaml")
async def test_chat_stream_without_usage(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    stream = await S.run(S.SCENARIOS["chat_stream"], is_async)
    assert isinstance(stream, openai.AsyncStream if is_async else openai.Stream)  # the proxy is transparent
    chunks = await S.drain(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == S.STREAM_TEXT
    attrs = _stream_attrs(S.attrs(S.only_span(span_exporter)), chunks=8)
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": S.STREAM_TEXT}], "finish_reason": "stop"}]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == STREAM


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_stream_usage.yaml")
async def test_chat_stream_with_usage(span_exporter, is_async):
    stream = await S.run(S.SCENARIOS["chat_stream_usage"], is_async)
    chunks = await S.drain(stream)
    assert chunks[-1].usage.completion_tokens == 6
    attrs = _stream_attrs(S.attrs(S.only_span(span_exporter)), chunks=9)
    assert attrs == STREAM_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_stream_tools.yaml")
async def test_chat_stream_parallel_tool_calls_reassembled(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    stream = await S.run(S.SCENARIOS["chat_stream_tools"], is_async)
    await S.drain(stream)
    attrs = _stream_attrs(S.attrs(S.only_span(span_exporter)), chunks=8)
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [{
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_W7x1", "name": "get_weather", "arguments": {"location": "Paris, France"}},
            {"type": "tool_call", "id": "call_T9k2", "name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
        ],
        "finish_reason": "tool_call",
    }]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert json.loads(attrs.pop(sc.GEN_AI_TOOL_DEFINITIONS)) == TOOL_DEFINITIONS
    assert attrs == {
        **TOOLS_RESULT,
        sc.GEN_AI_REQUEST_STREAM: True,
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4stream0002",
    }


def _parse_method(client) -> str:
    if hasattr(client.chat.completions, "parse"):
        return "chat.completions.parse"
    return "beta.chat.completions.parse"  # openai < 1.92


PARSE = {
    **BASE,
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-2024-08-06",
    sc.GEN_AI_OUTPUT_TYPE: "json",
    sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4parse0001",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    sc.GEN_AI_USAGE_INPUT_TOKENS: 92,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 17,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
}


def _parse() -> dict:
    return {**PARSE, sc.SYSTEM_PROMPT_HASH: _content.content_hash("Extract the event information.")}


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_parse.yaml")
async def test_chat_parse_structured_output(span_exporter, is_async):
    scenario = S.SCENARIOS["chat_parse"]
    client = S.make_client(scenario, is_async)
    result = await S.call(client, _parse_method(client), **scenario.kwargs)
    assert result.choices[0].message.parsed == S.CalendarEvent(
        name="Science Fair", date="Friday", participants=["Alice", "Bob"])
    _check_span(S.only_span(span_exporter), _parse())


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_parse.yaml")
async def test_beta_chat_parse_where_present(span_exporter, is_async):
    scenario = S.SCENARIOS["chat_parse"]
    client = S.make_client(scenario, is_async)
    beta_chat = getattr(client.beta, "chat", None)
    if beta_chat is None or not hasattr(beta_chat.completions, "parse"):
        pytest.skip(f"openai {openai.__version__} has no client.beta.chat.completions.parse")
    result = await S.call(client, "beta.chat.completions.parse", **scenario.kwargs)
    assert result.choices[0].message.parsed.participants == ["Alice", "Bob"]
    _check_span(S.only_span(span_exporter), _parse())


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_azure.yaml")
async def test_azure_provider_and_server(span_exporter, is_async):
    await S.run(S.SCENARIOS["chat_azure"], is_async)
    _check_span(S.only_span(span_exporter), {
        **BASE,
        sc.GEN_AI_PROVIDER_NAME: "azure.ai.openai",
        sc.SERVER_ADDRESS: "contoso-eastus.openai.azure.com",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-CRc4azure0001",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-11-20",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 14,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
    })


# -- raw and streaming-response variants ------------------------------------------------


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_with_raw_response(span_exporter, is_async):
    raw = await S.run(S.SCENARIOS["chat_basic"], is_async, method="chat.completions.with_raw_response.create")
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.choices[0].message.content == S.ANSWER
    _check_span(S.only_span(span_exporter), _basic())


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_stream_usage.yaml")
async def test_with_raw_response_stream(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    raw = await S.run(S.SCENARIOS["chat_stream_usage"], is_async, method="chat.completions.with_raw_response.create")
    assert span_exporter.get_finished_spans() == ()  # the body has not been read yet
    chunks = await S.drain(raw.parse())
    assert len(chunks) == 9
    attrs = S.attrs(S.only_span(span_exporter))
    assert attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) >= 0
    assert attrs.pop(sc.STREAM_CHUNK_COUNT) == 9  # SSE events, not byte chunks
    assert attrs.pop(sc.STREAM_ENDED_BY) in ("exhausted", "closed")
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES))[0]["parts"] == [{"type": "text", "content": S.STREAM_TEXT}]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == STREAM_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_basic.yaml")
async def test_with_streaming_response(span_exporter, is_async):
    scenario = S.SCENARIOS["chat_basic"]
    client = S.make_client(scenario, is_async)
    manager = client.chat.completions.with_streaming_response.create(**scenario.kwargs)
    if is_async:
        async with manager as response:
            assert span_exporter.get_finished_spans() == ()
            completion = await response.parse()
    else:
        with manager as response:
            assert span_exporter.get_finished_spans() == ()
            completion = response.parse()
    assert completion.choices[0].message.content == S.ANSWER
    attrs = S.attrs(S.only_span(span_exporter))
    assert attrs.pop(sc.STREAM_ENDED_BY) in ("exhausted", "closed")
    attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    attrs.pop(sc.STREAM_CHUNK_COUNT)
    assert attrs == _basic()


@pytest.mark.vcr
@pytest.mark.default_cassette("chat_stream_usage.yaml")
async def test_with_streaming_response_stream(span_exporter, is_async):
    scenario = S.SCENARIOS["chat_stream_usage"]
    client = S.make_client(scenario, is_async)
    manager = client.chat.completions.with_streaming_response.create(**scenario.kwargs)
    if is_async:
        async with manager as response:
            lines = [line async for line in response.iter_lines()]
    else:
        with manager as response:
            lines = list(response.iter_lines())
    assert [line for line in lines if line][-1] == "data: [DONE]"
    attrs = _stream_attrs(S.attrs(S.only_span(span_exporter)), chunks=9)
    assert attrs == STREAM_USAGE


@pytest.mark.parametrize("tier", [None, "auto", "default", "flex"])
async def test_request_service_tier_only_when_not_auto(span_exporter, is_async, tier):
    """openai.md: openai.request.service_tier "if the request includes a service_tier and
    the value is not 'auto'"."""
    client = S.mock_client(S.reply("chat_basic"), is_async)
    kwargs = {} if tier is None else {"service_tier": tier}
    await S.call(client, "chat.completions.create", model="gpt-4o-mini",
                 messages=[{"role": "user", "content": S.QUESTION}], **kwargs)
    attrs = S.only_span(span_exporter).attributes
    assert attrs.get(sc.OPENAI_REQUEST_SERVICE_TIER) == (tier if tier in ("default", "flex") else None)
    assert attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] == "default"
    assert attrs[sc.OPENAI_API_TYPE] == "chat_completions"
