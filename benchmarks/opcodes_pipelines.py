"""Where the instructions of ``callgrind_pipelines.py`` go, per Python function: bytecodes
executed (``sys.settrace`` opcode events, every thread), instrumented minus uninstrumented.

callgrind finds no C hot spot in our overhead (its exclusive cost is the interpreter loop,
dict look-ups and allocation, ~100 instructions per bytecode), so bytecodes per function
are the deterministic profile: same pipelines, same warm-up, no sampling noise.

    python benchmarks/opcodes_pipelines.py --group llama_index          # ours - none, top 50
    python benchmarks/opcodes_pipelines.py --group langchain --top 80 --calls 20

Causal links on, content capture off unless the INSTRUMENTORS_* variables say otherwise.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402


def count(group: str, instrumented: bool, calls: int, warmup: int) -> collections.Counter:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fn = peers.SUITE_BUILDERS[group]()[peers.GROUPS[group][0]]
    instrumentor = peers._instrumentor("ours", group) if instrumented else None
    if instrumentor is not None:
        instrumentor.instrument(tracer_provider=provider)
    try:
        for _ in range(warmup):
            fn()
        exporter.clear()
        counts: collections.Counter = collections.Counter()

        def tracer(frame, event, arg):  # noqa: ANN001
            if event == "call":
                frame.f_trace_opcodes = True
            elif event == "opcode":
                code = frame.f_code
                counts[(code.co_filename.split("site-packages/")[-1].replace(str(HERE.parent) + "/", ""),
                        code.co_firstlineno, code.co_name)] += 1
            return tracer

        threading.settrace(tracer)
        sys.settrace(tracer)
        try:
            for _ in range(calls):
                fn()
        finally:
            sys.settrace(None)
            threading.settrace(None)
        return counts
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", default="llama_index", choices=sorted(peers.SUITE_BUILDERS))
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--top", type=int, default=50)
    args = ap.parse_args(argv)
    base = count(args.group, False, args.calls, args.warmup)
    ours = count(args.group, True, args.calls, args.warmup)
    n = args.calls
    print(f"bytecodes per call: uninstrumented {sum(base.values()) / n:.0f}, instrumented {sum(ours.values()) / n:.0f}, "
          f"added {(sum(ours.values()) - sum(base.values())) / n:.0f}")
    by_file: collections.Counter = collections.Counter()
    for key in set(base) | set(ours):
        by_file[key[0]] += ours[key] - base[key]
    print("\nadded, by file:")
    for name, value in by_file.most_common(25):
        print(f"{value / n:9.0f}  {name}")
    print("\nadded, by function:")
    diff = {key: ours[key] - base[key] for key in set(base) | set(ours)}
    for key in sorted(diff, key=lambda k: -diff[k])[: args.top]:
        print(f"{diff[key] / n:9.0f}  {key[0]}:{key[1]} {key[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
