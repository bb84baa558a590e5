"""Where and how the openai client is wrapped.

The patch point is ``SyncAPIClient.request`` / ``AsyncAPIClient.request`` (looked up on
the class at every call), not ``Completions.create``. Why:

* ``client.chat.completions.with_raw_response`` is a ``cached_property`` whose wrapper
  binds ``create`` at first use; patching ``create`` after that misses every later call.
  Every resource method, cached wrapper, ``.parse()``/``.stream()`` helper and
  ``client.post(...)`` goes through ``self._post`` -> ``client.request``, so wrapping
  ``request`` traces them all, even on clients used before ``instrument()``.
* ``request`` is where the HTTP exchange (and its retries) happens, so the span is
  current exactly while httpx runs: an httpx span nests under it.
* The request body is the JSON about to be sent (``options.json_data``), the same for
  every SDK helper and every openai major (1.x, 2.x, 3.x).

What ``request`` returns decides how the span ends:

* a parsed object -> attributes from it, span ends now;
* ``Stream``/``AsyncStream`` -> a :class:`TracedStream` proxy that ends the span however
  the stream stops, including an SDK helper (the ``.stream()`` managers) closing the HTTP
  response directly;
* a raw response (``.with_raw_response`` / ``.with_streaming_response``) -> the same
  object is returned untouched; if its body is already read we decode it, otherwise the
  httpx response's byte stream is tapped so the span ends when the body is consumed,
  closed, or the response is garbage-collected.
"""

from __future__ import annotations

import json
import time
import weakref
from typing import Any, Callable, Optional

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _semconv as sc
from .. import causal
from .._config import get_config
from .._content import json_value, tool_definitions
from .._metrics import GenAIMetrics
from .._spans import (
    StreamObserver,
    TracedAsyncStream,
    TracedStream,
    current_llm_frame,
    end_span,
    report_internal_error,
)
from .extract import Operation, Result, operation_for

_attach = otel_context.attach
_detach = otel_context.detach

LIBRARY = "openai"
PROVIDER_OPENAI = "openai"
PROVIDER_AZURE = "azure.ai.openai"
PROVIDER_BEDROCK = "aws.bedrock"
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")

# Raw bodies larger than this are not decoded (a batch of embeddings can be tens of MB).
MAX_RAW_BODY = 8 * 1024 * 1024

# Set by install(): the SDK classes whose instances need special handling.
_STREAM_TYPES: tuple = ()
_MODEL_TYPES: tuple = ()  # parsed responses (openai.BaseModel): the common, fast case
_AZURE_TYPES: tuple = ()


class Telemetry:
    """What every wrapped call needs from the instrumentor that installed it."""

    __slots__ = ("tracer", "metrics")

    def __init__(self, tracer: trace.Tracer, metrics: GenAIMetrics) -> None:
        self.tracer = tracer
        self.metrics = metrics


# ---------------------------------------------------------------------------------------
# Server / provider (cached per client, bounded by the live clients)
# ---------------------------------------------------------------------------------------

_servers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _server_attributes(client: Any) -> dict:
    url = getattr(client, "_base_url", None)
    if url is None:
        url = client.base_url
    try:
        cached = _servers.get(client)
    except TypeError:  # an unhashable client subclass: compute every time
        cached = None
    if cached is not None and cached[0] is url:
        return cached[1]
    host = url.host or None
    port = url.port
    if port is None:
        port = 443 if url.scheme == "https" else 80 if url.scheme == "http" else None
    attrs = {sc.GEN_AI_PROVIDER_NAME: _provider(client, host or "")}
    if host:
        attrs[sc.SERVER_ADDRESS] = host
        if port is not None:
            attrs[sc.SERVER_PORT] = port
    try:
        _servers[client] = (url, attrs)
    except TypeError:
        pass
    return attrs


def _provider(client: Any, host: str) -> str:
    if (_AZURE_TYPES and isinstance(client, _AZURE_TYPES)) or host.endswith(_AZURE_HOSTS):
        return PROVIDER_AZURE
    runtime = getattr(client, "_provider_runtime", None)
    name = getattr(runtime, "name", None)
    if (isinstance(name, str) and "bedrock" in name.lower()) or "bedrock" in host:
        return PROVIDER_BEDROCK
    return PROVIDER_OPENAI


# ---------------------------------------------------------------------------------------
# One traced call
# ---------------------------------------------------------------------------------------


class _Call:
    """The state of one traced request, from span start to span end."""

    __slots__ = ("tel", "op", "span", "ctx", "attrs", "frame", "keep_text", "capture", "causal",
                 "linkable", "consumption", "stream", "start_ns", "t0")

    def apply(self, result: Result, exc: Optional[BaseException] = None, extra: Optional[dict] = None) -> None:
        """Write a Result on the span (not ending it): attributes, output content,
        usage bookkeeping, causal outputs, metrics, in one ``set_attributes``. ``extra``:
        attributes to write with them (a stream's own), the Result's win on a clash.
        Runs under the caller's guard."""
        span = self.span
        attrs = result.attributes()
        if extra:
            extra.update(attrs)
            attrs = extra
        if self.capture and result.outputs:
            messages = json_value(result.output_messages())
            if messages is not None:
                attrs[sc.GEN_AI_OUTPUT_MESSAGES] = messages
        error_type = None
        if exc is not None:
            error_type = type(exc).__qualname__
        elif result.error_type is not None:
            error_type = str(result.error_type)
            attrs[sc.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, error_type))
        frame = self.frame
        if frame is not None:
            if result.input_tokens is not None or result.output_tokens is not None:
                frame.child_reported_usage = True
        elif self.causal:
            produced = result.produced()
            if produced:
                try:  # the produced digest joins attrs: one set_attributes for both
                    causal.produce(span, [causal.Produced(text, kind) for text, kind in produced],
                                   linkable=self.linkable, attributes=attrs, consumption=self.consumption)
                except Exception as inner:  # noqa: BLE001
                    report_internal_error("openai.causal.produce", inner)
        if attrs:
            span.set_attributes(attrs)
        metrics = self.tel.metrics
        if metrics.enabled:
            m_attrs = self.attrs
            if result.response_model is not None or error_type is not None:
                m_attrs = dict(m_attrs)
                if result.response_model is not None:
                    m_attrs[sc.GEN_AI_RESPONSE_MODEL] = result.response_model
                if error_type is not None:
                    m_attrs[sc.ERROR_TYPE] = error_type
            metrics.record(time.perf_counter() - self.t0, m_attrs, result.input_tokens, result.output_tokens)

    def complete(self, result: Result) -> None:
        try:
            self.apply(result)
        finally:
            end_span(self.span)

    def fail(self, exc: BaseException) -> None:
        """The SDK raised: record it (error.type, ERROR status) and end the span."""
        try:
            metrics = self.tel.metrics
            if metrics.enabled:
                metrics.record(time.perf_counter() - self.t0, {**self.attrs, sc.ERROR_TYPE: type(exc).__qualname__})
        except Exception as inner:  # noqa: BLE001
            report_internal_error("openai.metrics", inner)
        end_span(self.span, exc)

    def finish(self, result: Any, is_async: bool) -> Any:
        """Attach the response to the span; always returns what the SDK returned
        (or, for a stream, a transparent proxy of it)."""
        try:
            if isinstance(result, _MODEL_TYPES):
                self.complete(self.op.result(result, self.keep_text))
                return result
            if isinstance(result, _STREAM_TYPES):
                proxy = TracedAsyncStream if is_async else TracedStream
                traced = proxy(result, self.span, _ChunkObserver(self), start_ns=self.start_ns)
                # SDK helpers (``.stream()`` managers) close the HTTP response, not the Stream
                http = getattr(result, "response", None)
                if http is not None:
                    try:
                        traced.end_when_closed(http)
                    except Exception as exc:  # noqa: BLE001 - the span still ends at close/GC
                        report_internal_error("openai.stream_close_hook", exc)
                return traced
            http = _http_response(result)
            if http is not None:
                self._raw(http, is_async)
                return result
            self.complete(self.op.result(result, self.keep_text))
        except Exception as exc:  # noqa: BLE001
            report_internal_error("openai.response", exc)
            end_span(self.span)
        return result

    # -- raw responses ------------------------------------------------------------------
    def _raw(self, http: Any, is_async: bool) -> None:
        sse = self.stream or "text/event-stream" in (http.headers.get("content-type") or "")
        try:
            body = http.content  # already read (.with_raw_response without stream)
        except Exception:  # noqa: BLE001 - not read yet: tap the body as the caller reads it
            body = None
        if body is not None:
            self.complete(_decode_body(self, body, sse))
            return
        proxy = TracedAsyncStream if is_async else TracedStream
        http.stream = proxy(http.stream, self.span, _BytesObserver(self, sse), start_ns=self.start_ns)


def _http_response(result: Any) -> Any:
    """The httpx(2) response behind a raw SDK response, or a bare one (``cast_to=httpx.Response``)."""
    http = getattr(result, "http_response", None)
    if http is not None:
        return http
    if hasattr(result, "is_stream_consumed") and hasattr(result, "stream"):
        return result
    return None


def _decode_body(call: _Call, body: bytes, sse: bool) -> Result:
    """A raw body that was already read, through the same decoder as a tapped one."""
    if not body or len(body) > MAX_RAW_BODY:
        return Result()
    observer = _BytesObserver(call, sse)
    observer.on_item(body)
    return observer.result("exhausted")


# ---------------------------------------------------------------------------------------
# Stream observers
# ---------------------------------------------------------------------------------------


class _ChunkObserver(StreamObserver):
    """Parsed chunks/events from ``Stream``/``AsyncStream``."""

    __slots__ = ("call", "acc", "on_item", "end_attributes")
    merges_end_attributes = True

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.acc = call.op.accumulator(call.keep_text)
        self.on_item = self.acc.add  # once per chunk: no extra call layer
        self.end_attributes = None

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:
        self.call.apply(self.acc.result(), exc, self.end_attributes)


class _BytesObserver(StreamObserver):
    """Raw body bytes of a ``.with_streaming_response`` (or raw streamed) call: SSE events
    are decoded into the same accumulator the parsed path uses; a JSON body is kept
    (bounded) and decoded once complete."""

    def __init__(self, call: _Call, sse: bool) -> None:
        self.call = call
        self.sse = sse
        self.acc = call.op.accumulator(call.keep_text) if sse else None
        self.parser = SSEParser() if sse else None
        self.body = bytearray()
        self.events = 0
        self.overflow = False
        self.error: Optional[str] = None

    def on_item(self, item: Any) -> None:
        if self.sse:
            for event in self.parser.feed(bytes(item)):
                self._event(event)
        elif not self.overflow:
            if len(self.body) + len(item) > MAX_RAW_BODY:
                self.overflow = True
                self.body = bytearray()
            else:
                self.body += item

    def _event(self, event: dict) -> None:
        self.events += 1
        error = event.get("error")
        if error:
            self.error = "APIError"
            return
        self.acc.add(event)

    def result(self, ended_by: str) -> Result:
        call = self.call
        if self.sse:
            for event in self.parser.close():
                self._event(event)
            result = self.acc.result()
            if self.error and result.error_type is None:
                result.error_type = self.error
            return result
        if self.body and not self.overflow and ended_by == "exhausted":
            try:
                body = json.loads(bytes(self.body))
            except ValueError:  # not JSON after all (an HTML error page from a proxy...)
                return Result()
            return call.op.result(body, call.keep_text)
        return Result()

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:
        result = self.result(ended_by)
        if self.sse:
            self.call.span.set_attribute(sc.STREAM_CHUNK_COUNT, self.events)
        self.call.apply(result, exc)


class SSEParser:
    """Push-based server-sent-events decoder: feed bytes, get the JSON ``data`` of each
    complete event (``[DONE]`` and non-JSON data skipped). Bounded: a line longer than
    :data:`MAX_RAW_BODY` is dropped rather than buffered forever."""

    __slots__ = ("buf", "data")

    def __init__(self) -> None:
        self.buf = b""
        self.data: list = []

    def feed(self, chunk: bytes) -> list:
        buf = self.buf + chunk if self.buf else chunk
        events = []
        start = 0
        find = buf.find
        while True:
            end = find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line.startswith(b"data:"):
                value = line[5:]
                self.data.append(value[1:] if value.startswith(b" ") else value)
        self.buf = buf[start:]
        if len(self.buf) > MAX_RAW_BODY:
            self.buf = b""
            self.data = []
        return events

    def close(self) -> list:
        """Events left when the body ends without a final blank line."""
        if self.buf:
            self.feed(b"\n")
        event = self._dispatch()
        return [event] if event is not None else []

    def _dispatch(self) -> Optional[dict]:
        if not self.data:
            return None
        data = b"\n".join(self.data)
        self.data = []
        if data.startswith(b"[DONE]"):
            return None
        try:
            event = json.loads(data)
        except ValueError:
            return None
        return event if isinstance(event, dict) else None


# ---------------------------------------------------------------------------------------
# Starting a call
# ---------------------------------------------------------------------------------------


def _begin(tel: Telemetry, client: Any, args: tuple, kwargs: dict) -> Optional[_Call]:
    """Start the span for a request we trace, or None to pass the call straight through."""
    options = args[1] if len(args) > 1 else kwargs.get("options")
    op: Optional[Operation] = operation_for(getattr(options, "url", None))
    if op is None or str(getattr(options, "method", "")).lower() != "post":
        return None
    cfg = get_config()
    parent = otel_context.get_current()
    frame = current_llm_frame(parent)
    if frame is not None and not cfg.nested_client_spans:
        return None

    body = options.json_data
    if not isinstance(body, dict):
        body = dict(body) if hasattr(body, "keys") else {}
    extra = getattr(options, "extra_json", None)
    if extra:
        body = {**body, **extra}
    body = op.caller_body(body, options)
    stream = bool(kwargs.get("stream") or body.get("stream"))
    model = body.get("model")
    if not isinstance(model, str):
        model = None

    attrs = {sc.GEN_AI_OPERATION_NAME: op.name}
    attrs.update(_server_attributes(client))
    if model is not None:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    attrs[sc.SPAN_KIND] = op.span_kind
    attrs[sc.LIBRARY] = LIBRARY
    if op.streams and stream:  # the convention: set only when the request streams
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    op.request_attributes(body, attrs)
    tools = tool_definitions(op.tools(body))
    span_attrs = attrs
    if tools is not None:
        span_attrs = dict(attrs)
        span_attrs[sc.GEN_AI_TOOL_DEFINITIONS] = tools

    capture = cfg.capture_content
    if capture:
        if span_attrs is attrs:
            span_attrs = dict(attrs)
        messages = json_value(op.input_messages(body) or None)
        if messages is not None:
            span_attrs[sc.GEN_AI_INPUT_MESSAGES] = messages
        system = json_value(op.system_instructions(body))
        if system is not None:
            span_attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = system

    use_causal = frame is None and cfg.causal_links
    links = None
    consumption = None
    # a root span: its context is current only inside the SDK call, so no later span can
    # join its trace and consume its outputs there (see causal.produce)
    linkable = True
    if use_causal:
        linkable = trace.get_current_span(parent).get_span_context().is_valid
        try:
            consumption = causal.consume(op.input_texts(body), parent, hand_over=True)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("openai.causal.consume", exc)
            consumption = None
        if consumption is not None:
            links = consumption.links
            if consumption.attributes:
                if span_attrs is attrs:
                    span_attrs = dict(attrs)
                span_attrs.update(consumption.attributes)

    call = _Call()
    call.tel = tel
    call.op = op
    call.attrs = attrs
    call.frame = frame
    call.capture = capture
    call.causal = use_causal
    call.linkable = linkable
    call.consumption = consumption
    call.keep_text = capture or use_causal
    call.stream = stream
    call.t0 = time.perf_counter()
    call.start_ns = time.time_ns()
    call.span = tel.tracer.start_span(
        f"{op.name} {model}" if model else op.name,
        context=parent,
        kind=SpanKind.CLIENT,
        attributes=span_attrs,
        links=links,
        start_time=call.start_ns,
    )
    call.ctx = trace.set_span_in_context(call.span, parent)
    return call


def sync_wrapper(tel: Telemetry) -> Callable:
    def request(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        try:
            call = _begin(tel, instance, args, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("openai.request", exc)
            call = None
        if call is None:
            return wrapped(*args, **kwargs)
        # attach and detach in this one frame (what _spans.attached does, inlined: hot path)
        token = _attach(call.ctx)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            call.fail(exc)
            raise
        _detach(token)
        return call.finish(result, False)

    return request


def async_wrapper(tel: Telemetry) -> Callable:
    async def request(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        try:
            call = _begin(tel, instance, args, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("openai.request", exc)
            call = None
        if call is None:
            return await wrapped(*args, **kwargs)
        token = _attach(call.ctx)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _detach(token)
            call.fail(exc)
            raise
        _detach(token)
        return call.finish(result, True)

    return request


# ---------------------------------------------------------------------------------------
# Install / uninstall
# ---------------------------------------------------------------------------------------

_originals: dict = {}  # (class, attribute) -> the original class attribute


def patch_targets() -> list:
    """(class, attribute) pairs we wrap; tests check each is restored by identity."""
    from openai._base_client import AsyncAPIClient, SyncAPIClient

    return [(SyncAPIClient, "request"), (AsyncAPIClient, "request")]


def install(tel: Telemetry) -> None:
    """Wrap the request methods once; a second install is a no-op."""
    global _STREAM_TYPES, _MODEL_TYPES, _AZURE_TYPES
    import openai
    from openai import AsyncStream, BaseModel, Stream

    _STREAM_TYPES = (Stream, AsyncStream)
    _MODEL_TYPES = (BaseModel,)
    _AZURE_TYPES = tuple(t for t in (getattr(openai, "AzureOpenAI", None), getattr(openai, "AsyncAzureOpenAI", None)) if t)
    (sync_target, async_target) = patch_targets()
    for (cls, name), factory in ((sync_target, sync_wrapper), (async_target, async_wrapper)):
        if (cls, name) in _originals:
            continue
        _originals[(cls, name)] = cls.__dict__[name]
        wrapt.wrap_function_wrapper(cls, name, factory(tel))


def uninstall() -> None:
    """Put every original class attribute back (the very same objects)."""
    for (cls, name), original in list(_originals.items()):
        setattr(cls, name, original)
        del _originals[(cls, name)]
    _servers.clear()


def installed() -> bool:
    return bool(_originals)
