"""From look-up hits to links: which registered outputs an input really used.

A raw hit count is not enough for precision:

1. **Coverage threshold**: an output is a candidate when at least ``causal_min_coverage``
   (default 0.5) of its keys are in the input. Short outputs (one whole-text key) are all
   or nothing.
2. **One source per fingerprint**: outputs with identical content (identical sampled
   keys) form a group of which we keep: those in the consumer's own trace (else those of
   the most recent trace, in process scope); then not an output whose producing span is
   the *child* of another member's span (a framework LLM span and the client span inside
   it both produced the completion: the outer one is linked); then only the most recent
   producing span (a document retrieved twice in one trace links to the retrieval that
   returned it last); then one per span (lowest rank). The others are "present" but not linked.
3. **Near duplicates**: candidates are taken best coverage first. A candidate that shares
   keys with an already accepted output *of the same kind* must also be supported by its
   own keys: of its keys not in those outputs, at least ``causal_min_coverage`` must be in
   the input. So a stale copy of a document that differs by a few words, or an overlapping
   chunk of which only the shared half appears, is not linked; if it has no keys of its
   own (a subset), it is "present" but not linked.

Links are then ordered by registration (a retrieval's documents by rank) and described
with the attributes of :func:`link_attributes`.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

from .. import _semconv as sc
from .registry import Source

#: links written on one span at most (the SDK's default link limit is 128).
MAX_LINKS = 64

LINK_TYPES = {
    "document": sc.LINK_INFORMED_BY,
    "generation": sc.LINK_CAUSED_BY_GENERATION,
    "tool_call": sc.LINK_CAUSED_BY_GENERATION,  # the model produced the arguments
    "tool_result": sc.LINK_CAUSED_BY_TOOL,
    "step": sc.LINK_CAUSED_BY_STEP,
}


class Match:
    """A registered output found in an input, with the fraction of it found."""

    __slots__ = ("source", "coverage")

    def __init__(self, source: Source, coverage: float) -> None:
        self.source = source
        self.coverage = coverage

    def __repr__(self) -> str:
        return f"Match({self.source!r}, coverage={self.coverage:.3f})"


def source_label(source: Source) -> str:
    """A source's id for summaries: the document id, else ``kind@spanid[rank]``."""
    if source.document_id is not None:
        return source.document_id
    label = f"{source.kind}@{source.span_id:016x}"
    return label if source.rank is None else f"{label}[{source.rank}]"


def _choose_in_group(members: List[Source], trace_id: Optional[int]) -> List[Source]:
    if len(members) == 1:
        return members
    local = [s for s in members if s.trace_id == trace_id]
    if not local:
        newest = max(members, key=lambda s: s.seq)
        local = [s for s in members if s.trace_id == newest.trace_id]
    spans = {s.span_id for s in local}
    outer = [s for s in local if s.parent_span_id not in spans] or local
    # The same content produced by separate steps (a document retrieved twice): the most
    # recent producer is the one whose output reached this input.
    newest_span = max(outer, key=lambda s: s.seq).span_id
    best: Dict[int, Source] = {}
    for s in outer:
        if s.span_id != newest_span:
            continue
        kept = best.get(s.span_id)
        if kept is None or (s.rank if s.rank is not None else 1 << 30) < (
                kept.rank if kept.rank is not None else 1 << 30):
            best[s.span_id] = s
    return list(best.values())


def _own_support(candidate: Source, keyset: frozenset, related: List[Tuple[Source, frozenset]],
                 input_keys: set) -> Optional[float]:
    """Fraction of the candidate's *own* keys (not in related accepted outputs) found in
    the input; None when it has none (its content is a subset of theirs).

    Only keys below every threshold involved are decidable: above a threshold, an output
    sampled its keys away, so "not in it" would be unknown.
    """
    limit = min([candidate.threshold] + [source.threshold for source, _ in related])
    own = [key for key in candidate.keys
           if key < limit and not any(key in other for _, other in related)]
    if not own:
        return None
    return sum(1 for key in own if key in input_keys) / len(own)


def select(
    hits: Dict[Source, int], input_keys: set, min_coverage: float, trace_id: Optional[int],
    wholes: Iterable[int] = (),
) -> Tuple[List[Match], List[str]]:
    """The outputs to link (ordered) and the unused document ids of linked retrievals.

    ``wholes`` are the whole-text keys of the consumer's short inputs (``whole_only``
    outputs match only those).
    """
    candidates: Dict[Source, float] = {}
    whole_set = None
    for source, count in hits.items():
        if source.whole_only:
            whole_set = set(wholes) if whole_set is None else whole_set
            if source.keys[0] not in whole_set:
                continue
        coverage = count / len(source.keys)
        if coverage >= min_coverage:
            candidates[source] = min(coverage, 1.0)
    if not candidates:
        return [], []

    present: set = set()  # content present, not linked (duplicates, subsets)
    # A retrieved document is an origin, never shadowed by a step that passed it on
    # unchanged (a retriever tool returning the chunk, a step producing it): both link,
    # so the document id reaches the reader however many turns later it reads it.
    groups: Dict[Tuple[bool, int, Tuple[int, ...]], List[Source]] = {}
    for source in candidates:
        groups.setdefault((source.kind == "document", source.signature, source.keys), []).append(source)
    chosen: List[Source] = []
    for members in groups.values():
        kept = _choose_in_group(members, trace_id)
        chosen.extend(kept)
        if len(kept) != len(members):
            present.update(s for s in members if s not in kept)

    chosen.sort(key=lambda s: (-candidates[s], len(s.keys), s.seq))
    accepted: List[Source] = []
    by_kind: Dict[str, List[Tuple[Source, frozenset]]] = {}
    for source in chosen:
        same_kind = by_kind.setdefault(source.kind, [])
        keyset = frozenset(source.keys)
        related = [(other, other_keys) for other, other_keys in same_kind if not keyset.isdisjoint(other_keys)]
        if related:
            support = _own_support(source, keyset, related, input_keys)
            if support is None:
                present.add(source)
                continue
            if support < min_coverage:
                continue
        accepted.append(source)
        same_kind.append((source, keyset))

    accepted.sort(key=lambda s: s.seq)
    matches = [Match(s, candidates[s]) for s in accepted]

    unused: List[str] = []
    seen_groups: set = set()
    excluded = {s.seq for s in accepted} | {s.seq for s in present}
    for source in accepted:
        if source.kind != "document" or id(source.group) in seen_groups:
            continue
        seen_groups.add(id(source.group))
        for seq, kind, label in source.group.members:
            if kind == "document" and seq not in excluded and label not in unused:
                unused.append(label)
    return matches, unused


def link_attributes(match: Match) -> dict:
    """Attributes of one causal link (ids, ranks, scores, coverage: never text)."""
    source = match.source
    attributes = {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: LINK_TYPES.get(source.kind, sc.LINK_CAUSED_BY_STEP),
        sc.LINK_SOURCE_KIND: source.kind,
        sc.LINK_COVERAGE: round(match.coverage, 3),
    }
    if source.document_id is not None:
        attributes[sc.LINK_DOCUMENT_ID] = source.document_id
    if source.rank is not None:
        attributes[sc.LINK_RANK] = source.rank
    if source.score is not None:
        attributes[sc.LINK_SCORE] = source.score
    return attributes
