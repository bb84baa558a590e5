"""``blame()``'s full output over a varied store is pinned: the fast path (lean loading,
per-trace feature extraction without full span dicts) must give exactly the findings,
rates, p-values and order the straightforward implementation gave.

The store is built with deterministic trace/span ids and timestamps, so the snapshot
(``blame_snapshot.json``, made by the implementation before the fast path) is stable.
Regenerate it only for an intended change of blame's output:
``INSTRUMENTORS_UPDATE_BLAME_SNAPSHOT=1 python -m pytest -q tests/store/test_store_blame_snapshot.py``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, Status, StatusCode

from instrumentors import _semconv as sc
from instrumentors import record_feedback
from instrumentors.store import TraceStore
from instrumentors.store.blame import trace_features
from instrumentors.store.exporter import SQLiteSpanExporter

from .conftest import BASE_NS, FRESH, STALE, RagBuilder, planted_dataset

SNAPSHOT = Path(__file__).with_name("blame_snapshot.json")

#: every parameter blame() takes, exercised over the same store
CASES = {
    "default": {},
    "threshold_0.3": {"threshold": 0.3},
    "threshold_0.9_top_0": {"threshold": 0.9, "top": 0},
    "min_support_1_top_0": {"min_support": 1, "top": 0},
    "no_staleness": {"stale_after_days": None, "top": 0},
    "stale_30_days": {"stale_after_days": 30.0, "top": 0},
    "judge_key": {"feedback_key": "judge", "min_support": 1, "top": 0},
    "filtered_gpt_4o": {"filters": {sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}, "top": 0},
    "filtered_low_score": {"filters": {"retrieval.top_score": {"lt": 0.6}}, "min_support": 1, "top": 0},
    "max_traces_120": {"max_traces": 120, "top": 0},
    "max_traces_3": {"max_traces": 3},
}


class SeededIds(IdGenerator):
    """Deterministic ids: the snapshot names example traces by id."""

    def __init__(self, seed: int) -> None:
        self._rnd = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rnd.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rnd.getrandbits(128) or 1


def _plain_trace(tracer, rnd: random.Random, t0: int, bad: bool) -> str:
    """A pipeline without any causal link (every span counts), with booleans, arrays,
    long strings, two spans of the same name and an ERROR status."""
    root = tracer.start_span("plain pipeline", start_time=t0, attributes={"input.query": "q"})
    ctx = trace.set_span_in_context(root)
    for i, name in enumerate(("lookup", "lookup", "rank")):
        attrs = {
            "cache.hit": bad if name == "lookup" else rnd.random() < 0.5,
            "lookup.latencies": (rnd.randint(1, 9), rnd.randint(10, 90) if bad else rnd.randint(1, 30)),
            "lookup.tags": ("fast", "eu") if rnd.random() < 0.5 else ("slow",),
            "lookup.note": "x" * 120,  # too long to be a category
            "lookup.region": rnd.choice(["eu", "us"]),
            "lookup.ratio": round(rnd.uniform(0.1, 0.4) if bad else rnd.uniform(0.3, 0.9), 3),
        }
        span = tracer.start_span(name, context=ctx, start_time=t0 + (i + 1) * 1_000_000, attributes=attrs)
        if bad and name == "rank" and rnd.random() < 0.7:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(t0 + (i + 1) * 1_000_000 + 500_000)
    reranker = tracer.start_span("rerank", context=ctx, start_time=t0 + 5_000_000, attributes={
        sc.SPAN_KIND: sc.KIND_RERANKER, sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps([
            {"id": "kb/old" if bad else "kb/new", "score": 0.9, "metadata": {"updated_at": STALE if bad else FRESH}},
            {"metadata": {"source": "kb/second", "indexed_at": 1700000000}, "score": 0.5}])})
    reranker.end(t0 + 6_000_000)
    root.end(t0 + 7_000_000)
    return format(root.get_span_context().trace_id, "032x")


def build_store(path: str, also: Sequence = ()) -> None:
    """The varied store at ``path``; ``also``: more span processors receiving the same
    spans (test_store_backends fills chDB with them)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "blame-snapshot"}), id_generator=SeededIds(11))
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    for processor in also:
        provider.add_span_processor(processor)
    try:
        rag = RagBuilder(provider)
        planted_dataset(rag, path, n=240, seed=7)
        rnd = random.Random(5)
        for i in range(60):  # errors, empty retrievals, failing validators, a second feedback key
            bad = rnd.random() < 0.5
            kind = i % 6
            trace_id = rag.run(
                query=f"extra {i}", error_at=("retrieval" if kind == 0 else "generator" if kind == 1 else None),
                empty=kind == 2, validator="fail" if (bad and kind == 3) else "pass",
                model=rnd.choice(["gpt-4o", "gpt-4o-mini"]), tokens_out=rnd.randint(10, 300),
                used=["kb/refunds"] if kind == 4 else None, audit="on" if kind == 5 else None,
                docs=(("kb/refunds", round(rnd.uniform(0.4, 0.9), 3), STALE if bad else FRESH),
                      ("kb/shipping", round(rnd.uniform(0.3, 0.7), 3), FRESH)))
            score = 0.0 if (bad and kind < 4) or rnd.random() < 0.1 else 1.0
            record_feedback(trace_id, score, tracer_provider=provider, store_path=path)
            if i % 2:
                record_feedback(trace_id, 0.2 if bad else 0.8, key="judge", tracer_provider=provider, store_path=path)
        tracer = provider.get_tracer("tests.plain")
        for i in range(40):
            bad = rnd.random() < 0.45
            trace_id = _plain_trace(tracer, rnd, BASE_NS + 10**12 + i * 10**10, bad)
            record_feedback(trace_id, 0.1 if bad else 0.9, tracer_provider=provider, store_path=path)
            record_feedback(trace_id, 0.0 if bad else 1.0, key="judge", tracer_provider=provider, store_path=path)
        # feedback for a trace whose spans went elsewhere (no spans in the store)
        record_feedback("ab" * 16, 0.0, tracer_provider=provider, store_path=path)
    finally:
        provider.shutdown()


@pytest.fixture(scope="module")
def varied_store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("blame-snapshot") / "traces.db")
    build_store(path)
    return path


def _reports(path: str) -> dict:
    with TraceStore(path) as store:
        return json.loads(json.dumps({name: store.blame(**kwargs) for name, kwargs in CASES.items()}))


def test_blame_output_equals_the_snapshot(varied_store):
    reports = _reports(varied_store)
    if os.environ.get("INSTRUMENTORS_UPDATE_BLAME_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(reports, indent=1, sort_keys=True) + "\n")
        pytest.skip("snapshot rewritten")
    expected = json.loads(SNAPSHOT.read_text())
    assert set(reports) == set(expected)
    for name in CASES:  # one case at a time: a readable diff
        assert reports[name] == expected[name], name
    # the snapshot is not trivial: each side and several kinds of findings are present
    default = expected["default"]
    assert (default["negative"], default["positive"]) == (157, 184)
    kinds = {f.get("relation", f["kind"]) for case in expected.values() for f in case["findings"]}
    assert kinds == {"linked", "retrieved", "stale", "attribute"}


def _features_equal(a, b) -> bool:
    return (list(a.categorical) == list(b.categorical) and list(a.numeric.items()) == list(b.numeric.items())
            and a.stale_docs == b.stale_docs)


def test_lean_loading_gives_the_features_of_fully_loaded_traces(varied_store, set_config):
    """blame() reads traces with iter_lean (no events, feedback, link attributes): per
    trace it must see the same features as from TraceStore.load(), in the same order,
    also for a trace whose causal links are rebuilt from fingerprint digests."""
    from instrumentors import causal

    set_config(causal_links=True)
    provider = TracerProvider(id_generator=SeededIds(3))
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(varied_store)))
    tracer = provider.get_tracer("split")
    doc = "Refunds are accepted within thirty days of purchase when the original receipt is shown at the desk."
    with tracer.start_as_current_span("split pipeline") as root:
        retrieval = tracer.start_span("retrieval", attributes={sc.SPAN_KIND: sc.KIND_RETRIEVER})
        causal.produce(retrieval, [causal.Produced(doc, "document", "doc-a", 0, 0.41)])
        retrieval.end()
        consumption = causal.consume([f"Context:\n{doc}\nQuestion: shoes?"], trace.set_span_in_context(root))
        generator = tracer.start_span("generator", attributes={sc.SPAN_KIND: sc.KIND_LLM, **consumption.attributes})
        generator.end()
    provider.shutdown()
    split_id = format(root.get_span_context().trace_id, "032x")
    with TraceStore(varied_store) as store:
        refs = [ref for ref, _ in store.traces_with_feedback()] + [store._resolve(split_id)[0]]
        lean = dict(store.iter_lean(refs, chunk=64))
        assert list(lean) == refs  # every trace, the one known only from its feedback too
        assert [s["name"] for s in lean[store._resolve("ab" * 16)[0]]["spans"]] == ["feedback"]
        for ref, loaded in lean.items():
            full = store.reader.load([ref])[ref]
            for stale in (180.0, None):
                assert _features_equal(trace_features(loaded, stale), trace_features(full, stale)), ref
        split = trace_features(lean[refs[-1]], 180.0)
        assert ("linked", "doc-a", "generator", "retrieval") in split.categorical  # rebuilt link
