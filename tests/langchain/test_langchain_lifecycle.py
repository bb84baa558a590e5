"""Instrument/uninstrument, the callback handler's uniqueness, fail-open behaviour, every
span ending (abandoned and closed streams), and bounded run maps."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.llms import BaseLLM
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.runnables import base as runnables_base
from langchain_core.runnables import config as runnables_config
from langchain_core.tools import BaseTool
from langchain_core.tools import base as tools_base
from langchain_core.tracers import context as tracers_context
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from opentelemetry.trace import StatusCode

from instrumentors import _semconv as sc
from instrumentors.langchain import LangChainInstrumentor
from instrumentors.langchain import _handler, _patches, _readers, _retrieval
from instrumentors.langchain._handler import HANDLER, OTelCallbackHandler

from langchain_helpers import (
    ANSWER,
    QUESTION,
    KeywordEmbeddings,
    answer_message,
    fake_chat,
    make_store,
    one,
    rag_chain,
    tree,
)

RAG_SPANS = 10  # spans of one rag_chain call, query embedding included (test_langchain_chain.RAG_TREE)

PATCHED_METHODS = [
    (BaseChatModel, "_generate_with_cache"), (BaseChatModel, "_agenerate_with_cache"),
    (BaseChatModel, "stream"), (BaseChatModel, "astream"),
    (BaseLLM, "_generate_helper"), (BaseLLM, "_agenerate_helper"), (BaseLLM, "stream"), (BaseLLM, "astream"),
    (BaseRetriever, "invoke"), (BaseRetriever, "ainvoke"), (BaseTool, "run"), (BaseTool, "arun"),
    (InMemoryVectorStore, "similarity_search"), (InMemoryVectorStore, "similarity_search_with_score"),
    (InMemoryVectorStore, "_similarity_search_with_score_by_vector"),
    (InMemoryVectorStore, "max_marginal_relevance_search"), (InMemoryVectorStore, "asimilarity_search"),
    (VectorStore, "similarity_search_with_relevance_scores"),
    (KeywordEmbeddings, "embed_query"), (KeywordEmbeddings, "embed_documents"),
    (Embeddings, "aembed_query"),
]
CONFIG_MODULES = [runnables_config, runnables_base, tools_base]


def _snapshot() -> dict:
    snap = {(cls, name): cls.__dict__[name] for cls, name in PATCHED_METHODS}
    for module in CONFIG_MODULES:
        snap[(module, "set_config_context")] = module.__dict__["set_config_context"]
    return snap


def _ours_in_hooks() -> bool:
    return any(hook[0] is _patches._HANDLER_VAR for hook in tracers_context._configure_hooks)


def _handlers(manager) -> list:
    return [h for h in manager.handlers if isinstance(h, OTelCallbackHandler)]


@pytest.fixture
def instrumentor(tracer_provider, span_exporter, set_config):
    set_config(causal_links=False)
    inst = LangChainInstrumentor()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


def test_uninstrument_restores_every_original(instrumentor, tracer_provider):
    before = _snapshot()
    assert not _ours_in_hooks()
    instrumentor.instrument(tracer_provider=tracer_provider)
    during = _snapshot()
    for key, original in before.items():
        assert during[key] is not original, key
        assert during[key].__wrapped__ is original, key
    assert _ours_in_hooks()
    assert "__init_subclass__" in VectorStore.__dict__ and "__init_subclass__" in Embeddings.__dict__
    instrumentor.uninstrument()
    after = _snapshot()
    for key, original in before.items():
        assert after[key] is original, key
    assert not _ours_in_hooks()
    assert "__init_subclass__" not in VectorStore.__dict__
    assert "__init_subclass__" not in Embeddings.__dict__
    assert HANDLER.active is False


def test_instrument_twice_does_not_double_wrap(instrumentor, tracer_provider, span_exporter):
    instrumentor.instrument(tracer_provider=tracer_provider)
    _patches.instrument(HANDLER.tracer, HANDLER.metrics)  # even bypassing BaseInstrumentor's guard
    assert BaseChatModel.__dict__["stream"].__wrapped__.__name__ == "stream"
    assert not hasattr(BaseChatModel.__dict__["stream"].__wrapped__, "__wrapped__")
    assert sum(1 for hook in tracers_context._configure_hooks if hook[0] is _patches._HANDLER_VAR) == 1
    fake_chat().invoke("hi")
    assert [s.name for s in span_exporter.get_finished_spans()] == ["chat fake-gpt-1"]


def test_on_off_on_off_spans_per_call(instrumentor, tracer_provider, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    counts = []
    for on in (True, False, True, False):
        if on:
            instrumentor.instrument(tracer_provider=tracer_provider)
        else:
            instrumentor.uninstrument()
        span_exporter.clear()
        chain.invoke(QUESTION)
        list(chain.stream(QUESTION))
        counts.append(len(span_exporter.get_finished_spans()))
    n = 2 * RAG_SPANS  # invoke and stream
    assert counts == [n, 0, n, 0]


def test_instrumenting_after_use_traces_later_calls(instrumentor, tracer_provider, span_exporter):
    store = make_store()
    model = fake_chat()
    chain = rag_chain(store.as_retriever(), model)
    chain.invoke(QUESTION)
    list(model.stream("warm up"))
    store.similarity_search(QUESTION)
    assert span_exporter.get_finished_spans() == ()
    instrumentor.instrument(tracer_provider=tracer_provider)
    chain.invoke(QUESTION)
    assert len(span_exporter.get_finished_spans()) == RAG_SPANS
    span_exporter.clear()
    list(model.stream("again"))
    store.similarity_search(QUESTION)
    assert sorted(s.name for s in span_exporter.get_finished_spans()) == [
        "chat fake-gpt-1", "embeddings", "retrieval InMemoryVectorStore"]


def test_exactly_one_handler_in_copied_merged_and_child_managers(lc):
    manager = CallbackManager.configure()
    assert _handlers(manager) == [HANDLER]
    assert _handlers(manager.copy()) == [HANDLER]
    other = CallbackManager.configure(inheritable_callbacks=[HANDLER])
    assert _handlers(other) == [HANDLER]
    assert _handlers(manager.merge(other)) == [HANDLER]
    run = manager.on_chain_start(None, {"x": 1})
    child = run.get_child()
    assert _handlers(child) == [HANDLER]
    assert _handlers(CallbackManager.configure(inheritable_callbacks=child)) == [HANDLER]
    assert _handlers(CallbackManager.configure(inheritable_callbacks=child.copy(), local_callbacks=[HANDLER])) == [
        HANDLER]
    run.on_chain_end({"y": 2})
    assert HANDLER.open_runs == 0


def test_reinstrument_keeps_a_single_handler(instrumentor, tracer_provider, span_exporter):
    instrumentor.instrument(tracer_provider=tracer_provider)
    kept = CallbackManager.configure()
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert _handlers(CallbackManager.configure(inheritable_callbacks=kept)) == [HANDLER]
    chain = RunnablePassthrough() | RunnableLambda(lambda x: x)
    chain.invoke(1, config={"callbacks": kept})
    assert len(span_exporter.get_finished_spans()) == 3


def test_uninstrument_removes_handler_and_kept_managers_go_quiet(instrumentor, tracer_provider, span_exporter):
    instrumentor.instrument(tracer_provider=tracer_provider)
    kept = CallbackManager.configure()
    instrumentor.uninstrument()
    assert _handlers(CallbackManager.configure()) == []
    chain = RunnablePassthrough() | RunnableLambda(lambda x: x)
    assert chain.invoke(5, config={"callbacks": kept}) == 5
    assert span_exporter.get_finished_spans() == ()


# ---------------------------------------------------------------------------------------
# Fail-open
# ---------------------------------------------------------------------------------------


def _explode(*args, **kwargs):
    raise RuntimeError("instrumentation bug")


@pytest.mark.parametrize("target", [
    (_readers, "read_llm_result"),
    (_readers, "request_attributes"),
    (_readers, "prompt_template_attributes"),
    (_readers, "to_jsonable"),
    (_retrieval, "start_retrieval"),
    (_retrieval, "scores_for"),
    (_retrieval, "document_entries"),
    (_handler, "context_for_config"),
    (_patches, "context_for_config"),
    (_patches, "pending_context"),
    (_patches, "context_with_llm_frame"),
])
def test_internal_errors_never_reach_the_user(lc, capture, span_exporter, monkeypatch, caplog, target):
    monkeypatch.setattr(*target, _explode)
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    caplog.set_level(logging.WARNING)
    assert chain.invoke(QUESTION) == ANSWER
    assert "".join(chain.stream(QUESTION)) == ANSWER
    assert [d.id for d in make_store().similarity_search(QUESTION, k=1)] == ["doc-paris"]
    assert HANDLER.open_runs == 0
    # LangChain itself never saw an exception from our handler
    assert not [r for r in caplog.records if r.name.startswith("langchain") and "callback" in r.getMessage()]
    # every span that was started ended
    assert all(s.end_time is not None for s in span_exporter.get_finished_spans())


def test_broken_tracer_is_contained(lc, span_exporter, monkeypatch):
    class BrokenTracer:
        def start_span(self, *args, **kwargs):
            raise RuntimeError("exporter misconfigured")

    monkeypatch.setattr(HANDLER, "tracer", BrokenTracer())
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    assert chain.invoke(QUESTION) == ANSWER
    assert list(fake_chat().stream("x"))[0].content == "The"
    assert HANDLER.open_runs == 0


# ---------------------------------------------------------------------------------------
# Every span ends
# ---------------------------------------------------------------------------------------


def test_abandoned_model_stream_ends_its_span(lc, span_exporter):
    stream = fake_chat().stream("hello")
    next(stream)
    assert HANDLER.open_runs == 1
    del stream
    gc.collect()
    span = one(span_exporter.get_finished_spans(), "chat fake-gpt-1")
    assert span.attributes[sc.STREAM_ENDED_BY] == "closed"
    assert span.status.status_code == StatusCode.UNSET
    assert HANDLER.open_runs == 0


def test_abandoned_chain_stream_ends_every_span(lc, span_exporter):
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    stream = chain.stream(QUESTION)
    next(stream)
    del stream
    gc.collect()
    spans = span_exporter.get_finished_spans()
    assert len(spans) == RAG_SPANS
    assert HANDLER.open_runs == 0


def test_closed_model_stream_ends_its_span(lc, span_exporter):
    stream = fake_chat().stream("hello")
    next(stream)
    stream.close()
    span = one(span_exporter.get_finished_spans(), "chat fake-gpt-1")
    assert span.attributes[sc.STREAM_ENDED_BY] == "closed"
    assert HANDLER.open_runs == 0


async def test_async_stream_closed_and_abandoned(lc, span_exporter):
    stream = fake_chat().astream("hello")
    await stream.__anext__()
    await stream.aclose()
    assert one(span_exporter.get_finished_spans(), "chat fake-gpt-1").attributes[sc.STREAM_ENDED_BY] == "closed"
    span_exporter.clear()
    chain = rag_chain(make_store().as_retriever(), fake_chat())
    span_exporter.clear()
    agen = chain.astream(QUESTION)
    await agen.__anext__()
    await agen.aclose()
    del agen
    # LangChain's inner async generators are finalized by the event loop once
    # collected (asyncio's asyncgen hooks); that is when their runs, and spans, end.
    for _ in range(20):
        if HANDLER.open_runs == 0:
            break
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    assert len(span_exporter.get_finished_spans()) == RAG_SPANS
    assert HANDLER.open_runs == 0


def test_stream_raising_midway_ends_span_with_error(lc, span_exporter):
    class Exploding(type(fake_chat())):
        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            yield from list(super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs))[:2]
            raise ConnectionResetError("stream cut")

    model = Exploding(messages=iter([answer_message()]))
    got = []
    with pytest.raises(ConnectionResetError):
        for chunk in model.stream("hi"):
            got.append(chunk)
    assert len(got) == 2
    span = one(span_exporter.get_finished_spans(), "chat fake-gpt-1")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.STREAM_ENDED_BY] == "error"
    assert span.attributes[sc.ERROR_TYPE] == "ConnectionResetError"


# ---------------------------------------------------------------------------------------
# Bounded memory
# ---------------------------------------------------------------------------------------


def test_ten_thousand_invocations_leave_no_runs(lc, span_exporter):
    model = fake_chat()
    chain = RunnableLambda(lambda q: [("human", q)]) | model | RunnableLambda(lambda m: m.content)
    peak = 0
    for i in range(10_000):
        assert chain.invoke("hi") == ANSWER
        peak = max(peak, HANDLER.open_runs)
        if i % 1000 == 0:
            span_exporter.clear()
    assert HANDLER.open_runs == 0
    assert peak == 0  # every run had ended by the time invoke returned
    assert len(_patches.VECTOR_STORES.records) < 100 and len(_patches.EMBEDDINGS.records) < 100


def test_per_runnable_and_per_class_caches_are_bounded(lc, span_exporter):
    names = _handler._CHAIN_ATTRIBUTES_MAX + 40
    for i in range(names):
        assert RunnableLambda(lambda x: x).with_config(run_name=f"step_{i}").invoke(i) == i
    assert 0 < len(_handler._CHAIN_ATTRIBUTES) <= _handler._CHAIN_ATTRIBUTES_MAX
    last = one(span_exporter.get_finished_spans(), f"step_{names - 1}")
    assert dict(last.attributes) == {sc.SPAN_KIND: sc.KIND_WORKFLOW, sc.LIBRARY: "langchain",
                                     sc.COMPONENT: f"step_{names - 1}"}

    span_exporter.clear()
    models = _patches._EMBEDDING_SPANS_MAX + 20
    embeddings = KeywordEmbeddings()
    for i in range(models):
        embeddings.model = f"kw-{i}"
        embeddings.embed_query("paris")
    assert 0 < len(_patches._EMBEDDING_SPANS) <= _patches._EMBEDDING_SPANS_MAX
    last = one(span_exporter.get_finished_spans(), f"embeddings kw-{models - 1}")
    assert dict(last.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "embeddings", sc.GEN_AI_PROVIDER_NAME: "keyword",
        sc.GEN_AI_REQUEST_MODEL: f"kw-{models - 1}", sc.SPAN_KIND: sc.KIND_EMBEDDING, sc.LIBRARY: "langchain",
        sc.COMPONENT: "KeywordEmbeddings", sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 17}


def test_runs_that_never_end_are_capped(lc, span_exporter, monkeypatch):
    monkeypatch.setattr(HANDLER, "max_open_runs", 10)
    for _ in range(25):
        HANDLER.on_chain_start(None, {"x": 1}, run_id=uuid.uuid4(), name="never_ends")
    assert HANDLER.open_runs == 10
    evicted = span_exporter.get_finished_spans()
    assert len(evicted) == 15 and {s.name for s in evicted} == {"never_ends"}
    streams = []
    for _ in range(12):  # real runs left open: started streams kept alive, never finished
        stream = fake_chat().stream("hi")
        next(stream)
        streams.append(stream)
    assert HANDLER.open_runs == 10
    for stream in streams:
        stream.close()
    HANDLER.deactivate()  # ends whatever is left
    assert HANDLER.open_runs == 0
    assert all(s.end_time for s in span_exporter.get_finished_spans())


def test_patch_records_of_classes_created_at_run_time_are_pruned(lc, span_exporter):
    """An app that makes vector-store classes on the fly (one per tenant, say) must not grow
    the patch records forever: the records of collected classes are dropped."""
    live_before = len(_patches.VECTOR_STORES.records)
    for i in range(3 * _patches.ClassPatcher.PRUNE_AT):
        cls = type(f"TenantStore{i}", (InMemoryVectorStore,),
                   {"similarity_search": lambda self, query, k=4, **kw: []})
        assert _patches._is_ours(cls.__dict__["similarity_search"])  # wrapped at creation
        del cls
        if i % 200 == 0:
            gc.collect()
    gc.collect()
    records = _patches.VECTOR_STORES.records
    assert len(records) <= 2 * _patches.ClassPatcher.PRUNE_AT
    assert sum(1 for ref, _, _ in records if ref() is not None) == live_before
    # a class still alive keeps its record, and uninstrument still restores it
    kept = type("KeptStore", (InMemoryVectorStore,), {"similarity_search": lambda self, query, k=4, **kw: []})
    original = _patches.VECTOR_STORES.records[-1][2]
    for i in range(_patches.ClassPatcher.PRUNE_AT + 10):
        type(f"Tenant2Store{i}", (InMemoryVectorStore,), {"similarity_search": lambda self, q, k=4, **kw: []})
    gc.collect()
    assert any(ref() is kept for ref, _, _ in _patches.VECTOR_STORES.records)
    _patches.VECTOR_STORES.uninstall()
    assert kept.__dict__["similarity_search"] is original
