"""Instructions per raw OpenAI call, ours vs the official instrumentation, under callgrind.

Why instruction counts: on a shared machine CPU time does not resolve differences of a
few hundred microseconds between processes; ``valgrind --tool=callgrind`` counts the
instructions executed, which no load disturbs. Each count is collected only inside the
timed loop (``--collect-atstart=no --toggle-collect=math_fsum``: the loop runs as
``math.fsum(map(one_call, range(calls)))``, and nothing on the call path uses
``math.fsum``), after ``--warmup`` calls, so imports, instrument() and first-call caches
do not count. Overhead = instrumented - uninstrumented, both measured in the same venv
(each instrumentation's own), per call.

Pipelines: the ``peers.py`` raw OpenAI ones (chat sync, chat async, chat stream read to
the end, chat with tools, embeddings) over ``_openai_fake.py`` (no network). Ours runs in
the interpreter running this script (causal links on, capture off: our defaults); the
official ``opentelemetry-instrumentation-openai-v2`` runs in the venv ``peers.py``
creates (``benchmarks/.venvs/openai-v2``, created here if missing, about a minute).

    python benchmarks/callgrind_openai.py                           # table, ~3 min
    python benchmarks/callgrind_openai.py --only ours --suites chat # one row
    python benchmarks/callgrind_openai.py --only ours --profile /tmp/cg   # also keep the
        # callgrind files (--dump-instr=no) for callgrind_annotate --inclusive=yes

Needs valgrind (not a test dependency: nothing in tests/ runs this).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SUITES = ("chat", "chat async", "chat stream", "chat tools", "embeddings")
INSTRUMENTATIONS = ("ours", "openai-v2")
LABELS = {"ours": "ours", "openai-v2": "official openai-v2", "none": "uninstrumented"}


def worker(instrumentation: str, suite: str, calls: int, warmup: int) -> None:
    """Inside valgrind: build the pipeline, instrument (unless ``none``), warm up, run the
    counted loop. Prints the spans per call so the driver can check the shape."""
    import peers
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fn = peers._openai_suites()[suite]
    name, _, venv_of = instrumentation.partition("@")
    if name != "none":
        peers._instrumentor(name, "openai").instrument(tracer_provider=provider)
    for _ in range(warmup):
        fn()
    exporter.clear()

    def one(_: int) -> float:
        fn()
        return 0.0

    gc.collect()
    math.fsum(map(one, range(calls)))  # the only collected region
    print(json.dumps({"spans_per_call": len(exporter.get_finished_spans()) / calls}))


def _python_for(instrumentation: str) -> Path:
    if instrumentation == "ours":
        return Path(sys.executable)
    import peers

    return peers.ensure_venv(instrumentation)


def count(python: Path, instrumentation: str, suite: str, opts: argparse.Namespace) -> tuple:
    """(instructions per call, spans per call) of one pipeline under callgrind."""
    with tempfile.TemporaryDirectory() as cwd:
        out = Path(opts.profile or cwd) / f"callgrind.{instrumentation.replace('@', '-')}.{suite.replace(' ', '_')}"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=math_fsum",
               f"--callgrind-out-file={out}", "--dump-instr=no",
               str(python), str(Path(__file__).resolve()), "--worker", instrumentation, "--suite", suite,
               "--calls", str(opts.calls), "--warmup", str(opts.warmup)]
        env = dict(os.environ, PYTHONHASHSEED="0", INSTRUMENTORS_CAUSAL_LINKS="true",
                   INSTRUMENTORS_CAPTURE_CONTENT="false", OTEL_SDK_DISABLED="false")
        if opts.causal_off:
            env["INSTRUMENTORS_CAUSAL_LINKS"] = "false"
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
        if result.returncode:
            raise RuntimeError(f"{instrumentation}/{suite} failed:\n{result.stderr[-3000:]}")
        collected = re.search(r"Collected : (\d+)", result.stderr)
        if collected is None:
            raise RuntimeError(f"no callgrind total for {instrumentation}/{suite}:\n{result.stderr[-2000:]}")
        shape = json.loads(result.stdout.strip().splitlines()[-1])
        return int(collected.group(1)) / opts.calls, shape["spans_per_call"]


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(INSTRUMENTATIONS))
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--calls", type=int, default=50, help="counted calls per run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--causal-off", action="store_true", help="ours with INSTRUMENTORS_CAUSAL_LINKS=false")
    parser.add_argument("--profile", help="a folder: keep the callgrind output files there")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the uninstrumented runs (it does not depend on our code): instrumented counts only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--suite", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        worker(opts.worker, opts.suite, opts.calls, opts.warmup)
        return 0
    rows = []
    for inst in opts.only.split(","):
        python = _python_for(inst)
        for suite in opts.suites.split(","):
            base = 0.0 if opts.no_baseline else count(python, f"none@{inst}", suite, opts)[0]
            instr, spans = count(python, inst, suite, opts)
            rows.append((suite, inst, base, instr, spans))
            print(f"  {inst}/{suite}: {instr - base:,.0f} instructions over {base:,.0f}", file=sys.stderr, flush=True)
    print("| pipeline | instrumentation | spans/call | uninstrumented | instrumented | overhead per call |")
    print("|---|---|---:|---:|---:|---:|")
    for suite, inst, base, instr, spans in rows:
        print(f"| {suite} | {LABELS[inst]} | {spans:g} | {base / 1e6:.3f}M | {instr / 1e6:.3f}M "
              f"| +{(instr - base) / 1e6:.3f}M |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
