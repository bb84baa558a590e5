"""``llama_index.llms.openai.OpenAI`` replayed from cassettes (real OpenAI wire format),
with and without the OpenAI instrumentor: the LlamaIndex LLM span is current during the
client call so the OpenAI span nests under it, usage is never counted twice under
``gen_ai.usage.*``, and nothing is lost when the OpenAI instrumentor is off."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.trace import SpanKind

pytest.importorskip("llama_index.llms.openai")

import li_scenarios as S  # noqa: E402
from instrumentors import _content  # noqa: E402
from instrumentors import _semconv as sc  # noqa: E402

pytestmark = pytest.mark.vcr


@pytest.fixture(params=["sync", "async"])
def is_async(request) -> bool:
    return request.param == "async"


def _run(name, is_async):
    llm = S.make_llm(S.SCENARIOS[name])
    return asyncio.run(S.run(name, llm, is_async))


def _lib(tree, library):
    return [s for s in tree.spans if s.attributes.get(sc.LIBRARY) == library]


CHAT_REQUEST = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.SERVER_ADDRESS: "api.openai.com",
    sc.SERVER_PORT: 443,
    sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
    sc.GEN_AI_REQUEST_MAX_TOKENS: 64,
    sc.SPAN_KIND: sc.KIND_LLM,
    sc.LIBRARY: "llama_index",
    sc.COMPONENT: "OpenAI",
}


def _chat_request() -> dict:
    """CHAT_REQUEST plus the fingerprint of the actual system message (computed at call
    time: the hash is keyed per installation)."""
    return {**CHAT_REQUEST, sc.SYSTEM_PROMPT_HASH: _content.content_hash(S.SYSTEM)}


@pytest.mark.default_cassette("chat.yaml")
def test_chat_without_openai_instrumentor(li, spans, is_async):
    response = _run("chat", is_async)
    assert response.message.content == S.ANSWER
    tree = spans()
    assert tree.names() == ["chat gpt-4o-mini"]
    span = tree.one("chat gpt-4o-mini")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        **_chat_request(),
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-li-chat",
        sc.GEN_AI_RESPONSE_MODEL: S.RESPONSE_MODEL,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 24,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
    }


@pytest.mark.default_cassette("chat.yaml")
def test_chat_with_openai_instrumentor_nests_and_counts_usage_once(li, openai_on, spans, is_async):
    _run("chat", is_async)
    tree = spans()
    [outer] = _lib(tree, "llama_index")
    [inner] = _lib(tree, "openai")
    assert tree.parent(inner) is outer
    assert tree.parent(outer) is None
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.start_time >= outer.start_time and inner.end_time <= outer.end_time
    # The client span reports usage; the LlamaIndex span keeps its numbers aside.
    assert inner.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 24
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in outer.attributes
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in outer.attributes
    assert outer.attributes[sc.USAGE_REPORTED_BY_CHILD] is True
    assert outer.attributes[sc.USAGE_INPUT_TOKENS] == 24
    assert outer.attributes[sc.USAGE_OUTPUT_TOKENS] == 8
    total = sum(s.attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS, 0) for s in tree.spans)
    assert total == 24
    # Both spans fingerprint the same system message the same way.
    assert outer.attributes[sc.SYSTEM_PROMPT_HASH] == inner.attributes[sc.SYSTEM_PROMPT_HASH] \
        == _content.content_hash(S.SYSTEM)


@pytest.mark.default_cassette("chat.yaml")
def test_nested_client_spans_off_keeps_one_span_with_usage(li, openai_on, spans, set_config):
    set_config(nested_client_spans=False, causal_links=False)
    _run("chat", False)
    tree = spans()
    assert [s.attributes[sc.LIBRARY] for s in tree.spans] == ["llama_index"]
    assert tree.one("chat gpt-4o-mini").attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 24


@pytest.mark.default_cassette("stream_chat.yaml")
def test_stream_chat_with_usage_chunk(li, openai_on, spans, capture, is_async):
    chunks = _run("stream_chat", is_async)
    assert chunks[-1].message.content == "".join(S.STREAM_PIECES)
    tree = spans()
    [outer] = _lib(tree, "llama_index")
    [inner] = _lib(tree, "openai")
    # The provider call happens while the stream is read: still nested.
    assert tree.parent(inner) is outer
    assert inner.end_time <= outer.end_time
    attrs = dict(outer.attributes)
    assert attrs.pop(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) > 0
    assert json.loads(attrs.pop(sc.GEN_AI_INPUT_MESSAGES)) == [
        {"role": "system", "parts": [{"type": "text", "content": S.SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": S.QUESTION}]},
    ]
    assert json.loads(attrs.pop(sc.GEN_AI_OUTPUT_MESSAGES)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Paris is the capital."}],
         "finish_reason": "stop"}]
    assert attrs == {
        **_chat_request(),
        sc.GEN_AI_REQUEST_STREAM: True,
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-li-stream",
        sc.GEN_AI_RESPONSE_MODEL: S.RESPONSE_MODEL,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        sc.USAGE_REPORTED_BY_CHILD: True,
        sc.USAGE_INPUT_TOKENS: 21,
        sc.USAGE_OUTPUT_TOKENS: 5,
        sc.STREAM_CHUNK_COUNT: len(chunks),
        sc.STREAM_ENDED_BY: "exhausted",
    }
    assert inner.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 21


@pytest.mark.default_cassette("stream_chat.yaml")
def test_stream_chat_without_openai_instrumentor_keeps_usage(li, spans):
    _run("stream_chat", False)
    span = spans().one("chat gpt-4o-mini")
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 21
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert sc.USAGE_REPORTED_BY_CHILD not in span.attributes


@pytest.mark.default_cassette("complete.yaml")
def test_complete(li, spans, is_async):
    assert str(_run("complete", is_async)) == S.ANSWER
    span = spans().one("text_completion gpt-4o-mini")
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 14
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-li-complete"


@pytest.mark.default_cassette("tools.yaml")
def test_tool_call_response(li, spans, capture, is_async):
    response = _run("tools", is_async)
    span = spans().one("chat gpt-4o-mini")
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    definitions = json.loads(span.attributes[sc.GEN_AI_TOOL_DEFINITIONS])
    assert [(d["type"], d["name"]) for d in definitions] == [("function", "get_weather")]
    assert definitions[0]["parameters"]["required"] == ["location"]
    output = json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES])
    assert output[0]["finish_reason"] == "tool_call"
    assert [p for p in output[0]["parts"] if p["type"] == "tool_call"] == [
        {"type": "tool_call", "id": "call_li_weather", "name": "get_weather", "arguments": {"location": "Paris"}}]
    assert response.message.additional_kwargs["tool_calls"][0].id == "call_li_weather" or any(
        getattr(b, "tool_call_id", None) == "call_li_weather" for b in response.message.blocks)


@pytest.mark.default_cassette("rag.yaml")
def test_rag_query_tree_with_both_instrumentors(li, openai_on, spans, set_config, tracer_provider, is_async):
    set_config(causal_links=True)
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("user request"):
        response = _run("rag", is_async)
    assert str(response) == S.RAG_ANSWER
    tree = spans()
    assert tree.outline() == [
        "user request",
        "  embeddings keyword-embedding",  # building the index
        "  query RetrieverQueryEngine",
        "    retrieval SimpleVectorStore",
        "      embeddings keyword-embedding",
        "    synthesize CompactAndRefine",
        "      chat gpt-4o-mini",
        "        chat gpt-4o-mini",
    ]
    [outer] = [s for s in _lib(tree, "llama_index") if s.name == "chat gpt-4o-mini"]
    retrieval = tree.one("retrieval SimpleVectorStore")
    # Causal: the LLM span links to the retrieval span for the documents in its prompt.
    linked = {(link.context.span_id, link.attributes.get(sc.LINK_DOCUMENT_ID)) for link in outer.links}
    assert (retrieval.context.span_id, "doc-paris") in linked
    assert (retrieval.context.span_id, "doc-berlin") in linked
    [inner] = _lib(tree, "openai")
    assert list(inner.links) == []  # the framework span does the causal work
