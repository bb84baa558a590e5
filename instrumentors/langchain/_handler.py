"""The callback handler: one span per LangChain run, parented exactly like the run tree.

Why a callback handler: LangChain already reports every run (chains, runnables,
prompts, parsers, chat models, LLMs, retrievers, tools) with its ``run_id`` and
``parent_run_id`` through callbacks, in sync, async, batch (thread pool) and
streaming alike. Spans are started with an *explicit* parent looked up from
``parent_run_id`` (a root run takes the caller's current span), so the tree is right
whatever thread or task a callback runs in, and no callback ever attaches a context.

One handler object exists per process (``HANDLER``); the configure hook adds it to
every callback manager by identity, so copies and merges of managers never hold two.
``uninstrument()`` deactivates it (a manager kept by the user from before becomes a
no-op) and removes the hook.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Optional
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, set_span_in_context

from .. import _content
from .._config import get_config
from .. import _semconv as sc
from .._metrics import GenAIMetrics
from .._spans import (
    end_span,
    report_internal_error,
    start_span,
    usage_attributes,
)
from . import _causal
from . import _graph
from . import _readers as readers
from ._readers import set_span_attributes
from . import _retrieval as retrieval
from ._context import KIND_LLM, KIND_RETRIEVER, TOOL_CALL_ID_KEY, claim_pending

_log = logging.getLogger("instrumentors")

#: Runs kept at most while waiting for their end callback. A run whose end never comes
#: (a generator never iterated to its end and never collected, a crashed handler
#: chain) is evicted oldest-first and its span ended, so the map cannot grow forever.
MAX_OPEN_RUNS = 10_000



class Run:
    """What the handler keeps between a run's start and end callbacks (chains, tools)."""

    __slots__ = ("span", "ctx", "deferred_inputs")

    def __init__(self, span: Span, ctx: Optional[otel_context.Context] = None) -> None:
        self.span = span
        self.ctx = ctx  # see context(); chain and tool runs make it at start
        self.deferred_inputs = False

    def context(self) -> otel_context.Context:
        """The run's span in the context the run started in: the parent of its child
        spans, and what a step of the run executes under. Made once per run."""
        ctx = self.ctx
        if ctx is None:
            ctx = self.ctx = trace.set_span_in_context(self.span)
        return ctx


class GraphRun(Run):
    """A LangGraph graph run: its Pregel loop (weakly; read when the run ends), whether
    a node stopped at an interrupt, and its checkpointed thread (``_graph.thread_key``)."""

    __slots__ = ("loop", "interrupted", "thread")

    def __init__(self, span: Span, ctx: Optional[otel_context.Context], loop: Any,
                 thread: Optional[tuple] = None) -> None:
        super().__init__(span, ctx)
        try:
            self.loop = weakref.ref(loop) if loop is not None else None
        except TypeError:
            self.loop = None
        self.interrupted = False
        self.thread = thread


class NodeRun(Run):
    """One node execution of a graph run (``graph``: that run, if ours)."""

    __slots__ = ("graph",)

    def __init__(self, span: Span, ctx: Optional[otel_context.Context], graph: Optional[GraphRun]) -> None:
        super().__init__(span, ctx)
        self.graph = graph


class LLMRun(Run):
    """An LLM run: timing, stream bookkeeping and the LLM frames its call ran under."""

    __slots__ = ("start", "frames", "stream", "chunks", "first_chunk", "metric_attrs")

    def __init__(self, span: Span) -> None:
        super().__init__(span)
        self.start = time.monotonic()
        self.frames: list = []  # LLMFrames the model call ran under (child usage flags)
        self.stream = False
        self.chunks = 0
        self.first_chunk: Optional[float] = None
        self.metric_attrs: Optional[dict] = None


class RetrievalRun(Run):
    """A retriever run and the score collector its wrapper set up."""

    __slots__ = ("collector",)

    def __init__(self, span: Span) -> None:
        super().__init__(span)
        self.collector: Any = None


# Run maps are keyed by the run id's integer (``getattr(run_id, "int", run_id)``, inline
# on hot paths): ``UUID.__hash__`` is Python code, an int hashes in C, and the maps are
# hit several times per run.


def _guard(fn):
    """Handler methods never raise into LangChain (it would log a warning per call)."""

    name = f"langchain.{fn.__name__}"

    def inner(self, *args: Any, **kwargs: Any) -> None:
        if not self.active:
            return None
        try:
            fn(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error(name, exc)
        return None

    inner.__name__ = fn.__name__
    inner.__doc__ = fn.__doc__
    return inner


_PLACEHOLDER_INPUT = {"input": ""}
_NO_INFO: dict = {}  # read-only default

#: (name, span kind) -> the attributes every chain-like span of that runnable carries.
#: Bounded: cleared when full (names come from code, so it rarely grows past a few dozen).
_CHAIN_ATTRIBUTES: dict = {}
_CHAIN_ATTRIBUTES_MAX = 512


def _chain_attributes(name: str, kind: str) -> dict:
    """The shared, never-mutated attribute dict of a chain-like span (the SDK copies it)."""
    attrs = _CHAIN_ATTRIBUTES.get((name, kind))
    if attrs is None:
        if len(_CHAIN_ATTRIBUTES) >= _CHAIN_ATTRIBUTES_MAX:
            _CHAIN_ATTRIBUTES.clear()
        attrs = _CHAIN_ATTRIBUTES[(name, kind)] = {sc.SPAN_KIND: kind, sc.LIBRARY: "langchain", sc.COMPONENT: name}
    return attrs


class OTelCallbackHandler(BaseCallbackHandler):
    """Turns LangChain runs into OpenTelemetry spans (see module docstring)."""

    # Called inline by async managers too: no executor hop, same task context.
    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self.active = False
        self.tracer: trace.Tracer = trace.get_tracer(__name__)
        self.metrics = GenAIMetrics(None)
        self._runs: dict = {}
        self._lock = threading.Lock()
        self.max_open_runs = MAX_OPEN_RUNS

    # Plain attributes, not the base class's properties: LangChain reads one per event.
    ignore_llm = False
    ignore_retry = False
    ignore_chain = False
    ignore_agent = False
    ignore_retriever = False
    ignore_chat_model = False
    ignore_custom_event = False

    def __repr__(self) -> str:
        return "OTelCallbackHandler()"

    # lifecycle ---------------------------------------------------------------------------
    def activate(self, tracer: trace.Tracer, metrics: GenAIMetrics) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self.active = True

    def deactivate(self) -> None:
        """Stop tracing; end the spans of runs still open so nothing leaks."""
        self.active = False
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            end_span(run.span)
        _causal.TOOL_CALLS.clear()
        _graph.INTERRUPTED.clear()

    # run map -----------------------------------------------------------------------------
    @property
    def open_runs(self) -> int:
        return len(self._runs)

    def get_run(self, run_id: Any) -> Optional[Run]:
        return self._runs.get(getattr(run_id, "int", run_id)) if run_id is not None else None

    def _put(self, run_id: UUID, run: Run) -> None:
        # dict set/pop are atomic under the GIL; the lock only guards eviction
        runs = self._runs
        runs[getattr(run_id, "int", run_id)] = run
        if len(runs) > self.max_open_runs:
            self._evict()

    def _evict(self) -> None:
        """Oldest runs first, down to the bound; their spans end (marked by an internal error)."""
        evicted = []
        with self._lock:
            while len(self._runs) > self.max_open_runs:
                oldest = next(iter(self._runs))
                evicted.append(self._runs.pop(oldest, None))
        evicted = [r for r in evicted if r is not None]
        if evicted:
            report_internal_error("langchain.run_map_full", RuntimeError(
                f"{len(evicted)} LangChain run(s) never ended; their spans were ended early"))
            for old in evicted:
                end_span(old.span)

    def _pop(self, run_id: UUID) -> Optional[Run]:
        return self._runs.pop(getattr(run_id, "int", run_id), None)

    def _parent(self, parent_run_id: Optional[UUID]) -> Optional[otel_context.Context]:
        """The parent run's span (explicit), else None: the caller's current context."""
        if parent_run_id is not None:
            parent = self._runs.get(getattr(parent_run_id, "int", parent_run_id))
            if parent is not None:
                return parent.ctx or parent.context()
        return None

    # chains, runnables, prompts, parsers --------------------------------------------------
    # The hot callbacks below inline what ``_guard`` does (an extra frame and a kwargs
    # re-pack per callback): inactive -> nothing; any exception -> reported, swallowed.
    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None,
                       tags: Any = None, metadata: Any = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            name = kwargs.get("name") or (readers.class_name(serialized) if serialized else None) or "chain"
            run_type = kwargs.get("run_type")
            kind = (sc.KIND_PROMPT if run_type == "prompt" else sc.KIND_PARSER if run_type == "parser"
                    else sc.KIND_WORKFLOW)
            if type(name) is not str:
                name = str(name)
            attrs = _CHAIN_ATTRIBUTES.get((name, kind)) or _chain_attributes(name, kind)
            if kind == sc.KIND_PROMPT and serialized:
                attrs = {**attrs, **readers.prompt_template_attributes(serialized)}
            # streamed runs start with a placeholder input and report the real one at the end
            deferred = bool(kwargs.get("defers_inputs")) or (type(inputs) is dict and inputs == _PLACEHOLDER_INPUT)
            if not deferred and get_config().capture_content:
                attrs = {**attrs, sc.INPUT_VALUE: _content.json_value(readers.to_jsonable(inputs)) or "null"}
            parent = parent_run = None
            if parent_run_id is not None:
                parent_run = self._runs.get(getattr(parent_run_id, "int", parent_run_id))
                if parent_run is not None:
                    parent = parent_run.ctx or parent_run.context()
            node_attrs = (_graph.node_attributes(name, tags, metadata)
                          if metadata and "langgraph_node" in metadata else None)
            if node_attrs is not None:
                attrs = {**attrs, **node_attrs}
            # attrs holds no None value: the SDK is called directly (hot path)
            span = self.tracer.start_span(name, context=parent, attributes=attrs)
            # the run's context, made now while the run's starting context is current
            if node_attrs is None:
                run = Run(span, set_span_in_context(span))
            else:
                run = NodeRun(span, set_span_in_context(span),
                              parent_run if parent_run.__class__ is GraphRun else None)
            run.deferred_inputs = deferred
            runs = self._runs
            runs[getattr(run_id, "int", run_id)] = run
            if len(runs) > self.max_open_runs:
                self._evict()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_chain_start", exc)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self.active:
            return
        run = self._runs.pop(getattr(run_id, "int", run_id), None)
        if run is None:
            return
        span = run.span
        if run.__class__ is GraphRun:
            self._finish_graph(run)
        try:
            if get_config().capture_content:
                inputs = kwargs.get("inputs")
                if run.deferred_inputs and inputs is not None:
                    span.set_attribute(sc.INPUT_VALUE, _content.json_value(readers.to_jsonable(inputs)) or "null")
                span.set_attribute(sc.OUTPUT_VALUE, _content.json_value(readers.to_jsonable(outputs)) or "null")
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.chain_end", exc)
        try:
            if span.is_recording():
                span.end()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_chain_end", exc)

    @_guard
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is None:
            return
        if isinstance(run, NodeRun) and run.graph is not None and _graph.control_flow(error) == "interrupt":
            run.graph.interrupted = True
        if isinstance(run, GraphRun):
            self._finish_graph(run)
        self._end_with(run, error)

    def _end_with(self, run: Run, error: BaseException) -> None:
        """End a run's span on an error callback. A stream closed early is no error, nor
        is LangGraph's control flow (an interrupt, a command to the parent graph)."""
        if isinstance(error, GeneratorExit):
            end_span(run.span)
            return
        flow = _graph.control_flow(error)
        if flow is None:
            end_span(run.span, error)
            return
        if flow == "interrupt":
            run.span.set_attribute(sc.GRAPH_INTERRUPTED, True)
        end_span(run.span)

    # graphs (LangGraph) -------------------------------------------------------------------
    def start_graph(self, manager: Any, nodes: Any, config: Any, graph_input: Any, loop: Any) -> None:
        """LangGraph built the Pregel loop of the run ``manager`` belongs to: that run is a
        graph run (see ``_graph``). Its span gets the graph's name and attributes."""
        if not self.active:
            return
        run_id = getattr(manager, "run_id", None)
        if run_id is None:
            return
        key = getattr(run_id, "int", run_id)
        run = self._runs.get(key)
        if run is None or run.__class__ is not Run:
            return
        name = getattr(run.span, "name", None) or "LangGraph"
        span_name, attrs = _graph.graph_attributes(str(name), _graph.is_agent(nodes), config, graph_input)
        run.span.update_name(span_name)
        set_span_attributes(run.span, attrs)
        thread = _graph.thread_key(config)
        link = _graph.resume_link(thread, graph_input)
        if link is not None:
            run.span.add_link(link.context, link.attributes)
        graph_run = GraphRun(run.span, run.ctx, loop, thread)
        graph_run.deferred_inputs = run.deferred_inputs
        self._runs[key] = graph_run

    def _finish_graph(self, run: GraphRun) -> None:
        try:
            loop = run.loop() if run.loop is not None else None
            attrs = _graph.loop_end_attributes(loop, run.interrupted)
            set_span_attributes(run.span, attrs)
            _graph.note_graph_end(run.thread, run.span.get_span_context(), attrs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.graph_end", exc)

    # chat models and LLMs -------------------------------------------------------------------
    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            parent_run_id: Optional[UUID] = None, tags: Any = None, metadata: Any = None,
                            **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            message_list = list(messages[0]) if messages else []
            self._start_llm(sc.OP_CHAT, serialized, message_list, None, run_id, parent_run_id, metadata, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_chat_model_start", exc)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None,
                     tags: Any = None, metadata: Any = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            self._start_llm(sc.OP_TEXT_COMPLETION, serialized, None, list(prompts or ()), run_id, parent_run_id,
                            metadata, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_llm_start", exc)

    def _start_llm(self, operation: str, serialized: Any, messages: Optional[list], prompts: Optional[list],
                   run_id: UUID, parent_run_id: Optional[UUID], metadata: Any, kwargs: dict) -> None:
        cfg = get_config()
        params = kwargs.get("invocation_params") or {}
        options = kwargs.get("options") or {}
        cls = readers.class_name(serialized)
        pending = claim_pending(KIND_LLM)
        attrs = readers.request_attributes(params, options, metadata)
        provider = readers.provider_name(cls, metadata)
        attrs[sc.GEN_AI_OPERATION_NAME] = operation
        attrs[sc.GEN_AI_PROVIDER_NAME] = provider
        attrs[sc.SPAN_KIND] = sc.KIND_LLM
        attrs[sc.LIBRARY] = "langchain"
        attrs[sc.COMPONENT] = cls
        stream = bool(pending is not None and pending.info.get("stream"))
        if stream or params.get("stream") is True:  # the convention: set only when streaming
            attrs[sc.GEN_AI_REQUEST_STREAM] = True
        if cfg.capture_content:
            if messages is not None:
                value = [readers.message_json(m) for m in messages]
            else:
                value = [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompts or ()]
            attrs[sc.GEN_AI_INPUT_MESSAGES] = _content.json_value(value)
        parent = self._parent(parent_run_id)
        links = None
        if cfg.causal_links:
            texts = (readers.message_texts(messages) if messages is not None
                     else [p for p in prompts or () if isinstance(p, str) and p])
            links = _causal.consume(texts, parent, attrs)
            if messages:
                by_call = _causal.TOOL_CALLS.links(messages, parent, links)
                if by_call:
                    links = (links or []) + by_call
                    attrs[sc.CAUSAL_SOURCE_COUNT] = (attrs.get(sc.CAUSAL_SOURCE_COUNT) or 0) + len(by_call)
        model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
        name = f"{operation} {model}" if model else operation
        span = start_span(self.tracer, name, kind=SpanKind.CLIENT, attributes=attrs, links=links, parent=parent)
        run = LLMRun(span)
        run.stream = stream
        run.metric_attrs = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: provider,
                            sc.GEN_AI_REQUEST_MODEL: model}
        if pending is not None:
            pending.span = span
            if pending.frame is not None:
                run.frames.append(pending.frame)
        self._put(run_id, run)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self.active:
            return
        run = self._runs.get(getattr(run_id, "int", run_id))
        if run is None or run.__class__ is not LLMRun:
            return
        run.chunks += 1
        if run.first_chunk is None:
            try:
                run.first_chunk = time.monotonic()
                run.span.set_attribute(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, run.first_chunk - run.start)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("langchain.on_llm_new_token", exc)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self.active:
            return
        run = self._runs.pop(getattr(run_id, "int", run_id), None)
        if run is not None:
            try:
                self._finish_llm(run, response, None)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("langchain.on_llm_end", exc)

    @_guard
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is not None:
            self._finish_llm(run, kwargs.get("response"), error)

    def _finish_llm(self, run: Run, response: Any, error: Optional[BaseException]) -> None:
        span = run.span
        if not isinstance(run, LLMRun):
            end_span(span, error)
            return
        closed = isinstance(error, GeneratorExit)
        child_usage = next((f for f in run.frames if f.child_reported_usage), None)
        input_tokens = output_tokens = response_model = None
        try:
            attrs: dict = {}
            if response is not None:
                cfg = get_config()
                capture = cfg.capture_content
                causal_on = cfg.causal_links
                outcome = readers.read_llm_result(response, keep_messages=capture, keep_texts=causal_on)
                input_tokens, output_tokens = outcome.input_tokens, outcome.output_tokens
                response_model = outcome.attributes.get(sc.GEN_AI_RESPONSE_MODEL)
                attrs.update(outcome.attributes)
                if input_tokens is not None or output_tokens is not None:
                    attrs.update(usage_attributes(child_usage, input_tokens, output_tokens))
                    if child_usage is None:
                        attrs.update(outcome.extra_usage)
                if capture and outcome.output_messages:
                    attrs[sc.GEN_AI_OUTPUT_MESSAGES] = _content.json_value(outcome.output_messages)
                if causal_on:
                    _causal.produce(span, lambda: (
                        [_causal.Produced(text=t, kind="generation") for t in outcome.generations]
                        + [_causal.Produced(text=t, kind="tool_call") for t in outcome.tool_calls]))
            if run.stream:
                attrs[sc.STREAM_CHUNK_COUNT] = run.chunks
                attrs[sc.STREAM_ENDED_BY] = "exhausted" if error is None else "closed" if closed else "error"
            set_span_attributes(span, attrs)
            if self.metrics.enabled and child_usage is None and run.metric_attrs is not None:
                mattrs = dict(run.metric_attrs)
                mattrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
                if error is not None and not closed:
                    mattrs[sc.ERROR_TYPE] = type(error).__qualname__
                self.metrics.record(time.monotonic() - run.start, mattrs, input_tokens, output_tokens)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.llm_end", exc)
        end_span(span, None if error is None or closed else error)

    # retrievers -----------------------------------------------------------------------------
    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID,
                           parent_run_id: Optional[UUID] = None, tags: Any = None, metadata: Any = None,
                           **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            pending = claim_pending(KIND_RETRIEVER)
            info = pending.info if pending is not None else _NO_INFO
            component = kwargs.get("name") or readers.class_name(serialized) or "retriever"
            data_source = (info.get("data_source") or (metadata or _NO_INFO).get("ls_vector_store_provider")
                           or component)
            span = retrieval.start_retrieval(self.tracer, str(data_source), str(component), query, info.get("top_k"),
                                             parent=self._parent(parent_run_id), source_id=info.get("source_id"))
            run = RetrievalRun(span)
            if pending is not None:
                pending.span = span
                run.collector = info.get("collector")
            self._put(run_id, run)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_retriever_start", exc)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self.active:
            return
        run = self._runs.pop(getattr(run_id, "int", run_id), None)
        if run is None:
            return
        try:
            docs = list(documents or ())
            collector = run.collector if isinstance(run, RetrievalRun) else None
            scores, order = retrieval.scores_for(docs, collector)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_retriever_end", exc)
            end_span(run.span)
            return
        try:
            retrieval.finish_retrieval(run.span, docs, scores, order)
        except Exception as exc:  # noqa: BLE001 - the span still ends
            report_internal_error("langchain.on_retriever_end", exc)
            end_span(run.span)

    @_guard
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is not None:
            end_span(run.span, error)

    # tools ------------------------------------------------------------------------------------
    def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None,
                      tags: Any = None, metadata: Any = None, inputs: Any = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            self._start_tool(serialized, input_str, run_id, parent_run_id, inputs, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.on_tool_start", exc)

    def _start_tool(self, serialized: Any, input_str: Any, run_id: UUID, parent_run_id: Optional[UUID],
                    inputs: Any, kwargs: dict) -> None:
        cfg = get_config()
        serialized = serialized if isinstance(serialized, dict) else {}
        name = serialized.get("name") or kwargs.get("name") or "tool"
        description = serialized.get("description")
        call_id = kwargs.get("tool_call_id") or otel_context.get_value(TOOL_CALL_ID_KEY)
        args_text = input_str if isinstance(input_str, str) else _content.dumps(inputs)
        attrs = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: str(name),
            sc.GEN_AI_TOOL_TYPE: "function",
            # user-written text: only with capture on, redacted and bounded
            sc.GEN_AI_TOOL_DESCRIPTION: _content.text(description) if isinstance(description, str) and description
            else None,
            sc.GEN_AI_TOOL_CALL_ID: call_id if isinstance(call_id, str) else None,
            sc.SPAN_KIND: sc.KIND_TOOL,
            sc.LIBRARY: "langchain",
            sc.COMPONENT: str(name),
        }
        if cfg.capture_content:
            attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = (_content.json_value(inputs) if isinstance(inputs, dict)
                                                    else _content.text(args_text))
        parent = self._parent(parent_run_id)
        links = _causal.consume([args_text], parent, attrs) if args_text and cfg.causal_links else None
        span = start_span(self.tracer, f"{sc.OP_EXECUTE_TOOL} {name}", attributes=attrs, links=links, parent=parent)
        if cfg.causal_links and call_id:
            _causal.TOOL_CALLS.put(span, call_id)
        self._put(run_id, Run(span, set_span_in_context(span)))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if not self.active:
            return
        run = self._runs.pop(getattr(run_id, "int", run_id), None)
        if run is None:
            return
        try:
            cfg = get_config()
            text = readers.result_text(output)
            if not text or not text.strip():
                run.span.set_attribute(sc.TOOL_RESULT_EMPTY, True)  # capture on or off: no text
            if cfg.capture_content:
                run.span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, _content.text(text) or "")
            if text and cfg.causal_links:
                _causal.produce(run.span, lambda: [_causal.Produced(text=text, kind="tool_result")])
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.tool_end", exc)
        end_span(run.span)

    @_guard
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._pop(run_id)
        if run is not None:
            self._end_with(run, error)


HANDLER = OTelCallbackHandler()


def context_for_config(config: Any) -> Optional[otel_context.Context]:
    """The context (span current) of the run whose child config this is
    (``callbacks.parent_run_id``), or None if that run is not ours."""
    if not HANDLER.active or not isinstance(config, dict):
        return None
    parent_run_id = getattr(config.get("callbacks"), "parent_run_id", None)
    if parent_run_id is None:
        return None
    run = HANDLER._runs.get(getattr(parent_run_id, "int", parent_run_id))
    if run is None:
        return None
    return run.ctx or run.context()

