"""The ChatOpenAI calls the LangChain cassette tests make, with OpenAI's response to each.

One source for both sides: ``make_cassettes.py`` runs each scenario through LangChain
and the real openai SDK against an in-process ``httpx.MockTransport`` answering in
OpenAI's wire format (a chat.completion JSON object; ``text/event-stream`` chunks with a
final usage chunk and ``data: [DONE]`` for streams) while vcrpy records the exchange;
the tests replay the same calls with ``--record-mode=none``. The request in each
cassette is therefore byte for byte what langchain-openai sends (the same in 0.3.x and
1.x for these calls).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import BaseModel, Field

from langchain_helpers import QUESTION, make_store, rag_chain

CREATED = 1764230400
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
FINGERPRINT = "fp_560af6e559"

RAG_ANSWER = "The capital of France is Paris."
RAG_STREAM_PIECES = ["The", " capital", " of", " France", " is", " Paris", "."]
RAG_USAGE = (96, 8)  # prompt, completion tokens
RAG_STREAM_USAGE = (96, 7)

TOOLS_QUESTION = "What's the weather in Paris right now?"
TOOLS_USAGE = (61, 17)
WEATHER_ARGS = '{"location":"Paris, France"}'

STRUCTURED_QUESTION = "Which city is the capital of France? Answer as JSON."
STRUCTURED_JSON = '{"city":"Paris","country":"France"}'
STRUCTURED_USAGE = (88, 10)


class CityAnswer(BaseModel):
    """The city that answers the question."""

    city: str = Field(description="city name")
    country: str = Field(description="country name")


def get_weather(location: str) -> str:
    """Get the current weather for a city."""
    return f"18C and sunny in {location}"


def chat_model(**http: Any) -> Any:
    """The ChatOpenAI every scenario uses (``stream_usage`` explicit so the request body
    does not depend on whether a custom HTTP client is passed)."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=MODEL, temperature=0, stream_usage=True, max_retries=0, **http)


def rag(model: Any) -> Any:
    return rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), model)


# ---------------------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------------------


def usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def completion(cid: str, message: dict, finish: str, tokens: tuple) -> dict:
    message = {"role": "assistant", "refusal": None, "annotations": [], **message}
    return {
        "id": cid, "object": "chat.completion", "created": CREATED, "model": RESPONSE_MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage(*tokens), "service_tier": "default", "system_fingerprint": FINGERPRINT,
    }


def chunk(cid: str, choices: list, usage_value: Any = "omit") -> dict:
    out = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": RESPONSE_MODEL,
           "service_tier": "default", "system_fingerprint": FINGERPRINT, "choices": choices}
    if usage_value != "omit":
        out["usage"] = usage_value
    return out


def sse(events: list) -> bytes:
    body = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
    return (body + "data: [DONE]\n\n").encode()


def stream_body(cid: str, pieces: list, tokens: tuple) -> bytes:
    events = [chunk(cid, [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                           "logprobs": None, "finish_reason": None}], None)]
    for piece in pieces:
        events.append(chunk(cid, [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                   "finish_reason": None}], None))
    events.append(chunk(cid, [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], None))
    events.append(chunk(cid, [], usage(*tokens)))
    return sse(events)


# ---------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    run: Callable[[Any], Any]  # given a ChatOpenAI, make the LangChain call
    respond: Callable[[dict], Any]  # request body -> response body (dict or SSE bytes)
    stream: bool = False

    @property
    def cassette(self) -> str:
        return f"{self.name}.yaml"

    @property
    def content_type(self) -> str:
        return "text/event-stream; charset=utf-8" if self.stream else "application/json"


SCENARIOS: dict = {}


def _add(scenario: Scenario) -> None:
    SCENARIOS[scenario.name] = scenario


_add(Scenario(
    name="rag_invoke",
    run=lambda model: rag(model).invoke(QUESTION),
    respond=lambda body: completion("chatcmpl-CHrAG1nvoke0001", {"content": RAG_ANSWER}, "stop", RAG_USAGE),
))
_add(Scenario(
    name="rag_stream",
    run=lambda model: list(rag(model).stream(QUESTION)),
    respond=lambda body: stream_body("chatcmpl-CHrAG5tream0001", RAG_STREAM_PIECES, RAG_STREAM_USAGE),
    stream=True,
))
_add(Scenario(
    name="tools",
    run=lambda model: model.bind_tools([get_weather]).invoke(TOOLS_QUESTION),
    respond=lambda body: completion("chatcmpl-CHt00ls0001", {
        "content": None,
        "tool_calls": [{"id": "call_Wx7pQ2", "type": "function",
                        "function": {"name": "get_weather", "arguments": WEATHER_ARGS}}],
    }, "tool_calls", TOOLS_USAGE),
))
_add(Scenario(
    name="structured",
    run=lambda model: model.with_structured_output(CityAnswer).invoke(STRUCTURED_QUESTION),
    respond=lambda body: completion("chatcmpl-CH5tructured0001", {"content": STRUCTURED_JSON}, "stop",
                                    STRUCTURED_USAGE),
))


def scenario(name: str) -> Scenario:
    return SCENARIOS[name]


def find(name: Optional[str]) -> list:
    return [SCENARIOS[name]] if name else list(SCENARIOS.values())
