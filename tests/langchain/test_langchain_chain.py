"""LCEL chains, chat models, LLMs and tools: span tree, names, kinds and exact attributes
(offline: a fake chat model, fake LLMs, an in-memory vector store)."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.language_models.fake import FakeListLLM, FakeStreamingListLLM
from langchain_core.language_models.llms import LLM
from langchain_core.outputs import GenerationChunk
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _semconv as sc

from langchain_helpers import (
    canonical,
    ANSWER,
    DOCS,
    QUESTION,
    SYSTEM_TEMPLATE,
    answer_message,
    expected_ranking,
    fake_chat,
    format_docs,
    make_store,
    one,
    ordered_children,
    parent_of,
    rag_chain,
    tree,
)

RAG_TREE = [
    ("RunnableSequence", [
        ("RunnableParallel<context,question>", [
            ("RunnableSequence", [
                ("retrieval InMemoryVectorStore", [("embeddings", [])]),
                ("format_docs", []),
            ]),
            ("RunnablePassthrough", []),
        ]),
        ("ChatPromptTemplate", []),
        ("chat fake-gpt-1", []),
        ("StrOutputParser", []),
    ])
]

WORKFLOW = {sc.SPAN_KIND: sc.KIND_WORKFLOW, sc.LIBRARY: "langchain"}


def _ranked_entries(content: bool = False) -> list:
    by_id = {d.id: d for d in DOCS}
    entries = []
    for doc_id, score in expected_ranking(QUESTION):
        doc = by_id[doc_id]
        entry = {"id": doc_id, "score": pytest.approx(score)}
        if content:
            entry["metadata"] = dict(doc.metadata)
            entry["content"] = doc.page_content
        else:
            entry["metadata"] = {k: v for k, v in doc.metadata.items() if k in ("source", "title")}
        entries.append(entry)
    return entries


def _rag_spans(span_exporter) -> dict:
    spans = span_exporter.get_finished_spans()
    assert tree(spans)[-1:] == canonical(RAG_TREE)
    named = {}
    for s in spans:
        if s.name == "RunnableSequence":
            key = "root" if parent_of(spans, s) is None else "retriever_seq"
            named[key] = s
        elif s.name == "embeddings" and parent_of(spans, s) is not None:
            named["query_embedding"] = s
        elif s.name != "embeddings":
            named[s.name] = s
    return named


def test_rag_chain_tree_and_exact_attributes_content_off(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()  # drop the indexing embeddings span

    assert chain.invoke(QUESTION) == ANSWER

    s = _rag_spans(span_exporter)
    spans = span_exporter.get_finished_spans()
    assert ordered_children(spans, s["root"]) == [
        "RunnableParallel<context,question>", "ChatPromptTemplate", "chat fake-gpt-1", "StrOutputParser"]
    assert ordered_children(spans, s["retriever_seq"]) == ["retrieval InMemoryVectorStore", "format_docs"]
    trace_ids = {span.context.trace_id for span in s.values()}
    assert len(trace_ids) == 1
    assert s["root"].parent is None
    for name in ("root", "retriever_seq", "RunnableParallel<context,question>", "format_docs", "RunnablePassthrough"):
        assert s[name].kind == SpanKind.INTERNAL
        assert s[name].status.status_code == StatusCode.UNSET
    assert dict(s["root"].attributes) == {**WORKFLOW, sc.COMPONENT: "RunnableSequence"}
    assert dict(s["format_docs"].attributes) == {**WORKFLOW, sc.COMPONENT: "format_docs"}
    assert dict(s["RunnablePassthrough"].attributes) == {**WORKFLOW, sc.COMPONENT: "RunnablePassthrough"}

    retrieval = s["retrieval InMemoryVectorStore"]
    assert retrieval.kind == SpanKind.CLIENT
    ranking = expected_ranking(QUESTION)
    attrs = dict(retrieval.attributes)
    documents = json.loads(attrs.pop(sc.GEN_AI_RETRIEVAL_DOCUMENTS))
    assert documents == _ranked_entries()
    assert attrs == {
        sc.GEN_AI_OPERATION_NAME: "retrieval",
        sc.SPAN_KIND: sc.KIND_RETRIEVER,
        sc.LIBRARY: "langchain",
        sc.COMPONENT: "VectorStoreRetriever",
        sc.GEN_AI_REQUEST_TOP_K: 4,
        sc.RETRIEVAL_DOCUMENT_COUNT: 4,
        sc.RETRIEVAL_TOP_SCORE: pytest.approx(ranking[0][1]),
        sc.RETRIEVAL_LOWEST_SCORE: pytest.approx(ranking[-1][1]),
        sc.RETRIEVAL_SCORE_ORDER: "higher_is_better",
    }
    assert dict(s["query_embedding"].attributes) == {
        sc.GEN_AI_OPERATION_NAME: "embeddings",
        sc.GEN_AI_PROVIDER_NAME: "keyword",
        sc.SPAN_KIND: sc.KIND_EMBEDDING,
        sc.LIBRARY: "langchain",
        sc.COMPONENT: "KeywordEmbeddings",
        sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 17,
    }

    prompt = s["ChatPromptTemplate"]
    assert set(prompt.attributes) == {sc.SPAN_KIND, sc.LIBRARY, sc.COMPONENT, sc.PROMPT_TEMPLATE_HASH,
                                      sc.SYSTEM_PROMPT_HASH}
    assert prompt.attributes[sc.SPAN_KIND] == sc.KIND_PROMPT
    assert len(prompt.attributes[sc.PROMPT_TEMPLATE_HASH]) == 16

    chat = s["chat fake-gpt-1"]
    assert chat.kind == SpanKind.CLIENT
    assert dict(chat.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "fake",
        sc.GEN_AI_REQUEST_MODEL: "fake-gpt-1",
        sc.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        sc.SPAN_KIND: sc.KIND_LLM,
        sc.LIBRARY: "langchain",
        sc.COMPONENT: "FakeChat",
        sc.GEN_AI_RESPONSE_MODEL: "fake-gpt-1-0001",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 42,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
    }
    parser = s["StrOutputParser"]
    assert dict(parser.attributes) == {sc.SPAN_KIND: sc.KIND_PARSER, sc.LIBRARY: "langchain",
                                       sc.COMPONENT: "StrOutputParser"}


def test_rag_chain_content_on(lc, capture, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    chain.invoke(QUESTION)
    s = _rag_spans(span_exporter)

    context = format_docs([d for d in [next(x for x in DOCS if x.id == i) for i, _ in expected_ranking(QUESTION)]])
    system_text = SYSTEM_TEMPLATE.format(context=context)
    assert json.loads(s["root"].attributes[sc.INPUT_VALUE]) == QUESTION
    assert json.loads(s["root"].attributes[sc.OUTPUT_VALUE]) == ANSWER
    assert json.loads(s["format_docs"].attributes[sc.OUTPUT_VALUE]) == context

    retrieval = s["retrieval InMemoryVectorStore"]
    assert retrieval.attributes[sc.GEN_AI_RETRIEVAL_QUERY_TEXT] == QUESTION
    assert json.loads(retrieval.attributes[sc.GEN_AI_RETRIEVAL_DOCUMENTS]) == _ranked_entries(content=True)

    prompt = s["ChatPromptTemplate"]
    assert prompt.attributes[sc.PROMPT_TEMPLATE] == f"system: {SYSTEM_TEMPLATE}\nuser: {{question}}"

    chat = s["chat fake-gpt-1"]
    assert json.loads(chat.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": system_text}]},
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
    ]
    assert json.loads(chat.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"},
    ]
    assert json.loads(s["StrOutputParser"].attributes[sc.OUTPUT_VALUE]) == ANSWER


def test_content_off_leaks_no_text(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    chain.invoke(QUESTION)
    texts = [QUESTION, ANSWER, "Seine", "Answer using only this context"]
    for span in span_exporter.get_finished_spans():
        blob = json.dumps({k: str(v) for k, v in span.attributes.items()}) + span.name
        blob += json.dumps([str(e.attributes) for e in span.events])
        for text in texts:
            assert text not in blob, (span.name, text)


def test_stream_tree_and_chat_stream_attributes(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    chunks = list(chain.stream(QUESTION))
    assert "".join(chunks) == ANSWER
    s = _rag_spans(span_exporter)
    chat = s["chat fake-gpt-1"]
    assert chat.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert chat.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert chat.attributes[sc.STREAM_CHUNK_COUNT] == len(chunks)
    assert chat.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert len({span.context.trace_id for span in s.values()}) == 1


async def test_ainvoke_and_astream_tree(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    assert await chain.ainvoke(QUESTION) == ANSWER
    _rag_spans(span_exporter)
    span_exporter.clear()
    chunks = [c async for c in chain.astream(QUESTION)]
    assert "".join(chunks) == ANSWER
    s = _rag_spans(span_exporter)
    assert s["chat fake-gpt-1"].attributes[sc.STREAM_ENDED_BY] == "exhausted"


async def test_concurrent_ainvoke_keep_separate_trees(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    results = await asyncio.gather(*(chain.ainvoke(QUESTION) for _ in range(5)))
    assert results == [ANSWER] * 5
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical(RAG_TREE * 5)
    roots = [s for s in spans if s.parent is None]
    assert len({r.context.trace_id for r in roots}) == 5
    for span in spans:
        root = span
        while parent_of(spans, root) is not None:
            root = parent_of(spans, root)
        assert root.context.trace_id == span.context.trace_id


def test_batch_thread_pool_trees(lc, span_exporter, tracer_provider):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    tracer = tracer_provider.get_tracer("user")
    with tracer.start_as_current_span("user.request") as user:
        assert chain.batch([QUESTION] * 4) == [ANSWER] * 4
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([("user.request", RAG_TREE * 4)])
    assert {s.context.trace_id for s in spans} == {user.get_span_context().trace_id}


async def test_abatch_trees(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    assert await chain.abatch([QUESTION] * 3) == [ANSWER] * 3
    assert tree(span_exporter.get_finished_spans()) == canonical(RAG_TREE * 3)


def test_chain_nests_under_user_span(lc, span_exporter, tracer_provider):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    tracer = tracer_provider.get_tracer("user")
    with tracer.start_as_current_span("handle") as user:
        chain.invoke(QUESTION)
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([("handle", RAG_TREE)])
    root = one([s for s in spans if s.parent and s.parent.span_id == user.get_span_context().span_id],
               "RunnableSequence")
    assert root.context.trace_id == user.get_span_context().trace_id


def test_user_span_inside_lambda_nests_under_lambda(lc, span_exporter, tracer_provider):
    tracer = tracer_provider.get_tracer("user")

    def work(x):
        with tracer.start_as_current_span("user.work"):
            return x + 1

    chain = RunnableLambda(work) | RunnableLambda(lambda x: x * 2)
    assert chain.invoke(1) == 4
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([("RunnableSequence", [("work", [("user.work", [])]), ("RunnableLambda", [])])])
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_user_span_inside_async_lambda_nests_under_lambda(lc, span_exporter, tracer_provider):
    tracer = tracer_provider.get_tracer("user")

    async def awork(x):
        with tracer.start_as_current_span("user.awork"):
            await asyncio.sleep(0)
            return x + 1

    chain = RunnableLambda(awork) | RunnablePassthrough()
    assert await chain.ainvoke(1) == 2
    assert tree(span_exporter.get_finished_spans()) == canonical([
        ("RunnableSequence", [("awork", [("user.awork", [])]), ("RunnablePassthrough", [])])])


def test_parallel_and_named_runnables(lc, span_exporter):
    chain = RunnableParallel(a=RunnableLambda(lambda x: x + 1), b=RunnablePassthrough()).with_config(
        run_name="fan_out")
    assert chain.invoke(1) == {"a": 2, "b": 1}
    spans = span_exporter.get_finished_spans()
    assert tree(spans) == canonical([("fan_out", [("RunnableLambda", []), ("RunnablePassthrough", [])])])
    assert one(spans, "fan_out").attributes[sc.SPAN_KIND] == sc.KIND_WORKFLOW


def test_return_value_is_the_same_object(lc):
    marker = object()
    chain = RunnableLambda(lambda _: marker) | RunnablePassthrough()
    assert chain.invoke(None) is marker


def test_user_exception_propagates_unchanged(lc, span_exporter):
    boom = ValueError("boom")

    def fail(_):
        raise boom

    chain = RunnablePassthrough() | RunnableLambda(fail)
    with pytest.raises(ValueError) as info:
        chain.invoke(1)
    assert info.value is boom
    spans = span_exporter.get_finished_spans()
    for name in ("fail", "RunnableSequence"):
        span = one(spans, name)
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes[sc.ERROR_TYPE] == "ValueError"
    assert one(spans, "RunnablePassthrough").status.status_code == StatusCode.UNSET


def test_chat_model_error_recorded(lc, span_exporter):
    model = fake_chat(repeat=False)
    model.invoke("first")
    with pytest.raises(StopIteration):
        model.invoke("second")  # the fake's iterator is exhausted
    spans = span_exporter.get_finished_spans()
    failed = [s for s in spans if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1 and failed[0].name == "chat fake-gpt-1"
    assert failed[0].attributes[sc.ERROR_TYPE] == "StopIteration"


@tool
def get_weather(location: str) -> str:
    """Get the current weather for a city."""
    return f"18C and sunny in {location}"


@tool
def broken_tool(location: str) -> str:
    """Always fails."""
    raise RuntimeError("tool exploded")


def test_tool_span_content_off(lc, span_exporter):
    assert get_weather.invoke({"location": "Paris"}) == "18C and sunny in Paris"
    span = one(span_exporter.get_finished_spans(), "execute_tool get_weather")
    assert span.kind == SpanKind.INTERNAL
    assert dict(span.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "get_weather",
        sc.GEN_AI_TOOL_TYPE: "function",
        sc.SPAN_KIND: sc.KIND_TOOL,
        sc.LIBRARY: "langchain",
        sc.COMPONENT: "get_weather",
    }


def test_tool_call_span_content_on(lc, capture, span_exporter):
    call = {"name": "get_weather", "args": {"location": "Paris"}, "id": "call_abc", "type": "tool_call"}
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage) and result.tool_call_id == "call_abc"
    span = one(span_exporter.get_finished_spans(), "execute_tool get_weather")
    assert span.attributes[sc.GEN_AI_TOOL_CALL_ID] == "call_abc"
    assert json.loads(span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"location": "Paris"}
    assert span.attributes[sc.GEN_AI_TOOL_CALL_RESULT] == "18C and sunny in Paris"


def test_tool_error(lc, span_exporter):
    with pytest.raises(RuntimeError, match="tool exploded"):
        broken_tool.invoke({"location": "Paris"})
    span = one(span_exporter.get_finished_spans(), "execute_tool broken_tool")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "RuntimeError"


def test_tool_calling_chat_model(lc, capture, span_exporter):
    message = AIMessage(
        content="",
        tool_calls=[{"name": "get_weather", "args": {"location": "Paris"}, "id": "call_1", "type": "tool_call"}],
        response_metadata={"model_name": "fake-gpt-1-0001", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 30, "output_tokens": 12, "total_tokens": 42},
    )
    model = fake_chat(message)
    out = model.invoke("What's the weather in Paris?")
    assert out.tool_calls[0]["name"] == "get_weather"
    span = one(span_exporter.get_finished_spans(), "chat fake-gpt-1")
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert json.loads(span.attributes[sc.RESPONSE_TOOL_CALLS]) == [
        {"id": "call_1", "name": "get_weather", "type": "function"}]
    assert json.loads(span.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"location": "Paris"}}],
        "finish_reason": "tool_call",
    }]


def test_tool_messages_in_history(lc, capture, span_exporter):
    history = [
        ("human", "Weather in Paris?"),
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"location": "Paris"}, "id": "c1"}]),
        ToolMessage(content="18C and sunny", tool_call_id="c1"),
    ]
    fake_chat(answer_message("It is sunny.")).invoke(history)
    span = one(span_exporter.get_finished_spans(), "chat fake-gpt-1")
    assert json.loads(span.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather",
                                         "arguments": {"location": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "18C and sunny"}]},
    ]


def test_text_completion_llm(lc, capture, span_exporter):
    llm = FakeListLLM(responses=["alpha", "beta"])
    assert llm.invoke("Say something") == "alpha"
    assert llm.batch(["one", "two"]) == ["beta", "alpha"]
    spans = span_exporter.get_finished_spans()
    assert [s.name for s in spans] == ["text_completion"] * 3
    first = spans[0]
    assert first.kind == SpanKind.CLIENT
    assert first.attributes[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert first.attributes[sc.GEN_AI_PROVIDER_NAME] == "fakelist"
    assert json.loads(first.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say something"}]}]
    assert json.loads(first.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "alpha"}], "finish_reason": "stop"}]


class WordStreamLLM(LLM):
    """A text-completion LLM that really streams through BaseLLM.stream/_stream."""

    @property
    def _llm_type(self) -> str:
        return "word-stream"

    def _call(self, prompt, stop=None, run_manager=None, **kwargs):
        return "streamed text here"

    def _stream(self, prompt, stop=None, run_manager=None, **kwargs):
        for word in ["streamed", " text", " here"]:
            chunk = GenerationChunk(text=word)
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


def test_streaming_llm(lc, span_exporter):
    assert "".join(WordStreamLLM().stream("go")) == "streamed text here"
    span = one(span_exporter.get_finished_spans(), "text_completion")
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "wordstream"
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 3


def test_llm_with_own_stream_method_still_traced(lc, span_exporter):
    llm = FakeStreamingListLLM(responses=["abc"])
    assert "".join(llm.stream("go")) == "abc"
    assert [s.name for s in span_exporter.get_finished_spans()] == ["text_completion"]


def test_metrics_recorded_for_chat(lc, span_exporter, metric_reader):
    fake_chat().invoke("hello")
    data = metric_reader.get_metrics_data()
    points = {}
    for rm in data.resource_metrics:
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points.setdefault(metric.name, []).append(point)
    duration = points[sc.METRIC_OPERATION_DURATION]
    assert len(duration) == 1 and duration[0].count == 1
    assert dict(duration[0].attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "fake",
        sc.GEN_AI_REQUEST_MODEL: "fake-gpt-1", sc.GEN_AI_RESPONSE_MODEL: "fake-gpt-1-0001"}
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in points[sc.METRIC_TOKEN_USAGE]}
    assert tokens == {"input": 42, "output": 7}


def test_embeddings_spans(lc, span_exporter):
    from langchain_helpers import KeywordEmbeddings

    class OpenAIEmbeddings(KeywordEmbeddings):  # a provider class name, as a subclass defined at run time
        model = "text-embedding-3-small"

    emb = OpenAIEmbeddings()
    assert len(emb.embed_documents(["a", "b"])) == 2
    assert len(emb.embed_query("q")) == 17
    spans = span_exporter.get_finished_spans()
    assert [s.name for s in spans] == ["embeddings text-embedding-3-small"] * 2
    for span in spans:
        assert span.kind == SpanKind.CLIENT
        assert dict(span.attributes) == {
            sc.GEN_AI_OPERATION_NAME: "embeddings",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
            sc.SPAN_KIND: sc.KIND_EMBEDDING,
            sc.LIBRARY: "langchain",
            sc.COMPONENT: "OpenAIEmbeddings",
            sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 17,
        }


async def test_async_embeddings_one_span_each(lc, span_exporter):
    from langchain_helpers import KeywordEmbeddings

    emb = KeywordEmbeddings()  # aembed_* from the base class run the sync methods in an executor
    await emb.aembed_query("q")
    await emb.aembed_documents(["a", "b", "c"])
    assert [s.name for s in span_exporter.get_finished_spans()] == ["embeddings", "embeddings"]


async def test_astream_events_still_traces_the_tree(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    events = [e async for e in chain.astream_events(QUESTION, version="v2")]
    assert events[-1]["event"] == "on_chain_end" and events[-1]["data"]["output"] == ANSWER
    assert tree(span_exporter.get_finished_spans()) == canonical(RAG_TREE)


def test_fallbacks_and_retry(lc, span_exporter):
    attempts = []

    def flaky(x):
        attempts.append(x)
        if len(attempts) < 2:
            raise ConnectionError("transient")
        return x * 10

    primary = RunnableLambda(lambda x: 1 / 0).with_config(run_name="primary")
    fallback = RunnableLambda(flaky).with_retry(stop_after_attempt=3, wait_exponential_jitter=False)
    chain = primary.with_fallbacks([fallback])
    assert chain.invoke(4) == 40
    spans = span_exporter.get_finished_spans()
    root = [s for s in spans if s.parent is None]
    assert [r.name for r in root] == ["RunnableWithFallbacks"]
    assert one(spans, "primary").status.status_code == StatusCode.ERROR
    # RunnableRetry: a "flaky" run per attempt under the retry's own "flaky" run
    retry = [s for s in spans if s.name == "flaky" and parent_of(spans, s).name == "RunnableWithFallbacks"]
    assert len(retry) == 1 and retry[0].status.status_code == StatusCode.UNSET
    attempts_spans = sorted((s for s in spans if parent_of(spans, s) is retry[0]), key=lambda s: s.start_time)
    assert [s.name for s in attempts_spans] == ["flaky", "flaky"]
    assert [s.status.status_code for s in attempts_spans] == [StatusCode.ERROR, StatusCode.UNSET]
    assert len({s.context.trace_id for s in spans}) == 1
    assert root[0].status.status_code == StatusCode.UNSET


def test_none_and_odd_inputs_with_capture(lc, capture, span_exporter, caplog):
    import logging

    caplog.set_level(logging.WARNING)

    class Weird:
        def __eq__(self, other):
            raise TypeError("no comparisons")

        __hash__ = object.__hash__

    chain = RunnablePassthrough() | RunnableLambda(lambda _: None)
    assert chain.invoke(None) is None
    weird = Weird()
    assert RunnablePassthrough().invoke(weird) is weird
    spans = span_exporter.get_finished_spans()
    seq = one(spans, "RunnableSequence")
    assert seq.attributes[sc.INPUT_VALUE] == "null"
    assert seq.attributes[sc.OUTPUT_VALUE] == "null"
    assert len([s for s in spans if s.name == "RunnablePassthrough"]) == 2
    assert not [r for r in caplog.records if "Invalid type" in r.getMessage()]
