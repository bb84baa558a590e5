"""Our overhead side by side with the peers' on the same offline pipelines, each against
its own uninstrumented baseline measured in the same process, rounds interleaved.

Pipelines (no network: the real SDKs over in-process fakes):

* raw OpenAI (the SDK over an httpx MockTransport, bodies from ``bench_openai``): chat
  sync, chat async, chat stream (read to the end), chat with tools (a tool-call reply),
  embeddings;
* LangChain: the tests' LCEL RAG chain (retriever | format_docs, prompt, fake chat
  model, parser) invoked;
* LlamaIndex: the tests' RetrieverQueryEngine over a 4-node in-memory index, MockLLM.

Instrumentations: ours (causal links on, content capture off: our defaults) and the peers
at *their* defaults, pinned, each installed by this script in its own venv under
``benchmarks/.venvs/`` (gitignored): the official ``opentelemetry-instrumentation-openai-v2``,
traceloop's OpenLLMetry (``opentelemetry-instrumentation-openai``/``-langchain``/
``-llamaindex``) and Arize's OpenInference (``openinference-instrumentation-openai``/
``-langchain``/``-llama-index``). Every venv gets the same versions of openai,
langchain-core, llama-index-core and the OpenTelemetry SDK as the interpreter running
this script.

How: one worker process per (instrumentation, library). In it, each pipeline is timed
uninstrumented and instrumented in alternating rounds (ABBA order: instrument() before an
instrumented round, uninstrument() after it); a round also times the *floor*: a bare SDK
span with as many attributes as that instrumentation's spans carry on average, in a tight
loop, to the same TracerProvider shape every instrumented round uses (SimpleSpanProcessor
and an InMemorySpanExporter, cleared between rounds). After uninstrument() the worker
checks that the pipeline emits no span; where one does (an instrumentation that cannot be
uninstrumented cleanly), that pipeline is re-measured with baseline and instrumented rounds
in separate, alternating processes. Two clocks per round: process CPU time (all threads;
other processes on a shared machine disturb it far less) and wall time; figures are
medians over rounds. Finally RSS growth over ``--rss-calls`` instrumented calls (exporter
cleared every 1,000 calls) of one pipeline per library.

    python benchmarks/peers.py                       # installs the peers once, then ~25 min
    python benchmarks/peers.py --markdown out.md     # also write the tables as Markdown
    python benchmarks/peers.py --only ours,openinference --suites openai
    python benchmarks/peers.py --smoke               # seconds: ours (+ peers already installed)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"

# the libraries every venv gets at the versions the running interpreter has
SHARED = ("openai", "langchain-core", "llama-index-core", "opentelemetry-sdk", "opentelemetry-api")

PEERS = {
    "openai-v2": {
        "label": "official openai-v2",
        # 2.4b0 does not import with the newest opentelemetry-util-genai (1.3b0 dropped .instruments)
        "packages": ["opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==1.1b0"],
        "groups": ("openai",),
    },
    "openllmetry": {
        "label": "OpenLLMetry",
        "packages": ["opentelemetry-instrumentation-openai==0.62.4", "opentelemetry-instrumentation-langchain==0.62.4",
                     "opentelemetry-instrumentation-llamaindex==0.62.4",
                     # its LlamaIndex instrumentor imports llama_index.llms (any llms-* package provides it)
                     "llama-index-llms-openai==0.8.3"],
        "groups": ("openai", "langchain", "llama_index"),
    },
    "openinference": {
        "label": "OpenInference",
        "packages": ["openinference-instrumentation-openai==0.1.66", "openinference-instrumentation-langchain==0.1.80",
                     "openinference-instrumentation-llama-index==4.6.1"],
        "groups": ("openai", "langchain", "llama_index"),
    },
}
# ours-causal-off (opt-in with --only): our instrumentation alone, without the causal
# registry the peers do not have
OURS = ("ours", "ours-causal-off", "ours-before")
INSTRUMENTATIONS = (*OURS, *PEERS)
DEFAULT = ("ours", "ours-before", *PEERS)
LABELS = {"ours": "ours", "ours-causal-off": "ours, causal links off", "ours-before": "ours (--before tree)",
          "none": "uninstrumented", **{name: peer["label"] for name, peer in PEERS.items()}}

GROUPS = {
    "openai": ("chat", "chat async", "chat stream", "chat tools", "embeddings"),
    "langchain": ("lcel rag invoke",),
    "llama_index": ("query engine",),
}
RSS_SUITE = {"openai": "chat", "langchain": "lcel rag invoke", "llama_index": "query engine"}


# ---------------------------------------------------------------------------------------
# Pipelines (imported only inside workers: each venv has its own libraries)
# ---------------------------------------------------------------------------------------


def _openai_suites() -> dict:
    sys.path.insert(0, str(HERE))
    import _openai_fake as b  # the bodies and transport bench_openai.py uses
    import openai

    tool_body = json.dumps({
        "id": "chatcmpl-tools", "object": "chat.completion", "created": 1764230400, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": None, "refusal": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72},
    }).encode()
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

    def handler(request: Any) -> Any:
        if b'"tools"' in request.content:
            return b.httpx.Response(200, headers=b.JSON_HEADERS, content=tool_body)
        return b._handler(request)

    transport = b.httpx.MockTransport(handler)

    async def async_handler(request: Any) -> Any:
        return handler(request)

    client = openai.OpenAI(api_key="bench", max_retries=0, http_client=b.httpx.Client(transport=transport))
    aclient = openai.AsyncOpenAI(api_key="bench", max_retries=0,
                                 http_client=b.httpx.AsyncClient(transport=b.httpx.MockTransport(async_handler)))
    loop = asyncio.new_event_loop()

    def chat() -> None:
        client.chat.completions.create(model=b.MODEL, messages=b.MESSAGES, temperature=0.2, max_tokens=64)

    async def achat() -> None:
        await aclient.chat.completions.create(model=b.MODEL, messages=b.MESSAGES, temperature=0.2, max_tokens=64)

    def stream() -> None:
        for _ in client.chat.completions.create(model=b.MODEL, messages=b.MESSAGES, stream=True,
                                                stream_options={"include_usage": True}):
            pass

    def chat_tools() -> None:
        client.chat.completions.create(model=b.MODEL, messages=b.MESSAGES, tools=tools)

    def embeddings() -> None:
        client.embeddings.create(model="text-embedding-3-small", input=b.EMBED_INPUT, encoding_format="float")

    return {"chat": chat, "chat async": lambda: loop.run_until_complete(achat()), "chat stream": stream,
            "chat tools": chat_tools, "embeddings": embeddings}


def _langchain_suites() -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "langchain"))
    from langchain_helpers import QUESTION, fake_chat, make_store, rag_chain

    chain = rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat())
    return {"lcel rag invoke": lambda: chain.invoke(QUESTION)}


def _llama_index_suites() -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "llama_index"))
    from li_helpers import QUESTION, build_index
    from llama_index.core.llms.mock import MockLLM

    engine = build_index().as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2)
    return {"query engine": lambda: engine.query(QUESTION)}


SUITE_BUILDERS = {"openai": _openai_suites, "langchain": _langchain_suites, "llama_index": _llama_index_suites}


def _instrumentor(name: str, group: str) -> Any:
    """The instrumentation's own instrumentor for ``group``, at its defaults."""
    if name in OURS:
        from instrumentors.langchain import LangChainInstrumentor
        from instrumentors.llama_index import LlamaIndexInstrumentor
        from instrumentors.openai import OpenAIInstrumentor

        return {"openai": OpenAIInstrumentor, "langchain": LangChainInstrumentor,
                "llama_index": LlamaIndexInstrumentor}[group]()
    if name == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if name == "openllmetry":
        if group == "openai":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor

            return OpenAIInstrumentor()
        if group == "langchain":
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor

            return LangchainInstrumentor()
        from opentelemetry.instrumentation.llamaindex import LlamaIndexInstrumentor

        return LlamaIndexInstrumentor()
    if name == "openinference":
        if group == "openai":
            from openinference.instrumentation.openai import OpenAIInstrumentor

            return OpenAIInstrumentor()
        if group == "langchain":
            from openinference.instrumentation.langchain import LangChainInstrumentor

            return LangChainInstrumentor()
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

        return LlamaIndexInstrumentor()
    raise ValueError(name)


# ---------------------------------------------------------------------------------------
# Worker: runs inside the instrumentation's venv, prints one JSON document
# ---------------------------------------------------------------------------------------


def _clocks(fn: Callable[[], object], calls: int) -> tuple:
    """(CPU us, wall us) per call of ``fn`` over ``calls`` calls."""
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return ((time.process_time() - cpu0) / calls * 1e6, (time.perf_counter() - wall0) / calls * 1e6)


def _floor(tracer: Any, n_attributes: int) -> Callable[[], None]:
    attrs = {f"attr.{i}": i for i in range(n_attributes)}

    def one() -> None:
        with tracer.start_as_current_span("floor", attributes=attrs):
            pass

    return one


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args: argparse.Namespace) -> dict:
    """Both phases: alternate them in this process (instrument() / uninstrument() around
    each instrumented round). One phase only (the separate-process mode): ``baseline``
    never instruments; ``instrumented`` instruments once, at the start, and stays so."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    phases = set(args.phase.split(","))
    toggling = phases == {"baseline", "instrumented"}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    floor_tracer = provider.get_tracer("floor")
    suites = SUITE_BUILDERS[args.group]()
    wanted = args.suites.split(",") if args.suites else list(suites)
    instrumentor = _instrumentor(args.instrumentation, args.group) if "instrumented" in phases else None

    def on() -> None:
        if toggling:
            instrumentor.instrument(tracer_provider=provider)

    def off() -> None:
        if toggling:
            instrumentor.uninstrument()

    if instrumentor is not None and not toggling:
        instrumentor.instrument(tracer_provider=provider)
    out: dict = {"instrumentation": args.instrumentation, "group": args.group, "suites": {},
                 "versions": _versions(args.instrumentation)}
    for name in wanted:
        fn = suites[name]
        rec = {"spans_per_call": 0, "attrs_per_span": 0, "span_names": [], "leaked_after_uninstrument": 0,
               "baseline": [], "instrumented": [], "floor": [], "spans_per_round": []}
        out["suites"][name] = rec
        for _ in range(args.warmup):
            fn()
        if instrumentor is not None:  # the span shape, and whether uninstrument() is clean
            on()
            for _ in range(args.warmup):
                fn()
            exporter.clear()
            fn()
            spans = exporter.get_finished_spans()
            off()
            exporter.clear()
            if toggling:
                fn()
                rec["leaked_after_uninstrument"] = len(exporter.get_finished_spans())
                exporter.clear()
                if rec["leaked_after_uninstrument"]:  # every instrument() from now on would stack
                    return out
            rec["spans_per_call"] = len(spans)
            rec["span_names"] = [s.name for s in spans]
            if spans:
                rec["attrs_per_span"] = round(sum(len(s.attributes or {}) for s in spans) / len(spans))
        floor = _floor(floor_tracer, rec["attrs_per_span"])
        for r in range(args.rounds):
            order = ("baseline", "instrumented") if r % 2 == 0 else ("instrumented", "baseline")
            for phase in order:
                if phase not in phases:
                    continue
                if phase == "baseline":
                    for _ in range(3):
                        fn()
                    rec["baseline"].append(_clocks(fn, args.calls))
                    continue
                on()
                try:
                    for _ in range(3):
                        fn()
                    exporter.clear()
                    rec["instrumented"].append(_clocks(fn, args.calls))
                    rec["spans_per_round"].append(len(exporter.get_finished_spans()) / args.calls)
                    exporter.clear()
                finally:
                    off()
            if instrumentor is not None and rec["spans_per_call"]:
                for _ in range(50):
                    floor()
                rec["floor"].append(_clocks(floor, args.floor_spans))
                exporter.clear()
    if args.rss_calls:
        fn = suites[RSS_SUITE[args.group]]
        for _ in range(1000):
            fn()
        exporter.clear()
        gc.collect()
        before = _rss_mb()
        for i in range(args.rss_calls):
            fn()
            if i % 1000 == 999:
                exporter.clear()
        exporter.clear()
        gc.collect()
        out["rss"] = {"suite": RSS_SUITE[args.group], "calls": args.rss_calls, "before_mb": before,
                      "after_mb": _rss_mb(), "instrumented": instrumentor is not None}
    return out


def _versions(instrumentation: str) -> dict:
    names = list(SHARED) + ([p.split("==")[0] for p in PEERS[instrumentation]["packages"]]
                            if instrumentation in PEERS else ["instrumentors"])
    if instrumentation == "ours-before":
        import instrumentors

        return {**_found(names), "instrumentors": f"tree at {Path(instrumentors.__file__).parent.parent}"}
    return _found(names)


def _found(names: list) -> dict:
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# ---------------------------------------------------------------------------------------
# Driver: venvs, workers, tables
# ---------------------------------------------------------------------------------------


def _shared_pins() -> list:
    from importlib import metadata

    return [f"{name}=={metadata.version(name)}" for name in SHARED]


def _venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _requirements(name: str) -> list:
    return PEERS[name]["packages"] + _shared_pins()


def _installed(name: str) -> bool:
    marker = VENVS / name / "requirements.installed"
    return marker.exists() and marker.read_text().split() == _requirements(name)


def ensure_venv(name: str) -> Path:
    """Create the peer's venv with its pinned packages (once; re-done when pins change)."""
    if not _installed(name):
        print(f"installing {name} into {VENVS / name} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENVS / name)], check=True)
        result = subprocess.run([str(_venv_python(name)), "-m", "pip", "install", "-q", *_requirements(name)],
                                capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"installing {name} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        (VENVS / name / "requirements.installed").write_text("\n".join(_requirements(name)) + "\n")
    return _venv_python(name)


def run_worker(python: Path, instrumentation: str, group: str, opts: argparse.Namespace,
               phase: str = "baseline,instrumented", rounds: Optional[int] = None,
               suites: Optional[list] = None, rss_calls: int = 0) -> dict:
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", instrumentation, "--group", group,
           "--rounds", str(opts.rounds if rounds is None else rounds), "--calls", str(opts.calls), "--warmup", str(opts.warmup),
           "--floor-spans", str(opts.floor_spans), "--phase", phase, "--rss-calls", str(rss_calls)]
    if suites:
        cmd += ["--suites", ",".join(suites)]
    env = dict(os.environ)
    if instrumentation == "ours-before":  # another checkout's package shadows the installed one
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [opts.before, env.get("PYTHONPATH")]))
    env.update(PYTHONHASHSEED="0", INSTRUMENTORS_CAUSAL_LINKS=str(instrumentation != "ours-causal-off").lower(),
               INSTRUMENTORS_CAPTURE_CONTENT="false", OTEL_SDK_DISABLED="false")
    with tempfile.TemporaryDirectory() as cwd:  # our digest key file and any peer droppings
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode:
        raise RuntimeError(f"worker {instrumentation}/{group} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_one(python: Path, instrumentation: str, group: str, opts: argparse.Namespace) -> dict:
    """In-process alternation; pipelines that leak spans after uninstrument() are
    re-measured in alternating separate processes."""
    if opts.rss_only:
        result = {"instrumentation": instrumentation, "group": group, "suites": {}, "versions": {}}
        result["rss"] = run_worker(python, instrumentation, group, opts, phase="instrumented", rounds=0,
                                   suites=[RSS_SUITE[group]], rss_calls=opts.rss_calls)["rss"]
        return result
    result = run_worker(python, instrumentation, group, opts)
    leaky = [name for name, rec in result["suites"].items() if rec["leaked_after_uninstrument"]]
    if leaky:
        # every later instrument() in that process may have stacked on what was left: the
        # whole library is re-measured, baseline and instrumented in alternating processes
        print(f"  {instrumentation}/{group}: {leaky} still traced after uninstrument(): re-measured in "
              "separate processes", file=sys.stderr, flush=True)
        # the in-process run stopped at the first leak: every pipeline of the library
        suites = opts.suites.split(",") if getattr(opts, "suites", None) else list(GROUPS[group])
        for name in suites:
            rec = result["suites"].setdefault(name, {"leaked_after_uninstrument": 0, "span_names": []})
            rec["baseline"], rec["instrumented"], rec["floor"], rec["spans_per_round"] = [], [], [], []
            rec["separate_processes"] = True
        for r in range(opts.rounds):
            for phase in (("baseline", "instrumented") if r % 2 == 0 else ("instrumented", "baseline")):
                part = run_worker(python, instrumentation, group, opts, phase=phase, rounds=1)
                for name in suites:
                    rec, sub = result["suites"][name], part["suites"][name]
                    for key in ("baseline", "instrumented", "floor", "spans_per_round"):
                        rec[key] += sub[key]
                    if phase == "instrumented":  # the shape as instrumented once
                        for key in ("spans_per_call", "attrs_per_span", "span_names"):
                            rec[key] = sub[key]
    if opts.rss_calls:  # a fresh process, instrumented once, so no toggling history counts
        result["rss"] = run_worker(python, instrumentation, group, opts, phase="instrumented", rounds=0,
                                   suites=[RSS_SUITE[group]], rss_calls=opts.rss_calls)["rss"]
    return result


def summarise(rec: dict) -> dict:
    """Medians over rounds: baseline, overhead per call and per span, floor, both clocks."""
    out = {"spans": rec["spans_per_call"], "attrs": rec["attrs_per_span"],
           "separate": rec.get("separate_processes", False)}
    for i, clock in enumerate(("cpu", "wall")):
        base = statistics.median(s[i] for s in rec["baseline"])
        instr = statistics.median(s[i] for s in rec["instrumented"])
        # per-round pairs (same round, adjacent in time) give the overhead's median
        pairs = [b[i] for b in rec["baseline"]], [s[i] for s in rec["instrumented"]]
        overhead = statistics.median(x - y for x, y in zip(pairs[1], pairs[0])) if all(pairs) else instr - base
        floor = statistics.median(s[i] for s in rec["floor"]) if rec["floor"] else float("nan")
        spans = rec["spans_per_call"] or float("nan")
        out[clock] = {"baseline": base, "overhead": overhead, "per_span": overhead / spans, "floor": floor,
                      "floor_ratio": overhead / spans / floor if floor == floor else float("nan")}
    return out


def tables(results: list, opts: argparse.Namespace) -> str:
    by: dict = {}
    rss: list = []
    for res in results:
        for suite, rec in res["suites"].items():
            by.setdefault((res["group"], suite), {})[res["instrumentation"]] = summarise(rec)
        if "rss" in res:
            rss.append((res["instrumentation"], res["rss"]))
    lines = []
    for clock, title in (("cpu", "process CPU time"), ("wall", "wall time")):
        lines += [f"### Overhead per call, {title} (median over rounds)", "",
                  "| pipeline | instrumentation | spans/call | attrs/span | baseline µs | overhead µs/call "
                  "| µs/span | floor µs/span | per span / floor | ours ÷ this (per call) | ours ÷ this (per span) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for (group, suite), row in by.items():
            ours = row.get("ours")
            for inst in INSTRUMENTATIONS:
                if inst not in row:
                    continue
                s = row[inst]
                c = s[clock]
                vs = vs_span = ""
                if ours and inst != "ours":
                    vs = f"{ours[clock]['overhead'] / c['overhead']:.2f}" if c["overhead"] > 0 else "n/a"
                    vs_span = f"{ours[clock]['per_span'] / c['per_span']:.2f}" if c["per_span"] > 0 else "n/a"
                mark = " (separate processes)" if s["separate"] else ""
                lines.append(f"| {suite} | {LABELS[inst]}{mark} | {s['spans']} | {s['attrs']} | {c['baseline']:.0f} "
                             f"| {c['overhead']:.1f} | {c['per_span']:.1f} | {c['floor']:.1f} "
                             f"| {c['floor_ratio']:.2f} | {vs} | {vs_span} |")
        lines.append("")
    if rss:
        lines += ["### RSS growth (instrumented, exporter cleared every 1,000 calls)", "",
                  "| instrumentation | pipeline | calls | RSS before MB | RSS after MB | growth MB |",
                  "|---|---|---:|---:|---:|---:|"]
        for inst, r in rss:
            lines.append(f"| {LABELS[inst]} | {r['suite']} | {r['calls']} | {r['before_mb']:.1f} "
                         f"| {r['after_mb']:.1f} | {r['after_mb'] - r['before_mb']:+.1f} |")
        lines.append("")
    lines += ["### Versions", ""]
    for res in results:
        if not res["versions"]:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in res["versions"].items())
        lines.append(f"- {LABELS[res['instrumentation']]} ({res['group']}): {versions}")
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, python "
            f"{platform.python_version()}, load average {load}")


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"comma-separated instrumentations ({', '.join(INSTRUMENTATIONS)})")
    parser.add_argument("--groups", default=",".join(GROUPS), help="comma-separated libraries")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200, help="calls per round and mode")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--floor-spans", type=int, default=3000, help="floor spans per round")
    parser.add_argument("--rss-calls", type=int, default=100_000)
    parser.add_argument("--before", help="a checkout (its root folder) of an earlier instrumentors: "
                        "measured too, as 'ours-before', for before/after figures")
    parser.add_argument("--rss-only", action="store_true",
                        help="only the RSS growth (workers run side by side: memory does not mind)")
    parser.add_argument("--save", help="a folder: each worker's result is saved there as JSON as it comes")
    parser.add_argument("--tables-from", help="a folder of saved results: print their tables, measure nothing")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny rounds, ours plus peers already installed, no install, no RSS")
    # worker side
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--suites", help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="baseline,instrumented", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        opts.instrumentation = opts.worker
        print(json.dumps(worker(opts)))
        return 0
    wanted = opts.only.split(",")
    if "ours-before" in wanted and not opts.before:
        wanted.remove("ours-before")
    if opts.before and "ours-before" not in wanted:
        wanted.insert(1, "ours-before")
    if opts.smoke:
        opts.rounds, opts.calls, opts.warmup, opts.floor_spans, opts.rss_calls = 2, 3, 2, 50, 0
        wanted = [w for w in wanted if w in OURS or _installed(w)]
    print(f"machine: {machine()}", file=sys.stderr, flush=True)
    if opts.tables_from:
        saved = [json.loads(p.read_text()) for p in sorted(Path(opts.tables_from).glob("*.json"))]
        order = {name: i for i, name in enumerate((*INSTRUMENTATIONS, "none"))}
        groups = list(GROUPS)
        saved.sort(key=lambda r: (groups.index(r["group"]), order[r["instrumentation"]]))
        text = tables(saved, opts)
        print(text)
        if opts.markdown:
            Path(opts.markdown).write_text(text)
        return 0
    jobs = []
    for group in opts.groups.split(","):
        for inst in wanted:
            if inst in OURS or group in PEERS[inst]["groups"]:
                jobs.append((inst, group))

    def job(inst: str, group: str) -> dict:
        python = Path(sys.executable) if inst in OURS else ensure_venv(inst)
        started = time.perf_counter()
        result = measure_one(python, inst, group, opts)
        if opts.save:
            Path(opts.save).mkdir(parents=True, exist_ok=True)
            (Path(opts.save) / f"{inst}-{group}.json").write_text(json.dumps(result))
        print(f"  {inst}/{group}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        return result

    if opts.smoke or opts.rss_only:  # no timing: start the workers side by side
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda j: job(*j), jobs))
    else:  # one at a time: measurements must not compete with each other
        results = [job(*j) for j in jobs]
    if opts.rss_calls:  # the uninstrumented pipeline's own growth, for reference
        for group in opts.groups.split(","):
            rss = run_worker(Path(sys.executable), "ours", group, opts, phase="baseline", rounds=0,
                             suites=[RSS_SUITE[group]], rss_calls=opts.rss_calls)["rss"]
            results.append({"instrumentation": "none", "group": group, "suites": {}, "versions": {}, "rss": rss})
            if opts.save:
                (Path(opts.save) / f"none-{group}.json").write_text(json.dumps(results[-1]))
    text = tables(results, opts)
    print(text)
    if opts.markdown:
        Path(opts.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
