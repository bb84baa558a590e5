"""LLM and embedding spans, created at the call site so they are current during the call.

Why not from the dispatcher like the other LlamaIndex spans: the dispatcher offers no
frame around a call body, and a model span must be *current* while the provider client
runs (so ``llama_index.llms.openai.OpenAI``'s inner openai span nests under it and the
double-span rule works), including while a returned stream is iterated, long after the
dispatcher span exited. So each model method is wrapped (see ``_patches``); the wrapper
starts the span in the parent the dispatcher tree gives (``SpanTree.resolve``), makes it
current with ``attached(context_with_llm_frame(span))`` in its own frame, and hands
streams to :class:`~._streams.CurrentStream`.

Sync, async and streamed variants of a method share one start and one finish path.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from llama_index.core.instrumentation.span import active_span_id
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from .. import _semconv as sc
from .. import causal
from .._config import get_config
from .._content import json_value, tool_definitions
from .._spans import (
    StreamObserver,
    context_with_llm_frame,
    current_llm_frame,
    end_span,
    report_internal_error,
    start_span,
    usage_attributes,
)
from . import _readers as rd
from ._common import LIBRARY, OWNER_KEY, Telemetry, fields, provider_name, server_attributes
from ._prompts import llm_prompt_attributes
from ._streams import CurrentAsyncStream, CurrentStream

# method -> (gen_ai.operation.name, returns a stream, is a coroutine function)
LLM_METHODS = {
    "chat": (sc.OP_CHAT, False, False),
    "achat": (sc.OP_CHAT, False, True),
    "stream_chat": (sc.OP_CHAT, True, False),
    "astream_chat": (sc.OP_CHAT, True, True),
    "complete": (sc.OP_TEXT_COMPLETION, False, False),
    "acomplete": (sc.OP_TEXT_COMPLETION, False, True),
    "stream_complete": (sc.OP_TEXT_COMPLETION, True, False),
    "astream_complete": (sc.OP_TEXT_COMPLETION, True, True),
}

# method -> is a coroutine function
EMBEDDING_METHODS = {
    "get_query_embedding": False,
    "aget_query_embedding": True,
    "get_text_embedding": False,
    "aget_text_embedding": True,
    "get_text_embedding_batch": False,
    "aget_text_embedding_batch": True,
}

# gen_ai.request.* attribute -> parameter names LlamaIndex models use for it
_PARAMS = (
    (sc.GEN_AI_REQUEST_TEMPERATURE, ("temperature",)),
    (sc.GEN_AI_REQUEST_TOP_P, ("top_p",)),
    (sc.GEN_AI_REQUEST_TOP_K, ("top_k",)),
    (sc.GEN_AI_REQUEST_MAX_TOKENS, ("max_tokens", "max_completion_tokens", "max_new_tokens")),
    (sc.GEN_AI_REQUEST_SEED, ("seed",)),
    (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, ("frequency_penalty",)),
    (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, ("presence_penalty",)),
    (sc.GEN_AI_REQUEST_CHOICE_COUNT, ("n",)),
    (sc.GEN_AI_REQUEST_STOP_SEQUENCES, ("stop", "stop_sequences")),
)


def _param(sources: tuple, names: tuple) -> Any:
    for source in sources:
        for name in names:
            value = source.get(name)
            if value is not None:
                return value
    return None


def _request_params(instance: Any, kwargs: dict) -> dict:
    """Call keyword arguments first, then ``additional_kwargs``, then the model's fields
    (empty sources are skipped: most calls pass no keyword arguments)."""
    values = fields(instance)
    extra = values.get("additional_kwargs")
    if isinstance(extra, dict) and extra:
        sources: tuple = (kwargs, extra, values) if kwargs else (extra, values)
    else:
        sources = (kwargs, values) if kwargs else (values,)
    attrs: dict = {}
    for key, names in _PARAMS:
        value = _param(sources, names)
        if value is None:
            continue
        if key == sc.GEN_AI_REQUEST_STOP_SEQUENCES:
            value = [value] if isinstance(value, str) else (
                [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple)) else None)
            attrs[key] = value or None
        elif key in _INT_PARAMS:
            attrs[key] = rd.integer(value)
        else:
            attrs[key] = rd.num(value)
    return attrs


_INT_PARAMS = frozenset({sc.GEN_AI_REQUEST_MAX_TOKENS, sc.GEN_AI_REQUEST_SEED, sc.GEN_AI_REQUEST_CHOICE_COUNT,
                         sc.GEN_AI_REQUEST_TOP_K})


def model_name(instance: Any) -> Optional[str]:
    """The model a LlamaIndex LLM/embedding calls (``model``, ``model_name``, or its
    metadata), None when it does not say (MockLLM reports "unknown")."""
    values = fields(instance)
    for attr in ("model", "model_name"):
        value = values.get(attr)
        if isinstance(value, str) and value and value != "unknown":
            return value
    try:
        value = instance.metadata.model_name
    except Exception:  # noqa: BLE001 - some integrations raise for unknown models
        return None
    return value if isinstance(value, str) and value and value != "unknown" else None


class ModelCall:
    """One traced model call: its span, the context made current, what metrics need."""

    __slots__ = ("tel", "span", "ctx", "frame", "metric_attrs", "started", "start_ns")

    def __init__(self, tel: Telemetry, span: Any, ctx: otel_context.Context, metric_attrs: dict) -> None:
        self.tel = tel
        self.span = span
        self.ctx = ctx
        self.frame = current_llm_frame(ctx)
        self.metric_attrs = metric_attrs
        self.started = time.perf_counter()
        self.start_ns = time.time_ns()

    def record_metrics(self, exc: Optional[BaseException], response_model: Optional[str] = None,
                       input_tokens: Optional[int] = None, output_tokens: Optional[int] = None) -> None:
        if not self.tel.metrics.enabled:
            return
        attrs = dict(self.metric_attrs)
        if response_model is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
        if exc is not None:
            attrs[sc.ERROR_TYPE] = type(exc).__qualname__
        if self.frame is not None and self.frame.child_reported_usage:
            input_tokens = output_tokens = None  # the nested client span counted them
        self.tel.metrics.record(time.perf_counter() - self.started, attrs, input_tokens, output_tokens)

    # -- LLM ---------------------------------------------------------------------------
    def finish_llm(self, result: rd.LLMResult, exc: Optional[BaseException]) -> None:
        """Response attributes, usage (double-span rule), output, causal outputs, metrics.
        The caller (or the stream machinery) ends the span."""
        try:
            attrs = result.response_attributes()
            attrs.update(usage_attributes(self.frame, result.input_tokens, result.output_tokens))
            cfg = get_config()
            if cfg.capture_content:
                attrs[sc.GEN_AI_OUTPUT_MESSAGES] = json_value(result.output_messages())
            attrs = {k: v for k, v in attrs.items() if v is not None}
            if attrs:  # MockLLM-like responses carry none: skip the span's lock and checks
                self.span.set_attributes(attrs)
            if cfg.causal_links:
                produced = result.produced()
                if produced:
                    causal.produce(self.span, produced)
            self.record_metrics(exc, result.response_model, result.input_tokens, result.output_tokens)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.llm.finish", inner)

    def fail(self, exc: BaseException) -> None:
        try:
            self.record_metrics(exc)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.model.fail", inner)
        end_span(self.span, exc)

    def llm_done(self, result: Any, stream: bool, is_async: bool) -> Any:
        """Finish a returned response, or hand a returned stream to a traced proxy.
        Always returns what the caller must get (``result`` or its proxy)."""
        try:
            if stream and is_async and hasattr(result, "__anext__"):
                return CurrentAsyncStream(result, self.span, _LLMStreamObserver(self), self.ctx, self.start_ns)
            if stream and not is_async and hasattr(result, "__next__"):
                return CurrentStream(result, self.span, _LLMStreamObserver(self), self.ctx, self.start_ns)
            llm_result = rd.LLMResult()
            llm_result.read_response(result)
            self.finish_llm(llm_result, None)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.llm.done", inner)
        end_span(self.span)
        return result

    # -- embeddings ----------------------------------------------------------------------
    def embedding_done(self, result: Any) -> Any:
        try:
            vector = result
            if isinstance(result, (list, tuple)) and result and isinstance(result[0], (list, tuple)):
                vector = result[0]
            if isinstance(vector, (list, tuple)) and vector:
                self.span.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vector))
            self.record_metrics(None)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.embedding.done", inner)
        end_span(self.span)
        return result


class _LLMStreamObserver(StreamObserver):
    """Streamed ``ChatResponse``/``CompletionResponse`` chunks: each chunk's raw provider
    payload is read as it passes (ids, finish reasons, the final usage chunk); the text
    and tool calls, which LlamaIndex accumulates into every chunk, from the last one."""

    __slots__ = ("call", "result", "last")

    def __init__(self, call: ModelCall) -> None:
        self.call = call
        self.result = rd.LLMResult()
        self.last: Any = None

    def on_item(self, item: Any) -> None:
        self.last = item
        raw = getattr(item, "raw", None)
        if raw is not None:
            self.result.read_raw(raw)

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:
        try:
            if self.last is not None:
                self.result.read_message(self.last)
                self.result.read_counts(self.last)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.llm.stream_end", inner)
        self.call.finish_llm(self.result, exc)


# ---------------------------------------------------------------------------------------
# Starting a model span
# ---------------------------------------------------------------------------------------


def _skip(instance: Any, current: otel_context.Context) -> bool:
    """No span: instrumentation suppressed, or this model is calling itself
    (``CustomLLM.chat`` -> ``self.complete``, ``super().chat``)."""
    if not is_instrumentation_enabled():
        return True
    return otel_context.get_value(OWNER_KEY, current) == id(instance)


def _consume(texts: list, parent: otel_context.Context) -> Any:
    if not texts or not get_config().causal_links:
        return None
    try:
        return causal.consume(texts, parent)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("llama_index.causal.consume", exc)
        return None


def start_llm(tel: Telemetry, instance: Any, method: str, args: tuple, kwargs: dict) -> Optional[ModelCall]:
    current = otel_context.get_current()
    if _skip(instance, current):
        return None
    op, stream, _is_async = LLM_METHODS[method]
    dispatcher_parent = active_span_id.get()
    parent, _node, _current = tel.tree.resolve(dispatcher_parent)
    model = model_name(instance)
    base = {
        sc.GEN_AI_OPERATION_NAME: op,
        sc.GEN_AI_PROVIDER_NAME: provider_name(instance),
        sc.GEN_AI_REQUEST_MODEL: model,
    }
    base.update(server_attributes(instance))
    attrs = dict(base)
    attrs.update(_request_params(instance, kwargs))
    if stream:  # the convention: set only when the request streams
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    attrs[sc.SPAN_KIND] = sc.KIND_LLM
    attrs[sc.LIBRARY] = LIBRARY
    attrs[sc.COMPONENT] = type(instance).__name__
    tools = tool_definitions(kwargs.get("tools"))
    if tools is not None:
        attrs[sc.GEN_AI_TOOL_DEFINITIONS] = tools

    if op == sc.OP_CHAT:
        messages = args[0] if args else kwargs.get("messages")
        messages = list(messages or ())
        texts = rd.message_texts(messages)
        capture = json_value(rd.input_messages(messages)) if get_config().capture_content else None
        attrs.update(llm_prompt_attributes(tel.templates, dispatcher_parent, instance, messages))
    else:
        prompt = args[0] if args else kwargs.get("prompt")
        texts = [prompt] if isinstance(prompt, str) and prompt else []
        capture = json_value([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]) \
            if get_config().capture_content and isinstance(prompt, str) else None
        if tel.templates.pending:
            attrs.update(llm_prompt_attributes(tel.templates, dispatcher_parent, instance, None))
    attrs[sc.GEN_AI_INPUT_MESSAGES] = capture

    links = None
    consumption = _consume(texts, parent)
    if consumption is not None:
        links = consumption.links
        attrs.update(consumption.attributes or {})
    name = f"{op} {model}" if model else op
    span = start_span(tel.tracer, name, kind=SpanKind.CLIENT, attributes=attrs, links=links, parent=parent)
    ctx = otel_context.set_value(OWNER_KEY, id(instance), context_with_llm_frame(span, current))
    return ModelCall(tel, span, ctx, base)


def start_embedding(tel: Telemetry, instance: Any, method: str, args: tuple, kwargs: dict) -> Optional[ModelCall]:
    current = otel_context.get_current()
    if _skip(instance, current):
        return None
    parent, _node, _current = tel.tree.resolve(active_span_id.get())
    model = model_name(instance)
    base = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_EMBEDDINGS,
        sc.GEN_AI_PROVIDER_NAME: provider_name(instance),
        sc.GEN_AI_REQUEST_MODEL: model,
    }
    base.update(server_attributes(instance))
    attrs = dict(base)
    attrs[sc.SPAN_KIND] = sc.KIND_EMBEDDING
    attrs[sc.LIBRARY] = LIBRARY
    attrs[sc.COMPONENT] = type(instance).__name__
    name = f"{sc.OP_EMBEDDINGS} {model}" if model else sc.OP_EMBEDDINGS
    span = start_span(tel.tracer, name, kind=SpanKind.CLIENT, attributes=attrs, parent=parent)
    ctx = otel_context.set_value(OWNER_KEY, id(instance), trace.set_span_in_context(span, current))
    return ModelCall(tel, span, ctx, base)


def _guarded_start(starter: Callable, where: str) -> Callable:
    def start(*args: Any) -> Optional[ModelCall]:
        try:
            return starter(*args)
        except Exception as exc:  # noqa: BLE001
            report_internal_error(where, exc)
            return None

    return start


_start_llm = _guarded_start(start_llm, "llama_index.llm.start")
_start_embedding = _guarded_start(start_embedding, "llama_index.embedding.start")


# ---------------------------------------------------------------------------------------
# Wrappers (wrapt signature) - one per method kind, shared by every model class
# ---------------------------------------------------------------------------------------


def _call_wrapper(start: Callable, done: Callable, is_async: bool) -> Callable:
    """A sync or async wrapper: ``start(instance, args, kwargs)`` gives the call (or None
    when not traced), its context is current during the wrapped call, and
    ``done(call, result)`` finishes it; an exception fails the call and propagates."""
    if is_async:
        async def async_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
            call = start(instance, args, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = otel_context.attach(call.ctx)  # ``attached``, inlined: same frame, same token
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                otel_context.detach(token)
                call.fail(exc)
                raise
            otel_context.detach(token)
            return done(call, result)

        return async_wrapper

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        call = start(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(call.ctx)  # ``attached``, inlined: same frame, same token
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            call.fail(exc)
            raise
        otel_context.detach(token)
        return done(call, result)

    return wrapper


def llm_wrapper(tel: Telemetry, method: str) -> Callable:
    _op, stream, is_async = LLM_METHODS[method]
    return _call_wrapper(
        lambda instance, args, kwargs: _start_llm(tel, instance, method, args, kwargs),
        lambda call, result: call.llm_done(result, stream, is_async),
        is_async,
    )


def embedding_wrapper(tel: Telemetry, method: str) -> Callable:
    return _call_wrapper(
        lambda instance, args, kwargs: _start_embedding(tel, instance, method, args, kwargs),
        lambda call, result: call.embedding_done(result),
        EMBEDDING_METHODS[method],
    )


__all__ = ["EMBEDDING_METHODS", "LLM_METHODS", "embedding_wrapper", "llm_wrapper", "model_name"]
