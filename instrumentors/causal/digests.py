"""Fingerprint digests on spans, and rebuilding causal links from them afterwards.

In-process links need both steps in one process. Spans therefore also carry compact
digests (64-bit keys as 16 hex digits; never text) so that a backend, or our own store,
can rebuild links across processes after the fact with :func:`rebuild_links`.

Format (both attributes are string arrays; the first element is a header):

``instrumentors.causal.produced`` on a producing span::

    ("fp1 k=5 kid=3f9a0c1e",
     "document;0;0.91;120;<hex16><hex16>...;kb/returns.md",   # one element per output
     "generation;0;;42;<hex16>...;")

  ``kid`` names the digest key the keys were made with (see :mod:`.fingerprint` and
  :mod:`instrumentors._digest_key`): 8 hex digits of an HMAC of a fixed label, never the
  key. It is absent when digests are unkeyed (``digest_key="off"``), and headers written
  before keys existed have none: they read as unkeyed.

  Each output is ``kind;rank;score;words;sketch;document_id`` (empty field = unknown;
  ``document_id`` is last and may itself contain ``;``). For generations and tool calls
  the keys are those the model did not copy from its own input. ``sketch`` is the output's
  :data:`PRODUCED_SKETCH` smallest keys, concatenated, ascending (an output shorter than
  ``k`` words has exactly one key: its whole-text key). At most ``max_documents`` outputs.

``instrumentors.causal.consumed`` on a consuming span::

    ("fp1 k=5 n=1834 c=2f kid=3f9a0c1e", "=<hex16><hex16>", "<hex16><hex16>...")

  ``n`` is how many distinct shingle keys the inputs had; ``c`` is an in-process token
  (it lets ``produce`` on the same span find what the span consumed; meaningless
  elsewhere). The ``=``-prefixed element (present when some input is shorter than ``k``
  words) holds the whole-text keys of those inputs (at most 16); the last element holds
  the :data:`CONSUMED_SKETCH` smallest shingle keys, ascending. Keys are concatenated
  rather than one per element because OpenTelemetry validates every element of an array
  attribute, which would cost more than computing the keys.

Rebuilding (a *bottom-k sketch* containment estimate): keys are uniformly distributed, so
for a produced output the keys of its sketch at or below the consumer's largest sketched
key (all of them when the consumer's sketch is complete) are a random sample of its
shingles that the consumer would have sketched if present. The fraction of those found
estimates coverage. Short outputs match a consumer's whole-text key (a rewritten query
used verbatim as a retriever query) or any sketched key. Only digests with the same ``kid``
(or both without one) are compared: keys made with different keys never coincide except by
accident, and such accidents must not become links.

Usage (what a store or backend does with exported spans)::

    from instrumentors.causal import SpanDigests, rebuild_links
    links = rebuild_links(SpanDigests.from_span(s) for s in spans)             # SDK spans
    links = rebuild_links(SpanDigests.from_attributes(tid, sid, attrs, start_ns, end_ns)
                          for ... in rows)                                       # stored rows
    for link in links:  # RebuiltLink: consumer/producer ids, link_type, document_id,
        ...             # rank, score, coverage, ambiguous; link.attributes() as in process

Limits, by design of a sketch: two near-duplicate documents may be indistinguishable (both
are returned, flagged ``ambiguous``); a short output quoted inside a longer prompt is not
found (the in-process registry finds it). Links recorded in process are better: pass them
as ``linked_span_ids`` (``from_span`` does) and nothing is rebuilt towards those producers,
so the result only *adds* links between steps that did not share a registry.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import _semconv as sc
from .fingerprint import MASK
from .linking import LINK_TYPES

VERSION = "fp1"
#: keys per produced output in its digest.
PRODUCED_SKETCH = 8
#: shingle keys per consuming span in its digest.
CONSUMED_SKETCH = 64
#: whole-text keys of short inputs per consuming span.
CONSUMED_WHOLES = 16


_PRODUCED_HEADERS: Dict[Tuple[int, Optional[str]], str] = {}  # (k, kid) -> header; a handful at most


def header(k: int, n: Optional[int] = None, token: Optional[str] = None, kid: Optional[str] = None) -> str:
    if n is None and token is None:  # a produced header: the same on every call
        cached = _PRODUCED_HEADERS.get((k, kid))
        if cached is None:
            if len(_PRODUCED_HEADERS) >= 64:
                _PRODUCED_HEADERS.clear()
            cached = _PRODUCED_HEADERS[(k, kid)] = _header(k, n, token, kid)
        return cached
    return _header(k, n, token, kid)


def _header(k: int, n: Optional[int], token: Optional[str], kid: Optional[str]) -> str:
    out = f"{VERSION} k={k}" if n is None else f"{VERSION} k={k} n={n}"
    if token is not None:
        out = f"{out} c={token}"
    return out if kid is None else f"{out} kid={kid}"


def _hex(keys: Sequence[int]) -> str:
    """Keys as one string of 16 hex digits each (struct is several times faster than format)."""
    return struct.pack(f">{len(keys)}Q", *keys).hex()


def smallest(keys: Iterable[int], count: int, total: int) -> List[int]:
    """The ``count`` smallest of ``total`` uniformly distributed 64-bit keys, ascending.

    Filtering below a threshold expected to keep ~2.5x ``count`` keys first, then sorting
    those, is linear; sorting everything is not (and slow on 64-bit ints).
    """
    if total <= 2 * count:
        return sorted(keys)[:count]
    threshold = min(MASK, (MASK // total) * count * 5 // 2)
    while True:
        if threshold >= MASK:
            return sorted(keys)[:count]
        kept = sorted(filter(threshold.__gt__, keys))
        if len(kept) >= count:
            return kept[:count]
        threshold = threshold * 4


def produced_entry(kind: str, rank: Optional[int], score: Optional[float], words: int,
                   ordered_keys: Sequence[int], document_id: Optional[str]) -> str:
    """One output's digest element; ``ordered_keys`` ascending (its smallest come first)."""
    sketch = _hex(ordered_keys[:PRODUCED_SKETCH])
    score_text = "" if score is None or not math.isfinite(score) else repr(float(score))
    return (f"{kind};{'' if rank is None else int(rank)};{score_text};{words};{sketch};"
            f"{'' if document_id is None else document_id}")


def consumed_digest(k: int, shingles: set, wholes: Sequence[int], token: Optional[str] = None,
                    kid: Optional[str] = None) -> Tuple[str, ...]:
    total = len(shingles)
    head = header(k, total, token, kid)
    parts = [head]
    if wholes:
        parts.append("=" + _hex(list(dict.fromkeys(wholes))[:CONSUMED_WHOLES]))
    if shingles:
        parts.append(_hex(smallest(shingles, CONSUMED_SKETCH, total)))
    return tuple(parts)


# --- parsing ----------------------------------------------------------------------------


def _parse_header(value: str) -> Optional[Dict[str, str]]:
    parts = value.split()
    if not parts or parts[0] != VERSION:
        return None
    out: Dict[str, str] = {}
    for part in parts[1:]:
        name, _, text = part.partition("=")
        out[name] = text
    try:
        int(out["k"])
        int(out.get("n", "0"))
    except (KeyError, ValueError):
        return None
    return out


def consumption_token(value: Any) -> Optional[str]:
    """The in-process token in a ``consumed`` header (see ``_api``), if any."""
    if not value or isinstance(value, str):
        return None
    head = _parse_header(str(value[0]))
    return None if head is None else head.get("c")


def key_id_of(value: Any) -> Optional[str]:
    """The ``kid`` in a ``produced``/``consumed`` header; None when unkeyed or unreadable."""
    if not value or isinstance(value, str):
        return None
    head = _parse_header(str(value[0]))
    return None if head is None else (head.get("kid") or None)


def _keys(sketch: str) -> List[int]:
    return [int(sketch[i:i + 16], 16) for i in range(0, len(sketch) - 15, 16)]


@dataclass(frozen=True)
class ProducedOutput:
    kind: str
    rank: Optional[int]
    score: Optional[float]
    words: int
    keys: Tuple[int, ...]
    document_id: Optional[str]


def parse_produced(value: Any) -> Tuple[Optional[int], List[ProducedOutput]]:
    """(k, outputs) from a ``produced`` attribute value; (None, []) when unreadable."""
    if not value or isinstance(value, str):
        return None, []
    items = list(value)
    head = _parse_header(str(items[0]))
    if head is None:
        return None, []
    outputs = []
    for item in items[1:]:
        fields = str(item).split(";", 5)
        if len(fields) != 6:
            continue
        kind, rank, score, words, sketch, document_id = fields
        try:
            outputs.append(ProducedOutput(
                kind=kind,
                rank=int(rank) if rank else None,
                score=float(score) if score else None,
                words=int(words or 0),
                keys=tuple(_keys(sketch)),
                document_id=document_id or None,
            ))
        except ValueError:
            continue
    return int(head["k"]), outputs


def parse_consumed(value: Any) -> Tuple[Optional[int], int, List[int], List[int]]:
    """(k, n, sketch keys ascending, whole keys) from a ``consumed`` attribute value."""
    if not value or isinstance(value, str):
        return None, 0, [], []
    items = [str(v) for v in value]
    head = _parse_header(items[0])
    if head is None:
        return None, 0, [], []
    sketch, wholes = [], []
    for item in items[1:]:
        target = wholes if item.startswith("=") else sketch
        try:
            target.extend(_keys(item.lstrip("=")))
        except ValueError:
            continue
    sketch.sort()
    return int(head["k"]), int(head.get("n", len(sketch))), sketch, wholes


# --- rebuilding -----------------------------------------------------------------------


@dataclass(frozen=True)
class SpanDigests:
    """What :func:`rebuild_links` needs from one span. Ids are opaque (int or hex);
    times (ns) are optional and, when given, a producer must end before its consumer
    starts."""

    trace_id: Any
    span_id: Any
    produced: Any = None  # the instrumentors.causal.produced attribute value
    consumed: Any = None  # the instrumentors.causal.consumed attribute value
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    #: span ids this span already links to (its in-process causal links): the registry
    #: decided about those producers with full information, so nothing is rebuilt for them.
    linked_span_ids: frozenset = frozenset()

    @classmethod
    def from_attributes(cls, trace_id: Any, span_id: Any, attributes: Mapping[str, Any],
                        start_time: Optional[int] = None, end_time: Optional[int] = None,
                        linked_span_ids: Iterable[Any] = ()) -> "SpanDigests":
        return cls(trace_id, span_id, attributes.get(sc.CAUSAL_PRODUCED_DIGESTS),
                   attributes.get(sc.CAUSAL_CONSUMED_DIGESTS), start_time, end_time,
                   frozenset(linked_span_ids))

    @classmethod
    def from_span(cls, span: Any, *, with_links: bool = True) -> "SpanDigests":
        """From an SDK ``ReadableSpan`` (ids as ints, like ``SpanContext``)."""
        ctx = span.get_span_context()
        linked = [link.context.span_id for link in (span.links or ())] if with_links else ()
        return cls.from_attributes(ctx.trace_id, ctx.span_id, span.attributes or {},
                                   span.start_time, span.end_time, linked)


@dataclass(frozen=True)
class RebuiltLink:
    consumer_trace_id: Any
    consumer_span_id: Any
    producer_trace_id: Any
    producer_span_id: Any
    link_type: str
    source_kind: str
    document_id: Optional[str]
    rank: Optional[int]
    score: Optional[float]
    coverage: float
    #: another rebuilt link of this consumer, of the same kind, has overlapping keys
    #: (near-duplicate documents, overlapping chunks): sketches cannot tell which was used.
    ambiguous: bool = False

    def attributes(self) -> dict:
        """The link attributes the in-process registry would have written."""
        out = {
            sc.GEN_AI_ATTRIBUTION_LINK_TYPE: self.link_type,
            sc.LINK_SOURCE_KIND: self.source_kind,
            sc.LINK_COVERAGE: round(self.coverage, 3),
        }
        if self.document_id is not None:
            out[sc.LINK_DOCUMENT_ID] = self.document_id
        if self.rank is not None:
            out[sc.LINK_RANK] = self.rank
        if self.score is not None:
            out[sc.LINK_SCORE] = self.score
        return out


def rebuild_links(
    spans: Iterable[SpanDigests], *, min_coverage: float = 0.5, scope: str = "trace"
) -> List[RebuiltLink]:
    """Rebuild causal links from span digests (a pure function; no registry involved).

    ``scope="trace"`` links only within a trace (the default, as in-process);
    ``"process"`` across all the given spans. Self-links are never made, nor links to a
    producer span the consumer already links to (``SpanDigests.linked_span_ids``), so the
    result *complements* the links recorded in process. Cost: linear in the digests,
    through an index from key to produced outputs.
    """
    spans = list(spans)
    index: Dict[Tuple[Any, int, Optional[str], int], List[Tuple[SpanDigests, ProducedOutput]]] = {}
    for span in spans:
        k, outputs = parse_produced(span.produced)
        if k is None:
            continue
        scope_key = span.trace_id if scope == "trace" else None
        kid = key_id_of(span.produced)
        for output in outputs:
            for key in output.keys:
                index.setdefault((scope_key, k, kid, key), []).append((span, output))

    links: List[RebuiltLink] = []
    for consumer in spans:
        k, n, sketch, wholes = parse_consumed(consumer.consumed)
        if k is None:
            continue
        scope_key = consumer.trace_id if scope == "trace" else None
        kid = key_id_of(consumer.consumed)
        complete = n <= len(sketch)
        ceiling = MASK if complete or not sketch else sketch[-1]
        present = set(sketch)
        whole_set = set(wholes)
        seen: set = set()
        found: List[Tuple[SpanDigests, ProducedOutput, float, frozenset]] = []
        for key in (*wholes, *sketch):
            for producer, output in index.get((scope_key, k, kid, key), ()):
                ident = (id(producer), id(output))
                if ident in seen:
                    continue
                seen.add(ident)
                if producer is consumer or (producer.trace_id == consumer.trace_id
                                            and producer.span_id == consumer.span_id):
                    continue
                if producer.span_id in consumer.linked_span_ids:
                    continue
                if (producer.end_time is not None and consumer.start_time is not None
                        and producer.end_time > consumer.start_time):
                    continue
                if len(output.keys) == 1 and output.words < k:
                    comparable = frozenset(output.keys)
                    coverage = 1.0 if (output.keys[0] in whole_set or output.keys[0] in present) else 0.0
                else:
                    comparable = frozenset(key_ for key_ in output.keys if key_ <= ceiling)
                    if not comparable:
                        continue
                    coverage = sum(1 for key_ in comparable if key_ in present) / len(comparable)
                if coverage >= min_coverage:
                    found.append((producer, output, coverage, comparable))
        for i, (producer, output, coverage, comparable) in enumerate(found):
            ambiguous = any(j != i and other.kind == output.kind and not comparable.isdisjoint(keys)
                            for j, (_, other, _, keys) in enumerate(found))
            links.append(RebuiltLink(
                consumer.trace_id, consumer.span_id, producer.trace_id, producer.span_id,
                LINK_TYPES.get(output.kind, sc.LINK_CAUSED_BY_STEP), output.kind,
                output.document_id, output.rank, output.score, coverage, ambiguous,
            ))
    return links
