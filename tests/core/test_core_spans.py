"""The shared span lifecycle: fail-open guard, stream proxies that always end their span,
context attach/detach, and the content gate."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from instrumentors import _content, _spans
from instrumentors import _semconv as sc


class Recorder(_spans.StreamObserver):
    def __init__(self):
        self.items = []
        self.ended = []

    def on_item(self, item):
        self.items.append(item)

    def on_end(self, ended_by, exc):
        self.ended.append((ended_by, exc))


class ExplodingObserver(_spans.StreamObserver):
    def on_item(self, item):
        raise RuntimeError("bug in our observer")

    def on_end(self, ended_by, exc):
        raise RuntimeError("bug in our observer end")


def _stream(tracer_provider, wrapped, observer=None, cls=_spans.TracedStream):
    span = tracer_provider.get_tracer("t").start_span("stream")
    observer = observer or Recorder()
    return cls(wrapped, span, observer), observer


def _finished(span_exporter):
    return span_exporter.get_finished_spans()


# --- fail-open ---------------------------------------------------------------------------

def test_fail_open_swallows_and_logs_once(caplog):
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        for _ in range(5):
            with _spans.fail_open("unit.place"):
                raise KeyError("ours")
    assert sum("unit.place" in r.getMessage() for r in caplog.records) == 1


def test_guarded_returns_default_and_passes_through_results():
    @_spans.guarded("unit.guarded", default="fallback")
    def helper(x):
        if x < 0:
            raise ValueError(x)
        return x * 2

    assert helper(2) == 4
    assert helper(-1) == "fallback"


# --- sync streams ------------------------------------------------------------------------

def test_stream_fully_read_ends_span_once(tracer_provider, span_exporter):
    stream, obs = _stream(tracer_provider, iter([1, 2, 3]))
    assert list(stream) == [1, 2, 3]
    spans = _finished(span_exporter)
    assert len(spans) == 1
    assert spans[0].attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert spans[0].attributes[sc.STREAM_CHUNK_COUNT] == 3
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in spans[0].attributes
    assert obs.items == [1, 2, 3] and obs.ended == [("exhausted", None)]
    stream.close()  # a later close does not end it again
    assert len(_finished(span_exporter)) == 1


def test_stream_abandoned_is_ended_by_gc(tracer_provider, span_exporter):
    def gen():
        yield from range(10)

    stream, obs = _stream(tracer_provider, gen())
    next(stream)
    del stream
    gc.collect()
    spans = _finished(span_exporter)
    assert len(spans) == 1
    assert spans[0].attributes[sc.STREAM_ENDED_BY] == "abandoned"
    assert obs.ended == [("abandoned", None)]


def test_stream_closed_early(tracer_provider, span_exporter):
    closed = []

    def gen():
        try:
            yield from range(10)
        finally:
            closed.append(True)

    stream, _ = _stream(tracer_provider, gen())
    next(stream)
    stream.close()
    assert closed == [True]
    assert _finished(span_exporter)[0].attributes[sc.STREAM_ENDED_BY] == "closed"


def test_stream_with_block_left_early(tracer_provider, span_exporter):
    class CM:
        def __init__(self):
            self.exited = False
            self.it = iter(range(5))

        def __iter__(self):
            return self.it

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.exited = True

    inner = CM()
    stream, _ = _stream(tracer_provider, inner)
    with stream as s:
        assert s is stream
        next(s)
    assert inner.exited
    span = _finished(span_exporter)[0]
    assert span.attributes[sc.STREAM_ENDED_BY] == "closed"
    assert span.status.status_code == StatusCode.UNSET


def test_stream_error_midway_propagates_same_exception(tracer_provider, span_exporter):
    boom = ConnectionError("dropped")

    def gen():
        yield 1
        raise boom

    stream, obs = _stream(tracer_provider, gen())
    with pytest.raises(ConnectionError) as info:
        list(stream)
    assert info.value is boom
    span = _finished(span_exporter)[0]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "ConnectionError"
    assert obs.ended == [("error", boom)]


def test_observer_bugs_never_reach_the_caller(tracer_provider, span_exporter):
    stream, _ = _stream(tracer_provider, iter("abc"), ExplodingObserver())
    assert list(stream) == ["a", "b", "c"]
    assert len(_finished(span_exporter)) == 1


def test_proxy_passes_attributes_through(tracer_provider, span_exporter):
    class Resp:
        response = "raw"

        def __iter__(self):
            return iter([1])

    stream, _ = _stream(tracer_provider, Resp())
    assert stream.response == "raw"
    assert isinstance(stream, Resp)
    list(stream)


# --- async streams -----------------------------------------------------------------------

async def test_async_stream_fully_read(tracer_provider, span_exporter):
    async def agen():
        for i in range(3):
            yield i

    stream, obs = _stream(tracer_provider, agen(), cls=_spans.TracedAsyncStream)
    assert [x async for x in stream] == [0, 1, 2]
    assert _finished(span_exporter)[0].attributes[sc.STREAM_ENDED_BY] == "exhausted"


async def test_async_stream_aclose_early(tracer_provider, span_exporter):
    async def agen():
        for i in range(3):
            yield i

    stream, _ = _stream(tracer_provider, agen(), cls=_spans.TracedAsyncStream)
    await stream.__anext__()
    await stream.aclose()
    assert _finished(span_exporter)[0].attributes[sc.STREAM_ENDED_BY] == "closed"


async def test_async_stream_abandoned(tracer_provider, span_exporter):
    async def agen():
        for i in range(3):
            yield i

    stream, _ = _stream(tracer_provider, agen(), cls=_spans.TracedAsyncStream)
    await stream.__anext__()
    del stream
    gc.collect()
    assert _finished(span_exporter)[0].attributes[sc.STREAM_ENDED_BY] == "abandoned"


async def test_async_stream_error_and_cancel(tracer_provider, span_exporter):
    async def agen():
        yield 1
        await asyncio.sleep(10)

    stream, _ = _stream(tracer_provider, agen(), cls=_spans.TracedAsyncStream)

    async def consume():
        async for _ in stream:
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = _finished(span_exporter)[0]
    assert span.attributes[sc.STREAM_ENDED_BY] == "error"


# --- context -----------------------------------------------------------------------------

def test_attached_restores_context_even_on_error(tracer_provider):
    before = otel_context.get_current()
    span = tracer_provider.get_tracer("t").start_span("x")
    with pytest.raises(ValueError):
        with _spans.attached(trace.set_span_in_context(span)):
            assert trace.get_current_span() is span
            raise ValueError
    assert otel_context.get_current() == before
    span.end()


def test_llm_frame_only_for_direct_children(tracer_provider):
    tracer = tracer_provider.get_tracer("t")
    outer = tracer.start_span("framework llm")
    with _spans.attached(_spans.context_with_llm_frame(outer)):
        frame = _spans.current_llm_frame()
        assert frame is not None and frame.span is outer
        with tracer.start_as_current_span("a tool inside"):
            assert _spans.current_llm_frame() is None
    assert _spans.current_llm_frame() is None
    frame.child_reported_usage = True
    assert _spans.usage_attributes(frame, 3, 4) == {
        sc.USAGE_REPORTED_BY_CHILD: True, sc.USAGE_INPUT_TOKENS: 3, sc.USAGE_OUTPUT_TOKENS: 4}
    assert _spans.usage_attributes(None, 3, 4) == {
        sc.GEN_AI_USAGE_INPUT_TOKENS: 3, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 4}
    outer.end()


# --- content gate ------------------------------------------------------------------------

def test_content_off_returns_nothing(set_config):
    set_config(capture_content=False)
    assert _content.text("secret prompt") is None
    assert _content.json_value([{"content": "secret"}]) is None
    assert _content.bounded_json({"id": "doc-1"}) == '{"id":"doc-1"}'


def test_content_on_redacts_and_truncates(set_config):
    set_config(capture_content=True, max_attribute_length=32, redact=lambda s: s.replace("4111", "XXXX"))
    assert _content.text("card 4111") == "card XXXX"
    long = _content.text("y" * 100)
    assert len(long) == 32 and long.endswith("[truncated]")
    assert _content.json_value([{"content": "card 4111"}]) == '[{"content":"card XXXX"}]'


def test_broken_redactor_never_leaks(set_config):
    def broken(_):
        raise RuntimeError

    set_config(capture_content=True, redact=broken)
    assert _content.text("secret") == "[redaction failed]"
    assert "secret" not in _content.json_value({"a": "secret"})


def test_error_messages_pass_the_redaction_hook(tracer_provider, span_exporter, set_config):
    set_config(redact=lambda s: s.replace("alice@example.com", "[email]"))
    span = tracer_provider.get_tracer("t").start_span("call")
    _spans.end_span(span, ValueError("no account for alice@example.com"))
    [finished] = span_exporter.get_finished_spans()
    assert finished.status.description == "no account for [email]"
    assert finished.events[0].attributes["exception.message"] == "no account for [email]"
    assert "alice@example.com" not in finished.events[0].attributes["exception.stacktrace"]
    assert finished.attributes[sc.ERROR_TYPE] == "ValueError"
