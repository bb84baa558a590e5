"""The must-holds: instrument/uninstrument, after-first-use, parentage, context during
HTTP, fail-open, user errors, metrics, privacy, the double-span rule and causal calls."""

from __future__ import annotations

import gc
import json
import logging

import openai
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import openai_scenarios as S
from instrumentors import _semconv as sc
from instrumentors import causal
from instrumentors._spans import attached, context_with_llm_frame, current_llm_frame
from instrumentors.openai import OpenAIInstrumentor, extract, patch

CHAT = S.SCENARIOS["chat_basic"]


async def _chat(client, **overrides):
    return await S.call(client, "chat.completions.create", **{**CHAT.kwargs, **overrides})


# -- instrument / uninstrument ----------------------------------------------------------


def _current_attributes() -> list:
    return [cls.__dict__[name] for cls, name in patch.patch_targets()]


async def test_uninstrument_restores_every_original_and_stops_spans(tracer_provider, span_exporter, is_async):
    originals = _current_attributes()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        wrapped = _current_attributes()
        assert all(w is not o for w, o in zip(wrapped, originals))
        assert all(w.__wrapped__ is o for w, o in zip(wrapped, originals))
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
        assert len(span_exporter.get_finished_spans()) == 1
    finally:
        instrumentor.uninstrument()
    restored = _current_attributes()
    assert all(r is o for r, o in zip(restored, originals))
    span_exporter.clear()
    result = await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    assert result.choices[0].message.content == S.ANSWER
    assert span_exporter.get_finished_spans() == ()


async def test_instrument_twice_does_not_double_wrap(tracer_provider, span_exporter, is_async):
    originals = _current_attributes()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)  # the singleton: a no-op
        patch.install(patch.Telemetry(tracer_provider.get_tracer("x"), patch.GenAIMetrics(None)))  # ours: no-op
        assert all(w.__wrapped__ is o for w, o in zip(_current_attributes(), originals))
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
        assert [s.name for s in span_exporter.get_finished_spans()] == ["chat gpt-4o-mini"]
    finally:
        instrumentor.uninstrument()
    assert all(r is o for r, o in zip(_current_attributes(), originals))


async def test_instrument_uninstrument_instrument_gives_one_span_per_call(tracer_provider, span_exporter, is_async):
    instrumentor = OpenAIInstrumentor()
    client = S.mock_client(S.reply("chat_basic"), is_async)
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        await _chat(client)
        await _chat(client)
    finally:
        instrumentor.uninstrument()
    assert [s.name for s in span_exporter.get_finished_spans()] == ["chat gpt-4o-mini"] * 2


async def test_instrumented_after_first_use_traces_cached_raw_wrappers(tracer_provider, span_exporter, is_async):
    client = S.mock_client(S.reply("chat_basic"), is_async)
    # First use before instrumenting: openai caches .with_raw_response /
    # .with_streaming_response with the *original* bound create.
    await _chat(client)
    raw = await S.call(client, "chat.completions.with_raw_response.create", **CHAT.kwargs)
    raw.parse()
    cached_raw = client.chat.completions.with_raw_response
    cached_streaming = client.chat.completions.with_streaming_response
    assert span_exporter.get_finished_spans() == ()

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert client.chat.completions.with_raw_response is cached_raw  # still the cached wrapper
        await _chat(client)
        raw = await S.call(client, "chat.completions.with_raw_response.create", **CHAT.kwargs)
        assert raw.parse().choices[0].message.content == S.ANSWER
        manager = cached_streaming.create(**CHAT.kwargs)
        if is_async:
            async with manager as response:
                await response.parse()
        else:
            with manager as response:
                response.parse()
    finally:
        instrumentor.uninstrument()
    spans = span_exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 3
    assert all(s.attributes[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-CRc4basic0001" for s in spans)


# -- context ----------------------------------------------------------------------------


async def test_span_nests_under_the_callers_span(instrument, tracer_provider, span_exporter, is_async):
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    llm, app = span_exporter.get_finished_spans()
    assert (llm.name, app.name) == ("chat gpt-4o-mini", "handle request")
    assert llm.parent.span_id == parent.get_span_context().span_id
    assert llm.context.trace_id == parent.get_span_context().trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_openai_span_is_current_during_the_http_call(instrument, span_exporter, is_async):
    seen = []
    handler = S.reply("chat_basic")

    def transport(request):
        seen.append(trace.get_current_span().get_span_context())
        return handler(request)

    await _chat(S.mock_client(transport, is_async))
    span = S.only_span(span_exporter)
    assert len(seen) == 1
    assert seen[0].span_id == span.context.span_id
    assert seen[0].trace_id == span.context.trace_id


# -- fail-open --------------------------------------------------------------------------


def _spy_process_response(monkeypatch, is_async) -> list:
    """Remember what the SDK itself returned, to prove the caller gets that very object."""
    from openai._base_client import AsyncAPIClient, SyncAPIClient

    returned = []
    cls = AsyncAPIClient if is_async else SyncAPIClient
    original = cls._process_response
    if is_async:
        async def spy(self, **kwargs):
            out = await original(self, **kwargs)
            returned.append(out)
            return out
    else:
        def spy(self, **kwargs):
            out = original(self, **kwargs)
            returned.append(out)
            return out
    monkeypatch.setattr(cls, "_process_response", spy)
    return returned


def _boom(*args, **kwargs):
    raise RuntimeError("injected failure in our extraction code")


@pytest.fixture
def fresh_error_log(monkeypatch):
    """Internal errors are logged once a minute per place: start each test afresh."""
    from instrumentors import _spans

    monkeypatch.setattr(_spans, "_reported", {})


async def test_failure_reading_the_response_returns_the_identical_object(
        instrument, span_exporter, monkeypatch, caplog, fresh_error_log, is_async):
    returned = _spy_process_response(monkeypatch, is_async)
    monkeypatch.setattr(extract._Chat, "result", _boom)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        result = await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    assert result is returned[0]
    assert result.choices[0].message.content == S.ANSWER
    span = S.only_span(span_exporter)  # ended anyway, with what was known at the start
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert sc.GEN_AI_RESPONSE_ID not in span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert "internal error in openai.response" in caplog.text


async def test_failure_reading_the_request_passes_the_call_through(
        instrument, span_exporter, monkeypatch, caplog, fresh_error_log, is_async):
    returned = _spy_process_response(monkeypatch, is_async)
    monkeypatch.setattr(extract._Chat, "request_attributes", _boom)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        result = await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    assert result is returned[0]
    assert span_exporter.get_finished_spans() == ()
    assert "internal error in openai.request" in caplog.text


async def test_failure_in_the_stream_observer_keeps_every_chunk(instrument, span_exporter, monkeypatch, is_async):
    monkeypatch.setattr(extract._ChoicesAccumulator, "add", _boom)
    stream = await _chat(S.mock_client(S.reply("chat_stream_usage"), is_async), stream=True,
                         stream_options={"include_usage": True})
    chunks = await S.drain(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == S.STREAM_TEXT
    assert S.only_span(span_exporter).attributes[sc.STREAM_ENDED_BY] == "exhausted"


# -- the user's own errors --------------------------------------------------------------


def _error_handler(status: int, body: dict):
    httpx = S.http_module()
    return lambda request: httpx.Response(status, json=body)


async def test_api_status_error_propagates_unchanged_and_is_recorded(
        instrument, span_exporter, monkeypatch, is_async):
    from openai._base_client import BaseClient

    created = []
    original = BaseClient._make_status_error_from_response

    def spy(self, response):
        err = original(self, response)
        created.append(err)
        return err

    monkeypatch.setattr(BaseClient, "_make_status_error_from_response", spy)
    body = {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests",
                      "param": None, "code": "rate_limit_exceeded"}}
    client = S.mock_client(_error_handler(429, body), is_async)
    with pytest.raises(openai.RateLimitError) as excinfo:
        await _chat(client)
    assert excinfo.value is created[0]
    span = S.only_span(span_exporter)
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "RateLimitError"
    assert sc.GEN_AI_RESPONSE_ID not in span.attributes
    assert [e.name for e in span.events] == ["exception"]


async def test_timeout_propagates_unchanged_and_is_recorded(instrument, span_exporter, is_async):
    httpx = S.http_module()

    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(openai.APITimeoutError) as excinfo:
        await _chat(S.mock_client(handler, is_async))
    span = S.only_span(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "APITimeoutError"
    assert span.events[0].attributes["exception.type"].endswith("APITimeoutError")
    assert type(excinfo.value) is openai.APITimeoutError


# -- metrics ----------------------------------------------------------------------------


def _points(metric_reader) -> dict:
    out = {}
    data = metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


async def test_metrics_duration_and_token_usage(instrument, metric_reader, is_async):
    await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    points = _points(metric_reader)
    common = {
        sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18", sc.SERVER_ADDRESS: "api.openai.com", sc.SERVER_PORT: 443,
    }
    (duration,) = points[sc.METRIC_OPERATION_DURATION]
    assert dict(duration.attributes) == common
    assert duration.count == 1 and duration.sum > 0
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p for p in points[sc.METRIC_TOKEN_USAGE]}
    assert (tokens["input"].sum, tokens["output"].sum) == (24, 8)
    assert dict(tokens["input"].attributes) == {**common, sc.GEN_AI_TOKEN_TYPE: "input"}


async def test_metrics_for_a_stream_and_an_error(instrument, metric_reader, is_async):
    stream = await _chat(S.mock_client(S.reply("chat_stream_usage"), is_async), stream=True,
                         stream_options={"include_usage": True})
    await S.drain(stream)
    with pytest.raises(openai.InternalServerError):
        await _chat(S.mock_client(_error_handler(500, {"error": {"message": "oops"}}), is_async))
    points = _points(metric_reader)
    errors = sorted(p.attributes.get(sc.ERROR_TYPE, "") for p in points[sc.METRIC_OPERATION_DURATION])
    assert errors == ["", "InternalServerError"]
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in points[sc.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": 13, "output": 6}


# -- privacy ----------------------------------------------------------------------------

SECRET_TEXTS = [
    S.SYSTEM, S.QUESTION, S.ANSWER, S.TOOLS_QUESTION, "Paris, France", "Europe/Paris", "sunny", "14:05",
    S.STREAM_TEXT, " three", S.RESP_QUESTION, S.RESP_ANSWER, S.RESP_INSTRUCTIONS, "Bonjour", S.EMBED_TEXT,
    S.EMBED_BATCH[0], S.LEGACY_PROMPT, "Scoops",
]


@pytest.mark.parametrize("name", ["chat_basic", "chat_tools", "chat_tool_result", "chat_stream_usage",
                                  "chat_stream_tools", "responses_basic", "responses_stream", "embeddings_single",
                                  "embeddings_batch", "completions_legacy", "completions_stream"])
async def test_no_text_anywhere_with_capture_off(instrument, span_exporter, caplog, name, is_async):
    scenario = S.SCENARIOS[name]
    client = S.mock_client(S.reply(name), is_async)
    with caplog.at_level(logging.DEBUG, logger="instrumentors"):
        result = await S.call(client, scenario.method, **scenario.kwargs)
        if scenario.kwargs.get("stream"):
            await S.drain(result)
    written = "\n".join(S.everything_written(s) for s in span_exporter.get_finished_spans()) + caplog.text
    assert span_exporter.get_finished_spans()
    leaked = [t for t in SECRET_TEXTS if t in written]
    assert leaked == []


# -- double-span rule and causal calls --------------------------------------------------


@pytest.fixture
def causal_calls(monkeypatch):
    calls = []

    def consume(inputs, parent=None, hand_over=False):
        calls.append(("consume", list(inputs), trace.get_current_span(parent)))
        return causal.Consumption(attributes={sc.CAUSAL_SOURCE_COUNT: 0})

    def produce(span, outputs, linkable=True, attributes=None, consumption=None):
        calls.append(("produce", [(o.text, o.kind) for o in outputs], span.is_recording()))

    monkeypatch.setattr(causal, "consume", consume)
    monkeypatch.setattr(causal, "produce", produce)
    return calls


async def test_causal_consume_before_start_and_produce_before_end(instrument, tracer_provider, span_exporter,
                                                                   causal_calls, is_async):
    with tracer_provider.get_tracer("app").start_as_current_span("app") as app:
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    (consume, inputs, parent), (produce, outputs, recording) = causal_calls
    assert consume == "consume" and inputs == [S.SYSTEM, S.QUESTION]
    assert parent is app  # consume sees the context the span starts in
    assert produce == "produce" and outputs == [(S.ANSWER, "generation")]
    assert recording is True  # produce ran before the span ended
    assert span_exporter.get_finished_spans()[0].attributes[sc.CAUSAL_SOURCE_COUNT] == 0


async def test_causal_produce_for_streamed_tool_calls(instrument, causal_calls, is_async):
    scenario = S.SCENARIOS["chat_stream_tools"]
    await S.drain(await _chat(S.mock_client(S.reply("chat_stream_tools"), is_async), **scenario.kwargs))
    assert causal_calls[-1] == ("produce", [(S.WEATHER_ARGS, "tool_call"), (S.TIME_ARGS, "tool_call")], True)


async def test_nested_under_a_framework_llm_span(instrument, tracer_provider, span_exporter, causal_calls, is_async):
    tracer = tracer_provider.get_tracer("framework")
    framework = tracer.start_span("chat ChatOpenAI")
    with attached(context_with_llm_frame(framework)):
        frame = current_llm_frame()
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    framework.end()
    assert frame.child_reported_usage is True
    assert causal_calls == []  # the framework span links content, not the client span
    client_span, outer = span_exporter.get_finished_spans()
    assert client_span.parent.span_id == outer.context.span_id
    assert client_span.kind is SpanKind.CLIENT
    assert client_span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 24


async def test_no_client_span_when_nested_client_spans_is_off(instrument, tracer_provider, span_exporter,
                                                               set_config, causal_calls, is_async):
    set_config(nested_client_spans=False)
    framework = tracer_provider.get_tracer("framework").start_span("chat ChatOpenAI")
    with attached(context_with_llm_frame(framework)):
        frame = current_llm_frame()
        result = await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    framework.end()
    assert result.choices[0].message.content == S.ANSWER
    assert [s.name for s in span_exporter.get_finished_spans()] == ["chat ChatOpenAI"]
    assert frame.child_reported_usage is False  # the framework span keeps gen_ai.usage.*
    assert causal_calls == []


# -- bounded memory ---------------------------------------------------------------------


async def test_per_client_cache_is_bounded_by_live_clients(instrument, is_async):
    for _ in range(20):
        client = S.mock_client(S.reply("chat_basic"), is_async)
        await _chat(client)
        del client
    gc.collect()
    assert len(patch._servers) <= 1


def test_sse_parser_reassembles_split_events_and_bounds_its_buffer(monkeypatch):
    body = S.chat_stream_body(include_usage=True)
    parser = patch.SSEParser()
    events = []
    for i in range(0, len(body), 7):  # events split at arbitrary byte boundaries
        events += parser.feed(body[i:i + 7])
    events += parser.close()
    assert len(events) == 9 and events[-1]["usage"]["prompt_tokens"] == 13
    crlf = patch.SSEParser().feed(b'data: {"a": 1}\r\n\r\ndata: [DONE]\r\n\r\n')
    assert crlf == [{"a": 1}]
    monkeypatch.setattr(patch, "MAX_RAW_BODY", 64)
    bounded = patch.SSEParser()
    bounded.feed(b"data: " + b"x" * 100)
    assert bounded.buf == b"" and bounded.data == []


async def test_raw_body_over_the_limit_is_not_decoded(instrument, span_exporter, monkeypatch, is_async):
    monkeypatch.setattr(patch, "MAX_RAW_BODY", 16)
    raw = await S.call(S.mock_client(S.reply("chat_basic"), is_async),
                       "chat.completions.with_raw_response.create", **CHAT.kwargs)
    assert raw.parse().choices[0].message.content == S.ANSWER
    span = S.only_span(span_exporter)
    assert sc.GEN_AI_RESPONSE_ID not in span.attributes
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"


@pytest.mark.parametrize("capture", [False, True])
def test_tool_definitions_are_bounded(set_config, capture):
    set_config(max_attribute_length=64, capture_content=capture)
    from instrumentors._content import tool_definitions

    tools = extract.OPERATIONS["/chat/completions"].tools({"tools": [S.WEATHER_TOOL] * 10})
    value = tool_definitions(tools)
    assert len(value) == 64
    assert value.startswith('[{"type":"function","name":"get_weather"')


# -- switches ---------------------------------------------------------------------------


async def test_instrument_all_and_uninstrument_all(tracer_provider, span_exporter, is_async):
    import instrumentors

    originals = _current_attributes()
    try:
        assert "openai" in instrumentors.instrument_all(tracer_provider=tracer_provider,
                                                        enabled_libraries={"openai"})
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    finally:
        instrumentors.uninstrument_all()
    assert [s.name for s in span_exporter.get_finished_spans()] == ["chat gpt-4o-mini"]
    assert all(r is o for r, o in zip(_current_attributes(), originals))


async def test_disabled_library_is_not_patched(tracer_provider, span_exporter, set_config, is_async):
    set_config(enabled_libraries=frozenset({"langchain", "llama_index"}))  # e.g. INSTRUMENTORS_DISABLED=openai
    originals = _current_attributes()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert all(r is o for r, o in zip(_current_attributes(), originals))
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    finally:
        instrumentor.uninstrument()
    assert span_exporter.get_finished_spans() == ()


async def test_nested_stream_reports_usage_to_the_frame_when_it_ends(instrument, tracer_provider, span_exporter,
                                                                     causal_calls, is_async):
    framework = tracer_provider.get_tracer("framework").start_span("chat ChatOpenAI")
    with attached(context_with_llm_frame(framework)):
        frame = current_llm_frame()
        stream = await _chat(S.mock_client(S.reply("chat_stream_usage"), is_async), stream=True,
                             stream_options={"include_usage": True})
    assert frame.child_reported_usage is False  # usage arrives with the last chunk
    await S.drain(stream)
    framework.end()
    assert frame.child_reported_usage is True
    assert causal_calls == []
    client_span, outer = span_exporter.get_finished_spans()
    assert client_span.parent.span_id == outer.context.span_id
    assert client_span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6


async def test_a_root_call_writes_its_digests_but_registers_nothing_no_span_could_consume(
        instrument, tracer_provider, span_exporter, is_async, set_config):
    from instrumentors.causal.registry import REGISTRY

    REGISTRY.clear()
    await _chat(S.mock_client(S.reply("chat_basic"), is_async))  # no current span: a root
    (root,) = span_exporter.get_finished_spans()
    assert root.parent is None
    assert root.attributes[sc.CAUSAL_PRODUCED_DIGESTS][0].startswith("fp1 k=5")  # digests still written
    assert REGISTRY.stats()["sources"] == 0  # its trace can gain no consumer: nothing kept for one
    with tracer_provider.get_tracer("app").start_as_current_span("app"):
        await _chat(S.mock_client(S.reply("chat_basic"), is_async))
        assert REGISTRY.stats()["sources"] == 1  # inside a trace: a later call there can link to it
        await _chat(S.mock_client(S.reply("chat_basic"), is_async), messages=[
            {"role": "user", "content": f"Rephrase: {S.ANSWER}"}])
    second = span_exporter.get_finished_spans()[2]
    assert second.attributes[sc.CAUSAL_SOURCE_COUNT] == 1 and len(second.links) == 1
    REGISTRY.clear()
    set_config(causal_scope="process")  # any later trace may consume: registered as before
    await _chat(S.mock_client(S.reply("chat_basic"), is_async))
    assert REGISTRY.stats()["sources"] == 1
