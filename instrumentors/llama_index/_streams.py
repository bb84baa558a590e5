"""Stream lifetimes for LlamaIndex: spans that must outlive the call that returned a stream.

Two situations, both ending spans without any background sweeper:

* An LLM's ``stream_chat``/``stream_complete`` (and async twins) returns a generator that
  calls the provider only when iterated. :class:`CurrentStream` makes the LLM span current
  around every ``next()`` (attach and detach in the same frame), so the OpenAI client span
  opened during iteration nests under it, and ends the span however the stream stops
  (the shared ``TracedStream`` machinery: exhaustion, close, error, garbage collection).
* A query engine / synthesizer returns a ``StreamingResponse`` whose ``response_gen`` is
  consumed later; the dispatcher has already exited their spans by then. We replace
  ``response_gen`` with a traced proxy whose :class:`ResponseGroup` ends every waiting
  span (synthesizer first, then the query engine around it) when the stream stops.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from .. import _content
from .. import _semconv as sc
from .._config import get_config
from .._spans import StreamObserver, TracedAsyncStream, TracedStream, attached, end_span, report_internal_error


class CurrentStream(TracedStream):
    """A traced sync stream whose span context is current while the wrapped stream runs."""

    def __init__(self, wrapped: Any, span: Span, observer: StreamObserver, ctx: otel_context.Context,
                 start_ns: Optional[int] = None) -> None:
        super().__init__(wrapped, span, observer, start_ns)
        self._self_ctx = ctx

    def __next__(self) -> Any:
        # ``attached`` inlined (same attach/detach of one token in this frame): once per chunk.
        token = otel_context.attach(self._self_ctx)
        try:
            return TracedStream.__next__(self)
        finally:
            otel_context.detach(token)

    def close(self) -> Any:
        with attached(self._self_ctx):
            return TracedStream.close(self)


class CurrentAsyncStream(TracedAsyncStream):
    """Async twin of :class:`CurrentStream`."""

    def __init__(self, wrapped: Any, span: Span, observer: StreamObserver, ctx: otel_context.Context,
                 start_ns: Optional[int] = None) -> None:
        super().__init__(wrapped, span, observer, start_ns)
        self._self_ctx = ctx

    async def __anext__(self) -> Any:
        token = otel_context.attach(self._self_ctx)
        try:
            return await TracedAsyncStream.__anext__(self)
        finally:
            otel_context.detach(token)

    async def aclose(self) -> Any:
        with attached(self._self_ctx):
            return await TracedAsyncStream.aclose(self)


# ---------------------------------------------------------------------------------------
# Response streams of query engines and synthesizers
# ---------------------------------------------------------------------------------------


class ResponseGroup(StreamObserver):
    """Every workflow span waiting for one ``StreamingResponse`` to be consumed.

    The first span (the innermost, whose dispatcher call created the response) owns the
    proxy; spans of enclosing calls that returned the same response join later. On end,
    each gets the stream summary and, with capture on, the streamed text, then they end
    innermost first.
    """

    def __init__(self, primary: Span) -> None:
        self.spans: list = [primary]
        self.done = False
        self.ended_by: Optional[str] = None
        self.exc: Optional[BaseException] = None
        self.items = 0
        self._parts: Optional[list] = [] if _content.capture_enabled() else None
        self._size = 0
        self._lock = threading.Lock()

    def join(self, span: Span) -> None:
        """Add an enclosing span; ends it right away if the stream already stopped."""
        with self._lock:
            if not self.done:
                self.spans.append(span)
                return
        self._finish_one(span)

    def on_item(self, item: Any) -> None:
        self.items += 1
        if self._parts is not None and isinstance(item, str):
            limit = get_config().max_attribute_length
            if self._size <= limit:
                self._parts.append(item)
                self._size += len(item)

    def _finish_one(self, span: Span) -> None:
        try:
            attrs: dict = {sc.STREAM_CHUNK_COUNT: self.items}
            if self.ended_by is not None:
                attrs[sc.STREAM_ENDED_BY] = self.ended_by
            if self._parts is not None:
                text = _content.text("".join(self._parts))
                if text is not None:
                    attrs[sc.OUTPUT_VALUE] = text
            span.set_attributes(attrs)  # one lock per span
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.response_stream", exc)
        end_span(span, self.exc)

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:
        with self._lock:
            self.done = True
            self.ended_by = ended_by
            self.exc = exc
            spans = list(self.spans)
        for span in spans:  # innermost first; the proxy's own end_span is then a no-op
            self._finish_one(span)


def traced_response_stream(response: Any, span: Span, ctx: otel_context.Context) -> bool:
    """Make ``span`` end when ``response.response_gen`` stops; False if there is no stream.

    Called for every call that returned this response, innermost first. The innermost
    span's context (``ctx``) is current while the stream is read: LlamaIndex 0.14 only
    calls the LLM then (``Refine`` streams lazily), and that call belongs under it.
    """
    gen = getattr(response, "response_gen", None)
    if gen is None:
        return False
    group = getattr(gen, "_self_li_group", None)
    if isinstance(group, ResponseGroup):
        group.join(span)
        return True
    group = ResponseGroup(span)
    if hasattr(gen, "__anext__") or hasattr(gen, "__aiter__"):
        proxy: Any = CurrentAsyncStream(gen, span, group, ctx)
    else:
        proxy = CurrentStream(gen, span, group, ctx)
    proxy._self_li_group = group
    response.response_gen = proxy
    return True


# ---------------------------------------------------------------------------------------
# Streaming chat-engine / agent responses (StreamingAgentChatResponse)
# ---------------------------------------------------------------------------------------


class _ChatStreamObserver(StreamObserver):
    """Streamed ``ChatResponse`` s of a chat engine: keeps the accumulated text."""

    def __init__(self, span: Span) -> None:
        self._span = span
        self.last: Optional[str] = None

    def on_item(self, item: Any) -> None:
        message = getattr(item, "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, str):
            self.last = content

    def on_end(self, ended_by: str, exc: Optional[BaseException]) -> None:
        text = _content.text(self.last)
        if text is not None:
            self._span.set_attribute(sc.OUTPUT_VALUE, text)


def traced_chat_stream(response: Any, span: Span, ctx: otel_context.Context) -> bool:
    """A ``StreamingAgentChatResponse`` nobody writes to memory in the background
    (``is_writing_to_memory=False``, 0.12's context chat engines): the caller iterates
    ``chat_stream``/``achat_stream`` itself, so the span ends with that stream."""
    for attr, proxy_type in (("chat_stream", CurrentStream), ("achat_stream", CurrentAsyncStream)):
        stream = getattr(response, attr, None)
        if stream is not None:
            observer = _ChatStreamObserver(span)
            setattr(response, attr, proxy_type(stream, span, observer, ctx))
            return True
    return False


class PendingChats:
    """Chat-engine spans waiting for their ``StreamingAgentChatResponse`` to be written.

    LlamaIndex consumes the LLM stream in a thread (or task) running
    ``write_response_to_history``; the span ends when that call exits or fails. If the
    response object is collected first (nobody ever wrote it), a ``weakref.finalize``
    ends the span as abandoned. Capped, oldest ended first.
    """

    def __init__(self, max_pending: int = 10_000) -> None:
        self.max_pending = max_pending
        self._pending: dict = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, response: Any, span: Span, finish: Callable[[Span, Any, Optional[BaseException], str], None]) -> None:
        import weakref

        key = id(response)
        evicted = None
        with self._lock:
            if len(self._pending) >= self.max_pending:
                evicted = self._pending.pop(next(iter(self._pending)), None)
            finalizer = weakref.finalize(response, self._abandoned, key)
            finalizer.atexit = False
            self._pending[key] = (span, finish, finalizer)
        if evicted is not None:
            evicted[2].detach()
            evicted[1](evicted[0], None, None, "evicted")
        # The writer may have finished before the engine returned.
        if getattr(response, "is_done", False) or getattr(response, "exception", None) is not None:
            self.done(response, getattr(response, "exception", None))

    def done(self, response: Any, exc: Optional[BaseException]) -> None:
        with self._lock:
            entry = self._pending.pop(id(response), None)
        if entry is None:
            return
        span, finish, finalizer = entry
        finalizer.detach()
        finish(span, response, exc, "error" if exc is not None else "exhausted")

    def _abandoned(self, key: int) -> None:
        with self._lock:
            entry = self._pending.pop(key, None)
        if entry is not None:
            entry[1](entry[0], None, None, "abandoned")

    def clear(self) -> None:
        with self._lock:
            entries = list(self._pending.values())
            self._pending.clear()
        for span, finish, finalizer in entries:
            finalizer.detach()
            finish(span, None, None, "closed")
