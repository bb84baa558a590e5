"""Property-based message shapes (hypothesis): whatever a request or a response looks
like -- None content, content-part lists (text, images, audio, unknown part types,
non-dict items), invalid tool-call JSON, unknown fields a newer SDK or server adds,
odd roles, 10 MB texts -- no exception escapes our code (the caller gets what it gets
without instrumentation), every span ends, and the length limit holds on every string
we write (capture on, so every text path runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import instrumentors
import openai_scenarios as S
import workloads as W

LIMIT = 300
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])
BIG = "x" * (10 << 20)  # 10 MB

text = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "{", '{"a": [1,', "null", "\x00", "é" * 500]))
unknown = st.dictionaries(st.sampled_from(["future_field", "annotations", "audio", "x_vendor", "meta"]),
                          st.one_of(st.none(), text, st.integers(), st.lists(st.integers(), max_size=3)), max_size=2)
part = st.one_of(
    st.builds(lambda t, u: {"type": "text", "text": t, **u}, text, unknown),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", **u}},
              unknown),
    st.builds(lambda: {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}),
    st.builds(lambda t, u: {"type": t, **u}, st.sampled_from(["file", "refusal", "video", "x-new"]), unknown),
    st.none(), st.integers(), text,
)
content = st.one_of(st.none(), text, st.lists(part, max_size=4))
tool_call = st.builds(
    lambda i, n, a, u: {"id": i, "type": "function", "function": {"name": n, "arguments": a}, **u},
    st.one_of(st.none(), text), st.one_of(st.none(), text), st.one_of(st.none(), text, st.just("{not json")), unknown)
message = st.builds(
    lambda role, c, calls, u: {"role": role, "content": c, **({"tool_calls": calls} if calls else {}), **u},
    st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "critic"]), content,
    st.lists(tool_call, max_size=2), unknown)


def _limits_hold(spans) -> list:
    bad = []
    for span in spans:
        for key, value in span.attributes.items():
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, str) and len(v) > LIMIT:
                    bad.append((span.name, key, len(v)))
    return bad


def _check(traced, call) -> None:
    instrumentors.uninstrument_all()
    expected = W.outcome(call)
    instrumentors.instrument_all(tracer_provider=traced.provider, capture_content=True, causal_links=True,
                                 max_attribute_length=LIMIT)
    try:
        got = W.outcome(call)
    finally:
        instrumentors.uninstrument_all()
    assert got == expected
    assert traced.counter.still_open() == []
    assert not _limits_hold(traced.spans())
    traced.clear()


@pytest.fixture
def props(traced):
    yield traced
    instrumentors.uninstrument_all()
    from instrumentors import _config

    _config.configure()


@SETTINGS
@given(messages=st.lists(message, min_size=1, max_size=4), tools=st.lists(st.builds(
    lambda n, d, p: {"type": "function", "function": {"name": n, "description": d, "parameters": p}},
    text, st.one_of(st.none(), text), st.one_of(st.none(), st.just({"type": "object", "properties": {
        "q": {"type": "string", "description": "d" * 1000}}}), unknown)), max_size=2))
@example(messages=[{"role": "user", "content": BIG}], tools=[])
@example(messages=[{"role": "user", "content": [{"type": "text", "text": BIG}]}], tools=[])
def test_openai_request_shapes(props, messages, tools):
    def call():
        client = S.mock_client(S.reply("chat_basic"), False)
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                              **({"tools": tools} if tools else {}))

    _check(props, call)


choice_message = st.builds(
    lambda c, calls, u: {"role": "assistant", "content": c, "refusal": None,
                         **({"tool_calls": calls} if calls else {}), **u},
    st.one_of(st.none(), text), st.lists(tool_call, max_size=2), unknown)


@SETTINGS
@given(messages=st.lists(choice_message, min_size=0, max_size=2), usage=st.one_of(st.none(), st.just(
    {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "future_details": {"x": 1}})),
    extra=unknown, finish=st.sampled_from(["stop", "length", "tool_calls", None, "x-new-reason"]))
@example(messages=[{"role": "assistant", "content": BIG}], usage=None, extra={}, finish="length")
def test_openai_response_shapes(props, messages, usage, extra, finish):
    httpx = S.http_module()
    body = {"id": "chatcmpl-p", "object": "chat.completion", "created": 1764230400, "model": "gpt-4o-mini",
            "choices": [{"index": i, "message": m, "finish_reason": finish, "logprobs": None}
                        for i, m in enumerate(messages)], "usage": usage, **extra}

    def call():
        client = S.mock_client(lambda request: httpx.Response(200, content=json.dumps(body).encode(),
                                                              headers={"content-type": "application/json"}), False)
        return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    _check(props, call)


lc_part = st.one_of(st.builds(lambda t: {"type": "text", "text": t}, text),
                    st.builds(lambda: {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}),
                    st.builds(lambda u: {"type": "x-new", **u}, unknown), text)


@SETTINGS
@given(human=st.one_of(text, st.lists(lc_part, max_size=3)), answer=st.one_of(text, st.lists(lc_part, max_size=3)),
       args=st.one_of(st.none(), unknown), extra=unknown)
@example(human=BIG, answer=BIG, args=None, extra={})
def test_langchain_message_shapes(props, human, answer, args, extra):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from langchain_helpers import fake_chat

    calls = [{"name": "lookup", "args": args, "id": "c1"}] if isinstance(args, dict) else []

    def call():
        reply = AIMessage(content=answer, tool_calls=calls, response_metadata=dict(extra),
                          additional_kwargs={"x": extra})
        out = fake_chat(reply).invoke([SystemMessage(content=human), HumanMessage(content=human)])
        return [out.content, out.tool_calls, out.response_metadata]  # not its id: a fresh run id each call

    _check(props, call)


@SETTINGS
@given(contents=st.lists(st.one_of(st.none(), text), min_size=1, max_size=3),
       calls=st.lists(tool_call, max_size=2), extra=unknown)
@example(contents=[BIG], calls=[], extra={})
def test_llama_index_message_shapes(props, contents, calls, extra):
    from llama_index.core.llms import ChatMessage
    from llama_index.core.llms.mock import MockLLM

    def call():
        history = [ChatMessage(role="user", content=c, additional_kwargs=dict(extra)) for c in contents]
        history.append(ChatMessage(role="assistant", content=None, additional_kwargs={"tool_calls": calls}))
        return MockLLM(max_tokens=4).chat(history).message.content

    _check(props, call)
