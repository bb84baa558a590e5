"""Every stream span ends, exactly once, however the caller stops reading: fully read,
abandoned and garbage-collected, close()/aclose() early, ``with``/``async with`` left
early, an exception midway. For parsed streams (``create(stream=True)``), raw streams
(``.with_raw_response`` then ``.parse()``), ``.with_streaming_response`` and the
``.stream()`` helper. The conftest fails any test that leaks a context or logs
"Failed to detach context"."""

from __future__ import annotations

import gc

import openai
import pytest
from opentelemetry.trace import StatusCode

import openai_scenarios as S
from instrumentors import _semconv as sc

pytestmark = pytest.mark.usefixtures("instrument")

SCENARIO = S.SCENARIOS["chat_stream_usage"]


def _client(is_async, handler=None):
    return S.mock_client(handler or S.reply("chat_stream_usage"), is_async)


async def _stream(is_async, handler=None, method="chat.completions.create"):
    return await S.call(_client(is_async, handler), method, **SCENARIO.kwargs)


async def _next(stream, is_async):
    return await stream.__anext__() if is_async else next(stream)


def _ended(exporter, ended_by: str, status=StatusCode.UNSET):
    span = S.only_span(exporter)
    assert span.end_time is not None
    assert span.attributes[sc.STREAM_ENDED_BY] == ended_by
    assert span.status.status_code is status
    return span


async def test_fully_read(span_exporter, is_async):
    chunks = await S.drain(await _stream(is_async))
    span = _ended(span_exporter, "exhausted")
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == len(chunks) == 9
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6


async def test_abandoned_then_garbage_collected(span_exporter, is_async):
    stream = await _stream(is_async)
    await _next(stream, is_async)
    await _next(stream, is_async)
    assert span_exporter.get_finished_spans() == ()
    del stream
    gc.collect()
    span = _ended(span_exporter, "abandoned")
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 2
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-CRc4stream0001"
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes  # the usage chunk never came


async def test_close_early(span_exporter, is_async):
    stream = await _stream(is_async)
    await _next(stream, is_async)
    if is_async:
        await stream.close()  # AsyncStream.close() is a coroutine
    else:
        stream.close()
    assert stream.response.is_closed
    _ended(span_exporter, "closed")


async def test_aclose_early(span_exporter):
    stream = await _stream(True)
    await stream.__anext__()
    await stream.aclose()
    _ended(span_exporter, "closed")


async def test_with_left_early(span_exporter, is_async):
    stream = await _stream(is_async)
    if is_async:
        async with stream as s:
            async for _ in s:
                break
    else:
        with stream as s:
            for _ in s:
                break
    _ended(span_exporter, "closed")
    assert stream.response.is_closed


def _failing_body(is_async):
    """Two SSE events, then the connection drops."""
    httpx = S.http_module()
    events = S.chat_stream_body(include_usage=True).split(b"\n\n")

    class Sync(httpx.SyncByteStream):
        def __iter__(self):
            yield events[0] + b"\n\n"
            yield events[1] + b"\n\n"
            raise httpx.ReadError("connection reset by peer")

    class Async(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield events[0] + b"\n\n"
            yield events[1] + b"\n\n"
            raise httpx.ReadError("connection reset by peer")

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=Async() if is_async else Sync())

    return handler


async def test_exception_mid_stream(span_exporter, is_async):
    stream = await _stream(is_async, _failing_body(is_async))
    received = []
    with pytest.raises(Exception) as excinfo:
        if is_async:
            async for chunk in stream:
                received.append(chunk)
        else:
            for chunk in stream:
                received.append(chunk)
    assert len(received) == 2, repr(excinfo.value)
    span = _ended(span_exporter, "error", StatusCode.ERROR)
    assert span.attributes[sc.ERROR_TYPE] == type(excinfo.value).__qualname__
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 2


async def test_stream_error_event_is_recorded(span_exporter, is_async):
    httpx = S.http_module()
    body = S.sse([{"error": {"message": "The server had an error", "type": "server_error"}}])

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    stream = await _stream(is_async, handler)
    with pytest.raises(openai.APIError) as excinfo:
        await S.drain(stream)
    span = _ended(span_exporter, "error", StatusCode.ERROR)
    assert span.attributes[sc.ERROR_TYPE] == type(excinfo.value).__qualname__


# -- raw streams: the same endings through the tapped response body ---------------------


async def _raw_stream(is_async, handler=None):
    raw = await _stream(is_async, handler, method="chat.completions.with_raw_response.create")
    return raw.parse()


def _streaming_handler(is_async):
    """The SSE body delivered in pieces, as from a real socket (not pre-read)."""
    httpx = S.http_module()
    body = S.chat_stream_body(include_usage=True)
    pieces = [body[i:i + 97] for i in range(0, len(body), 97)]

    class Sync(httpx.SyncByteStream):
        def __iter__(self):
            yield from pieces

    class Async(httpx.AsyncByteStream):
        async def __aiter__(self):
            for piece in pieces:
                yield piece

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=Async() if is_async else Sync())

    return handler


async def test_raw_stream_fully_read(span_exporter, is_async):
    chunks = await S.drain(await _raw_stream(is_async, _streaming_handler(is_async)))
    assert len(chunks) == 9
    span = S.only_span(span_exporter)
    assert span.attributes[sc.STREAM_ENDED_BY] in ("exhausted", "closed")
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 9
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 13
    assert span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


async def test_raw_stream_closed_early(span_exporter, is_async):
    stream = await _raw_stream(is_async, _streaming_handler(is_async))
    await _next(stream, is_async)
    await stream.close() if is_async else stream.close()
    span = _ended(span_exporter, "closed")
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


async def test_raw_stream_abandoned(span_exporter, is_async):
    stream = await _raw_stream(is_async, _streaming_handler(is_async))
    await _next(stream, is_async)
    del stream
    gc.collect()
    _ended(span_exporter, "abandoned")


async def test_raw_stream_exception_mid_stream(span_exporter, is_async):
    stream = await _raw_stream(is_async, _failing_body(is_async))
    with pytest.raises(Exception) as excinfo:
        await S.drain(stream)
    span = _ended(span_exporter, "error", StatusCode.ERROR)
    # The tap sees the transport error; openai 3.x then wraps it in APIConnectionError.
    cause = excinfo.value.__cause__ or excinfo.value
    assert span.attributes[sc.ERROR_TYPE] == type(cause).__qualname__


async def test_streaming_response_left_without_reading(span_exporter, is_async):
    client = _client(is_async, _streaming_handler(is_async))
    manager = client.chat.completions.with_streaming_response.create(**SCENARIO.kwargs)
    if is_async:
        async with manager as response:
            assert response.status_code == 200
    else:
        with manager as response:
            assert response.status_code == 200
    span = _ended(span_exporter, "closed")
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"


async def test_streaming_response_read_in_pieces(span_exporter, is_async):
    client = _client(is_async, _streaming_handler(is_async))
    manager = client.chat.completions.with_streaming_response.create(**SCENARIO.kwargs)
    if is_async:
        async with manager as response:
            body = b"".join([piece async for piece in response.iter_bytes()])
    else:
        with manager as response:
            body = b"".join(response.iter_bytes())
    assert body == S.chat_stream_body(include_usage=True)
    span = S.only_span(span_exporter)
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 9
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6


# -- the .stream() helper ---------------------------------------------------------------


def _stream_manager(is_async):
    """``chat.completions.stream(...)`` (``beta.`` on older SDKs) for the scenario."""
    client = _client(is_async)
    kwargs = {k: v for k, v in SCENARIO.kwargs.items() if k != "stream"}
    completions = client.chat.completions if hasattr(client.chat.completions, "stream") \
        else client.beta.chat.completions
    return completions.stream(**kwargs)


async def test_stream_helper_fully_read(span_exporter, is_async):
    manager = _stream_manager(is_async)
    if is_async:
        async with manager as stream:
            final = await stream.get_final_completion()
    else:
        with manager as stream:
            final = stream.get_final_completion()
    assert final.choices[0].message.content == S.STREAM_TEXT
    span = S.only_span(span_exporter)
    assert span.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 13


async def test_stream_helper_left_early_ends_at_with_exit(span_exporter, is_async):
    """The helper closes the HTTP response directly (not the Stream we proxy): the span
    must end right there, not whenever the still-referenced stream is collected."""
    manager = _stream_manager(is_async)
    if is_async:
        async with manager as stream:
            async for _ in stream:
                break
            assert span_exporter.get_finished_spans() == ()
    else:
        with manager as stream:
            for _ in stream:
                break
            assert span_exporter.get_finished_spans() == ()
    span = _ended(span_exporter, "closed")  # `stream` and `manager` are still referenced
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 1
    assert stream is not None and manager is not None


async def test_response_closed_directly_ends_span(span_exporter, is_async):
    stream = await _stream(is_async)
    await _next(stream, is_async)
    if is_async:
        await stream.response.aclose()
    else:
        stream.response.close()
    span = _ended(span_exporter, "closed")
    assert span.attributes[sc.STREAM_CHUNK_COUNT] == 1


async def test_streaming_response_with_a_non_json_body(span_exporter, caplog, is_async):
    httpx = S.http_module()

    class Sync(httpx.SyncByteStream):
        def __iter__(self):
            yield b"<html>502 Bad Gateway</html>"

    class Async(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b"<html>502 Bad Gateway</html>"

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/html"}, stream=Async() if is_async else Sync())

    client = _client(is_async, handler)
    kwargs = {k: v for k, v in SCENARIO.kwargs.items() if k not in ("stream", "stream_options")}
    manager = client.chat.completions.with_streaming_response.create(**kwargs)
    if is_async:
        async with manager as response:
            body = await response.read()
    else:
        with manager as response:
            body = response.read()
    assert body == b"<html>502 Bad Gateway</html>"
    span = S.only_span(span_exporter)
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert sc.GEN_AI_RESPONSE_ID not in span.attributes
    assert "internal error" not in caplog.text
