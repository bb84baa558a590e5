"""Per-span overhead of the LangChain instrumentor on an LCEL RAG chain.

The chain is the one the tests use: ``{context: retriever | format_docs, question:
passthrough} | prompt | fake chat model | parser`` over an InMemoryVectorStore with a
keyword embedding, so nothing but LangChain and our instrumentation runs (10 spans per
call). In one run, alternating rounds so machine drift hits both sides alike, we time
the chain uninstrumented and instrumented (spans to a null exporter), and the bare SDK
span floor with as many attributes as our spans carry on average.

    overhead per span = (instrumented - uninstrumented) / spans per call
    target: overhead per span <= 2 x floor

Two clocks: wall time (``benchmarks/_common`` helpers: ``per_call_us`` and
``floor_span_us``) and process CPU time (the same loops timed with
``time.process_time``), which other processes on a shared machine disturb far less.
The RunnableParallel in a RAG chain runs its branches in a fresh thread pool per call,
so wall-time figures are noisy; read the CPU-time rows first. The floor is a tight loop
(hot caches); the same bare span created *inside* a chain step costs more, so the run
also reports that "in-situ floor" for reference.

    python benchmarks/bench_langchain.py              # about 2.5 minutes
    python benchmarks/bench_langchain.py --quick
    python benchmarks/bench_langchain.py --breakdown  # where the overhead goes
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "langchain"))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from _common import floor_span_us, null_provider, per_call_us, report  # noqa: E402
from instrumentors import _config  # noqa: E402
from instrumentors.langchain import LangChainInstrumentor  # noqa: E402
from langchain_helpers import QUESTION, fake_chat, make_store, rag_chain  # noqa: E402


def cpu_us(fn: Callable[[], object], calls: int) -> float:
    """Mean CPU microseconds per call of ``fn`` (one round)."""
    gc.collect()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def cpu_floor_us(provider: TracerProvider, n_attributes: int, calls: int = 5000) -> float:
    """``_common.floor_span_us`` timed in CPU time."""
    tracer = provider.get_tracer("floor")
    attrs = {f"attr.{i}": i for i in range(n_attributes)}

    def one() -> None:
        with tracer.start_as_current_span("floor", attributes=attrs):
            pass

    for _ in range(500):
        one()
    return statistics.median(cpu_us(one, calls) for _ in range(5))


def in_situ_floor_us(n_attributes: int, rounds: int, calls: int) -> float:
    """The bare SDK span (as in the floor) created inside a step of the same RAG chain,
    uninstrumented: what a span costs amid LangChain's work (colder caches) rather than
    in the floor's tight loop. CPU time, alternating with/without the extra spans."""
    provider = null_provider()
    tracer = provider.get_tracer("floor")
    attrs = {f"attr.{i}": i for i in range(n_attributes)}
    extra = {"n": 0}

    def bare_spans(x: object) -> object:
        for _ in range(extra["n"]):
            with tracer.start_as_current_span("floor", attributes=attrs):
                pass
        return x

    from langchain_core.runnables import RunnableLambda

    chain = RunnableLambda(bare_spans) | rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    samples: dict = {0: [], 10: []}
    for _ in range(50):
        chain.invoke(QUESTION)
    for _ in range(rounds):
        for n in (0, 10):
            extra["n"] = n
            samples[n].append(cpu_us(lambda: chain.invoke(QUESTION), calls))
    return (statistics.median(samples[10]) - statistics.median(samples[0])) / 10


def span_shape(fn: Callable[[], object]) -> tuple:
    """(spans per call, mean attributes per span) of one traced call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        fn()
        exporter.clear()
        fn()
        spans = exporter.get_finished_spans()
        return len(spans), sum(len(s.attributes) for s in spans) / len(spans)
    finally:
        instrumentor.uninstrument()


def measure(fn: Callable[[], object], rounds: int, calls: int) -> dict:
    """Alternate uninstrumented and instrumented rounds; medians per clock."""
    provider = null_provider()
    instrumentor = LangChainInstrumentor()
    for _ in range(100):
        fn()
    wall = {"off": [], "on": []}
    cpu = {"off": [], "on": []}
    for _ in range(rounds):
        for mode in ("off", "on"):
            if mode == "on":
                instrumentor.instrument(tracer_provider=provider)
            try:
                wall[mode].append(per_call_us(fn, calls, repeats=1))
                cpu[mode].append(cpu_us(fn, calls))
            finally:
                if mode == "on":
                    instrumentor.uninstrument()
    return {clock: {mode: statistics.median(v) for mode, v in d.items()}
            for clock, d in (("wall", wall), ("cpu", cpu))}


def breakdown(fn: Callable[[], object], n_spans: int, floor: float, rounds: int, calls: int) -> None:
    """Where the overhead goes (CPU time per span, in floors): LangChain dispatching
    callbacks to any handler at all, our Python with a no-op tracer, then the SDK."""
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.tracers.context import _configure_hooks
    from opentelemetry import trace

    class Noop(BaseCallbackHandler):
        run_inline = True

    class Var:
        handler = Noop()

        def get(self, default=None):
            return self.handler

    hook = (Var(), True, None, None)
    instrumentor = LangChainInstrumentor()
    modes = {
        "uninstrumented": (lambda: None, lambda: None),
        "a no-op LangChain handler": (lambda: _configure_hooks.append(hook), lambda: _configure_hooks.remove(hook)),
        "ours, no-op tracer": (lambda: instrumentor.instrument(tracer_provider=trace.NoOpTracerProvider()),
                               instrumentor.uninstrument),
        "ours, SDK + null exporter": (lambda: instrumentor.instrument(tracer_provider=null_provider()),
                                      instrumentor.uninstrument),
    }
    samples: dict = {m: [] for m in modes}
    for _ in range(rounds):
        for mode, (on, off) in modes.items():
            on()
            try:
                samples[mode].append(cpu_us(fn, calls))
            finally:
                off()
    medians = {m: statistics.median(v) for m, v in samples.items()}
    previous = None
    print(f"breakdown, CPU us per call ({n_spans} spans; floor {floor:.1f} us/span):")
    for mode, value in medians.items():
        step = "" if previous is None else f"  +{(value - previous) / n_spans:5.1f} us/span = {(value - previous) / n_spans / floor:4.2f} floors"
        print(f"  {mode:28} {value:8.0f}{step}")
        previous = value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    parser.add_argument("--breakdown", action="store_true", help="only the CPU breakdown of rag invoke")
    args = parser.parse_args()
    rounds, calls = (3, 100) if args.quick else (7, 200)

    chain = rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    cases = {
        "rag invoke": lambda: chain.invoke(QUESTION),
        "rag stream": lambda: "".join(chain.stream(QUESTION)),
    }
    if args.breakdown:
        _config.configure(causal_links=False)
        n_spans, n_attrs = span_shape(cases["rag invoke"])
        breakdown(cases["rag invoke"], n_spans, cpu_floor_us(null_provider(), round(n_attrs)), rounds, calls)
        return
    rows = []
    for causal in (False, True):
        _config.configure(causal_links=causal)
        for name, fn in cases.items():
            n_spans, n_attrs = span_shape(fn)
            times = measure(fn, rounds, calls)
            provider = null_provider()
            floors = {"wall": floor_span_us(provider, round(n_attrs)), "cpu": cpu_floor_us(provider, round(n_attrs))}
            for clock in ("cpu", "wall"):
                t = times[clock]
                label = f"{name} {clock}{' +causal' if causal else ''}"
                rows.append((label, t["on"] / n_spans, t["off"] / n_spans, floors[clock]))
                print(f"{label}: {t['off']:.0f} us/call uninstrumented, {t['on']:.0f} us/call instrumented, "
                      f"{n_spans} spans/call, {n_attrs:.1f} attributes/span", file=sys.stderr)
    _config.configure()
    print("per span (us); overhead/floor target <= 2")
    report(rows)
    n_spans, n_attrs = span_shape(cases["rag invoke"])
    situ = in_situ_floor_us(round(n_attrs), rounds, calls)
    invoke_cpu = next(r for r in rows if r[0] == "rag invoke cpu")
    print(f"in-situ floor (bare span inside the chain, CPU): {situ:.1f} us/span; "
          f"rag invoke overhead/in-situ floor = {(invoke_cpu[1] - invoke_cpu[2]) / situ:.2f}")


if __name__ == "__main__":
    main()
