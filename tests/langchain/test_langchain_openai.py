"""ChatOpenAI under LangChain, replayed from cassettes: the whole RAG tree with the OpenAI
client span nested under the LangChain chat span (one trace in invoke, stream, ainvoke
and astream), usage never double counted with the OpenAI instrumentor on, and never
lost with it off; tool calling and structured output."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind

from instrumentors import _semconv as sc

import langchain_scenarios as S
from langchain_helpers import canonical, QUESTION, expected_ranking, one, parent_of, tree

CHAT = "chat gpt-4o-mini"

RAG_TREE_OPENAI = [
    ("RunnableSequence", [
        ("RunnableParallel<context,question>", [
            ("RunnableSequence", [
                ("retrieval InMemoryVectorStore", [("embeddings", [])]),
                ("format_docs", []),
            ]),
            ("RunnablePassthrough", []),
        ]),
        ("ChatPromptTemplate", []),
        (CHAT, [(CHAT, [])]),
        ("StrOutputParser", []),
    ])
]
RAG_TREE_LANGCHAIN_ONLY = [
    ("RunnableSequence", [
        ("RunnableParallel<context,question>", [
            ("RunnableSequence", [
                ("retrieval InMemoryVectorStore", [("embeddings", [])]),
                ("format_docs", []),
            ]),
            ("RunnablePassthrough", []),
        ]),
        ("ChatPromptTemplate", []),
        (CHAT, []),
        ("StrOutputParser", []),
    ])
]


@pytest.fixture
def openai_on(tracer_provider, meter_provider):
    from instrumentors.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def model():
    return S.chat_model()


def _chat_spans(spans: list) -> tuple:
    """(the LangChain chat span, the OpenAI client span or None)."""
    lc_chat = [s for s in spans if s.name == CHAT and s.attributes.get(sc.LIBRARY) == "langchain"]
    client = [s for s in spans if s.attributes.get(sc.LIBRARY) == "openai"]
    assert len(lc_chat) == 1, [s.name for s in spans]
    assert len(client) <= 1
    return lc_chat[0], (client[0] if client else None)


def _usage_sums(spans: list) -> tuple:
    return (sum(s.attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS, 0) for s in spans),
            sum(s.attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 0) for s in spans))


def _assert_one_trace(spans: list) -> None:
    assert len({s.context.trace_id for s in spans}) == 1
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["RunnableSequence"]


LC_CHAT_REQUEST = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: S.MODEL,
    sc.GEN_AI_REQUEST_TEMPERATURE: 0.0,
    sc.SPAN_KIND: sc.KIND_LLM,
    sc.LIBRARY: "langchain",
    sc.COMPONENT: "ChatOpenAI",
}


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_invoke.yaml")
def test_rag_invoke_whole_tree_openai_on(lc, openai_on, model, span_exporter, metric_reader):
    chain = S.rag(model)
    span_exporter.clear()
    assert chain.invoke(QUESTION) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_OPENAI)
    _assert_one_trace(spans)

    chat, client = _chat_spans(spans)
    assert parent_of(spans, client) is chat
    assert chat.kind == client.kind == SpanKind.CLIENT
    assert dict(chat.attributes) == {
        **LC_CHAT_REQUEST,
        sc.GEN_AI_RESPONSE_ID: "chatcmpl-CHrAG1nvoke0001",
        sc.GEN_AI_RESPONSE_MODEL: S.RESPONSE_MODEL,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: S.FINGERPRINT,
        sc.OPENAI_RESPONSE_SERVICE_TIER: "default",
        # the client span below reports gen_ai.usage.*; this span keeps its numbers aside
        sc.USAGE_REPORTED_BY_CHILD: True,
        sc.USAGE_INPUT_TOKENS: S.RAG_USAGE[0],
        sc.USAGE_OUTPUT_TOKENS: S.RAG_USAGE[1],
    }
    assert client.attributes[sc.GEN_AI_REQUEST_MODEL] == S.MODEL
    assert client.attributes[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-CHrAG1nvoke0001"
    assert client.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == S.RAG_USAGE[0]
    assert client.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == S.RAG_USAGE[1]
    assert _usage_sums(spans) == S.RAG_USAGE

    retrieval = one(spans, "retrieval InMemoryVectorStore")
    assert retrieval.attributes[sc.GEN_AI_REQUEST_TOP_K] == 2
    assert [d["id"] for d in json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS])] == [
        i for i, _ in expected_ranking(QUESTION, 2)]
    assert one(spans, "ChatPromptTemplate").attributes[sc.SPAN_KIND] == sc.KIND_PROMPT
    assert one(spans, "StrOutputParser").attributes[sc.SPAN_KIND] == sc.KIND_PARSER

    # token metrics: recorded once (by the client span), never twice
    tokens = {}
    for rm in metric_reader.get_metrics_data().resource_metrics:
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                if metric.name == sc.METRIC_TOKEN_USAGE:
                    for p in metric.data.data_points:
                        tokens[p.attributes[sc.GEN_AI_TOKEN_TYPE]] = tokens.get(p.attributes[sc.GEN_AI_TOKEN_TYPE], 0) + p.sum
    assert tokens == {"input": S.RAG_USAGE[0], "output": S.RAG_USAGE[1]}


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_invoke.yaml")
def test_rag_invoke_openai_off_langchain_span_has_full_usage(lc, model, span_exporter):
    chain = S.rag(model)
    span_exporter.clear()
    assert chain.invoke(QUESTION) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_LANGCHAIN_ONLY)
    chat, client = _chat_spans(spans)
    assert client is None
    assert chat.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == S.RAG_USAGE[0]
    assert chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == S.RAG_USAGE[1]
    assert sc.USAGE_REPORTED_BY_CHILD not in chat.attributes
    assert _usage_sums(spans) == S.RAG_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_invoke.yaml")
def test_nested_client_spans_off_keeps_usage_on_langchain_span(lc, openai_on, model, span_exporter, set_config):
    set_config(nested_client_spans=False)
    chain = S.rag(model)
    span_exporter.clear()
    chain.invoke(QUESTION)
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_LANGCHAIN_ONLY)
    chat, client = _chat_spans(spans)
    assert client is None
    assert _usage_sums(spans) == S.RAG_USAGE
    assert chat.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == S.RAG_USAGE[0]


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_invoke.yaml")
async def test_rag_ainvoke_openai_span_nests_and_shares_trace(lc, openai_on, model, span_exporter):
    chain = S.rag(model)
    span_exporter.clear()
    assert await chain.ainvoke(QUESTION) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_OPENAI)
    _assert_one_trace(spans)
    chat, client = _chat_spans(spans)
    assert parent_of(spans, client) is chat
    assert _usage_sums(spans) == S.RAG_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_stream.yaml")
def test_rag_stream_openai_span_nests_and_shares_trace(lc, openai_on, model, span_exporter):
    chain = S.rag(model)
    span_exporter.clear()
    chunks = list(chain.stream(QUESTION))
    assert "".join(chunks) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_OPENAI)
    _assert_one_trace(spans)
    chat, client = _chat_spans(spans)
    assert parent_of(spans, client) is chat
    assert chat.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert client.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert chat.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert chat.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert chat.attributes[sc.GEN_AI_RESPONSE_MODEL] == S.RESPONSE_MODEL
    assert chat.attributes[sc.USAGE_REPORTED_BY_CHILD] is True
    assert (chat.attributes[sc.USAGE_INPUT_TOKENS], chat.attributes[sc.USAGE_OUTPUT_TOKENS]) == S.RAG_STREAM_USAGE
    assert _usage_sums(spans) == S.RAG_STREAM_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_stream.yaml")
async def test_rag_astream_openai_span_nests_and_shares_trace(lc, openai_on, model, span_exporter):
    chain = S.rag(model)
    span_exporter.clear()
    chunks = [c async for c in chain.astream(QUESTION)]
    assert "".join(chunks) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE_OPENAI)
    _assert_one_trace(spans)
    chat, client = _chat_spans(spans)
    assert parent_of(spans, client) is chat
    assert _usage_sums(spans) == S.RAG_STREAM_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("rag_stream.yaml")
def test_model_stream_alone_is_one_trace(lc, openai_on, span_exporter):
    """No chain, no user span: the chat span is the root and the client span its child."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from langchain_helpers import DOCS, SYSTEM_TEMPLATE, format_docs

    by_id = {d.id: d for d in DOCS}
    context = format_docs([by_id[i] for i, _ in expected_ranking(QUESTION, 2)])
    messages = [SystemMessage(SYSTEM_TEMPLATE.format(context=context)), HumanMessage(QUESTION)]
    assert "".join(c.content for c in S.chat_model().stream(messages)) == S.RAG_ANSWER
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([(CHAT, [(CHAT, [])])])
    assert len({s.context.trace_id for s in spans}) == 1


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
def test_bind_tools(lc, openai_on, capture, model, span_exporter):
    message = model.bind_tools([S.get_weather]).invoke(S.TOOLS_QUESTION)
    assert message.tool_calls == [{"name": "get_weather", "args": {"location": "Paris, France"},
                                   "id": "call_Wx7pQ2", "type": "tool_call"}]
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([(CHAT, [(CHAT, [])])])
    chat, client = _chat_spans(spans)
    assert chat.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert json.loads(chat.attributes[sc.GEN_AI_TOOL_DEFINITIONS]) == [{
        "type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
        "parameters": {"properties": {"location": {"type": "string"}}, "required": ["location"],
                       "type": "object"},
    }]
    assert chat.attributes[sc.GEN_AI_TOOL_DEFINITIONS] == client.attributes[sc.GEN_AI_TOOL_DEFINITIONS]
    assert json.loads(chat.attributes[sc.RESPONSE_TOOL_CALLS]) == [
        {"id": "call_Wx7pQ2", "name": "get_weather", "type": "function"}]
    assert json.loads(chat.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_Wx7pQ2", "name": "get_weather",
                   "arguments": {"location": "Paris, France"}}],
        "finish_reason": "tool_call",
    }]
    assert chat.attributes[sc.GEN_AI_OUTPUT_MESSAGES] == client.attributes[sc.GEN_AI_OUTPUT_MESSAGES]
    assert chat.attributes[sc.GEN_AI_INPUT_MESSAGES] == client.attributes[sc.GEN_AI_INPUT_MESSAGES]
    assert _usage_sums(spans) == S.TOOLS_USAGE


@pytest.mark.vcr
@pytest.mark.default_cassette("structured.yaml")
def test_with_structured_output(lc, openai_on, model, span_exporter):
    result = model.with_structured_output(S.CityAnswer).invoke(S.STRUCTURED_QUESTION)
    assert result == S.CityAnswer(city="Paris", country="France")
    spans = span_exporter.get_finished_spans()
    chat, client = _chat_spans(spans)
    assert parent_of(spans, client) is chat
    assert chat.attributes[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert client.attributes[sc.GEN_AI_OUTPUT_TYPE] == "json"
    # model | parsing step(s): which runnables parse differs between langchain-openai versions
    (root_name, children), = tree(spans)
    assert root_name == "RunnableSequence"
    assert (CHAT, [(CHAT, [])]) in children
    assert len(children) >= 2
    assert len({s.context.trace_id for s in spans}) == 1
    assert _usage_sums(spans) == S.STRUCTURED_USAGE

