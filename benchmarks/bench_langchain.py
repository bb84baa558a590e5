"""Per-span overhead of the LangChain instrumentor on an LCEL RAG chain.

The chain is the one the tests use: ``{context: retriever | format_docs, question:
passthrough} | prompt | fake chat model | parser`` over an InMemoryVectorStore with a
keyword embedding, so nothing but LangChain and our instrumentation runs. In one run we
measure the chain uninstrumented, instrumented (spans to a null exporter), and the bare
SDK span floor (``benchmarks/_common.floor_span_us``) with as many attributes as our
spans carry on average. Overhead per span = (instrumented - uninstrumented) / spans per
call; the target is <= 2x the floor per span.

    python benchmarks/bench_langchain.py            # ~1 minute
    python benchmarks/bench_langchain.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def spans_per_call(chains: dict) -> dict:
    """Span count and mean attribute count per call of each case (one traced call)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    out = {}
    try:
        for name, call in chains.items():
            call()
            exporter.clear()
            call()
            spans = exporter.get_finished_spans()
            out[name] = (len(spans), sum(len(s.attributes) for s in spans) / len(spans))
    finally:
        instrumentor.uninstrument()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls (noisier)")
    args = parser.parse_args()
    calls = 150 if args.quick else 600

    chain = rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    cases = {
        "rag invoke": lambda: chain.invoke(QUESTION),
        "rag stream": lambda: "".join(chain.stream(QUESTION)),
    }
    rows = []
    for causal in (False, True):
        _config.configure(causal_links=causal)
        shape = spans_per_call(cases)
        baseline = {name: per_call_us(fn, calls) for name, fn in cases.items()}
        provider = null_provider()
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            instrumented = {name: per_call_us(fn, calls) for name, fn in cases.items()}
        finally:
            instrumentor.uninstrument()
        for name in cases:
            n_spans, n_attrs = shape[name]
            floor = floor_span_us(provider, round(n_attrs))
            label = f"{name} ({n_spans} spans){' causal' if causal else ''}"
            rows.append((label, instrumented[name] / n_spans, baseline[name] / n_spans, floor))
            print(f"{label}: {baseline[name]:.0f} us/call uninstrumented, {instrumented[name]:.0f} us/call "
                  f"instrumented, {n_attrs:.1f} attributes/span", file=sys.stderr)
    print("per span (us):")
    report(rows)


if __name__ == "__main__":
    main()
