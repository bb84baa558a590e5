"""Traced OpenAI calls: a chat completion, a streamed one, and a tool-calling round trip.

Runs offline out of the box: without ``OPENAI_API_KEY`` the client talks to an
in-process transport that answers in OpenAI's real wire format (JSON bodies, and
server-sent events for the stream), so the spans you get are the real thing. With
``OPENAI_API_KEY`` set, the same calls go to the OpenAI API (model: ``OPENAI_MODEL``,
default ``gpt-4o-mini``).

    python examples/openai_chat.py
    opentelemetry-instrument python examples/openai_chat.py
    OTEL_TRACES_EXPORTER=console opentelemetry-instrument python examples/openai_chat.py

Under ``opentelemetry-instrument`` the OpenAI instrumentor is already on (entry point);
run directly, the script calls ``instrumentors.instrument_all()`` itself.

Install: ``pip install -e ".[openai]"`` (README, "Examples").
"""

from __future__ import annotations

import importlib
import json
import os
import time

import openai
from opentelemetry import trace

import instrumentors
from instrumentors.openai import OpenAIInstrumentor

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def get_weather(city: str) -> dict:
    return {"city": city, "temp_c": 18, "sky": "sunny"}


# ---------------------------------------------------------------------------------------
# Offline: an in-process OpenAI (wire-format responses, no network)
# ---------------------------------------------------------------------------------------


def _http():
    """openai 3.x uses httpx2; 1.x and 2.x use httpx."""
    major = int(openai.__version__.split(".")[0])
    return importlib.import_module("httpx2" if major >= 3 else "httpx")


def _completion(body: dict, message: dict, finish: str, prompt: int, completion: int) -> dict:
    return {
        "id": f"chatcmpl-offline{int(time.time() * 1000) % 10**9}", "object": "chat.completion",
        "created": int(time.time()), "model": body["model"] + "-2024-07-18", "system_fingerprint": "fp_offline",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _stream(body: dict, text: str) -> bytes:
    base = {"id": "chatcmpl-offlinestream", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"] + "-2024-07-18", "system_fingerprint": "fp_offline"}
    usage = (body.get("stream_options") or {}).get("include_usage")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for word in text.split(" "):
        piece = word if len(chunks) == 1 else " " + word
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": len(chunks) - 2,
                                                         "total_tokens": 12 + len(chunks) - 2}})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def _offline_openai(request):
    httpx = _http()
    body = json.loads(request.content)
    messages = body.get("messages", [])
    if body.get("stream"):
        text = "Roses are red, the sky is blue, spans end on time, and so do you."
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_stream(body, text))
    if body.get("tools") and messages[-1]["role"] != "tool":
        call = {"id": "call_offline1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
        return httpx.Response(200, json=_completion(body, {"content": None, "tool_calls": [call]}, "tool_calls", 64, 17))
    if messages[-1]["role"] == "tool":
        result = json.loads(messages[-1]["content"])
        text = f"It is {result['temp_c']}°C and {result['sky']} in {result['city']}."
        return httpx.Response(200, json=_completion(body, {"content": text}, "stop", 96, 14))
    return httpx.Response(200, json=_completion(body, {"content": "Paris is the capital of France."}, "stop", 21, 8))


def make_client() -> openai.OpenAI:
    if os.environ.get("OPENAI_API_KEY"):
        return openai.OpenAI()
    httpx = _http()
    return openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=httpx.MockTransport(_offline_openai)))


# ---------------------------------------------------------------------------------------


def main() -> None:
    if not OpenAIInstrumentor().is_instrumented_by_opentelemetry:  # not under opentelemetry-instrument
        instrumentors.instrument_all()
    client = make_client()
    tracer = trace.get_tracer("examples.openai_chat")

    with tracer.start_as_current_span("openai example"):
        answer = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0)
        print("chat:", answer.choices[0].message.content)

        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Write a two-line poem about tracing."}],
            stream=True, stream_options={"include_usage": True})
        print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

        messages = [{"role": "user", "content": "What's the weather in Paris?"}]
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        result = get_weather(**json.loads(call.function.arguments))
        messages += [first.choices[0].message,  # the SDK sends the assistant turn back as-is
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
        final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
        print("tool call:", call.function.name, "->", final.choices[0].message.content)

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


if __name__ == "__main__":
    main()
