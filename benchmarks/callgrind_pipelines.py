"""Instructions per span (valgrind callgrind) for the LangChain and LlamaIndex pipelines
``peers.py`` times: deterministic under any load, where CPU time on a shared machine is not.

For each (instrumentation, pipeline) a worker runs the pipeline ``--warmup`` times, then
``--calls`` times inside ``collections.deque(map(...), maxlen=0)``; callgrind collects only
inside ``deque_extend`` (``--collect-atstart=no --toggle-collect=deque_extend``), i.e. only the
timed calls. Overhead = instrumented - uninstrumented instructions per call (separate
processes, same interpreter and libraries, ``PYTHONHASHSEED=0``), divided by the spans the
instrumented call emits. The floor is a bare SDK span with as many attributes as that
instrumentation's spans carry on average (SimpleSpanProcessor + InMemorySpanExporter, the
provider every instrumented worker uses), counted the same way.

    python benchmarks/callgrind_pipelines.py                          # ours: langchain + llama_index
    python benchmarks/callgrind_pipelines.py --peers openllmetry,openinference   # + peers (venvs of peers.py)
    python benchmarks/callgrind_pipelines.py --groups langchain --calls 20 --warmup 60
    # one worker by hand, for callgrind_annotate:
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=deque_extend \\
        --callgrind-out-file=/tmp/cg.out python benchmarks/callgrind_pipelines.py \\
        --worker ours --group langchain && callgrind_annotate --inclusive=yes /tmp/cg.out | head -80

Causal links on and content capture off (our defaults; the peers at theirs). Not part of the
test suite (needs valgrind; minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402  (stdlib-only at import: the pipelines and instrumentors live there)


def worker(args: argparse.Namespace) -> None:
    from collections import deque

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if args.worker == "floor":
        tracer = provider.get_tracer("floor")
        attrs = {f"attr.{i}": i for i in range(args.attributes)}

        def fn() -> None:
            with tracer.start_as_current_span("floor", attributes=attrs):
                pass
    else:
        suites = peers.SUITE_BUILDERS[args.group]()
        fn = suites[peers.GROUPS[args.group][0]]
        if args.worker != "none":
            peers._instrumentor(args.worker, args.group).instrument(tracer_provider=provider)
    for _ in range(args.warmup):
        fn()
    exporter.clear()
    deque(map(lambda _: fn(), range(args.calls)), maxlen=0)  # the only collected region
    spans = exporter.get_finished_spans()
    print(json.dumps({"spans_per_call": len(spans) / args.calls,
                      "attrs_per_span": (sum(len(s.attributes or {}) for s in spans) / len(spans)) if spans else 0,
                      "names": sorted({s.name for s in spans})}))


def _instructions(python: str, worker_args: list, env: dict) -> tuple:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=deque_extend",
               f"--callgrind-out-file={out}", python, str(Path(__file__).resolve()), *worker_args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
        text = Path(out).read_text()
        total = int(re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M).group(1))
        info = json.loads(result.stdout.strip().splitlines()[-1])
        return total, info


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help="(internal) none | floor | ours | <peer>")
    ap.add_argument("--group", default="langchain")
    ap.add_argument("--attributes", type=int, default=6)
    ap.add_argument("--groups", default="langchain,llama_index")
    ap.add_argument("--peers", default="", help="comma list of peers.py peers (their venvs must exist)")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=60)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    env = dict(os.environ, PYTHONHASHSEED="0", INSTRUMENTORS_CAUSAL_LINKS="true",
               INSTRUMENTORS_CAPTURE_CONTENT="false", OTEL_SDK_DISABLED="false")
    common = ["--calls", str(args.calls), "--warmup", str(args.warmup)]
    rows = []
    for group in args.groups.split(","):
        for name in ["ours", *filter(None, args.peers.split(","))]:
            python = sys.executable if name == "ours" else str(peers._venv_python(name))
            base, _ = _instructions(python, ["--worker", "none", "--group", group, *common], env)
            inst, info = _instructions(python, ["--worker", name, "--group", group, *common], env)
            attrs = round(info["attrs_per_span"])
            floor, _ = _instructions(python, ["--worker", "floor", "--attributes", str(attrs), *common], env)
            per_call = (inst - base) / args.calls
            spans = info["spans_per_call"]
            per_span = per_call / spans if spans else float("nan")
            floor_span = floor / args.calls
            rows.append((group, name, spans, attrs, base / args.calls, per_call, per_span, floor_span))
            print(f"{group:12} {name:14} spans/call {spans:5.1f} attrs/span {attrs:3d} "
                  f"baseline {base / args.calls / 1e3:9.1f}k  overhead/call {per_call / 1e3:8.1f}k  "
                  f"per span {per_span / 1e3:7.1f}k  floor {floor_span / 1e3:6.1f}k  "
                  f"x floor {per_span / floor_span:5.2f}", flush=True)
    print("\n| pipeline | instrumentation | spans/call | attrs/span | baseline instr/call | overhead instr/call "
          "| instr/span | floor instr/span | per span / floor |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for group, name, spans, attrs, base, per_call, per_span, floor_span in rows:
        print(f"| {group} | {name} | {spans:g} | {attrs} | {base / 1e6:.3f}M | {per_call / 1e3:.0f}k "
              f"| {per_span / 1e3:.1f}k | {floor_span / 1e3:.1f}k | {per_span / floor_span:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
