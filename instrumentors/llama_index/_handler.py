"""Spans from llama-index-core's instrumentation dispatcher.

One span handler and one event handler on the root dispatcher. The span handler sees
every decorated LlamaIndex call (``span_enter``/``span_exit``/``span_drop`` with the
instance, bound arguments and result) and turns the ones users care about into OTel
spans: query engines, retrievers, node postprocessors/rerankers, response synthesizers,
chat engines, tools, agents and workflows. Every other call still gets a lightweight
node in the :class:`~._tree.SpanTree` so descendants find their parent. LLM and
embedding calls are left to the call-site wrappers (``_models``), which need to make
their span current. Tool spans are started by their call-site wrapper (``_tools``), which
makes them current, and adopted here in ``span_enter``.

Calls that return a stream keep their span open past ``span_exit`` (see ``_streams``).
Everything here is fail-open: the dispatcher swallows handler errors anyway, but we log
ours (rate-limited) and never raise.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Optional

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.chat_engine.types import BaseChatEngine, StreamingAgentChatResponse
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMPredictStartEvent, LLMStructuredPredictStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankStartEvent
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.response_synthesizers.base import BaseSynthesizer
from llama_index.core.tools.types import BaseTool
from pydantic import PrivateAttr
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _content
from .. import _semconv as sc
from .. import causal
from .._config import get_config
from .._spans import end_span, report_internal_error, set_attributes, start_span
from . import _readers as rd
from ._agents import RUN_OWNER_KEY, note_tool_span
from ._common import LIBRARY, Telemetry, fields
from ._streams import traced_chat_stream, traced_response_stream
from ._tools import adopt
from ._tree import Node

try:  # workflows (and the agents built on them) exist in every supported version
    from llama_index.core.workflow import Workflow
except Exception:  # noqa: BLE001 - pragma: no cover
    Workflow = None  # type: ignore[assignment,misc]
try:
    from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent

    _WORKFLOW_AGENTS: tuple = (BaseWorkflowAgent, AgentWorkflow)
except Exception:  # noqa: BLE001 - pragma: no cover
    _WORKFLOW_AGENTS = ()
try:  # 0.12's AgentRunner-based agents (removed in 0.13)
    from llama_index.core.base.agent.types import BaseAgent as _LegacyAgent
except Exception:  # noqa: BLE001
    _LegacyAgent = None  # type: ignore[assignment,misc]

# Kinds of traced calls
QUERY = "query"
RETRIEVE = "retrieve"
SYNTHESIZE = "synthesize"
RERANK = "rerank"
CHAT = "chat"
AGENT = "agent"
TOOL = "tool"
WORKFLOW = "workflow"
CHAT_WRITER = "chat_writer"  # StreamingAgentChatResponse.write_response_to_history: ends a chat span

_QUERY_METHODS = frozenset({"query", "aquery"})
_RETRIEVE_METHODS = frozenset({"retrieve", "aretrieve"})
_SYNTH_METHODS = frozenset({"synthesize", "asynthesize"})
_RERANK_METHODS = frozenset({"_postprocess_nodes", "postprocess_nodes", "apostprocess_nodes"})
_CHAT_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_WRITER_METHODS = frozenset({"write_response_to_history", "awrite_response_to_history"})

# Events announcing the prompt template of the LLM call about to run in their span.
_TEMPLATE_EVENTS = (LLMPredictStartEvent, LLMStructuredPredictStartEvent)
_HANDLED_EVENTS = frozenset({ReRankStartEvent, *_TEMPLATE_EVENTS})

_UUID_SUFFIX = 37  # the dispatcher's span ids end in "-" + a 36-character uuid4
_MAX_CLASSIFIED = 4096


def method_of(span_id: str) -> Optional[str]:
    """``"RetrieverQueryEngine.query-<uuid>"`` -> ``"query"``."""
    if len(span_id) <= _UUID_SUFFIX or span_id[-_UUID_SUFFIX] != "-":
        return None
    return span_id[:-_UUID_SUFFIX].rpartition(".")[2]


def _classify(cls: type, method: str) -> Optional[str]:
    if _LegacyAgent is not None and issubclass(cls, _LegacyAgent):
        return AGENT if method in _CHAT_METHODS or method in _QUERY_METHODS else None
    if Workflow is not None and issubclass(cls, Workflow):
        if method != "run":
            return None
        return AGENT if _WORKFLOW_AGENTS and issubclass(cls, _WORKFLOW_AGENTS) else WORKFLOW
    if issubclass(cls, BaseRetriever):
        return RETRIEVE if method in _RETRIEVE_METHODS else None
    if issubclass(cls, BaseQueryEngine):
        return QUERY if method in _QUERY_METHODS else None
    if issubclass(cls, BaseSynthesizer):
        return SYNTHESIZE if method in _SYNTH_METHODS else None
    if issubclass(cls, BaseNodePostprocessor):
        return RERANK if method in _RERANK_METHODS else None
    if issubclass(cls, BaseChatEngine):
        return CHAT if method in _CHAT_METHODS else None
    if issubclass(cls, BaseTool):
        return TOOL if method in _TOOL_METHODS else None
    if issubclass(cls, StreamingAgentChatResponse):
        return CHAT_WRITER if method in _WRITER_METHODS else None
    return None


def _may_trace(cls: type) -> bool:
    """Whether any method of ``cls`` can make a span (most dispatcher calls' classes cannot)."""
    if _LegacyAgent is not None and issubclass(cls, _LegacyAgent):
        return True
    if Workflow is not None and issubclass(cls, Workflow):
        return True
    return issubclass(cls, _TRACED_BASES)


_TRACED_BASES = (BaseRetriever, BaseQueryEngine, BaseSynthesizer, BaseNodePostprocessor, BaseChatEngine,
                 BaseTool, StreamingAgentChatResponse)


def _argument(bound_args: Any, *names: str) -> Any:
    arguments = getattr(bound_args, "arguments", None) or {}
    for name in names:
        if name in arguments:
            return arguments[name]
    return None


def _is_reranker(instance: Any) -> bool:
    name = type(instance).__name__.lower()
    return "rerank" in name or ("rank" in name and hasattr(instance, "top_n"))


def _string(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


class _Start:
    """What a traced call starts with: span name, kind, attributes, texts it consumes."""

    __slots__ = ("name", "span_kind", "attrs", "consumes", "data")

    def __init__(self, name: str, attrs: dict, span_kind: SpanKind = SpanKind.INTERNAL,
                 consumes: Optional[list] = None, data: Any = None) -> None:
        self.name = name
        self.attrs = attrs
        self.span_kind = span_kind
        self.consumes = consumes
        self.data = data


class DispatcherLogic:
    """The work behind both handlers, kept out of pydantic models for speed and tests."""

    def __init__(self, tel: Telemetry) -> None:
        self.tel = tel
        self._kinds: dict = {}
        self._types: dict = {}  # class -> whether any of its methods can make a span

    # -- classification ------------------------------------------------------------------
    def kind_of(self, instance: Any, span_id: str) -> Optional[str]:
        cls = type(instance)
        try:
            if not self._types[cls]:
                return None  # the common case: one dict look-up, no string work
        except KeyError:
            if len(self._types) >= _MAX_CLASSIFIED:
                self._types.clear()
            traced = self._types[cls] = instance is not None and _may_trace(cls)
            if not traced:
                return None
        if len(span_id) <= _UUID_SUFFIX or span_id[-_UUID_SUFFIX] != "-":
            return None
        key = (type(instance), span_id[:-_UUID_SUFFIX])  # "Class.method": cheaper than splitting
        try:
            return self._kinds[key]
        except KeyError:
            pass
        kind = _classify(type(instance), span_id[:-_UUID_SUFFIX].rpartition(".")[2])
        if len(self._kinds) >= _MAX_CLASSIFIED:
            self._kinds.clear()
        self._kinds[key] = kind
        return kind

    def kind_for(self, instance: Any, method: str) -> Optional[str]:
        """The kind of ``instance.method`` for a call-site wrapper (no dispatcher id yet)."""
        return _classify(type(instance), method) if instance is not None else None

    # -- dispatcher callbacks --------------------------------------------------------------
    def enter(self, span_id: str, bound_args: Any, instance: Any, parent_id: Optional[str]) -> None:
        tree = self.tel.tree
        kind = self.kind_of(instance, span_id)
        if kind is None:
            tree.enter_untraced(span_id, parent_id)
            if self.tel.templates.pending:  # inside a predict-like call: its LLM calls may be deeper
                self.tel.templates.inherit(span_id, parent_id)
            return
        parent, parent_node, current = tree.resolve(parent_id)
        if parent_node is not None and parent_node.owner is instance and parent_node.kind == kind \
                and parent_node.id == parent_id:
            # A traced object calling itself (FunctionTool.__call__ -> call): no second span.
            tree.alias(span_id, parent_node)
            return
        if kind == CHAT_WRITER:
            tree.add(span_id, Node(parent, current, kind=kind, owner=instance))
            return
        pre = adopt(current, instance, kind) if kind == TOOL else None  # only tools are pre-started
        if pre is not None:
            # Started by the call-site wrapper (``_tools``), which made it current: children
            # start in the current context, that is, under it.
            tree.add(span_id, Node(current, current, pre.span, kind, instance, pre.data))
            return
        if not is_instrumentation_enabled():
            tree.alias(span_id, parent_node)
            return
        try:
            span, data = self.start_span(kind, instance, bound_args, parent)
        except Exception as exc:  # noqa: BLE001 - keep the tree whole: children still find their parent
            report_internal_error("llama_index.start." + kind, exc)
            tree.alias(span_id, parent_node)
            return
        node = Node(trace.set_span_in_context(span, parent), current, span, kind, instance, data)
        tree.add(span_id, node)
        if (kind == AGENT or kind == WORKFLOW) and _in_run_task(bound_args):
            # llama-index-workflows enters a run's span in the run's own task, runs every
            # step in tasks made from it, and exits the span in that same task: attached
            # now, the span is current for the code of every step (a raw client call, your
            # own span) and detached at exit in the very Context it was attached in.
            node.ctx = otel_context.set_value(RUN_OWNER_KEY, instance, node.ctx)
            node.token = otel_context.attach(node.ctx)

    def start_span(self, kind: str, instance: Any, bound_args: Any, parent: Any) -> tuple:
        """``(span, per-kind data)`` of a traced call; shared by ``span_enter`` and the
        call-site wrappers that start a span before the dispatcher does (``_tools``)."""
        start = getattr(self, "_start_" + kind)(instance, bound_args)
        links = None
        if start.consumes and get_config().causal_links:
            try:
                consumption = causal.consume(start.consumes, parent)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("llama_index.causal.consume", exc)
                consumption = None
            if consumption is not None:
                links = consumption.links
                start.attrs.update(consumption.attributes or {})
        span = start_span(self.tel.tracer, start.name, kind=start.span_kind, attributes=start.attrs,
                          links=links, parent=parent)
        if kind == TOOL:
            note_tool_span(instance, span)  # a handoff: the next agent's turn links it
        return span, start.data

    def exit(self, span_id: str, instance: Any, result: Any) -> None:
        if self.tel.templates.pending:
            self.tel.templates.forget(span_id)
        node = self.tel.tree.pop(span_id)
        if node is None:
            return
        if node.token is not None:
            _detach_run_context(node)
        if node.kind == CHAT_WRITER:
            self.tel.pending_chats.done(node.owner, None)
            return
        if node.span is None:
            return
        self._finish(node, result)

    def _finish(self, node: Node, result: Any) -> None:
        try:
            if getattr(self, "_finish_" + node.kind)(node, result):
                return  # deferred: a stream ends it
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.finish." + node.kind, exc)
        end_span(node.span)

    def finish_orphan(self, pre: Any, result: Any) -> None:
        """Finish and end a call-site span no dispatcher ``span_enter`` adopted."""
        ctx = trace.set_span_in_context(pre.span)
        self._finish(Node(ctx, ctx, pre.span, pre.kind, pre.owner, pre.data), result)

    def drop(self, span_id: str, err: Optional[BaseException]) -> None:
        if self.tel.templates.pending:
            self.tel.templates.forget(span_id)
        node = self.tel.tree.pop(span_id)
        if node is None:
            return
        if node.token is not None:
            _detach_run_context(node)
        if node.kind == CHAT_WRITER:
            self.tel.pending_chats.done(node.owner, err)
            return
        if node.span is not None:
            end_span(node.span, err)

    def event(self, event: Any) -> None:
        if type(event) in _TEMPLATE_EVENTS:
            self.tel.templates.announce(event.span_id, getattr(event, "template", None))
            return
        if type(event) is ReRankStartEvent:
            node = self.tel.tree.get(event.span_id)
            if node is not None and node.kind == RERANK and node.span is not None:
                set_attributes(node.span, {
                    sc.GEN_AI_REQUEST_MODEL: _string(event.model_name),
                    sc.GEN_AI_REQUEST_TOP_K: rd.integer(event.top_n),
                })

    # -- starts ------------------------------------------------------------------------------
    @staticmethod
    def _base(kind: str, instance: Any) -> dict:
        return {sc.SPAN_KIND: kind, sc.LIBRARY: LIBRARY, sc.COMPONENT: type(instance).__name__}

    def _start_workflow_step(self, verb: str, instance: Any, input_text: Optional[str]) -> _Start:
        attrs = self._base(sc.KIND_WORKFLOW, instance)
        attrs[sc.INPUT_VALUE] = _content.text(input_text)
        return _Start(f"{verb} {type(instance).__name__}", attrs)

    def _start_query(self, instance: Any, bound_args: Any) -> _Start:
        query = rd.query_text(_argument(bound_args, "str_or_query_bundle", "query_bundle", "query"))
        return self._start_workflow_step("query", instance, query)

    def _start_synthesize(self, instance: Any, bound_args: Any) -> _Start:
        query = rd.query_text(_argument(bound_args, "query", "query_bundle"))
        return self._start_workflow_step("synthesize", instance, query)

    def _start_chat(self, instance: Any, bound_args: Any) -> _Start:
        message = _argument(bound_args, "message")
        return self._start_workflow_step("chat", instance, message if isinstance(message, str) else None)

    def _start_retrieve(self, instance: Any, bound_args: Any) -> _Start:
        query = rd.query_text(_argument(bound_args, "str_or_query_bundle", "query_bundle"))
        values = fields(instance)
        store = values.get("_vector_store")
        source = type(store).__name__ if store is not None else type(instance).__name__
        index = values.get("_index")
        top_k = None
        for attr in ("_similarity_top_k", "similarity_top_k", "top_k", "_top_k"):
            top_k = rd.integer(values.get(attr))
            if top_k is not None:
                break
        attrs = self._base(sc.KIND_RETRIEVER, instance)
        attrs.update({
            sc.GEN_AI_OPERATION_NAME: sc.OP_RETRIEVAL,
            sc.GEN_AI_DATA_SOURCE_ID: _string(getattr(index, "index_id", None)) or source,
            sc.GEN_AI_REQUEST_TOP_K: top_k,
            sc.GEN_AI_RETRIEVAL_QUERY_TEXT: _content.text(query),
        })
        return _Start(f"{sc.OP_RETRIEVAL} {source}", attrs, SpanKind.CLIENT, [query] if query else None, source)

    def _start_rerank(self, instance: Any, bound_args: Any) -> _Start:
        nodes = list(_argument(bound_args, "nodes") or ())
        attrs = self._base(sc.KIND_RERANKER, instance)
        model = None
        for attr in ("model", "model_name"):
            model = _string(getattr(instance, attr, None))
            if model:
                break
        attrs.update({
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_REQUEST_TOP_K: rd.integer(getattr(instance, "top_n", None)),
            sc.RERANK_INPUT_DOCUMENTS: rd.documents_json(nodes, get_config()),
        })
        verb = "rerank" if _is_reranker(instance) else "postprocess"
        return _Start(f"{verb} {type(instance).__name__}", attrs)

    def _start_tool(self, instance: Any, bound_args: Any) -> _Start:
        metadata = getattr(instance, "metadata", None)
        name = _string(getattr(metadata, "name", None)) or type(instance).__name__
        arguments = _tool_arguments(bound_args)
        attrs = self._base(sc.KIND_TOOL, instance)
        attrs.update({
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: name,
            sc.GEN_AI_TOOL_TYPE: "function",
            # user-written text: only with capture on, redacted and bounded
            sc.GEN_AI_TOOL_DESCRIPTION: _content.text(_string(getattr(metadata, "description", None))),
            sc.GEN_AI_TOOL_CALL_ARGUMENTS: _content.text(arguments),
        })
        return _Start(f"{sc.OP_EXECUTE_TOOL} {name}", attrs, consumes=[arguments] if arguments else None)

    def _start_agent(self, instance: Any, bound_args: Any) -> _Start:
        name = _string(getattr(instance, "name", None)) or _string(getattr(instance, "root_agent", None)) \
            or type(instance).__name__
        attrs = self._base(sc.KIND_AGENT, instance)
        attrs.update({sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: name})
        attrs[sc.INPUT_VALUE] = _content.text(_agent_input(bound_args))
        return _Start(f"{sc.OP_INVOKE_AGENT} {name}", attrs)

    def _start_workflow(self, instance: Any, bound_args: Any) -> _Start:
        attrs = self._base(sc.KIND_WORKFLOW, instance)
        attrs[sc.GEN_AI_OPERATION_NAME] = sc.OP_INVOKE_WORKFLOW
        return _Start(f"{sc.OP_INVOKE_WORKFLOW} {type(instance).__name__}", attrs)

    # -- finishes (return True when a stream will end the span) --------------------------------
    def _finish_response(self, node: Node, result: Any) -> bool:
        if isinstance(result, (StreamingResponse, AsyncStreamingResponse)):
            return traced_response_stream(result, node.span, node.ctx)
        if isinstance(result, StreamingAgentChatResponse):
            if getattr(result, "is_writing_to_memory", True):
                # A thread/task (write_response_to_history) consumes the LLM stream.
                self.tel.pending_chats.add(result, node.span, _finish_chat_stream)
                return True
            return traced_chat_stream(result, node.span, node.ctx)
        text = _content.text(rd.response_text(result))
        if text is not None:
            node.span.set_attribute(sc.OUTPUT_VALUE, text)
        return False

    _finish_query = _finish_response
    _finish_synthesize = _finish_response
    _finish_chat = _finish_response

    def _finish_agent(self, node: Node, result: Any) -> bool:
        if result is not None and not isinstance(result, (StreamingResponse, AsyncStreamingResponse,
                                                          StreamingAgentChatResponse)):
            text = _content.text(_agent_output(result))
            if text is not None:
                node.span.set_attribute(sc.OUTPUT_VALUE, text)
            return False
        return self._finish_response(node, result)

    def _finish_workflow(self, node: Node, result: Any) -> bool:
        text = _content.text(_agent_output(result)) if result is not None else None
        if text is not None:
            node.span.set_attribute(sc.OUTPUT_VALUE, text)
        return False

    def _finish_retrieve(self, node: Node, result: Any) -> bool:
        nodes = list(result or ())
        cfg = get_config()
        attrs = rd.score_summary(nodes, node.data)
        documents = rd.documents_json(nodes, cfg)
        if documents is not None:
            attrs[sc.GEN_AI_RETRIEVAL_DOCUMENTS] = documents
        node.span.set_attributes(attrs)  # no None values here; one lock for all
        if cfg.causal_links:
            _produce(node.span, rd.produced_documents(nodes))
        return False

    def _finish_rerank(self, node: Node, result: Any) -> bool:
        nodes = list(result or ())
        cfg = get_config()
        attrs = rd.score_summary(nodes)  # the retrieval.* summary of what the step kept
        documents = rd.documents_json(nodes, cfg)
        if documents is not None:
            attrs[sc.RERANK_OUTPUT_DOCUMENTS] = documents
        node.span.set_attributes(attrs)
        if cfg.causal_links:
            _produce(node.span, rd.produced_documents(nodes))
        return False

    def _finish_tool(self, node: Node, result: Any) -> bool:
        content = getattr(result, "content", None)
        content = content if isinstance(content, str) else (str(result) if result is not None else None)
        text = _content.text(content)
        if text is not None:
            node.span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, text)
        if getattr(result, "is_error", False) is True:
            node.span.set_attribute(sc.ERROR_TYPE, "ToolError")
            node.span.set_status(Status(StatusCode.ERROR, "tool returned an error"))
        if content:
            _produce(node.span, [causal.Produced(text=content, kind="tool_result")])
        return False


def _produce(span: Any, produced: list) -> None:
    if not produced or not get_config().causal_links:
        return
    try:
        causal.produce(span, produced)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("llama_index.causal.produce", exc)


def _tool_arguments(bound_args: Any) -> Optional[str]:
    """The tool input as JSON text (keyword arguments, else positional, else ``input``)."""
    arguments = getattr(bound_args, "arguments", None) or {}
    kwargs = arguments.get("kwargs")
    if isinstance(kwargs, dict) and kwargs:
        value: Any = kwargs
    elif arguments.get("args"):
        value = list(arguments["args"])
    elif "input" in arguments:
        value = arguments["input"]
    else:
        value = {k: v for k, v in arguments.items() if k not in ("self", "args", "kwargs")}
        if not value:
            return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001
        return str(value)


def _in_run_task(bound_args: Any) -> bool:
    """The span of ``run_workflow(init_state, start_event, tags)``: llama-index-workflows'
    run span, entered and exited inside the run's own task (0.12's ``Workflow.run`` span is
    entered in the caller's context and must not be attached)."""
    arguments = getattr(bound_args, "arguments", None)
    return isinstance(arguments, dict) and "init_state" in arguments


def _detach_run_context(node: Node) -> None:
    """Detach what :meth:`DispatcherLogic.enter` attached, only if it is still the current
    context (so exactly the attached token, in the Context it was attached in)."""
    token, node.token = node.token, None
    if otel_context.get_current() is node.ctx:
        otel_context.detach(token)
    else:
        report_internal_error("llama_index.run_context", RuntimeError(
            "a workflow run ended in another context than it started in; its span was not detached"))


def _agent_input(bound_args: Any) -> Optional[str]:
    message = _argument(bound_args, "message")
    if isinstance(message, str):
        return message
    start = _argument(bound_args, "start_event")
    for attr in ("user_msg", "input", "query"):
        value = getattr(start, attr, None)
        if isinstance(value, str):
            return value
        text = rd.message_text(value) if value is not None else None
        if text:
            return text
    return None


def _agent_output(result: Any) -> Optional[str]:
    text = rd.response_text(result)
    if text is not None:
        return text
    response = getattr(result, "response", None)
    if response is not None:
        return rd.message_text(response) or (str(response) if not isinstance(response, str) else response)
    value = getattr(result, "result", None)
    if value is not None:
        return value if isinstance(value, str) else str(value)
    return None


def _finish_chat_stream(span: Any, response: Any, exc: Optional[BaseException], ended_by: str) -> None:
    try:
        span.set_attribute(sc.STREAM_ENDED_BY, ended_by)
        if response is not None:
            text = _content.text(rd.response_text(response))
            if text is not None:
                span.set_attribute(sc.OUTPUT_VALUE, text)
    except Exception as inner:  # noqa: BLE001
        report_internal_error("llama_index.chat_stream", inner)
    end_span(span, exc)


# ---------------------------------------------------------------------------------------
# The handler objects registered on the root dispatcher
# ---------------------------------------------------------------------------------------


class InstrumentorsSpanHandler(BaseSpanHandler):
    """Root-dispatcher span handler; delegates to :class:`DispatcherLogic`.

    Overrides ``span_enter``/``span_exit``/``span_drop`` directly: the base class keeps a
    pydantic span object per call in ``open_spans``, which we do not need. The logic is
    read from ``__pydantic_private__`` directly: ``self._private`` on a pydantic model
    goes through its ``__getattr__`` (about 1.5 us, paid on every dispatcher call).
    """

    _instrumentors_logic: Any = PrivateAttr(default=None)

    def __init__(self, logic: DispatcherLogic) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._instrumentors_logic = logic

    @classmethod
    def class_name(cls) -> str:
        return "InstrumentorsSpanHandler"

    def span_enter(self, id_: str, bound_args: inspect.BoundArguments, instance: Optional[Any] = None,
                   parent_id: Optional[str] = None, tags: Optional[dict] = None, **kwargs: Any) -> None:
        try:
            self.__pydantic_private__["_instrumentors_logic"].enter(id_, bound_args, instance, parent_id)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.span_enter", exc)

    def span_exit(self, id_: str, bound_args: inspect.BoundArguments, instance: Optional[Any] = None,
                  result: Optional[Any] = None, **kwargs: Any) -> None:
        try:
            self.__pydantic_private__["_instrumentors_logic"].exit(id_, instance, result)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.span_exit", exc)

    def span_drop(self, id_: str, bound_args: inspect.BoundArguments, instance: Optional[Any] = None,
                  err: Optional[BaseException] = None, **kwargs: Any) -> None:
        try:
            self.__pydantic_private__["_instrumentors_logic"].drop(id_, err)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.span_drop", exc)

    def new_span(self, *args: Any, **kwargs: Any) -> None:  # abstract in the base; unused
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        """``Dispatcher.shutdown()``: end whatever is still open."""
        try:
            self.__pydantic_private__["_instrumentors_logic"].tel.close()
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.close", exc)


class InstrumentorsEventHandler(BaseEventHandler):
    """Root-dispatcher event handler: the few events that carry data calls do not."""

    _instrumentors_logic: Any = PrivateAttr(default=None)

    def __init__(self, logic: DispatcherLogic) -> None:
        super().__init__()
        self._instrumentors_logic = logic

    @classmethod
    def class_name(cls) -> str:
        return "InstrumentorsEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if type(event) not in _HANDLED_EVENTS:  # the few events we read; the rest cost one look-up
            return
        try:
            self.__pydantic_private__["_instrumentors_logic"].event(event)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.event", exc)
