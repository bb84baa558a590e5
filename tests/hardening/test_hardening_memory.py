"""Bounded memory: what the causal registry keeps between calls stops growing.

* 200,000 registrations straight into a :class:`Registry` (the structure that holds
  memory), spread over 50,000 traces, with hot keys shared by many outputs and short
  outputs: past the entry bound the held size is flat (200k costs what 20k did), evicted
  outputs are freed (no live ``Source`` beyond the bound), and
  the counts (outputs, keys, index slots, scopes, short-length map) stay under their
  bounds.
* The same through the public path (``produce``/``consume`` on real spans, every
  per-call cache on the way: the pending-consumption map, the input-keys cache, the
  word cache) with a small entry bound so the plateau is reached quickly.
"""

from __future__ import annotations

import gc

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from instrumentors.causal import fingerprint
from instrumentors.causal._api import PENDING, Produced, consume, produce
from instrumentors.causal.registry import KEYS_PER_ENTRY, MAX_SOURCES_PER_KEY, REGISTRY, Group, Registry, Source

MAX_ENTRIES = 10_000  # the default causal_max_entries


def _source(trace_id: int, span_id: int, keys: tuple, short: bool) -> Source:
    group = Group()
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    source = Source(ctx, None, "document", f"doc-{span_id}", span_id % 5, 0.5, keys, 1, len(keys) + 4, short, group)
    group.sources.append(source)
    return source


def _register(registry: Registry, start: int, stop: int) -> None:
    for i in range(start, stop):
        trace_id = 1 + i // 4  # four outputs per trace: 50,000 traces for 200,000
        keys = tuple(range(i * 40, i * 40 + 32)) + (7, 8, 9)  # 32 own keys + 3 hot keys everyone shares
        source = _source(trace_id, i + 1, keys, short=(i % 3 == 0))
        registry.register(trace_id, [source], max_entries=MAX_ENTRIES, max_age=900.0, now=float(i) * 1e-3)
        source.group.seal(lambda s: s.document_id)


def _held_bytes(registry: Registry) -> int:
    """Deep size of everything the registry holds (tables, tuples, outputs, their keys)."""
    import sys

    seen: set = set()
    total = 0

    def add(obj) -> None:
        nonlocal total
        if id(obj) in seen:
            return
        seen.add(id(obj))
        total += sys.getsizeof(obj)

    for container in (registry._scopes, registry._order, registry._short):
        add(container)
    for table in registry._scopes.values():
        add(table)
        for key, held in table.items():
            add(key)
            add(held)
    for source in registry._order:
        add(source)
        add(source.keys)
        add(source.group)
        add(source.group.members)
        for member in source.group.members:
            add(member)
    return total


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


@pytest.mark.timeout(300)
def test_registry_memory_is_flat_over_200k_registrations():
    REGISTRY.clear()  # outputs other tests left in the process registry are not this test's
    PENDING.clear()
    before = _live(Source), _live(Group)
    registry = Registry()
    _register(registry, 0, 20_000)
    at_20k, stats_20k = _held_bytes(registry), registry.stats()
    _register(registry, 20_000, 200_000)
    at_200k, stats = _held_bytes(registry), registry.stats()
    # the entry bound or the key budget (35 keys per output here) binds, and holds
    assert stats["sources"] == stats_20k["sources"] <= MAX_ENTRIES
    assert stats["keys"] <= KEYS_PER_ENTRY * MAX_ENTRIES
    assert stats["scopes"] <= MAX_ENTRIES // 4 + 1
    assert stats["index_entries"] <= stats["keys"]
    # every hot key holds at most MAX_SOURCES_PER_KEY outputs in each trace table
    assert all(len(v) <= MAX_SOURCES_PER_KEY for t in registry._scopes.values() for v in t.values()
               if isinstance(v, tuple))
    assert len(registry._short) <= MAX_ENTRIES
    # flat: 180,000 more registrations leave the held size where 20,000 left it
    assert at_200k <= at_20k * 1.05, (at_20k, at_200k)
    assert at_20k < 64 << 20  # "a few tens of MB at most" (README) for the default bound
    # evicted outputs are freed, not only unindexed (nothing else holds them)
    assert _live(Source) - before[0] <= stats["sources"] + 8
    assert _live(Group) - before[1] <= stats["sources"] + 8


@pytest.mark.timeout(300)
def test_public_path_caches_stay_bounded(tracer_provider, set_config):
    """produce/consume on real spans: registry, pending consumptions, input-keys cache and
    word cache all stop growing; 6,000 registrations against a 500-entry bound."""
    set_config(causal_links=True, causal_max_entries=500, causal_scope="trace")
    REGISTRY.clear()
    PENDING.clear()
    before = _live(Source)
    tracer = tracer_provider.get_tracer("hardening.memory")

    def run(start: int, stop: int) -> None:
        for i in range(start, stop):
            with tracer.start_as_current_span("request"):
                with tracer.start_as_current_span("retrieval") as span:
                    produce(span, [Produced(f"article {i} says the plan number {i * 7} costs {i % 97} euros per "
                                            f"seat and renews every {i % 12} months", document_id=f"d{i}", rank=0,
                                            score=0.7)])
                consume([f"question {i}: what does plan number {i * 7} cost per seat and when does it renew"])

    try:
        run(0, 1_500)
        sizes_1k = (REGISTRY.stats()["sources"], len(PENDING._items), fingerprint.word_cache_size())
        run(1_500, 6_000)
        stats = REGISTRY.stats()
        assert stats["sources"] <= 500 and sizes_1k[0] <= 500
        assert stats["keys"] <= KEYS_PER_ENTRY * 500
        assert len(PENDING._items) <= PENDING.MAX_ENTRIES and PENDING._keys <= PENDING.MAX_KEYS
        assert len(PENDING._headers) <= len(PENDING._items)
        assert fingerprint.word_cache_size() <= fingerprint.WORD_CACHE_MAX
        cache = fingerprint._text_cache[2]
        assert len(cache) <= fingerprint.TEXT_CACHE_MAX
        assert fingerprint._text_cache[3][0] <= fingerprint.TEXT_CACHE_MAX_KEYS
        assert _live(Source) - before <= 500 + 16  # evicted outputs are freed, not just unindexed
    finally:
        REGISTRY.clear()
        PENDING.clear()
        assert trace.get_current_span() is trace.INVALID_SPAN
