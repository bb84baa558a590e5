"""The fake OpenAI wire the benchmarks share: response bodies and an httpx transport
handler (no network). Imports only openai and httpx, so peers' venvs can use it too."""

from __future__ import annotations

import importlib
import json

import openai

httpx = importlib.import_module("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant that answers geography questions."},
    {"role": "user", "content": "What is the capital of France, and which river flows through it?"},
]
ANSWER = "The capital of France is Paris; the Seine flows through it."
CHAT_BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764230400, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 31, "completion_tokens": 14, "total_tokens": 45,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_bench",
}).encode()


def _stream_body() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764230400,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench", "usage": None}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for word in ["The", " capital", " of", " France", " is", " Paris."]:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 6, "total_tokens": 37}})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


STREAM_BODY = _stream_body()
EMBED_INPUT = ["first document about cats", "second document about dogs", "third document about birds"]
EMBED_BODY = json.dumps({
    "object": "list", "model": "text-embedding-3-small",
    "data": [{"object": "embedding", "index": i, "embedding": [0.01 * j for j in range(64)]} for i in range(3)],
    "usage": {"prompt_tokens": 12, "total_tokens": 12},
}).encode()

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream"}


def _handler(request):
    path = request.url.path
    if path.endswith("/embeddings"):
        return httpx.Response(200, headers=JSON_HEADERS, content=EMBED_BODY)
    if b'"stream":true' in request.content:
        return httpx.Response(200, headers=SSE_HEADERS, content=STREAM_BODY)
    return httpx.Response(200, headers=JSON_HEADERS, content=CHAT_BODY)
