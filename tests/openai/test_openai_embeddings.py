"""embeddings.create (single, batch, an OpenAI-compatible server) and legacy completions."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import openai_scenarios as S
from instrumentors import _semconv as sc

pytestmark = pytest.mark.usefixtures("instrument")

EMBED = {
    sc.GEN_AI_OPERATION_NAME: "embeddings",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.SERVER_ADDRESS: "api.openai.com",
    sc.SERVER_PORT: 443,
    sc.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
    sc.SPAN_KIND: "embedding",
    sc.LIBRARY: "openai",
    # no gen_ai.request.encoding_formats: the caller passed none (the SDK's own base64
    # wire default is not the caller's request)
    sc.GEN_AI_RESPONSE_MODEL: "text-embedding-3-small",
}


def _span(exporter, name: str):
    span = S.only_span(exporter)
    assert span.name == name
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    return span


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings_single.yaml")
async def test_embeddings_single(span_exporter, set_config, is_async):
    set_config(capture_content=True)  # embeddings have no message attributes either way
    result = await S.run(S.SCENARIOS["embeddings_single"], is_async)
    assert len(result.data) == 1 and len(result.data[0].embedding) == 16
    assert S.attrs(_span(span_exporter, "embeddings text-embedding-3-small")) == {
        **EMBED, sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 16, sc.GEN_AI_USAGE_INPUT_TOKENS: 10}


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings_batch.yaml")
async def test_embeddings_batch(span_exporter, is_async):
    result = await S.run(S.SCENARIOS["embeddings_batch"], is_async)
    assert [len(d.embedding) for d in result.data] == [8, 8, 8]
    assert S.attrs(_span(span_exporter, "embeddings text-embedding-3-small")) == {
        **EMBED, sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 8, sc.GEN_AI_USAGE_INPUT_TOKENS: 12}


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings_batch.yaml")
async def test_embeddings_raw_response_reads_base64_dimensions(span_exporter, is_async):
    raw = await S.run(S.SCENARIOS["embeddings_batch"], is_async, method="embeddings.with_raw_response.create")
    assert len(raw.parse().data) == 3
    attrs = S.attrs(_span(span_exporter, "embeddings text-embedding-3-small"))
    assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 8
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12


@pytest.mark.parametrize("passed", [None, "base64", "float"])
async def test_encoding_formats_only_when_the_caller_passed_one(span_exporter, is_async, passed):
    client = S.mock_client(S.reply("embeddings_batch"), is_async)
    kwargs = {} if passed is None else {"encoding_format": passed}
    result = await S.call(client, "embeddings.create", model="text-embedding-3-small", input=S.EMBED_BATCH,
                          dimensions=8, **kwargs)
    assert len(result.data) == 3
    attrs = S.attrs(_span(span_exporter, "embeddings text-embedding-3-small"))
    assert attrs.get(sc.GEN_AI_REQUEST_ENCODING_FORMATS) == (None if passed is None else (passed,))
    assert attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 8


async def test_encoding_format_sent_by_the_caller_through_client_post(span_exporter, is_async):
    """``client.post`` has no SDK default: the body is exactly what the caller sent."""
    import openai

    client = S.mock_client(S.reply("embeddings_batch"), is_async)
    body = {"model": "text-embedding-3-small", "input": S.EMBED_BATCH, "encoding_format": "base64"}
    response = client.post("/embeddings", body=body, cast_to=openai.types.CreateEmbeddingResponse)
    if is_async:
        response = await response
    assert len(response.data) == 3
    attrs = S.attrs(_span(span_exporter, "embeddings text-embedding-3-small"))
    assert attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("base64",)


def test_caller_encoding_format_reader_for_every_sdk_shape():
    """openai 1.x/2.x attach a closure over the argument, 3.x a functools.partial; the
    reader knows both and says "unknown" (None) for anything else."""
    import functools

    from instrumentors.openai.extract import _caller_encoding_format

    def closure_over(encoding_format):
        def parser(obj):
            return obj if encoding_format else obj
        return parser

    def parse_embedding_response(obj, *, encoding_format):
        return obj

    omit = object()
    assert _caller_encoding_format(closure_over(omit)) is False
    assert _caller_encoding_format(closure_over("base64")) is True
    assert _caller_encoding_format(functools.partial(parse_embedding_response, encoding_format=omit)) is False
    assert _caller_encoding_format(functools.partial(parse_embedding_response, encoding_format="float")) is True
    assert _caller_encoding_format(functools.partial(parse_embedding_response)) is None
    assert _caller_encoding_format(lambda obj: obj) is None
    assert _caller_encoding_format(None) is None


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings_compatible.yaml")
async def test_embeddings_openai_compatible_server(span_exporter, is_async):
    await S.run(S.SCENARIOS["embeddings_compatible"], is_async)
    assert S.attrs(_span(span_exporter, "embeddings nomic-embed-text")) == {
        **EMBED,
        sc.SERVER_ADDRESS: "localhost",
        sc.SERVER_PORT: 11434,
        sc.GEN_AI_REQUEST_MODEL: "nomic-embed-text",
        sc.GEN_AI_RESPONSE_MODEL: "nomic-embed-text",
        sc.GEN_AI_REQUEST_ENCODING_FORMATS: ("float",),
        sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 4,  # from the vectors: no dimensions requested
        sc.GEN_AI_USAGE_INPUT_TOKENS: 9,
    }


LEGACY = {
    sc.GEN_AI_OPERATION_NAME: "text_completion",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.SERVER_ADDRESS: "api.openai.com",
    sc.SERVER_PORT: 443,
    sc.GEN_AI_REQUEST_MODEL: "gpt-3.5-turbo-instruct",
    sc.SPAN_KIND: "llm",
    sc.LIBRARY: "openai",
    sc.GEN_AI_REQUEST_MAX_TOKENS: 16,
    sc.GEN_AI_RESPONSE_MODEL: "gpt-3.5-turbo-instruct:20230824-v2",
    sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
}


@pytest.mark.vcr
@pytest.mark.default_cassette("completions_legacy.yaml")
async def test_legacy_completions(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    result = await S.run(S.SCENARIOS["completions_legacy"], is_async)
    assert result.choices[0].text == S.LEGACY_ANSWER
    attrs = S.attrs(_span(span_exporter, "text_completion gpt-3.5-turbo-instruct"))
    assert json.loads(attrs.pop(sc.GEN_AI_INPUT_MESSAGES)) == [
        {"role": "user", "parts": [{"type": "text", "content": S.LEGACY_PROMPT}]}]
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": S.LEGACY_ANSWER}], "finish_reason": "stop"}]
    assert attrs == {
        **LEGACY,
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.7,
        sc.GEN_AI_RESPONSE_ID: "cmpl-CRc4legacy0001",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 9,
    }


@pytest.mark.vcr
@pytest.mark.default_cassette("completions_stream.yaml")
async def test_legacy_completions_stream(span_exporter, set_config, is_async):
    set_config(capture_content=True)
    chunks = await S.drain(await S.run(S.SCENARIOS["completions_stream"], is_async))
    assert len(chunks) == 8
    attrs = S.attrs(_span(span_exporter, "text_completion gpt-3.5-turbo-instruct"))
    assert attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) >= 0
    assert attrs.pop(sc.STREAM_CHUNK_COUNT) == 8
    assert attrs.pop(sc.STREAM_ENDED_BY) == "exhausted"
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "\n\nScoops of joy!"}], "finish_reason": "stop"}]
    attrs.pop(sc.GEN_AI_INPUT_MESSAGES)
    assert attrs == {
        **LEGACY,
        sc.GEN_AI_REQUEST_STREAM: True,
        sc.GEN_AI_RESPONSE_ID: "cmpl-CRc4legacy0002",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 6,
    }
