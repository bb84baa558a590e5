"""``instrumentors.prompt.system_hash`` on chat.completions and responses spans: written
with content capture off (the default), the fingerprint of exactly the system prompt,
stable for the same prompt, different for a changed one, and never the text itself.
In-process transport (``S.mock_client``): the request bodies vary, the replies do not."""

from __future__ import annotations

import pytest

import openai_scenarios as S
from instrumentors import _content
from instrumentors import _semconv as sc

pytestmark = pytest.mark.usefixtures("instrument")

SYSTEM_A = "You are a terse assistant. Answer in one sentence."
SYSTEM_B = "You are a friendly assistant. Explain your answer in detail."
DEVELOPER = "Never mention competitors."
PART = "Cite the source document id."


async def _chat(is_async: bool, messages: list, scenario: str = "chat_basic", **kwargs):
    client = S.mock_client(S.reply(scenario), is_async)
    result = await S.call(client, "chat.completions.create", model=S.CHAT_MODEL, messages=messages, **kwargs)
    if kwargs.get("stream"):
        await S.drain(result)


async def _responses(is_async: bool, scenario: str = "responses_basic", **kwargs):
    client = S.mock_client(S.reply(scenario), is_async)
    if not hasattr(client, "responses"):
        pytest.skip("this openai has no Responses API")
    result = await S.call(client, "responses.create", model="o4-mini", **kwargs)
    if kwargs.get("stream"):
        await S.drain(result)


def _hashes(exporter) -> list:
    return [s.attributes.get(sc.SYSTEM_PROMPT_HASH) for s in exporter.get_finished_spans()]


async def test_chat_system_and_developer_messages_hashed_with_capture_off(span_exporter, is_async):
    assert _content.capture_enabled() is False
    await _chat(is_async, [
        {"role": "system", "content": SYSTEM_A},
        {"role": "user", "content": S.QUESTION},
        {"role": "developer", "content": [{"type": "text", "text": DEVELOPER}, {"type": "text", "text": PART}]},
    ])
    span = S.only_span(span_exporter)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(f"{SYSTEM_A}\n{DEVELOPER}\n{PART}")
    written = S.everything_written(span)
    for text in (SYSTEM_A, DEVELOPER, PART, S.QUESTION):
        assert text not in written
    assert sc.GEN_AI_SYSTEM_INSTRUCTIONS not in span.attributes
    assert sc.GEN_AI_INPUT_MESSAGES not in span.attributes


async def test_chat_same_prompt_same_hash_changed_prompt_other_hash(span_exporter, is_async):
    await _chat(is_async, [{"role": "system", "content": SYSTEM_A}, {"role": "user", "content": "first question"}])
    await _chat(is_async, [{"role": "system", "content": SYSTEM_A}, {"role": "user", "content": "another one"}])
    await _chat(is_async, [{"role": "system", "content": SYSTEM_B}, {"role": "user", "content": "first question"}])
    await _chat(is_async, [{"role": "user", "content": "no system prompt at all"}])
    assert _hashes(span_exporter) == [
        _content.content_hash(SYSTEM_A), _content.content_hash(SYSTEM_A), _content.content_hash(SYSTEM_B), None]
    assert _content.content_hash(SYSTEM_A) != _content.content_hash(SYSTEM_B)


async def test_chat_stream_has_the_same_hash(span_exporter, is_async):
    await _chat(is_async, [{"role": "system", "content": SYSTEM_A}, {"role": "user", "content": "Count to three."}],
                scenario="chat_stream_usage", stream=True, stream_options={"include_usage": True})
    span = S.only_span(span_exporter)
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[sc.STREAM_ENDED_BY] == "exhausted"
    assert span.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(SYSTEM_A)
    assert SYSTEM_A not in S.everything_written(span)


async def test_chat_hash_is_the_same_with_capture_on(span_exporter, set_config, is_async):
    messages = [{"role": "system", "content": SYSTEM_A}, {"role": "user", "content": S.QUESTION}]
    await _chat(is_async, messages)
    set_config(capture_content=True)
    await _chat(is_async, messages)
    off, on = span_exporter.get_finished_spans()
    assert off.attributes[sc.SYSTEM_PROMPT_HASH] == on.attributes[sc.SYSTEM_PROMPT_HASH] \
        == _content.content_hash(SYSTEM_A)
    assert SYSTEM_A in on.attributes[sc.GEN_AI_INPUT_MESSAGES]  # capture on: the text is where it belongs


async def test_responses_instructions_hashed_with_capture_off(span_exporter, is_async):
    await _responses(is_async, instructions=S.RESP_INSTRUCTIONS, input=S.RESP_QUESTION)
    await _responses(is_async, instructions=S.RESP_INSTRUCTIONS, input="Which river flows through Lyon?")
    await _responses(is_async, instructions="You are a verbose geography tutor.", input=S.RESP_QUESTION)
    await _responses(is_async, input=S.RESP_QUESTION)
    assert _hashes(span_exporter) == [
        _content.content_hash(S.RESP_INSTRUCTIONS), _content.content_hash(S.RESP_INSTRUCTIONS),
        _content.content_hash("You are a verbose geography tutor."), None]
    for span in span_exporter.get_finished_spans():
        written = S.everything_written(span)
        assert S.RESP_INSTRUCTIONS not in written and "verbose geography" not in written
        assert S.RESP_QUESTION not in written


async def test_responses_instructions_then_system_and_developer_items(span_exporter, is_async):
    await _responses(is_async, instructions=S.RESP_INSTRUCTIONS, input=[
        {"role": "system", "content": SYSTEM_A},
        {"role": "user", "content": S.RESP_QUESTION},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": DEVELOPER}]},
    ])
    span = S.only_span(span_exporter)
    assert span.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(
        f"{S.RESP_INSTRUCTIONS}\n{SYSTEM_A}\n{DEVELOPER}")
    written = S.everything_written(span)
    for text in (S.RESP_INSTRUCTIONS, SYSTEM_A, DEVELOPER, S.RESP_QUESTION):
        assert text not in written


async def test_responses_stream_has_the_hash(span_exporter, is_async):
    await _responses(is_async, scenario="responses_stream", instructions=S.RESP_INSTRUCTIONS,
                     input="Say hello world in French.", stream=True)
    span = S.only_span(span_exporter)
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(S.RESP_INSTRUCTIONS)
    assert S.RESP_INSTRUCTIONS not in S.everything_written(span)


async def test_no_hash_for_embeddings_and_legacy_completions(span_exporter, is_async):
    client = S.mock_client(S.reply("embeddings_single"), is_async)
    await S.call(client, "embeddings.create", **S.SCENARIOS["embeddings_single"].kwargs)
    client = S.mock_client(S.reply("completions_legacy"), is_async)
    await S.call(client, "completions.create", **S.SCENARIOS["completions_legacy"].kwargs)
    assert _hashes(span_exporter) == [None, None]
