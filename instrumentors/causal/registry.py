"""The in-process store of registered outputs: shingle key -> the outputs that contain it.

Why this shape:

* **Scoped**: the index is split per trace by default (``causal_scope="trace"``), so a
  document retrieved in request A can never link into request B even when B retrieves
  the same document, and a look-up only ever touches its own trace's table. With
  ``causal_scope="process"`` all traces share one table (scope key 0, never a valid
  trace id) for pipelines that retrieve in one trace and generate in another.
* **Independent of size**: a look-up intersects the input's keys with the table's keys
  (a C-level hash probe per key); it never iterates over registered outputs. At most
  :data:`MAX_SOURCES_PER_KEY` outputs are kept per key (the newest), so even a document
  retrieved by every request costs a bounded amount per key.
* **Bounded**: outputs are evicted oldest first when there are more than
  ``causal_max_entries`` of them, when they hold more than
  ``KEYS_PER_ENTRY * causal_max_entries`` keys in total (each output keeps at most
  :data:`~.fingerprint.MAX_KEYS_PER_SOURCE`), or when they are older than
  ``causal_max_age_seconds``. Defaults: 10,000 outputs, 320,000 keys, 900 s, i.e. a few
  tens of MB at most (about 90 bytes per key).
* **Thread- and asyncio-safe**: one lock, held only for dictionary work (fingerprints are
  computed outside it) and never across an ``await``.
* **Private**: it holds integer keys, span contexts, ids, ranks and scores. Never text.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from opentelemetry.trace import SpanContext

#: outputs kept per key (newest win); bounds the work per key in a look-up.
MAX_SOURCES_PER_KEY = 8
#: average keys per output the registry may hold: total keys <= this * causal_max_entries.
KEYS_PER_ENTRY = 32
#: scope key of the process-wide table (trace ids are never 0).
PROCESS_SCOPE = 0


class Group:
    """The outputs one ``produce`` call registered for one span (a retrieval's documents).

    Consumers use it to list the documents a linked retrieval returned but that are
    absent from their input ("retrieved but unused"). Once registered it keeps only
    ``members``: (seq, kind, label) per output, so sources and their group form no
    reference cycle and an evicted retrieval is freed at once.
    """

    __slots__ = ("sources", "members")

    def __init__(self) -> None:
        self.sources: List["Source"] = []
        self.members: Tuple[Tuple[int, str, str], ...] = ()

    def seal(self, label: "Callable[[Source], str]") -> None:
        self.members = tuple((s.seq, s.kind, label(s)) for s in self.sources)
        self.sources = []


class Source:
    """One registered output: where it came from and its sampled keys (no text)."""

    __slots__ = (
        "ctx", "trace_id", "span_id", "parent_span_id", "kind", "document_id", "rank", "score",
        "keys", "threshold", "words", "short", "whole_only", "signature", "seq", "created", "group",
        "scope",
    )

    def __init__(
        self,
        ctx: SpanContext,
        parent_span_id: Optional[int],
        kind: str,
        document_id: Optional[str],
        rank: Optional[int],
        score: Optional[float],
        keys: Tuple[int, ...],
        threshold: int,
        words: int,
        short: bool,
        group: Group,
        whole_only: bool = False,
    ) -> None:
        self.ctx = ctx
        self.trace_id = ctx.trace_id
        self.span_id = ctx.span_id
        self.parent_span_id = parent_span_id
        self.kind = kind
        self.document_id = document_id
        self.rank = rank
        self.score = score
        self.keys = keys
        self.threshold = threshold
        self.words = words
        self.short = short
        # a short output copied from its producer's own input (a rewriter echoing part of
        # the question): only a consumer input equal to it as a whole links to it
        self.whole_only = whole_only
        # identical content <=> identical sampled keys and threshold
        self.signature = hash((keys, threshold))
        self.seq = 0
        self.created = 0.0
        self.group = group
        self.scope = 0

    def __repr__(self) -> str:  # ids only: safe to log
        return (f"Source(kind={self.kind!r}, id={self.document_id!r}, rank={self.rank}, "
                f"span={self.span_id:016x}, keys={len(self.keys)})")


class Registry:
    """Scoped, bounded index from shingle key to the outputs containing it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scopes: Dict[int, dict] = {}
        self._order: deque = deque()
        self._total_keys = 0
        self._short: Dict[int, int] = {}
        self._seq = itertools.count(1)

    # -- writes ----------------------------------------------------------------------
    def next_seq(self) -> int:
        """A registration number (increasing; ``next`` on a counter is atomic in CPython)."""
        return next(self._seq)

    def register(
        self,
        scope: int,
        sources: Iterable[Source],
        *,
        max_entries: int,
        max_age: float,
        now: Optional[float] = None,
    ) -> None:
        now = time.monotonic() if now is None else now
        budget = max(KEYS_PER_ENTRY * max_entries, 256)
        with self._lock:
            self._expire(now - max_age)
            table = self._scopes.get(scope)
            if table is None:
                table = self._scopes[scope] = {}
            for source in sources:
                if not source.seq:
                    source.seq = next(self._seq)
                source.created = now
                source.scope = scope
                self._order.append(source)
                self._total_keys += len(source.keys)
                if source.short and not source.whole_only:
                    self._short[source.words] = self._short.get(source.words, 0) + 1
                for key in source.keys:
                    held = table.get(key)
                    if held is None:
                        table[key] = source
                    elif type(held) is Source:
                        table[key] = (held, source)
                    elif len(held) < MAX_SOURCES_PER_KEY:
                        table[key] = held + (source,)
                    else:
                        table[key] = held[1:] + (source,)
            order = self._order
            while order and (len(order) > max_entries or self._total_keys > budget):
                self._unindex(order.popleft())

    def _expire(self, oldest_allowed: float) -> None:
        order = self._order
        while order and order[0].created < oldest_allowed:
            self._unindex(order.popleft())

    def _unindex(self, source: Source) -> None:
        self._total_keys -= len(source.keys)
        if source.short and not source.whole_only:
            left = self._short.get(source.words, 0) - 1
            if left > 0:
                self._short[source.words] = left
            else:
                self._short.pop(source.words, None)
        table = self._scopes.get(source.scope)
        if table is None:
            return
        for key in source.keys:
            held = table.get(key)
            if held is source:
                del table[key]
            elif type(held) is tuple and source in held:
                rest = tuple(s for s in held if s is not source)
                table[key] = rest[0] if len(rest) == 1 else rest
        if not table:
            del self._scopes[source.scope]

    def clear(self) -> None:
        """Forget everything (tests; a host app that wants to drop state)."""
        with self._lock:
            self._scopes.clear()
            self._order.clear()
            self._total_keys = 0
            self._short.clear()

    # -- reads -----------------------------------------------------------------------
    def short_lengths(self) -> Tuple[int, ...]:
        """Word counts of the short outputs currently registered (any scope)."""
        return tuple(self._short)

    def lookup(self, scope: int, keys: set, *, max_age: float, now: Optional[float] = None) -> Dict[Source, int]:
        """How many of ``keys`` each output of ``scope`` contains (outputs with >= 1 hit).

        Cost: one C-level set/dict intersection over ``keys`` plus work per *hit*; the
        number of registered outputs does not enter.
        """
        now = time.monotonic() if now is None else now
        oldest_allowed = now - max_age
        hits: Dict[Source, int] = {}
        with self._lock:
            self._expire(oldest_allowed)
            table = self._scopes.get(scope)
            if not table:
                return hits
            matched = table.keys() & keys
            get = hits.get
            for key in matched:
                held = table[key]
                if type(held) is Source:
                    hits[held] = get(held, 0) + 1
                else:
                    for source in held:
                        hits[source] = get(source, 0) + 1
        return hits

    def stats(self) -> dict:
        """Sizes, for tests and benchmarks: outputs, keys they hold, index slots, scopes."""
        with self._lock:
            return {
                "sources": len(self._order),
                "keys": self._total_keys,
                "index_entries": sum(len(t) for t in self._scopes.values()),
                "scopes": len(self._scopes),
            }


REGISTRY = Registry()
