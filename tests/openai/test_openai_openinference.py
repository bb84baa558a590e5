"""INSTRUMENTORS_SEMCONV=openinference / both on OpenAI spans: the same extraction rendered
in OpenInference names (what Phoenix reads), content gated exactly as in gen_ai mode."""

from __future__ import annotations

import json

import pytest

import openai_scenarios as S
from instrumentors import _semconv as sc
from instrumentors.openai import OpenAIInstrumentor

pytest.importorskip("openinference.semconv.trace")


@pytest.fixture
def instrument_in(tracer_provider, set_config):
    """``instrument_in("openinference", capture_content=True)``: the instrumentor with a
    convention chosen before instrument() (that is when the renderer is chosen)."""
    instrumentors = []

    def start(semconv: str, **config):
        set_config(semconv=semconv, **config)
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        instrumentors.append(instrumentor)

    yield start
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


async def _chat(scenario: str, is_async: bool):
    s = S.SCENARIOS[scenario]
    client = S.mock_client(S.reply(scenario), is_async)
    return await S.call(client, s.method, **s.kwargs)


async def test_openinference_chat_capture_off(instrument_in, span_exporter, is_async):
    instrument_in("openinference")
    await _chat("chat_basic", is_async)
    attrs = dict(S.only_span(span_exporter).attributes)
    assert attrs["openinference.span.kind"] == "LLM"
    assert attrs["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert attrs["llm.provider"] == "openai" and attrs["llm.system"] == "openai"
    assert attrs["llm.token_count.prompt"] == 24
    assert attrs["llm.token_count.completion"] == 8
    assert attrs["llm.token_count.total"] == 32
    assert attrs["llm.token_count.prompt_details.cache_read"] == 16
    assert json.loads(attrs["llm.invocation_parameters"]) == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "seed": 42, "stop": ["\n\n"],
        "frequency_penalty": 0.1, "presence_penalty": 0.2}
    # openinference only: no gen_ai.* names; ours and the general OTel ones stay
    assert not [k for k in attrs if k.startswith("gen_ai.")]
    assert attrs[sc.SPAN_KIND] == "llm" and attrs[sc.SERVER_ADDRESS] == "api.openai.com"
    assert sc.SYSTEM_PROMPT_HASH in attrs
    # capture off: no text in any convention
    written = S.everything_written(S.only_span(span_exporter))
    assert S.QUESTION not in written and S.SYSTEM not in written and "Paris" not in written
    assert not [k for k in attrs if k.startswith(("input.", "output.", "llm.input_messages", "llm.output_messages"))]


async def test_openinference_chat_capture_on_messages(instrument_in, span_exporter, is_async):
    instrument_in("openinference", capture_content=True)
    await _chat("chat_basic", is_async)
    attrs = dict(S.only_span(span_exporter).attributes)
    assert attrs["llm.input_messages.0.message.role"] == "system"
    assert attrs["llm.input_messages.0.message.content"] == S.SYSTEM
    assert attrs["llm.input_messages.1.message.role"] == "user"
    assert attrs["llm.input_messages.1.message.content"] == S.QUESTION
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    answer = attrs["llm.output_messages.0.message.content"]
    assert answer and attrs["output.value"] == answer and attrs["output.mime_type"] == "text/plain"
    assert attrs["input.mime_type"] == "application/json"
    assert json.loads(attrs["input.value"])[-1]["parts"][0]["content"] == S.QUESTION


async def test_openinference_tool_definitions_and_calls(instrument_in, span_exporter, is_async):
    instrument_in("openinference", capture_content=True)
    await _chat("chat_tools", is_async)
    attrs = dict(S.only_span(span_exporter).attributes)
    schemas = [json.loads(v) for k, v in sorted(attrs.items()) if k.startswith("llm.tools.")]
    assert [t["name"] for t in schemas] == ["get_weather", "get_time"]
    calls = {k: v for k, v in attrs.items() if k.startswith("llm.output_messages.0.message.tool_calls.")}
    names = [v for k, v in sorted(calls.items()) if k.endswith("tool_call.function.name")]
    assert names == ["get_weather", "get_time"]
    arguments = [json.loads(v) for k, v in sorted(calls.items()) if k.endswith("tool_call.function.arguments")]
    assert all(isinstance(a, dict) and a for a in arguments)
    assert "output.value" in attrs and attrs["output.mime_type"] == "application/json"  # tool calls: JSON


async def test_both_keeps_gen_ai(instrument_in, span_exporter, is_async):
    instrument_in("both")
    await _chat("chat_basic", is_async)
    attrs = dict(S.only_span(span_exporter).attributes)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 24 and attrs["llm.token_count.prompt"] == 24
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini" and attrs["openinference.span.kind"] == "LLM"


async def test_stream_rendered_at_end(instrument_in, span_exporter, is_async):
    """A streamed call's usage arrives with the last chunk: the span is rendered when it
    ends, so the token counts are there."""
    instrument_in("openinference")
    stream = await _chat("chat_stream_usage", is_async)
    await S.drain(stream)
    attrs = dict(S.only_span(span_exporter).attributes)
    assert attrs["openinference.span.kind"] == "LLM"
    assert isinstance(attrs["llm.token_count.total"], int) and attrs["llm.token_count.total"] > 0
    assert attrs[sc.STREAM_ENDED_BY] == "exhausted"
    assert json.loads(attrs["llm.invocation_parameters"])["stream"] is True


async def test_embeddings_span(instrument_in, span_exporter, is_async):
    instrument_in("openinference")
    await _chat("embeddings_single", is_async)
    attrs = dict(S.only_span(span_exporter).attributes)
    assert attrs["openinference.span.kind"] == "EMBEDDING"
    assert attrs["embedding.model_name"]
    assert attrs["llm.token_count.prompt"] > 0


async def test_gen_ai_default_untouched(instrument_in, span_exporter, is_async):
    """The default convention: the tracer is the plain one; no OpenInference key anywhere."""
    instrument_in("gen_ai")
    await _chat("chat_basic", is_async)
    span = S.only_span(span_exporter)
    assert type(span).__module__.startswith("opentelemetry")
    assert not [k for k in span.attributes if k.startswith(("openinference.", "llm."))]
