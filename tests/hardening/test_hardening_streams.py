"""Every way a stream can end, sync and async, for each library's streams.

Endings: read to the end, abandoned after one item (dropped and collected), closed
early (``close()``/``aclose()``), left through ``with``/``async with`` after one item,
and the source raising midway. For each: the caller receives exactly what it receives
without instrumentation (items, or the same exception), and every span has ended.

Streams: the raw OpenAI ``Stream``/``AsyncStream`` (wire-format SSE from an in-process
transport; the failing one drops the connection after two events), a LangChain LCEL
chain's ``stream``/``astream`` (the failing one has a generator step that raises after
its first chunk), LlamaIndex ``stream_complete``/``astream_complete`` (the failing one
is an LLM whose stream raises after its first delta).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any, AsyncIterator, Iterator

import pytest

import instrumentors
import openai_scenarios as S
import workloads as W

ENDINGS = ("full", "abandoned", "closed", "with_exit", "raising")


# --- sources: (is_async, failing) -> a fresh stream ----------------------------------


async def openai_stream(is_async: bool, failing: bool) -> Any:
    from test_openai_streams import _failing_body  # tests/openai: the connection drops mid-stream

    scenario = S.SCENARIOS["chat_stream_usage"]
    handler = _failing_body(is_async) if failing else S.reply("chat_stream_usage")
    return await S.call(S.mock_client(handler, is_async), "chat.completions.create", **scenario.kwargs)


async def langchain_stream(is_async: bool, failing: bool) -> Any:
    from langchain_core.runnables import RunnableGenerator

    from langchain_helpers import fake_chat, make_store, rag_chain

    chain = rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    if failing:
        def gen(chunks: Iterator[str]) -> Iterator[str]:
            for i, chunk in enumerate(chunks):
                if i == 1:
                    raise ValueError("the parser step failed midway")
                yield chunk

        async def agen(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
            i = 0
            async for chunk in chunks:
                if i == 1:
                    raise ValueError("the parser step failed midway")
                i += 1
                yield chunk

        chain = chain | RunnableGenerator(gen, agen)
    return chain.astream(W.QUESTION) if is_async else chain.stream(W.QUESTION)


def _llama_llm(failing: bool) -> Any:
    from llama_index.core.llms.mock import MockLLM

    if not failing:
        return MockLLM(max_tokens=6)
    from llama_index.core.base.llms.types import CompletionResponse
    from llama_index.core.llms.callbacks import llm_completion_callback

    class Failing(MockLLM):
        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            def gen():
                yield CompletionResponse(text="Paris", delta="Paris")
                raise ConnectionError("model server went away midway")

            return gen()

        @llm_completion_callback()
        async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            async def gen():
                yield CompletionResponse(text="Paris", delta="Paris")
                raise ConnectionError("model server went away midway")

            return gen()

    return Failing(max_tokens=6)


async def llama_stream(is_async: bool, failing: bool) -> Any:
    llm = _llama_llm(failing)
    return await llm.astream_complete(W.QUESTION) if is_async else llm.stream_complete(W.QUESTION)


SOURCES = {"openai": openai_stream, "langchain": langchain_stream, "llama_index": llama_stream}


def _item(item: Any) -> Any:
    delta = getattr(item, "delta", None)
    if delta is not None and not hasattr(item, "model_dump"):
        return delta  # LlamaIndex CompletionResponse
    return W.picture(item)


# --- one ending -------------------------------------------------------------------------


async def _end(source, is_async: bool, ending: str) -> tuple:
    """(items the caller got, exception name and message or None)."""
    got: list = []
    try:
        stream = await source(is_async, ending == "raising")
        if not is_async:
            if ending in ("full", "raising"):
                for item in stream:
                    got.append(_item(item))
            elif ending == "abandoned":
                it = iter(stream)
                got.append(_item(next(it)))
                del it, stream
                gc.collect()
            elif ending == "closed":
                it = iter(stream)
                got.append(_item(next(it)))
                (stream if hasattr(stream, "close") else it).close()
            else:
                manager = stream if hasattr(stream, "__enter__") else contextlib.closing(stream)
                with manager as s:
                    got.append(_item(next(iter(s))))
        else:
            if ending in ("full", "raising"):
                async for item in stream:
                    got.append(_item(item))
            elif ending == "abandoned":
                it = stream.__aiter__()
                got.append(_item(await it.__anext__()))
                if hasattr(it, "aclose") and not hasattr(stream, "response"):
                    await it.aclose()  # an async generator must be closed in its loop (Python's rule)
                del it, stream
                gc.collect()
            elif ending == "closed":
                it = stream.__aiter__()
                got.append(_item(await it.__anext__()))
                await (stream.close() if hasattr(stream, "response") else it.aclose())
            else:
                manager = stream if hasattr(stream, "__aenter__") else contextlib.aclosing(stream)
                async with manager as s:
                    got.append(_item(await s.__aiter__().__anext__()))
    except Exception as exc:  # noqa: BLE001
        return got, (type(exc).__name__, str(exc))
    return got, None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("mode", ("sync", "async"))
@pytest.mark.parametrize("library", sorted(SOURCES))
async def test_every_stream_ending(traced, instrument_all_with, library, mode, ending):
    source = SOURCES[library]
    is_async = mode == "async"
    instrumentors.uninstrument_all()
    expected = await _end(source, is_async, ending)
    instrument_all_with(traced, capture_content=True, causal_links=True)
    got = await _end(source, is_async, ending)
    # LangChain closes the upstream steps of an async stream in tasks of its own (and
    # reports their runs' ends then): give the loop a moment, as a server would have
    for _ in range(100):
        gc.collect()
        if not traced.counter.still_open():
            break
        await asyncio.sleep(0.02)
    assert got == expected
    assert (expected[1] is not None) == (ending == "raising"), expected
    assert traced.counter.started > 0
    assert traced.counter.still_open() == [], f"{library} {mode} {ending}: spans left open"
    ended_by = {s.attributes.get("instrumentors.stream.ended_by") for s in traced.spans()} - {None}
    if library == "openai":  # the client span says how its stream ended
        assert ended_by == {{"full": "exhausted", "raising": "error", "abandoned": "abandoned",
                             "closed": "closed", "with_exit": "closed"}[ending]}, ended_by
