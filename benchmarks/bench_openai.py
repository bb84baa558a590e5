"""Per-call overhead of the OpenAI instrumentor, measured in one run against baselines.

Three calls through the real openai SDK and an in-process fake transport (no network):
a chat completion, a streamed chat completion (8 chunks + usage chunk, read to the end)
and a batch embeddings call; spans go to a null exporter; content capture off.

How, and why this way: one SDK call costs ~0.7-1.5 ms of its own and drifts by more
than our overhead on a shared machine, so "instrumented minus uninstrumented" wall
clock is mostly noise. The headline figure is therefore our *self-time*: CPU time spent
inside the instrumented ``request()`` (and ``TracedStream.__next__``) minus the SDK's
own, from the same calls (see ``_SelfTimer``). The floor is a bare SDK span with as
many attributes as ours, wrapped around ``request()`` and timed the same way, so both
pay the same cold caches between SDK work. For reference the same overhead is also
shown against ``_common.floor_span_us`` (a tight loop, hot caches) and, without
``--quick``, the plain wall-clock A/B. Target: overhead/floor <= 2. Rows marked
"+causal" add the causal-link registry (a separate feature) on the same calls.

    python benchmarks/bench_openai.py            # a few minutes
    python benchmarks/bench_openai.py --quick    # fewer calls, rougher figures
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openai  # noqa: E402
import wrapt  # noqa: E402
from _common import floor_span_us, null_provider, per_call_us, report  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from instrumentors import _config  # noqa: E402
from instrumentors.openai import OpenAIInstrumentor  # noqa: E402

from _openai_fake import EMBED_INPUT, MESSAGES, MODEL, _handler, httpx  # noqa: E402


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


class _SelfTimer:
    """Times the code an instrumentation adds *inside* real calls: CPU time (this thread)
    spent in the instrumented ``request()`` minus the SDK's own ``request()``, plus for
    streams ``TracedStream.__next__`` minus ``Stream.__next__``. Both sides come from the
    same calls, so the SDK's drift and other processes on a busy machine stay out of it;
    the shims' own clock reads are calibrated and subtracted; the garbage collector is
    paused while timing (its pauses land on whoever happens to allocate next)."""

    def __init__(self) -> None:
        from openai import Stream
        from openai._base_client import SyncAPIClient

        from instrumentors._spans import TracedStream

        self.client_cls, self.stream_cls, self.traced_cls = SyncAPIClient, Stream, TracedStream
        self.saved = {
            (SyncAPIClient, "request"): SyncAPIClient.__dict__["request"],
            (Stream, "__next__"): Stream.__dict__["__next__"],
            (TracedStream, "__next__"): TracedStream.__dict__["__next__"],
        }
        self.spent = {"ours": 0.0, "sdk": 0.0, "inner": 0}
        self.bias = 0.0
        inner = self._timed(lambda obj: None, "sdk")
        outer = self._timed(lambda obj: inner(obj), "ours")
        for _ in range(20000):
            outer(None)
        self.bias = (self.spent["ours"] - self.spent["sdk"]) / self.spent["inner"]

    def _timed(self, fn: Callable, key: str, bind: bool = False) -> Callable:
        spent, clock = self.spent, time.thread_time

        def shim(obj, *args, **kwargs):
            call = fn.__get__(obj, type(obj)) if bind else functools.partial(fn, obj)
            if key == "sdk":
                spent["inner"] += 1
            start = clock()
            try:
                return call(*args, **kwargs)
            finally:
                spent[key] += clock() - start

        return shim

    def per_call_us(self, install: Callable, uninstall: Callable, fn: Callable, calls: int) -> float:
        saved = self.saved
        self.client_cls.request = self._timed(saved[(self.client_cls, "request")], "sdk")
        self.stream_cls.__next__ = self._timed(saved[(self.stream_cls, "__next__")], "sdk")
        install()
        self.client_cls.request = self._timed(self.client_cls.__dict__["request"], "ours", bind=True)
        self.traced_cls.__next__ = self._timed(saved[(self.traced_cls, "__next__")], "ours")
        try:
            for _ in range(min(200, calls)):
                fn()
            gc.collect()
            gc.disable()
            self.spent.update(ours=0.0, sdk=0.0, inner=0)
            for _ in range(calls):
                fn()
            gc.enable()
            spent = self.spent
            return (spent["ours"] - spent["sdk"] - self.bias * spent["inner"]) / calls * 1e6
        finally:
            gc.enable()
            uninstall()
            for (cls, name), original in saved.items():
                setattr(cls, name, original)


def _floor_wrapper(tracer, attributes: dict) -> Callable:
    """The floor in the same place: a bare span with as many attributes around request()."""
    def request(wrapped, instance, args, kwargs):
        with tracer.start_as_current_span("floor", kind=SpanKind.CLIENT, attributes=attributes):
            return wrapped(*args, **kwargs)
    return request


def _self_time(cases: dict, calls: int, rounds: int, causal: bool) -> tuple:
    """Rows for report(): our self-time against the in-flow floor, and the same overhead
    against _common's tight-loop floor."""
    from openai._base_client import SyncAPIClient

    base_cfg = _config.get_config()
    _config.set_config(dataclasses.replace(base_cfg, causal_links=causal, capture_content=False))
    provider = null_provider()
    tracer = provider.get_tracer("floor")
    timer = _SelfTimer()
    instrumentor = OpenAIInstrumentor()
    baseline: dict = {name: [] for name in cases}
    ours: dict = {name: [] for name in cases}
    floor: dict = {name: [] for name in cases}
    try:
        counts = _attribute_counts(cases)
        for _ in range(rounds):
            for name, fn in cases.items():
                baseline[name].append(per_call_us(fn, calls, repeats=1))
                ours[name].append(timer.per_call_us(
                    lambda: instrumentor.instrument(tracer_provider=provider), instrumentor.uninstrument, fn, calls))
                attributes = {f"attr.{i}": i for i in range(counts[name])}
                floor[name].append(timer.per_call_us(
                    lambda: wrapt.wrap_function_wrapper(SyncAPIClient, "request", _floor_wrapper(tracer, attributes)),
                    lambda: None, fn, calls))
        tight = {name: floor_span_us(provider, counts[name], calls) for name in cases}
    finally:
        _config.set_config(base_cfg)
    suffix = " +causal" if causal else ""
    label = {name: f"{name}{suffix} [{counts[name]} attrs]" for name in cases}
    in_flow = [(label[n], min(baseline[n]) + min(ours[n]), min(baseline[n]), min(floor[n])) for n in cases]
    tight_rows = [(label[n], min(baseline[n]) + min(ours[n]), min(baseline[n]), tight[n]) for n in cases]
    return in_flow, tight_rows


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (rougher figures)")
    args = parser.parse_args(argv)
    calls, rounds = (300, 3) if args.quick else (1000, 7)
    cases = _cases(_client())
    print(f"openai {openai.__version__}, python {sys.version.split()[0]}, "
          f"{rounds} alternating rounds of {calls} calls, fastest round kept")
    plain, plain_tight = _self_time(cases, calls, rounds, causal=False)
    linked, linked_tight = _self_time(cases, calls, rounds, causal=True)
    print("\n== overhead = our self-time inside real calls; floor = a bare span with as many attributes,")
    print("   timed the same way in the same place (the headline figure)")
    report(plain + linked)
    print("\n== same overhead against _common.floor_span_us (bare span in a tight loop: hot caches)")
    report(plain_tight + linked_tight)
    if not args.quick:
        print("\n== wall clock, uninstrumented vs instrumented (context: drifts with machine load)")
        report(_measure(cases, calls, rounds, causal=False))


if __name__ == "__main__":
    main(sys.argv[1:])
