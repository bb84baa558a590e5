"""Per-call overhead of the OpenAI instrumentor, measured in one run against baselines.

Three calls through the real openai SDK and an in-process fake transport (no network):
a chat completion, a streamed chat completion (8 chunks + usage chunk, read to the end)
and a batch embeddings call. For each: the uninstrumented call, the instrumented call
(spans to a null exporter), and the floor: a bare SDK span with as many attributes as
the instrumented span carries. Reported: microseconds per call and overhead/floor
(target <= 2). Content capture off (the default). The causal-link registry is a
separate feature; rows marked "+causal" show its extra cost on the same calls.

    python benchmarks/bench_openai.py            # two to three minutes
    python benchmarks/bench_openai.py --quick    # fewer calls, rougher figures
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib
import json
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openai  # noqa: E402
from _common import floor_span_us, null_provider, per_call_us, report  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from instrumentors import _config  # noqa: E402
from instrumentors.openai import OpenAIInstrumentor  # noqa: E402

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


def _client() -> openai.OpenAI:
    return openai.OpenAI(api_key="bench", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(_handler)))


def _cases(client: openai.OpenAI) -> dict:
    def chat() -> None:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=64)

    def stream() -> None:
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}):
            pass

    def embeddings() -> None:
        client.embeddings.create(model="text-embedding-3-small", input=EMBED_INPUT, encoding_format="float")

    return {"chat (sync)": chat, "chat stream (sync)": stream, "embeddings (sync)": embeddings}


def _attribute_counts(cases: dict) -> dict:
    """How many attributes each instrumented span carries (the floor gets as many)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    counts = {}
    try:
        for name, fn in cases.items():
            exporter.clear()
            fn()
            (span,) = exporter.get_finished_spans()
            counts[name] = len(span.attributes)
    finally:
        instrumentor.uninstrument()
    return counts


def _measure(cases: dict, calls: int, rounds: int, causal: bool) -> list:
    """Wall clock, uninstrumented vs instrumented, alternating ``rounds`` times and keeping
    the fastest of each. On a shared machine the SDK's own ~0.7 ms per call drifts by more
    than our overhead, so these rows are context; :func:`_self_time` is the figure."""
    base_cfg = _config.get_config()
    _config.set_config(dataclasses.replace(base_cfg, causal_links=causal, capture_content=False))
    provider = null_provider()
    baseline: dict = {name: [] for name in cases}
    instrumented: dict = {name: [] for name in cases}
    try:
        counts = _attribute_counts(cases)
        instrumentor = OpenAIInstrumentor()
        for _ in range(rounds):
            for name, fn in cases.items():
                baseline[name].append(per_call_us(fn, calls, repeats=1))
            instrumentor.instrument(tracer_provider=provider)
            try:
                for name, fn in cases.items():
                    instrumented[name].append(per_call_us(fn, calls, repeats=1))
            finally:
                instrumentor.uninstrument()
        floor = {name: floor_span_us(provider, counts[name], calls) for name in cases}
    finally:
        _config.set_config(base_cfg)
    suffix = " +causal" if causal else ""
    return [(f"{name}{suffix} [{counts[name]} attrs]", min(instrumented[name]), min(baseline[name]), floor[name])
            for name in cases]


def _self_time(cases: dict, calls: int, rounds: int, causal: bool) -> list:
    """Our own CPU time per call, measured inside the instrumented calls themselves: time
    in the wrapped ``request()`` minus time in the SDK's original ``request()``, plus (for
    streams) time in ``TracedStream.__next__`` minus time in ``Stream.__next__``. Both
    sides come from the same calls and the clock is this thread's CPU time, so neither
    the SDK's drift nor other processes on a busy machine leak into the figure; the
    clock reads' own cost is calibrated and subtracted. The floor is timed the same way."""
    from openai import Stream
    from openai._base_client import SyncAPIClient

    from instrumentors._spans import TracedStream

    clock = time.thread_time
    spent = {"ours": 0.0, "sdk": 0.0, "sdk_calls": 0}

    def timed(fn: Callable, key: str, bind: bool = False) -> Callable:
        def shim(self, *args, **kwargs):
            call = fn.__get__(self, type(self)) if bind else functools.partial(fn, self)
            if key == "sdk":
                spent["sdk_calls"] += 1
            start = clock()
            try:
                return call(*args, **kwargs)
            finally:
                spent[key] += clock() - start
        return shim

    # Calibration: an outer shim straight around an inner shim around nothing.
    inner = timed(lambda self: None, "sdk")
    outer = timed(lambda self: inner(self), "ours")
    for _ in range(20000):
        outer(None)
    bias = (spent["ours"] - spent["sdk"]) / spent["sdk_calls"]

    base_cfg = _config.get_config()
    _config.set_config(dataclasses.replace(base_cfg, causal_links=causal, capture_content=False))
    provider = null_provider()
    request, stream_next = SyncAPIClient.__dict__["request"], Stream.__dict__["__next__"]
    traced_next = TracedStream.__dict__["__next__"]
    instrumentor = OpenAIInstrumentor()
    baseline: dict = {name: [] for name in cases}
    ours: dict = {name: [] for name in cases}
    try:
        counts = _attribute_counts(cases)
        for _ in range(rounds):
            for name, fn in cases.items():
                baseline[name].append(per_call_us(fn, calls, repeats=1))
            SyncAPIClient.request = timed(request, "sdk")
            Stream.__next__ = timed(stream_next, "sdk")
            instrumentor.instrument(tracer_provider=provider)
            SyncAPIClient.request = timed(SyncAPIClient.__dict__["request"], "ours", bind=True)
            TracedStream.__next__ = timed(traced_next, "ours")
            try:
                for name, fn in cases.items():
                    for _ in range(min(200, calls)):
                        fn()
                    gc.collect()
                    spent.update(ours=0.0, sdk=0.0, sdk_calls=0)
                    for _ in range(calls):
                        fn()
                    ours[name].append((spent["ours"] - spent["sdk"] - bias * spent["sdk_calls"]) / calls * 1e6)
            finally:
                instrumentor.uninstrument()
                SyncAPIClient.request, Stream.__next__ = request, stream_next
                TracedStream.__next__ = traced_next
        floor = {name: _floor_cpu_us(provider, counts[name], calls * 5) for name in cases}
    finally:
        SyncAPIClient.request, Stream.__next__ = request, stream_next
        TracedStream.__next__ = traced_next
        _config.set_config(base_cfg)
    suffix = " +causal" if causal else ""
    return [(f"{name}{suffix} [{counts[name]} attrs]", min(baseline[name]) + min(ours[name]), min(baseline[name]),
             floor[name]) for name in cases]


def _floor_cpu_us(provider, n_attributes: int, calls: int) -> float:
    """floor_span_us's bare span (same body), timed on this thread's CPU clock."""
    tracer = provider.get_tracer("floor")
    attrs = {f"attr.{i}": i for i in range(n_attributes)}
    best = float("inf")
    for _ in range(5):
        gc.collect()
        start = time.thread_time()
        for _ in range(calls):
            with tracer.start_as_current_span("floor", attributes=attrs):
                pass
        best = min(best, (time.thread_time() - start) / calls * 1e6)
    return best


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (rougher figures)")
    args = parser.parse_args(argv)
    calls, rounds = (300, 3) if args.quick else (1000, 7)
    cases = _cases(_client())
    print(f"openai {openai.__version__}, python {sys.version.split()[0]}, "
          f"{rounds} alternating rounds of {calls} calls, fastest round kept")
    print("\n== overhead = our self-time inside the instrumented calls (the figure to compare with the floor)")
    report(_self_time(cases, calls, rounds, causal=False) + _self_time(cases, calls, rounds, causal=True))
    if not args.quick:
        print("\n== wall clock, uninstrumented vs instrumented (context: drifts with machine load)")
        report(_measure(cases, calls, rounds, causal=False))


if __name__ == "__main__":
    main(sys.argv[1:])
