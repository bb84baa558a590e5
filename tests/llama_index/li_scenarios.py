"""LlamaIndex calls made with ``llama_index.llms.openai.OpenAI`` and the OpenAI wire
responses they get. One source for both sides: ``make_cassettes.py`` records each
scenario through the real llama-index-llms-openai + openai SDK against an in-process
transport answering with the bodies below (so a cassette's request is exactly what the
integration sends: its model kwargs, ``stream_options``, tool specs...), and the tests
replay the same calls with ``--record-mode=none``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from llama_index.core.base.llms.types import ChatMessage

CREATED = 1764230400
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
SYSTEM = "You are a terse geography assistant."
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
STREAM_PIECES = ["Paris", " is", " the", " capital", "."]
RAG_ANSWER = "The capital of France is Paris."
WEATHER_ARGS = '{"location": "Paris"}'


def get_weather(location: str) -> str:
    """Get the current weather for a city."""
    return f"18C and sunny in {location}"


def messages() -> list:
    return [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=QUESTION)]


def usage(prompt: int, completion: int, cached: int = 0) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def completion(cid: str, content: Optional[str], finish: str, use: dict, tool_calls: Optional[list] = None) -> dict:
    message: dict = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": cid, "object": "chat.completion", "created": CREATED, "model": RESPONSE_MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": use, "service_tier": "default", "system_fingerprint": "fp_560af6e559"}


def stream_body() -> bytes:
    def chunk(choices: list, use: Any = None) -> dict:
        return {"id": "chatcmpl-li-stream", "object": "chat.completion.chunk", "created": CREATED,
                "model": RESPONSE_MODEL, "service_tier": "default", "system_fingerprint": "fp_560af6e559",
                "choices": choices, "usage": use}

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                      "logprobs": None, "finish_reason": None}])]
    for piece in STREAM_PIECES:
        events.append(chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]))
    events.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(chunk([], usage(21, 5)))
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


@dataclass
class Scenario:
    name: str
    respond: Callable[[dict], Any]  # request body -> JSON object or SSE bytes
    content_type: str = "application/json"
    llm_kwargs: Optional[dict] = None

    @property
    def cassette(self) -> str:
        return f"{self.name}.yaml"


SCENARIOS = {s.name: s for s in [
    Scenario("chat", lambda body: completion("chatcmpl-li-chat", ANSWER, "stop", usage(24, 8, cached=4))),
    Scenario("stream_chat", lambda body: stream_body(), "text/event-stream",
             {"additional_kwargs": {"stream_options": {"include_usage": True}}}),
    Scenario("complete", lambda body: completion("chatcmpl-li-complete", ANSWER, "stop", usage(14, 8))),
    Scenario("tools", lambda body: completion("chatcmpl-li-tools", None, "tool_calls", usage(60, 15), [
        {"id": "call_li_weather", "type": "function", "function": {"name": "get_weather", "arguments": WEATHER_ARGS}}
    ])),
    Scenario("rag", lambda body: completion("chatcmpl-li-rag", RAG_ANSWER, "stop", usage(120, 9))),
]}


def make_llm(scenario: Scenario, **http: Any) -> Any:
    """The LLM a scenario is recorded and replayed with (a placeholder key; the scrubber
    drops auth headers anyway)."""
    from llama_index.llms.openai import OpenAI

    return OpenAI(model=MODEL, temperature=0.2, max_tokens=64, api_key="sk-placeholder", max_retries=0,
                  **(scenario.llm_kwargs or {}), **http)


async def run(name: str, llm: Any, is_async: bool) -> Any:
    """Make the scenario's call (sync or async) and return what LlamaIndex returned,
    streams fully read."""
    if name == "chat":
        return await llm.achat(messages()) if is_async else llm.chat(messages())
    if name == "stream_chat":
        if is_async:
            return [c async for c in await llm.astream_chat(messages())]
        return list(llm.stream_chat(messages()))
    if name == "complete":
        return await llm.acomplete(QUESTION) if is_async else llm.complete(QUESTION)
    if name == "tools":
        from llama_index.core.tools import FunctionTool

        # chat() with the tool kwargs spelled out: chat_with_tools() adds different
        # defaults across llama-index-llms-openai versions, one cassette serves all.
        tool = FunctionTool.from_defaults(fn=get_weather)
        kwargs = {"tools": [tool.metadata.to_openai_tool()], "tool_choice": "auto", "parallel_tool_calls": False}
        user = [ChatMessage(role="user", content="What's the weather in Paris?")]
        return await llm.achat(user, **kwargs) if is_async else llm.chat(user, **kwargs)
    if name == "rag":
        from li_helpers import QUESTION as RAG_QUESTION
        from li_helpers import build_index

        engine = build_index().as_query_engine(llm=llm, similarity_top_k=2)
        return await engine.aquery(RAG_QUESTION) if is_async else engine.query(RAG_QUESTION)
    raise KeyError(name)
