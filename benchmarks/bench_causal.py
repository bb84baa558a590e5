"""Cost of the causal-link registry, measured in one run.

1. Matching cost per KB of prompt with 10, 1,000 and 100,000 registered documents (all in
   the consumer's own trace: the worst case for trace scope). It must stay flat in the
   count: a look-up is one hash probe per prompt shingle, never a loop over documents.
   (The same number of probes; into a 2,000,000-key table each probe is a cache miss,
   which the 100,000 row shows as a few us per KB.)
2. Added overhead per generation span, links on vs off: the instrumentor pattern (consume
   the prompt before start, produce the completion before end) on a bare span, and, if
   the OpenAI instrumentor is importable, a real ``chat.completions.create`` through an
   in-process fake transport. Prompts of 1 KB and 8 KB quoting 5 of 10 retrieved documents.
   Keyed digests (the default) vs ``digest_key="off"``: consume() of an 8 KB prompt and
   the word-id step alone, per KB, warm word cache (the usual case) and cold (every word
   hashed with blake2b: the first sight of a vocabulary).
3. Memory after 1,000,000 registrations with the default bounds (10,000 outputs,
   320,000 keys, 900 s): registry size and process RSS growth.

    python benchmarks/bench_causal.py            # about a minute
    python benchmarks/bench_causal.py --quick    # fewer calls/registrations, rougher figures
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import null_provider  # noqa: E402
from opentelemetry import trace  # noqa: E402

from instrumentors import _config  # noqa: E402
from instrumentors.causal import Produced, consume, produce  # noqa: E402
from instrumentors.causal import _api, fingerprint  # noqa: E402
from instrumentors.causal._api import PENDING  # noqa: E402
from instrumentors.causal.registry import REGISTRY, Registry  # noqa: E402

# Inputs seen recently are cached (a chat's system prompt and history); the per-KB and
# per-span figures below are for prompts seen for the first time, so the cache is
# emptied before each call (a no-op on versions without it).
forget = getattr(fingerprint, "clear_text_cache", lambda: None)

RNG = random.Random(42)
VOCAB = ["".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(RNG.randint(3, 9))) for _ in range(20000)]


def words(n: int) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(n))


def best_us(fn, calls: int, repeats: int = 7) -> float:
    """Fastest of ``repeats`` runs, microseconds per call. The minimum, not the median:
    on a shared machine other processes only ever add time."""
    for _ in range(min(50, calls)):
        fn()
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return min(samples)


def configure(**changes) -> None:
    _config.set_config(dataclasses.replace(_config.from_env(), **changes))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def prompt_with(docs: list, size_kb: int) -> str:
    body = "Answer from the context only.\n\n" + "\n\n".join(f"[{i}] {d}" for i, d in enumerate(docs, 1))
    while len(body) < size_kb * 1024:
        body += "\n" + words(20)
    return body[: size_kb * 1024]


# --- 1. matching cost vs registered documents -------------------------------------------


def matching_cost(counts: tuple, calls: int, rounds: int = 7) -> None:
    print("\n1. consume() cost per KB of prompt vs registered documents (one trace, 24-word docs)")
    tracer = null_provider().get_tracer("bench")
    configure(causal_max_entries=max(10_000, *counts))
    # One registry per count, all built first, then measured round-robin so that load
    # changes on the machine hit every count alike (the fastest round is kept).
    setups = []
    for count in counts:
        registry = Registry()
        _api.REGISTRY = registry
        docs = [words(24) for _ in range(count)]
        with tracer.start_as_current_span("request") as root:
            for start in range(0, count, 100):
                span = tracer.start_span("retrieve")
                produce(span, [Produced(d, "document", f"d{start + i}", i) for i, d in enumerate(docs[start:start + 100])])
                span.end()
        used = docs[:5]
        setups.append((count, registry, trace.set_span_in_context(root), prompt_with(used[:2], 1), prompt_with(used, 8)))
        del docs
    best = {count: [float("inf"), float("inf"), float("inf")] for count in counts}
    links = {}
    for _ in range(rounds):
        for count, registry, ctx, small, large in setups:
            _api.REGISTRY = registry
            links[count] = len(consume([large], ctx).links)
            one = best_us(lambda: (forget(), consume([small], ctx)), calls, repeats=1)
            eight = best_us(lambda: (forget(), consume([large], ctx)), calls // 4, repeats=1)
            keys = fingerprint.input_keys([large], 5).all
            trace_id = trace.get_current_span(ctx).get_span_context().trace_id
            probe = best_us(lambda: registry.lookup(trace_id, keys, max_age=900.0), calls // 4, repeats=1)
            best[count] = [min(best[count][0], one), min(best[count][1], eight), min(best[count][2], probe)]
            PENDING.clear()
    _api.REGISTRY = REGISTRY
    print(f"{'registered docs':>16} {'keys':>10} {'1 KB prompt us':>15} {'8 KB prompt us':>15} "
          f"{'us per KB (8 KB)':>17} {'of which look-up':>17} {'links':>6}")
    for count, registry, *_ in setups:
        one, eight, probe = best[count]
        print(f"{count:>16,} {registry.stats()['keys']:>10,} {one:>15.1f} {eight:>15.1f} {eight / 8:>17.1f} "
              f"{probe / 8:>17.1f} {links[count]:>6}")
    per_kb = [best[count][1] / 8 for count in counts]
    print(f"   flatness: max/min us-per-KB across counts = {max(per_kb) / min(per_kb):.2f}")
    setups.clear()
    PENDING.clear()


def digest_key_cost(calls: int, rounds: int = 7) -> None:
    print("\n1b. keyed digests vs digest_key='off' (8 KB prompt, 10 registered docs, one trace)")
    tracer = null_provider().get_tracer("bench")
    docs = [words(60) for _ in range(10)]
    large = prompt_with(docs[:5], 8)
    settings = (("off", "off"), ("keyed", "bench secret"))
    best = {name: [float("inf")] * 3 for name, _ in settings}
    for _ in range(rounds):
        for name, secret in settings:
            configure(digest_key=secret)
            REGISTRY.clear()
            with tracer.start_as_current_span("request") as root:
                span = tracer.start_span("retrieve")
                produce(span, [Produced(d, "document", f"d{i}", i) for i, d in enumerate(docs)])
                span.end()
            ctx = trace.set_span_in_context(root)
            whole = best_us(lambda: consume([large], ctx), calls // 4, repeats=1)
            ids = best_us(lambda: fingerprint.word_ids(large), calls // 4, repeats=1)

            def cold() -> None:
                fingerprint._word_cache[1].clear()
                fingerprint.word_ids(large)

            cold_us = best_us(cold, calls // 20, repeats=1)
            best[name] = [min(best[name][0], whole), min(best[name][1], ids), min(best[name][2], cold_us)]
            PENDING.clear()
    configure()
    REGISTRY.clear()
    print(f"{'digests':>8} {'consume us/KB':>14} {'word ids us/KB':>15} {'cold word ids us/KB':>20}")
    for name, _ in settings:
        print(f"{name:>8} {best[name][0] / 8:>14.2f} {best[name][1] / 8:>15.2f} {best[name][2] / 8:>20.2f}")
    off, keyed = best["off"], best["keyed"]
    print(f"   keyed/off: consume {keyed[0] / off[0]:.3f}x, word ids {keyed[1] / off[1]:.3f}x (warm), "
          f"{keyed[2] / off[2]:.2f}x (cold)")


# --- 2. overhead per generation span ---------------------------------------------------------


def paired(fn, calls: int, rounds: int = 7) -> tuple:
    """(off us, on us) for ``fn``, alternating off and on ``rounds`` times, fastest kept."""
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for on in (False, True):
            configure(causal_links=on)
            best[on] = min(best[on], best_us(fn, calls, repeats=1))
            PENDING.clear()
    configure()
    return best[False], best[True]


def span_overhead(calls: int) -> None:
    print("\n2. added overhead per generation span, causal links on vs off (null exporter)")
    provider = null_provider()
    tracer = provider.get_tracer("bench")
    docs = [words(60) for _ in range(10)]
    answer = words(40)
    rows = []
    REGISTRY.clear()
    with tracer.start_as_current_span("request"):
        retrieval = tracer.start_span("retrieve")
        produce(retrieval, [Produced(d, "document", f"d{i}", i) for i, d in enumerate(docs)])
        retrieval.end()
        for size in (1, 8):
            messages = ["You are a helpful assistant.", prompt_with(docs[:5], size)]

            def generation() -> None:
                forget()
                consumption = consume(messages)
                span = tracer.start_span("chat gpt-4o-mini", links=consumption.links if consumption else None,
                                         attributes=consumption.attributes if consumption else None)
                produce(span, [Produced(answer, "generation", rank=0)])
                span.end()

            rows.append((f"span pattern, {size} KB prompt", *paired(generation, calls)))
        rows += _openai_rows(calls, answer, [prompt_with(docs[:5], size) for size in (1, 8)])
    print(f"{'case':40} {'off us':>8} {'on us':>8} {'added us':>9}")
    for name, off, on in rows:
        print(f"{name:40} {off:8.1f} {on:8.1f} {on - off:9.1f}")
    REGISTRY.clear()
    PENDING.clear()


def _openai_rows(calls: int, answer: str, prompts: list) -> list:
    """Inside the caller's trace, where the retrieved documents are registered."""
    try:
        import importlib

        import openai

        from instrumentors.openai import OpenAIInstrumentor
    except Exception as exc:  # noqa: BLE001 - the OpenAI part is optional
        print(f"   (openai instrumentor not available: {exc})")
        return []
    httpx = importlib.import_module("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764230400, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
    }).encode()
    client = openai.OpenAI(api_key="bench", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "application/json"}, content=body))))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=null_provider())
    rows = []
    try:
        for size, prompt in zip((1, 8), prompts):
            messages = [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": prompt}]
            call = lambda: (forget(), client.chat.completions.create(model="gpt-4o-mini", messages=messages))  # noqa: E731
            rows.append((f"openai chat (real SDK), {size} KB prompt", *paired(call, max(100, calls // 4))))
    finally:
        instrumentor.uninstrument()
    return rows


# --- 3. memory after a million registrations -------------------------------------------------


def memory(total: int) -> None:
    print(f"\n3. memory after {total:,} registrations with the default bounds")
    configure()
    cfg = _config.get_config()
    REGISTRY.clear()
    PENDING.clear()
    gc.collect()
    tracer = null_provider().get_tracer("bench")
    pool = [words(RNG.randint(30, 80)) for _ in range(20_000)]
    registered = 0

    def register(count: int) -> None:
        nonlocal registered
        for _ in range(count // 10):
            with tracer.start_as_current_span("request"):
                span = tracer.start_span("retrieve")
                produce(span, [Produced(pool[(registered + i) % len(pool)], "document", f"d{i}", i)
                               for i in range(10)])
                span.end()
            registered += 10

    before = rss_mb()
    start = time.perf_counter()
    marks = []
    for _ in range(4):
        register(total // 4)
        gc.collect()
        marks.append((registered, rss_mb() - before, REGISTRY.stats()))
    elapsed = time.perf_counter() - start
    # what the registry holds: re-register more than its capacity while tracing
    # allocations, so that everything it holds was allocated under tracemalloc
    tracemalloc.start()
    register(max(20_000, cfg.causal_max_entries * 2))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stats = REGISTRY.stats()
    print(f"   defaults: max_entries={cfg.causal_max_entries:,} max_age={cfg.causal_max_age_seconds:.0f}s "
          f"(key budget {32 * cfg.causal_max_entries:,})")
    for count, grown, st in marks:
        print(f"   after {count:>9,}: RSS +{grown:6.1f} MB  outputs={st['sources']:,} keys={st['keys']:,} "
              f"index entries={st['index_entries']:,} traces={st['scopes']:,}")
    print(f"   registry holds {held / 2 ** 20:.1f} MB (tracemalloc) for {stats['keys']:,} keys "
          f"= {held / max(1, stats['keys']):.0f} bytes per key; RSS growth includes allocator slack")
    print(f"   {elapsed / total * 1e6:.1f} us per registered output (fingerprint + register, 30-80 words)")
    REGISTRY.clear()
    PENDING.clear()


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (rougher figures)")
    args = parser.parse_args(argv)
    calls = 200 if args.quick else 1000
    print(f"python {sys.version.split()[0]}, fastest of 7 repeats")
    saved = _config.get_config()
    try:
        matching_cost((10, 1_000, 100_000), calls)
        digest_key_cost(calls)
        span_overhead(calls)
        memory(100_000 if args.quick else 1_000_000)
    finally:
        _config.set_config(saved)
    assert trace.get_current_span() is trace.INVALID_SPAN


if __name__ == "__main__":
    main(sys.argv[1:])
