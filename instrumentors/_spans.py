"""Span lifecycle shared by every instrumentor: the fail-open guard, start/end helpers,
context attach/detach that cannot leak, and one stream proxy (sync and async) that ends
its span however the caller stops reading.

Why here and not per library: the bugs peers ship (spans that never end when a stream is
abandoned, "Failed to detach context", guards that turn an API error into ``None``) all
live in this code, so it exists once and is tested once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from . import _config
from . import _semconv as sc

_log = logging.getLogger("instrumentors")

# ---------------------------------------------------------------------------------------
# Fail-open
# ---------------------------------------------------------------------------------------

_REPORT_INTERVAL_S = 60.0
_reported: dict = {}
_reported_lock = threading.Lock()
_MAX_REPORT_KEYS = 256


def report_internal_error(where: str, exc: BaseException) -> None:
    """Log an error of *our* code once per (place, type) per minute; never raises.

    The host app must behave exactly as without us, so our errors are swallowed; but a
    silent failure is undebuggable, so each distinct one is logged, rate-limited.
    """
    try:
        key = (where, type(exc).__name__)
        now = time.monotonic()
        with _reported_lock:
            last = _reported.get(key)
            if last is not None and now - last < _REPORT_INTERVAL_S:
                return
            if len(_reported) >= _MAX_REPORT_KEYS:
                _reported.clear()
            _reported[key] = now
        _log.warning("instrumentors: internal error in %s (the traced call is unaffected)", where, exc_info=exc)
    except Exception:  # noqa: BLE001 - logging itself failed; nothing more to do
        pass


@contextmanager
def fail_open(where: str) -> Iterator[None]:
    """Run a block of *our* code; any Exception in it is reported and swallowed.

    Never wrap the user's call in this: their exceptions must propagate unchanged.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        report_internal_error(where, exc)


def guarded(where: str, default: Any = None) -> Callable:
    """Decorator form of :func:`fail_open` for helper functions that return a value."""

    def decorate(fn: Callable) -> Callable:
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                report_internal_error(where, exc)
                return default

        inner.__name__ = getattr(fn, "__name__", "guarded")
        inner.__doc__ = fn.__doc__
        inner.__wrapped__ = fn  # type: ignore[attr-defined]
        return inner

    return decorate


# ---------------------------------------------------------------------------------------
# Span start / end
# ---------------------------------------------------------------------------------------


def start_span(
    tracer: trace.Tracer,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Optional[dict] = None,
    links: Optional[Sequence[Link]] = None,
    parent: Optional[otel_context.Context] = None,
    start_time: Optional[int] = None,
) -> Span:
    """Start a span (not made current). ``None`` attribute values are dropped."""
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    return tracer.start_span(
        name, context=parent, kind=kind, attributes=attrs, links=list(links or ()), start_time=start_time
    )


def set_attributes(span: Span, attributes: dict) -> None:
    """Set every non-None attribute (OTel rejects None with a warning per key)."""
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, value)


def record_error(span: Span, exc: BaseException) -> None:
    """Mark the span failed with the convention's ``error.type``; the caller re-raises."""
    try:
        message = str(exc)
        redact = _config.get_config().redact
        if redact is not None and message:
            # An error message can echo user input; the redaction hook sees it like any text.
            try:
                message = str(redact(message))
            except Exception:  # noqa: BLE001 - a broken redactor must not leak the text
                message = "[redaction failed]"
        span.set_attribute(sc.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, message[:512] or type(exc).__name__))
        attributes = {"exception.message": message[:4096]}
        if redact is not None:
            import traceback

            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            attributes["exception.stacktrace"] = stack.replace(str(exc), message) if str(exc) else stack
        span.record_exception(exc, attributes=attributes)
    except Exception as inner:  # noqa: BLE001
        report_internal_error("record_error", inner)


def end_span(span: Span, exc: Optional[BaseException] = None, end_time: Optional[int] = None) -> None:
    """End a span exactly once (OTel ignores a second end, with a warning we avoid)."""
    try:
        if exc is not None:
            record_error(span, exc)
        if span.is_recording():
            span.end(end_time=end_time)
    except Exception as inner:  # noqa: BLE001
        report_internal_error("end_span", inner)


@contextmanager
def attached(ctx: otel_context.Context) -> Iterator[None]:
    """Make ``ctx`` current for exactly the body, detaching the very token it attached.

    Attach and detach happen in the same frame, so they are always in the same
    contextvars Context: the "Failed to detach context" bug cannot happen here.
    """
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


# ---------------------------------------------------------------------------------------
# Nested LLM spans (a framework LLM span with an instrumented client call inside)
# ---------------------------------------------------------------------------------------

_FRAME_KEY = otel_context.create_key("instrumentors.llm_frame")


class LLMFrame:
    """Marks "a framework LLM span is running" in the OTel context.

    LangChain's ChatOpenAI and LlamaIndex's OpenAI call the openai client underneath. The
    inner client span sees this frame, reports that it recorded usage, and the framework
    span then writes its own token counts under ``instrumentors.usage.*`` instead of
    ``gen_ai.usage.*`` so summing ``gen_ai.usage.*`` over a trace never double counts.
    """

    __slots__ = ("span", "child_reported_usage")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.child_reported_usage = False


def context_with_llm_frame(span: Span, ctx: Optional[otel_context.Context] = None) -> otel_context.Context:
    """The context to make current while a framework LLM call runs."""
    ctx = trace.set_span_in_context(span, ctx)
    return otel_context.set_value(_FRAME_KEY, LLMFrame(span), ctx)


def current_llm_frame(ctx: Optional[otel_context.Context] = None) -> Optional[LLMFrame]:
    """The framework LLM frame the current call runs inside, if its span is the parent."""
    frame = otel_context.get_value(_FRAME_KEY, ctx)
    if frame is None:
        return None
    # Only the *direct* framework span counts: a client call made from, say, a tool
    # inside an agent's LLM span would otherwise be mistaken for the LLM's own call.
    if trace.get_current_span(ctx) is not frame.span:
        return None
    return frame


def usage_attributes(
    frame: Optional[LLMFrame], input_tokens: Optional[int], output_tokens: Optional[int]
) -> dict:
    """Usage attributes for a framework LLM span, honouring a child that reported them."""
    if frame is not None and frame.child_reported_usage:
        return {
            sc.USAGE_REPORTED_BY_CHILD: True,
            sc.USAGE_INPUT_TOKENS: input_tokens,
            sc.USAGE_OUTPUT_TOKENS: output_tokens,
        }
    return {sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens, sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens}


# ---------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------


class StreamObserver:
    """What a library contributes to a traced stream: how to read one item, how to finish.

    Subclass per stream type; ``on_item`` and ``on_end`` run under the fail-open guard,
    and ``on_end`` runs exactly once whatever way the stream stops.

    ``merges_end_attributes``: an observer that writes the span's attributes once in
    ``on_end`` sets it; the stream's own end attributes (chunk count, ended_by, time to
    first chunk) are then handed to it in ``end_attributes`` to write in the same
    ``set_attributes`` (the SDK locks and validates per write) instead of before it.
    """

    merges_end_attributes = False
    end_attributes: Optional[dict] = None

    def on_item(self, item: Any) -> None:  # pragma: no cover - default no-op
        pass

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:  # pragma: no cover
        pass


class _StreamState:
    """Everything needed to finish a stream's span, held apart from the proxy so a
    ``weakref.finalize`` on the proxy can finish it without keeping the proxy alive."""

    __slots__ = ("span", "observer", "done", "busy", "first_item_ns", "start_ns", "items", "lock", "__weakref__")

    def __init__(self, span: Span, observer: StreamObserver, start_ns: int) -> None:
        self.span = span
        self.observer = observer
        self.done = False
        #: the proxy is driving the wrapped stream (next/close/exit) and finishes it itself
        self.busy = False
        self.first_item_ns: Optional[int] = None
        self.start_ns = start_ns
        self.items = 0
        self.lock = threading.Lock()

    def item(self, item: Any) -> None:
        try:
            if self.first_item_ns is None:  # written at the end, with the other stream attributes
                self.first_item_ns = time.time_ns()
            self.items += 1
            self.observer.on_item(item)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("stream.on_item", exc)

    def finish(self, ended_by: str, exc: Optional[BaseException] = None) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        observer = self.observer
        merged = False
        try:
            attrs = {sc.STREAM_CHUNK_COUNT: self.items, sc.STREAM_ENDED_BY: ended_by}
            if self.first_item_ns is not None:
                attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (self.first_item_ns - self.start_ns) / 1e9
            merged = observer.merges_end_attributes
            if merged:
                observer.end_attributes = attrs
            else:
                self.span.set_attributes(attrs)
            observer.on_end(ended_by, exc)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("stream.on_end", inner)
            if merged:  # the observer may have failed before writing them: write them (again)
                try:
                    self.span.set_attributes(attrs)
                except Exception as again:  # noqa: BLE001
                    report_internal_error("stream.end_attributes", again)
        end_span(self.span, exc)


    def closed_underneath(self) -> None:
        """The resource under the stream was closed by someone other than the proxy (a
        library helper closing the HTTP response directly): the stream is over."""
        if not self.busy:
            self.finish("closed")


def _finish_abandoned(state: _StreamState) -> None:
    state.finish("abandoned")


def _end_when_closed(resource: Any, state: _StreamState, is_async: bool) -> None:
    """Make ``resource.close()`` (``aclose()`` for an async stream) -- the HTTP response
    under an openai ``Stream`` -- also end the stream's span: an instance attribute wraps
    the bound method, keeping its result and exceptions. Why: SDK helpers such as openai's
    ``.stream()`` managers close the response directly, bypassing the stream object we
    proxy; without this the span would end only when the stream is garbage-collected.
    Closes that happen while our proxy is itself reading or closing (the SDK closes the
    response as it reaches the end of the body) are left to the proxy, which knows
    whether the stream was exhausted, closed or failed."""
    if is_async:
        aclose = resource.aclose

        async def aclosing(*args: Any, **kwargs: Any) -> Any:
            try:
                return await aclose(*args, **kwargs)
            finally:
                state.closed_underneath()

        resource.aclose = aclosing
    else:
        close = resource.close

        def closing(*args: Any, **kwargs: Any) -> Any:
            try:
                return close(*args, **kwargs)
            finally:
                state.closed_underneath()

        resource.close = closing


class TracedStream(wrapt.ObjectProxy):
    """Proxy for a sync stream (iterator, generator, openai ``Stream``) that ends its span
    when the stream is exhausted, closed, left via ``with``, raises, or is garbage-collected.

    Everything else (attributes, ``response``, ``until_done``...) passes through to the
    wrapped object, so ``isinstance`` checks and library helpers keep working.
    """

    def __init__(self, wrapped: Any, span: Span, observer: StreamObserver, start_ns: Optional[int] = None) -> None:
        super().__init__(wrapped)
        state = _StreamState(span, observer, start_ns or time.time_ns())
        self._self_state = state
        self._self_iter: Any = None
        self._self_finalizer = weakref.finalize(self, _finish_abandoned, state)

    # iteration -------------------------------------------------------------------------
    def __iter__(self) -> "TracedStream":
        return self

    def __next__(self) -> Any:
        state = self._self_state
        if self._self_iter is None:
            wrapped = self.__wrapped__
            self._self_iter = wrapped if hasattr(wrapped, "__next__") else iter(wrapped)
        state.busy = True
        try:
            item = next(self._self_iter)
        except StopIteration:
            state.busy = False
            state.finish("exhausted")
            raise
        except BaseException as exc:  # GeneratorExit/KeyboardInterrupt too: the span must end
            state.busy = False
            state.finish("error", exc)
            raise
        state.busy = False
        state.item(item)
        return item

    def end_when_closed(self, resource: Any) -> None:
        """Closing ``resource`` (what the wrapped stream reads from) directly also ends
        this stream's span; see :func:`_end_when_closed`."""
        _end_when_closed(resource, self._self_state, is_async=False)

    # explicit stop ---------------------------------------------------------------------
    def close(self) -> Any:
        state = self._self_state
        state.busy = True
        try:
            close = getattr(self.__wrapped__, "close", None)
            return close() if close is not None else None
        finally:
            state.busy = False
            state.finish("closed")

    def __enter__(self) -> "TracedStream":
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        state = self._self_state
        state.busy = True
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            state.busy = False
            if exc is not None and not isinstance(exc, GeneratorExit):
                state.finish("error", exc)
            else:
                state.finish("closed")

    def __reduce_ex__(self, protocol: int) -> Any:  # proxies of live streams are not picklable
        raise TypeError("cannot pickle a stream")


class TracedAsyncStream(wrapt.ObjectProxy):
    """The async twin of :class:`TracedStream` (async iterators, async generators,
    openai ``AsyncStream``). Same ending rules; ``aclose``/``close`` and ``async with``."""

    def __init__(self, wrapped: Any, span: Span, observer: StreamObserver, start_ns: Optional[int] = None) -> None:
        super().__init__(wrapped)
        state = _StreamState(span, observer, start_ns or time.time_ns())
        self._self_state = state
        self._self_iter: Any = None
        self._self_finalizer = weakref.finalize(self, _finish_abandoned, state)

    def __aiter__(self) -> "TracedAsyncStream":
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        if self._self_iter is None:
            wrapped = self.__wrapped__
            self._self_iter = wrapped if hasattr(wrapped, "__anext__") else wrapped.__aiter__()
        state.busy = True
        try:
            item = await self._self_iter.__anext__()
        except StopAsyncIteration:
            state.busy = False
            state.finish("exhausted")
            raise
        except BaseException as exc:  # CancelledError too
            state.busy = False
            state.finish("error", exc)
            raise
        state.busy = False
        state.item(item)
        return item

    def end_when_closed(self, resource: Any) -> None:
        """See :meth:`TracedStream.end_when_closed` (hooks ``aclose``)."""
        _end_when_closed(resource, self._self_state, is_async=True)

    async def _close_with(self, names: tuple) -> Any:
        state = self._self_state
        state.busy = True
        try:
            for name in names:
                close = getattr(self.__wrapped__, name, None)
                if close is not None:
                    result = close()
                    if hasattr(result, "__await__"):
                        result = await result
                    return result
            return None
        finally:
            state.busy = False
            state.finish("closed")

    async def aclose(self) -> Any:
        return await self._close_with(("aclose", "close"))

    async def close(self) -> Any:
        """openai's ``AsyncStream.close()`` is a coroutine; mirror it."""
        return await self._close_with(("close", "aclose"))

    async def __aenter__(self) -> "TracedAsyncStream":
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        state = self._self_state
        state.busy = True
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return (await exit_(exc_type, exc, tb)) if exit_ is not None else None
        finally:
            state.busy = False
            if exc is not None and not isinstance(exc, GeneratorExit):
                state.finish("error", exc)
            else:
                state.finish("closed")

    def __reduce_ex__(self, protocol: int) -> Any:
        raise TypeError("cannot pickle a stream")
