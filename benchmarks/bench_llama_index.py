"""Per-span overhead of the LlamaIndex instrumentor, measured in one run against baselines.

A RetrieverQueryEngine over an in-memory VectorStoreIndex (4 nodes, a deterministic
keyword embedding) with LlamaIndex's MockLLM: a plain query, a streamed query read to
the end, and a bare retrieval. For each: the uninstrumented call, the instrumented call
(spans to a null exporter), and the floor: bare SDK spans with as many attributes as the
instrumented spans carry (one per span the call produces). Reported per call and per
span: microseconds and overhead/floor. Content capture off (the default); rows marked
"+causal" add the causal-link registry's cost on the same calls.

The floor is a tight loop (hot caches). The same bare spans created *in the same places*
(around the query engine, retriever, synthesizer, LLM and embedding methods, uninstrumented
otherwise) cost more amid LlamaIndex's work; rows marked "vs in-situ floor" use that
figure (streamed LLM/response spans end at return there, so it is a lower bound).

    python benchmarks/bench_llama_index.py            # about two minutes
    python benchmarks/bench_llama_index.py --quick    # fewer calls, rougher figures
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "llama_index"))

import llama_index.core  # noqa: E402
from _common import bare_span, null_provider, report  # noqa: E402
from li_helpers import QUESTION, build_index  # noqa: E402
from llama_index.core.llms.mock import MockLLM  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from instrumentors import _config  # noqa: E402
from instrumentors.llama_index import LlamaIndexInstrumentor  # noqa: E402


def per_call_us(fn, calls: int) -> float:
    """Mean CPU microseconds per call of ``fn`` on this thread (``time.thread_time``):
    on a shared, loaded machine wall-clock timings of ~1 ms calls drift by more than
    the overhead measured here, while the thread's own CPU time does not count the time
    it was descheduled."""
    for _ in range(min(50, calls)):
        fn()
    gc.collect()
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls * 1e6


def floor_span_us(provider, n_attributes: int, calls: int) -> float:
    """``_common.bare_span`` timed with the same clock as the calls."""
    return per_call_us(bare_span(provider, n_attributes), calls)


def _cases() -> dict:
    index = build_index()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2)
    streaming = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2, streaming=True)
    retriever = index.as_retriever(similarity_top_k=2)

    def query() -> None:
        engine.query(QUESTION)

    def stream() -> None:
        for _ in streaming.query(QUESTION).response_gen:
            pass

    def retrieve() -> None:
        retriever.retrieve(QUESTION)

    return {"query (sync)": query, "streamed query (sync)": stream, "retrieve (sync)": retrieve}


def _span_shapes(cases: dict) -> dict:
    """(name, attribute count) of every span each case produces (the floor gets the same)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    shapes = {}
    try:
        for name, fn in cases.items():
            exporter.clear()
            fn()
            shapes[name] = [(s.name, len(s.attributes)) for s in exporter.get_finished_spans()]
    finally:
        instrumentor.uninstrument()
    return shapes


# method owner, method, prefix of the span our instrumentation makes for it
_SPAN_SITES = (
    ("llama_index.core.base.base_query_engine", "BaseQueryEngine", "query", "query "),
    ("llama_index.core.base.base_retriever", "BaseRetriever", "retrieve", "retrieval "),
    ("llama_index.core.response_synthesizers.base", "BaseSynthesizer", "synthesize", "synthesize "),
    ("llama_index.core.llms.mock", "MockLLM", "complete", "text_completion"),
    ("llama_index.core.llms.mock", "MockLLM", "stream_complete", "text_completion"),
    ("llama_index.core.base.embeddings.base", "BaseEmbedding", "get_query_embedding", "embeddings "),
)


@contextlib.contextmanager
def _bare_spans(provider, shape: list):
    """Uninstrumented LlamaIndex with one bare SDK span around each method our spans
    cover, current while it runs, with as many attributes as our span for it carries."""
    import importlib

    tracer = provider.get_tracer("floor")
    patched = []
    for module, owner, method, prefix in _SPAN_SITES:
        counts = [c for span, c in shape if span.startswith(prefix)]
        if not counts:
            continue
        cls = getattr(importlib.import_module(module), owner)
        original = cls.__dict__[method]
        attrs = {f"attr.{i}": i for i in range(counts[0])}

        def bare(self, *args, __original=original, __attrs=attrs, **kwargs):
            with tracer.start_as_current_span("floor", attributes=__attrs):
                return __original(self, *args, **kwargs)

        setattr(cls, method, bare)
        patched.append((cls, method, original))
    try:
        yield
    finally:
        for cls, method, original in patched:
            setattr(cls, method, original)


def _measure(cases: dict, calls: int, rounds: int, causal: bool) -> list:
    """Uninstrumented and instrumented runs alternate, ``rounds`` times; the fastest of
    each is kept (what remains of the machine's drift after thread CPU time)."""
    base_cfg = _config.get_config()
    _config.set_config(dataclasses.replace(base_cfg, causal_links=causal, capture_content=False))
    provider = null_provider()
    baseline: dict = {name: [] for name in cases}
    instrumented: dict = {name: [] for name in cases}
    floor: dict = {name: [] for name in cases}
    situ: dict = {name: [] for name in cases}
    try:
        shapes = _span_shapes(cases)
        instrumentor = LlamaIndexInstrumentor()
        for _ in range(rounds):
            for name, fn in cases.items():
                baseline[name].append(per_call_us(fn, calls))
            instrumentor.instrument(tracer_provider=provider)
            try:
                for name, fn in cases.items():
                    instrumented[name].append(per_call_us(fn, calls))
            finally:
                instrumentor.uninstrument()
            cache: dict = {}
            for name in cases:
                for _span, count in shapes[name]:
                    if count not in cache:
                        cache[count] = floor_span_us(provider, count, calls)
                floor[name].append(sum(cache[c] for _span, c in shapes[name]))
            for name, fn in cases.items():
                with _bare_spans(provider, shapes[name]):
                    situ[name].append(per_call_us(fn, calls))
    finally:
        _config.set_config(base_cfg)
    suffix = " +causal" if causal else ""
    rows = []
    for name in cases:
        n = len(shapes[name])
        instr, base, flo = min(instrumented[name]), min(baseline[name]), min(floor[name])
        rows.append((f"{name}{suffix} [{n} spans]", instr, base, flo))
        rows.append((f"  per span{suffix}", instr / n, base / n, flo / n))
        in_situ = (min(situ[name]) - base) / n
        rows.append((f"  vs in-situ floor{suffix}", instr / n, base / n, in_situ))
    return rows


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (rougher figures)")
    args = parser.parse_args(argv)
    calls, rounds = (200, 3) if args.quick else (400, 9)
    cases = _cases()
    print(f"llama-index-core {llama_index.core.__version__}, python {sys.version.split()[0]}, "
          f"{rounds} alternating rounds of {calls} calls, fastest round kept, thread CPU time")
    rows = _measure(cases, calls, rounds, causal=False) + _measure(cases, calls, rounds, causal=True)
    report(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
