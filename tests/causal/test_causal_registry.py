"""The registry: scope, bounds (count, keys, age), thread safety, memory, the off switch,
and fail-open behaviour."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from instrumentors import _semconv as sc
from instrumentors.causal import Produced, consume, produce
from instrumentors.causal import _api, fingerprint
from instrumentors.causal.registry import MAX_SOURCES_PER_KEY, REGISTRY, Group, Registry, Source

DOC = ("The warranty covers manufacturing defects for two years from the date of purchase, "
       "but it does not cover accidental damage, water damage or normal wear and tear.")
OTHER = ("Gift cards never expire and can be used online or in any of our stores, although "
         "they cannot be exchanged for cash except where the law requires it.")


def retrieve(tracer, docs, name="retrieve"):
    span = tracer.start_span(name)
    produce(span, [Produced(text, "document", doc_id, rank, 0.8) for rank, (doc_id, text) in enumerate(docs)])
    span.end()
    return span


def linked_ids(consumption):
    return [link.attributes.get(sc.LINK_DOCUMENT_ID) for link in consumption.links]


def test_trace_scope_never_links_across_traces(tracer):
    with tracer.start_as_current_span("request A"):
        retrieve(tracer, [("warranty", DOC)])
    with tracer.start_as_current_span("request B"):
        retrieve(tracer, [("gift", OTHER)])  # B retrieves something else
        consumption = consume([DOC + "\n" + OTHER])
    assert linked_ids(consumption) == ["gift"]


def test_same_document_in_two_traces_links_each_to_its_own(tracer):
    spans = {}
    for name in ("A", "B"):
        with tracer.start_as_current_span(name) as root:
            spans[name] = (root, retrieve(tracer, [("warranty", DOC)]))
    for name in ("A", "B"):
        root, retrieval = spans[name]
        consumption = consume([DOC], trace.set_span_in_context(root))
        assert [l.context.span_id for l in consumption.links] == [retrieval.get_span_context().span_id]
        assert {l.context.trace_id for l in consumption.links} == {root.get_span_context().trace_id}


def test_root_consumer_in_trace_scope_has_no_links_but_digests(tracer):
    with tracer.start_as_current_span("request A"):
        retrieve(tracer, [("warranty", DOC)])
    consumption = consume([DOC])  # no parent: the consumer starts a new trace
    assert consumption.links == []
    assert consumption.attributes[sc.CAUSAL_SOURCE_COUNT] == 0
    assert consumption.attributes[sc.CAUSAL_CONSUMED_DIGESTS][0].startswith("fp1 k=5 n=")


def test_process_scope_links_across_traces_preferring_the_newest(tracer, set_config):
    set_config(causal_scope="process")
    with tracer.start_as_current_span("indexing run 1"):
        retrieve(tracer, [("warranty", DOC)], "retrieve 1")
    with tracer.start_as_current_span("indexing run 2"):
        newest = retrieve(tracer, [("warranty", DOC)], "retrieve 2")
    consumption = consume([DOC])  # a different trace altogether
    assert [l.context.span_id for l in consumption.links] == [newest.get_span_context().span_id]
    with tracer.start_as_current_span("run 3"):
        own = retrieve(tracer, [("warranty", DOC)], "retrieve 3")
        with tracer.start_as_current_span("later"):
            again = retrieve(tracer, [("warranty", DOC)], "retrieve again")  # same trace
        consumption = consume([DOC])
    # the consumer's own trace wins over the newer foreign one, and one source per
    # fingerprint: the most recent producer of that content in the trace (the retrieval
    # whose output reached this input)
    assert [l.context.span_id for l in consumption.links] == [again.get_span_context().span_id]
    assert again.get_span_context().span_id != own.get_span_context().span_id


def _ctx(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))


def _source(trace_id: int, span_id: int, keys, group=None) -> Source:
    group = group or Group()
    source = Source(_ctx(trace_id, span_id), None, "document", f"d{span_id}", 0, None,
                    tuple(keys), 1 << 64, len(keys) + 4, False, group)
    group.sources.append(source)
    return source


def test_age_bound_expires_entries():
    registry = Registry()
    registry.register(7, [_source(7, 1, [1, 2, 3])], max_entries=10, max_age=60, now=1000.0)
    assert registry.lookup(7, {1, 2, 3}, max_age=60, now=1059.0)
    assert registry.lookup(7, {1, 2, 3}, max_age=60, now=1061.0) == {}
    assert registry.stats() == {"sources": 0, "keys": 0, "index_entries": 0, "scopes": 0}


def test_count_bound_evicts_oldest_first():
    registry = Registry()
    for i in range(1, 6):
        registry.register(i, [_source(i, i, [i * 10 + j for j in range(4)])], max_entries=3, max_age=60, now=1.0)
    assert registry.stats()["sources"] == 3
    assert registry.lookup(1, {10, 11}, max_age=60, now=1.0) == {}
    assert registry.lookup(2, {20, 21}, max_age=60, now=1.0) == {}
    assert [s.span_id for s in registry.lookup(5, {50, 51}, max_age=60, now=1.0)] == [5]


def test_key_budget_bounds_total_keys():
    registry = Registry()
    for i in range(1, 40):
        registry.register(1, [_source(1, i, range(i * 1000, i * 1000 + 200))], max_entries=10, max_age=60, now=1.0)
    stats = registry.stats()
    assert stats["keys"] <= 10 * 32 + 200 and stats["index_entries"] <= stats["keys"]


def test_sources_per_key_are_bounded():
    registry = Registry()
    for i in range(1, 30):
        registry.register(0, [_source(i, i, [1, 2])], max_entries=100, max_age=60, now=1.0)
    hits = registry.lookup(0, {1, 2}, max_age=60, now=1.0)
    assert sorted(s.span_id for s in hits) == list(range(30 - MAX_SOURCES_PER_KEY, 30))


def test_memory_stays_bounded_after_a_million_registrations():
    """1,000,000 outputs registered through a cap of 1,000 (8 keys each): the registry
    holds at most the cap, and memory does not grow once it is full."""
    registry = Registry()
    cap = 1000
    total = 1_000_000
    batch = 10  # a retrieval of 10 documents per call
    templates = [tuple(range(i * 8, i * 8 + 8)) for i in range(5000)]
    contexts = [_ctx(i % 997 + 1, i + 1) for i in range(5000)]

    def label(source):
        return "doc"

    def run(start: int, stop: int) -> None:
        for call in range(start, stop):
            trace_id = call % 997 + 1
            group = Group()
            sources = group.sources
            base = call * batch
            for j in range(batch):
                n = (base + j) % 5000
                sources.append(Source(contexts[n], None, "document", None, j, None,
                                      templates[n], 1 << 64, 12, False, group))
            registry.register(trace_id, list(sources), max_entries=cap, max_age=3600, now=float(call))
            group.seal(label)

    calls = total // batch
    window = 5_000  # 50,000 registrations: far more than the cap, so all of it is replaced
    run(0, calls - 2 * window)
    stats = registry.stats()
    assert stats["sources"] == cap and stats["keys"] == cap * 8 and stats["index_entries"] <= cap * 8
    gc.collect()
    tracemalloc.start()
    try:
        run(calls - 2 * window, calls - window)
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]  # the whole registry, re-allocated while traced
        run(calls - window, calls)
        gc.collect()
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    stats = registry.stats()
    assert stats["sources"] == cap and stats["keys"] == cap * 8 and stats["scopes"] <= cap
    # about 1 KB per 8-key output at this cap, and no growth once full
    assert full < 1.5 * 1024 * cap, full
    assert abs(later - full) < 64 * 1024, (full, later)


def test_concurrent_threads_keep_the_index_consistent():
    registry = Registry()
    errors = []

    def worker(n: int) -> None:
        try:
            for i in range(3000):
                trace_id = (n * 7 + i) % 13 + 1
                keys = [(i % 50) * 3 + j for j in range(3)]
                registry.register(trace_id, [_source(trace_id, n * 100000 + i + 1, keys)],
                                  max_entries=200, max_age=3600, now=1.0)
                registry.lookup(trace_id, set(keys), max_age=3600, now=1.0)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = registry.stats()
    assert stats["sources"] == 200 and stats["keys"] == 600
    # every index entry points at live sources only
    live = set(registry._order)
    for table in registry._scopes.values():
        for held in table.values():
            for source in (held if isinstance(held, tuple) else (held,)):
                assert source in live


def test_toggle_off_means_no_registry_work(tracer, set_config, monkeypatch):
    calls = []
    for name in ("register", "lookup", "short_lengths"):
        monkeypatch.setattr(REGISTRY, name, lambda *a, _n=name, **k: calls.append(_n))
    for name in ("fingerprint", "input_keys"):
        monkeypatch.setattr(fingerprint, name, lambda *a, _n=name, **k: calls.append(_n))
    set_config(causal_links=False)
    with tracer.start_as_current_span("request"):
        span = retrieve(tracer, [("warranty", DOC)])
        assert consume([DOC]) is None
    assert calls == []
    assert sc.CAUSAL_PRODUCED_DIGESTS not in span.attributes


def test_toggle_off_then_on_links_again(tracer, set_config):
    set_config(causal_links=False)
    with tracer.start_as_current_span("request"):
        retrieve(tracer, [("warranty", DOC)])
    set_config(causal_links=True)
    with tracer.start_as_current_span("request"):
        consumption = consume([DOC])
    assert consumption.links == []  # nothing was registered while off


def test_internal_errors_fail_open_and_are_logged_once(tracer, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(REGISTRY, "lookup", boom)
    monkeypatch.setattr(REGISTRY, "register", boom)
    from instrumentors import _spans
    monkeypatch.setattr(_spans, "_reported", {})
    caplog.set_level(logging.WARNING, logger="instrumentors")
    with tracer.start_as_current_span("request"):
        for _ in range(3):
            retrieve(tracer, [("warranty", DOC)])  # produce swallows
            assert consume([DOC]) is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("causal.consume" in m for m in messages) == 1
    assert sum("causal.produce" in m for m in messages) == 1


def test_bad_inputs_are_tolerated(tracer):
    with tracer.start_as_current_span("request"):
        span = tracer.start_span("retrieve")
        produce(span, [Produced(None), Produced(""), Produced("   ...  "),
                       Produced(DOC, "weird-kind", 12, True, float("nan"))])
        span.end()
        consumption = consume([None, 3, "", DOC])
        assert consume(DOC).links  # a bare string is one input
    (link,) = consumption.links
    assert dict(link.attributes) == {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_STEP,
        sc.LINK_SOURCE_KIND: "step",
        sc.LINK_COVERAGE: 1.0,
        sc.LINK_DOCUMENT_ID: "12",
    }


def test_links_per_span_are_capped(tracer):
    docs = [(f"d{i}", f"document number {i} " + " ".join(f"t{i}x{j}" for j in range(12))) for i in range(100)]
    with tracer.start_as_current_span("request"):
        retrieve(tracer, docs)
        consumption = consume(["\n".join(text for _, text in docs)])
    assert len(consumption.links) == 64
    assert consumption.attributes[sc.CAUSAL_SOURCE_COUNT] == 100
    assert len(consumption.attributes[sc.CAUSAL_SOURCE_IDS]) == 50  # max_documents


def test_produced_digests_are_bounded_and_merge(tracer, set_config):
    set_config(max_documents=3)
    with tracer.start_as_current_span("request"):
        span = tracer.start_span("retrieve")
        produce(span, [Produced(f"doc {i} " + DOC, "document", f"d{i}", i) for i in range(2)])
        produce(span, [Produced(f"doc {i} " + DOC, "document", f"d{i}", i) for i in range(2, 6)])
        span.end()
    value = span.attributes[sc.CAUSAL_PRODUCED_DIGESTS]
    assert value[0] == "fp1 k=5 kid=360251e5"  # the test-suite key (tests/conftest.py)
    assert [entry.rsplit(";", 1)[1] for entry in value[1:]] == ["d0", "d1", "d2"]


def test_sampled_out_or_invalid_spans_register_nothing():
    from opentelemetry.trace import INVALID_SPAN
    produce(INVALID_SPAN, [Produced(DOC)])
    assert REGISTRY.stats()["sources"] == 0


def test_env_var_and_instrument_all_toggle(tracer, monkeypatch, tracer_provider):
    import instrumentors
    from instrumentors import _config

    monkeypatch.setenv("INSTRUMENTORS_CAUSAL_LINKS", "false")
    _config.configure()
    with tracer.start_as_current_span("request"):
        assert consume([DOC]) is None
    monkeypatch.delenv("INSTRUMENTORS_CAUSAL_LINKS")
    _config.configure()
    with tracer.start_as_current_span("request"):
        assert consume([DOC]) is not None
    assert instrumentors.instrument_all(tracer_provider=tracer_provider, causal_links=False,
                                        enabled_libraries=[]) == []
    with tracer.start_as_current_span("request"):
        assert consume([DOC]) is None
    monkeypatch.setenv("INSTRUMENTORS_CAUSAL_SCOPE", "process")
    monkeypatch.setenv("INSTRUMENTORS_CAUSAL_MIN_COVERAGE", "0.7")
    cfg = _config.configure()
    assert (cfg.causal_scope, cfg.causal_min_coverage, cfg.causal_links) == ("process", 0.7, True)


def test_pending_consumer_keys_are_bounded(tracer):
    """Consumers that never produce (validators, failed calls) leave their input keys
    behind until evicted: bounded by entries and keys."""
    from instrumentors.causal._api import PENDING

    with tracer.start_as_current_span("request"):
        for i in range(3000):
            consume([f"input number {i} " + DOC])
    assert len(PENDING._items) <= PENDING.MAX_ENTRIES
    assert PENDING._keys == sum(item[2] for item in PENDING._items.values()) <= PENDING.MAX_KEYS
    big = {n for n in range(PENDING.MAX_KEYS + 10)}
    token = PENDING.put(big, set())
    assert PENDING.take(token) is None and PENDING._keys == 0  # too big to keep: evicted at once
