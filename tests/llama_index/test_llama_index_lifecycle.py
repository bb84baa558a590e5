"""Instrument/uninstrument (identity of every patched attribute, handlers removed from
the dispatcher), fail-open, suppression, classes defined after instrument(), and bounded
memory: the span-id tree returns to empty over 10k queries and has a hard cap."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.instrumentation import DispatcherSpanMixin, get_dispatcher
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.mock import MockLLM
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider

from instrumentors import _semconv as sc
from instrumentors.llama_index import LlamaIndexInstrumentor
from instrumentors.llama_index import _handler, _models, _readers
from instrumentors.llama_index._patches import ModelMethodWrapper
from instrumentors.llama_index._tree import Node
from li_helpers import QUESTION, build_index

QUERY_SPANS = 5  # query, retrieval, embeddings, synthesize, text_completion


def _ours(handlers: list) -> list:
    return [h for h in handlers if type(h).__module__.startswith("instrumentors.")]


def _originals() -> dict:
    from llama_index.core.llms.custom import CustomLLM as Custom

    return {
        "MockLLM.complete": MockLLM.__dict__["complete"],
        "MockLLM.stream_complete": MockLLM.__dict__["stream_complete"],
        "CustomLLM.chat": Custom.__dict__["chat"],
        "CustomLLM.astream_chat": Custom.__dict__["astream_chat"],
        "BaseEmbedding.get_query_embedding": BaseEmbedding.__dict__["get_query_embedding"],
        "BaseEmbedding.aget_text_embedding_batch": BaseEmbedding.__dict__["aget_text_embedding_batch"],
        "DispatcherSpanMixin.__init_subclass__": DispatcherSpanMixin.__dict__["__init_subclass__"],
    }


def _current() -> dict:
    from llama_index.core.llms.custom import CustomLLM as Custom

    return {
        "MockLLM.complete": MockLLM.__dict__["complete"],
        "MockLLM.stream_complete": MockLLM.__dict__["stream_complete"],
        "CustomLLM.chat": Custom.__dict__["chat"],
        "CustomLLM.astream_chat": Custom.__dict__["astream_chat"],
        "BaseEmbedding.get_query_embedding": BaseEmbedding.__dict__["get_query_embedding"],
        "BaseEmbedding.aget_text_embedding_batch": BaseEmbedding.__dict__["aget_text_embedding_batch"],
        "DispatcherSpanMixin.__init_subclass__": DispatcherSpanMixin.__dict__["__init_subclass__"],
    }


def _query_count(exporter) -> int:
    exporter.clear()
    engine = build_index().as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1)
    exporter.clear()
    engine.query(QUESTION)
    return len(exporter.get_finished_spans())


def test_uninstrument_restores_every_original_and_removes_handlers(tracer_provider, span_exporter):
    root = get_dispatcher()
    before = _originals()
    assert _ours(root.span_handlers) == [] and _ours(root.event_handlers) == []
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        during = _current()
        for name, original in before.items():
            assert during[name] is not original, name
        assert all(isinstance(during[k], ModelMethodWrapper) for k in during if "__init_subclass__" not in k)
        assert [type(h).__name__ for h in _ours(root.span_handlers)] == ["InstrumentorsSpanHandler"]
        assert [type(h).__name__ for h in _ours(root.event_handlers)] == ["InstrumentorsEventHandler"]
        patched = instrumentor.session.patcher.patched
        assert len(patched) >= 10
    finally:
        instrumentor.uninstrument()
    after = _current()
    for name, original in before.items():
        assert after[name] is original, name
    for cls, name, original in patched:
        assert cls.__dict__[name] is original, (cls, name)
    assert _ours(root.span_handlers) == [] and _ours(root.event_handlers) == []
    assert _query_count(span_exporter) == 0


def test_on_off_on_off(tracer_provider, span_exporter):
    instrumentor = LlamaIndexInstrumentor()
    counts = []
    for _ in range(2):
        instrumentor.instrument(tracer_provider=tracer_provider)
        try:
            counts.append(_query_count(span_exporter))
        finally:
            instrumentor.uninstrument()
        counts.append(_query_count(span_exporter))
    assert counts == [QUERY_SPANS, 0, QUERY_SPANS, 0]


def test_instrument_twice_does_not_double_wrap(tracer_provider, span_exporter):
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        complete = MockLLM.__dict__["complete"]
        assert isinstance(complete, ModelMethodWrapper)
        assert not isinstance(complete.__wrapped__, ModelMethodWrapper)
        assert len(_ours(get_dispatcher().span_handlers)) == 1
        span_exporter.clear()
        MockLLM().complete("x")
        assert [s.name for s in span_exporter.get_finished_spans()] == ["text_completion"]
    finally:
        instrumentor.uninstrument()


def test_class_defined_after_instrument_is_traced_and_restored(li, spans):
    class LateLLM(CustomLLM):
        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text="late")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            yield CompletionResponse(text="late", delta="late")

        @property
        def metadata(self):
            from llama_index.core.base.llms.types import LLMMetadata

            return LLMMetadata(model_name="late-1")

    wrapper = LateLLM.__dict__["complete"]
    assert isinstance(wrapper, ModelMethodWrapper)
    assert LateLLM().complete("x").text == "late"
    assert spans().names() == ["text_completion late-1"]
    li.uninstrument()
    assert LateLLM.__dict__["complete"] is wrapper.__wrapped__
    li.instrument()  # the fixture uninstruments again


def test_suppressed_instrumentation_emits_nothing(li, spans):
    index = build_index()
    with suppress_instrumentation():
        index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1).query(QUESTION)
    assert [s.name for s in spans().spans if s.name != "embeddings keyword-embedding"] == []


# ---------------------------------------------------------------------------------------
# Fail-open
# ---------------------------------------------------------------------------------------


class SentinelLLM(CustomLLM):
    """Returns a fresh object per call and remembers it (identity checks)."""

    last: Any = None

    @property
    def metadata(self):
        from llama_index.core.base.llms.types import LLMMetadata

        return LLMMetadata()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.last = CompletionResponse(text="sentinel")
        return self.last

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        def gen():
            yield CompletionResponse(text="a", delta="a")
            yield CompletionResponse(text="ab", delta="b")

        return gen()


def _broken(*args, **kwargs):
    raise RuntimeError("instrumentation bug")


def _internal_errors(caplog) -> list:
    return [r for r in caplog.records if "internal error" in r.getMessage()]


def test_fail_open_when_the_llm_span_cannot_start(li, spans, monkeypatch, caplog):
    monkeypatch.setattr(_models, "start_span", _broken)
    llm = SentinelLLM()
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        result = llm.complete("x")
    assert result is llm.last
    assert spans().spans == []
    assert _internal_errors(caplog)


def test_fail_open_when_reading_the_response_fails(li, spans, monkeypatch, caplog):
    monkeypatch.setattr(_readers.LLMResult, "read_message", _broken)
    monkeypatch.setattr(_readers.LLMResult, "read_raw", _broken)
    llm = SentinelLLM()
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        result = llm.complete("x")
        chunks = [c.delta for c in llm.stream_complete("x")]
    assert result is llm.last
    assert chunks == ["a", "b"]
    tree = spans()
    assert len(tree.named("text_completion")) == 2  # both spans still ended
    assert _internal_errors(caplog)


def test_fail_open_in_the_dispatcher_handler(li, spans, span_exporter, monkeypatch, caplog):
    index = build_index()
    expected = [(n.node.node_id, n.score) for n in index.as_retriever(similarity_top_k=2).retrieve(QUESTION)]
    span_exporter.clear()
    monkeypatch.setattr(_handler.DispatcherLogic, "_finish_retrieve", _broken)
    monkeypatch.setattr(_handler.DispatcherLogic, "_start_query", _broken)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        got = index.as_retriever(similarity_top_k=2).retrieve(QUESTION)
        response = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1).query(QUESTION)
    assert [(n.node.node_id, n.score) for n in got] == expected
    assert str(response) == "text text"
    tree = spans()
    # The retrieval span still ended (without its documents); the query had no span.
    assert all(sc.GEN_AI_RETRIEVAL_DOCUMENTS not in s.attributes for s in tree.named("retrieval SimpleVectorStore"))
    assert tree.named("query RetrieverQueryEngine") == []
    # The query's children keep one tree (their parent is the nearest traced ancestor).
    [synth] = tree.named("synthesize CompactAndRefine")
    assert tree.parent(tree.one("text_completion")) is synth
    assert len(li.session.tel.tree) == 0
    assert _internal_errors(caplog)


def test_user_exception_in_a_retriever_is_unchanged(li, spans):
    from llama_index.core.retrievers import BaseRetriever

    error = LookupError("index offline")

    class Offline(BaseRetriever):
        def _retrieve(self, query_bundle):
            raise error

    with pytest.raises(LookupError) as info:
        Offline().retrieve("q")
    assert info.value is error
    span = spans().one("retrieval Offline")
    assert span.attributes[sc.ERROR_TYPE] == "LookupError"


# ---------------------------------------------------------------------------------------
# Bounded memory
# ---------------------------------------------------------------------------------------


def _live(cls) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is cls)


def test_span_tree_returns_to_empty_over_10k_queries(set_config):
    """Every dispatcher span entered is forgotten on exit: after 10k queries (sync,
    streamed, abandoned streams) nothing is kept. A provider without processors keeps
    the exporter out of the measurement."""
    set_config(causal_links=False)
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        index = build_index()
        engine = index.as_query_engine(llm=MockLLM(max_tokens=1), similarity_top_k=1)
        streaming = index.as_query_engine(llm=MockLLM(max_tokens=1), similarity_top_k=1, streaming=True)
        session = instrumentor.session
        for i in range(10_000):
            if i % 10 == 0:
                response = streaming.query(QUESTION)
                if i % 20 == 0:
                    for _ in response.response_gen:
                        pass
                del response  # half the streams are abandoned unread
            else:
                engine.query(QUESTION)
                assert len(session.tel.tree) == 0
        gc.collect()
        assert len(session.tel.tree) == 0
        assert len(session.tel.pending_chats) == 0
        assert len(session.logic._kinds) <= _handler._MAX_CLASSIFIED
        assert _live(Node) == 0
    finally:
        instrumentor.uninstrument()


def test_span_tree_has_a_hard_cap(li, span_exporter):
    """Dispatcher spans whose exit never comes cannot grow the tree: beyond the cap the
    oldest is ended and forgotten."""
    tree = li.session.tel.tree
    tree.max_open = 50
    handler = li.session.span_handler
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=1)
    span_exporter.clear()
    for i in range(80):
        handler.span_enter(id_=f"RetrieverQueryEngine.query-{i:036d}", bound_args=None, instance=engine)
    assert len(tree) == 50
    ended = span_exporter.get_finished_spans()
    assert [s.name for s in ended] == ["query RetrieverQueryEngine"] * 30
    li.uninstrument()  # ends the rest
    assert len(tree) == 0
    assert len(span_exporter.get_finished_spans()) == 80
    li.instrument()


def test_untraced_calls_cost_no_node_and_never_lend_a_span(li, span_exporter):
    """Dispatcher calls that make no span keep no node of their own: under a traced call
    they map to its node (so their children still nest under it), at the root to nothing.
    Looking them up (scopes, events, exit) never yields the traced call's span."""
    from opentelemetry import trace

    tree = li.session.tel.tree
    handler = li.session.span_handler
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=1)
    q_id, x_id, y_id = (f"{name}-{i:036d}" for i, name in enumerate(
        ("RetrieverQueryEngine.query", "Helper.run", "Helper.step")))
    span_exporter.clear()
    nodes_before = _live(Node)
    handler.span_enter(id_="Helper.run-" + "9" * 36, bound_args=None, instance=object())
    assert len(tree) == 0  # untraced, no parent: nothing kept
    handler.span_enter(id_=q_id, bound_args=None, instance=engine)
    handler.span_enter(id_=x_id, bound_args=None, instance=object(), parent_id=q_id)
    handler.span_enter(id_=y_id, bound_args=None, instance=object(), parent_id=x_id)
    assert len(tree) == 3 and _live(Node) == nodes_before + 1
    own = tree.get(q_id)
    assert own.kind == _handler.QUERY and tree.get(x_id) is None and tree.get(y_id) is None
    ctx, parent_node, _current = tree.resolve(y_id)  # a child of the innermost untraced call
    assert parent_node is own and trace.get_current_span(ctx) is own.span
    handler.span_exit(id_=y_id, bound_args=None, instance=None)
    handler.span_exit(id_=x_id, bound_args=None, instance=None)
    assert span_exporter.get_finished_spans() == ()  # exiting the untraced calls ended nothing
    handler.span_enter(id_=x_id, bound_args=None, instance=object(), parent_id=q_id)
    li.uninstrument()  # ends the open query span exactly once
    assert [s.name for s in span_exporter.get_finished_spans()] == ["query RetrieverQueryEngine"]
    assert len(tree) == 0
    li.instrument()


def test_pending_chat_streams_are_capped_and_collected(li, span_exporter):
    from llama_index.core.chat_engine.types import StreamingAgentChatResponse

    pending = li.session.tel.pending_chats
    pending.max_pending = 10
    tracer = li.session.tel.tracer
    responses = []
    for i in range(15):
        response = StreamingAgentChatResponse()
        responses.append(response)
        pending.add(response, tracer.start_span(f"chat {i}"), _handler._finish_chat_stream)
    assert len(pending) == 10
    assert [s.attributes[sc.STREAM_ENDED_BY] for s in span_exporter.get_finished_spans()] == ["evicted"] * 5
    del responses, response
    gc.collect()
    assert len(pending) == 0
    assert [s.attributes[sc.STREAM_ENDED_BY] for s in span_exporter.get_finished_spans()][5:] == ["abandoned"] * 10


def test_package_imports_without_llama_index_and_names_its_dependency():
    import subprocess
    import sys

    code = ("import sys; sys.modules['llama_index'] = None; sys.modules['llama_index.core'] = None\n"
            "from instrumentors.llama_index import LlamaIndexInstrumentor\n"
            "print(list(LlamaIndexInstrumentor().instrumentation_dependencies()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['llama-index-core >= 0.12']"
