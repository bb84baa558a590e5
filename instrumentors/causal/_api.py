"""The two calls every instrumentor makes: :func:`produce` and :func:`consume`.

Both read the settings at call time, return at once when ``causal_links`` is off (no
fingerprinting, no registry access), and never raise: an internal error is reported once
(rate-limited) and the traced call proceeds without links.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span

from .. import _config, _digest_key
from .. import _semconv as sc
from .._spans import report_internal_error
from . import digests, fingerprint, linking
from .registry import PROCESS_SCOPE, REGISTRY, Group, Source

#: outputs fingerprinted per ``produce`` call at most (a retriever returning thousands).
MAX_OUTPUTS_PER_CALL = 1000
KINDS = ("document", "generation", "tool_call", "tool_result", "step")
#: kinds whose outputs are written by a model from its input: what they copied from
#: their own input is not theirs (see ``_Pending``).
INHERITING_KINDS = ("generation", "tool_call")


class _Pending:
    """Input keys of recent consumers, until the same span produces (bounded, in-process).

    Why: a model's output often repeats its input (a query rewriter keeps most of the
    user's question). If those copied shingles counted as the model's own, every later
    step that reads the *question* would link to the rewriter. So ``consume`` keeps its
    input keys under a token written in the span's ``consumed`` header, and ``produce``
    registers a generation with only the keys it did not copy (all of them if it copied
    everything, e.g. an extractive answer). Hashes only; bounded by entries and keys.
    """

    MAX_ENTRIES = 1024
    MAX_KEYS = 131_072  # a few MB at most, even if many consumers never produce

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: "OrderedDict[str, tuple]" = OrderedDict()
        # the ``consumed`` header each kept item was written under -> its token, so that
        # ``produce`` finds the token without parsing the header (at most one per item)
        self._headers: dict = {}
        self._keys = 0
        self._ids = itertools.count(1)

    def new_token(self) -> str:
        return format(next(self._ids), "x")

    def put(self, keys: set, small: set, token: Optional[str] = None, header: Optional[str] = None) -> str:
        """Keep a consumer's keys (not copied: the sets are never changed afterwards).

        ``header``: the ``consumed`` header that carries ``token`` (see :meth:`take_consumed`).
        """
        if token is None:
            token = self.new_token()
        size = len(keys) + len(small)
        with self._lock:
            self._items[token] = (keys, small, size, header)
            if header is not None:
                self._headers[header] = token
            self._keys += size
            while self._items and (len(self._items) > self.MAX_ENTRIES or self._keys > self.MAX_KEYS):
                _, dropped = self._items.popitem(last=False)
                self._keys -= dropped[2]
                if dropped[3] is not None:
                    self._headers.pop(dropped[3], None)
        return token

    def take(self, token: Optional[str]) -> Optional[Tuple[set, set]]:
        """(input keys, short n-gram keys) a span consumed, once; None if unknown."""
        if token is None:
            return None
        with self._lock:
            item = self._items.pop(token, None)
            if item is None:
                return None
            self._keys -= item[2]
            if item[3] is not None:
                self._headers.pop(item[3], None)
        return item[0], item[1]

    def take_consumed(self, value: object) -> Optional[Tuple[set, set]]:
        """:meth:`take` for the token in a span's ``consumed`` attribute value.

        The header we wrote is found in a dict (no parsing); any other value is parsed
        as :func:`.digests.consumption_token` does (a header without ``c=`` has no token).
        """
        if not value or isinstance(value, str):
            return None
        head = value[0]
        token = self._headers.get(head) if type(head) is str else None
        if token is None:
            if "c=" not in str(head):
                return None
            token = digests.consumption_token(value)
        return self.take(token)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._headers.clear()
            self._keys = 0


PENDING = _Pending()


@dataclass(frozen=True)
class Produced:
    """One output of a step, as the registry needs to know it (text is hashed, never kept)."""

    text: str
    kind: str = "document"  # document | generation | tool_call | tool_result | step
    document_id: Optional[str] = None
    rank: Optional[int] = None
    score: Optional[float] = None


@dataclass
class Consumption:
    """What :func:`consume` found: links to set at span start and summary attributes."""

    links: list = field(default_factory=list)  # list[opentelemetry.trace.Link]
    attributes: dict = field(default_factory=dict)
    #: the matches behind ``links`` (source, coverage), for steps and tests.
    matches: list = field(default_factory=list)
    #: ``consume(..., hand_over=True)``: (input keys, short n-gram keys) for the same
    #: span's ``produce(..., consumption=this)``, which would otherwise find them in
    #: ``PENDING`` under the header's token; None when the inputs had no keys.
    inherited: Optional[Tuple[set, set]] = None


def _clean_score(score: object) -> Optional[float]:
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    value = float(score)
    return value if math.isfinite(value) else None


def _clean_rank(rank: object) -> Optional[int]:
    if isinstance(rank, bool) or not isinstance(rank, int):
        return None
    return rank


def _merge(span: Span, name: str, header: str, entries: List[str], limit: int, attributes: object = None,
           into: Optional[dict] = None) -> None:
    """Append ``entries`` to the span's digest ``name`` (a second ``produce`` on one span).

    ``attributes``: the span's attributes when the caller already has them. ``into``: a
    dict of attributes the caller sets on the span right after (one ``set_attributes``
    instead of a second attribute write); the value goes there instead of on the span.
    """
    existing = None
    if attributes is None:
        attributes = getattr(span, "attributes", None)
    if attributes is not None:
        existing = attributes.get(name)
    if existing and str(existing[0]) == header:
        entries = list(existing[1:]) + entries
    value = (header, *entries[:limit])
    if into is not None:
        into[name] = value
    else:
        span.set_attribute(name, value)


def produce(span: Span, outputs: Sequence[Produced], *, linkable: bool = True,
            attributes: Optional[dict] = None, consumption: Optional[Consumption] = None) -> None:
    """Register fingerprints of a step's outputs together with ``span``'s context.

    Call it before ending the span. Also writes the span's ``produced`` digests.

    ``linkable=False``: no span can join ``span``'s trace any more (the root span of a
    client call that has returned: its context was never current outside the call).
    With trace-scoped matching no consumer can then ever find these outputs, so only
    the digests are written (for ``rebuild_links`` across processes) and the registry
    is spared entries that could only crowd out others.

    ``attributes``: a dict the caller sets on ``span`` (``set_attributes``) right after
    this call, before anything else writes the span: the ``produced`` digest is added to
    it rather than written separately (the SDK locks and validates per write).

    ``consumption``: what ``consume(..., hand_over=True)`` returned for this span (its
    ``consumed`` digest is on the span): the input keys come from it, not from ``PENDING``.
    """
    cfg = _config.get_config()
    if not cfg.causal_links or not outputs:
        return
    try:
        _produce(span, outputs, cfg, linkable or cfg.causal_scope != "trace", attributes, consumption)
    except Exception as exc:  # noqa: BLE001 - never break the host app
        report_internal_error("causal.produce", exc)


def _produce(span: Span, outputs: Sequence[Produced], cfg: _config.Config, register: bool = True,
             into: Optional[dict] = None, consumption: Optional[Consumption] = None) -> None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return
    k = cfg.causal_shingle_words
    entries: List[str] = []
    attributes = getattr(span, "attributes", None)
    if consumption is not None:
        inherited = consumption.inherited
    else:
        inherited = PENDING.take_consumed(
            attributes.get(sc.CAUSAL_CONSUMED_DIGESTS) if attributes is not None else None)
    if register:
        parent = getattr(span, "parent", None)
        parent_span_id = parent.span_id if parent is not None else None
        group = Group()
    if type(outputs) is not list or len(outputs) > MAX_OUTPUTS_PER_CALL:
        outputs = list(outputs)[:MAX_OUTPUTS_PER_CALL]
    for output in outputs:
        text = getattr(output, "text", None)
        if not isinstance(text, str) or not text:
            continue
        fp = fingerprint.fingerprint(text, k)
        if fp is None:
            continue
        kind = output.kind if output.kind in KINDS else "step"
        document_id = None if output.document_id is None else str(output.document_id)
        rank = output.rank
        if rank is not None:
            rank = _clean_rank(rank)
        score = output.score
        if score is not None:
            score = _clean_score(score)
        own = fp.keys
        whole_only = False
        if inherited is not None and kind in INHERITING_KINDS:
            input_keys, small_keys = inherited
            if fp.short:
                whole_only = not (own.isdisjoint(input_keys) and own.isdisjoint(small_keys))
            else:
                own = (own - input_keys) or own
        keys, threshold = fingerprint.sample(own)
        if register:
            group.sources.append(Source(ctx, parent_span_id, kind, document_id, rank, score, keys, threshold,
                                        fp.words, fp.short, group, whole_only))
        # the sample holds the smallest keys in ascending order: the digest's sketch
        entries.append(digests.produced_entry(kind, rank, score, fp.words, keys, document_id))
    if not entries:
        return
    if register:
        sources = group.sources
        for source in sources:
            source.seq = REGISTRY.next_seq()
        group.seal(linking.source_label)  # complete before any consumer can see the sources
        scope = ctx.trace_id if cfg.causal_scope == "trace" else PROCESS_SCOPE
        REGISTRY.register(scope, sources, max_entries=cfg.causal_max_entries,
                          max_age=cfg.causal_max_age_seconds)
    if span.is_recording():
        _merge(span, sc.CAUSAL_PRODUCED_DIGESTS, digests.header(k, kid=_digest_key.key_id()), entries,
               cfg.max_documents, attributes, into)


def consume(inputs: Sequence[str], parent: Optional[otel_context.Context] = None, *,
            hand_over: bool = False) -> Optional[Consumption]:
    """Look the input texts up; ``parent`` is the context the consumer span will start in.

    Returns the links to pass to ``start_span`` and the attributes to set on the span
    (source count and ids, unused document ids, ``consumed`` digests), or None when
    causal links are off (or on an internal error).

    ``hand_over=True``: the caller passes the result to ``produce(..., consumption=...)``
    for the span it starts with these attributes (the OpenAI wrapper does): the input
    keys travel in ``Consumption.inherited`` instead of ``PENDING`` (no lock, no bounded
    queue entry left behind by a call that fails before it produces).
    """
    cfg = _config.get_config()
    if not cfg.causal_links:
        return None
    try:
        return _consume(inputs, parent, cfg, hand_over)
    except Exception as exc:  # noqa: BLE001 - never break the host app
        report_internal_error("causal.consume", exc)
        return None


def _consume(inputs: Sequence[str], parent: Optional[otel_context.Context], cfg: _config.Config,
             hand_over: bool = False) -> Consumption:
    if isinstance(inputs, str):
        inputs = [inputs]
    texts = [text for text in (inputs or ()) if isinstance(text, str) and text]
    k = cfg.causal_shingle_words
    found = fingerprint.input_keys(texts, k, REGISTRY.short_lengths())
    token = PENDING.new_token() if found.all or found.small else None
    consumed = digests.consumed_digest(k, found.shingles, found.wholes, token, _digest_key.key_id())
    attributes = {
        sc.CAUSAL_CONSUMED_DIGESTS: consumed,
        sc.CAUSAL_SOURCE_COUNT: 0,
    }
    result = Consumption(attributes=attributes)
    if token is not None:
        if hand_over:
            result.inherited = (found.all, found.small)
        else:
            PENDING.put(found.all, found.small, token, consumed[0])
    span_context = trace.get_current_span(parent).get_span_context()
    trace_id = span_context.trace_id if span_context.is_valid else None
    if cfg.causal_scope == "trace":
        if trace_id is None:  # the consumer starts a new trace: nothing can be in it yet
            return result
        scope = trace_id
    else:
        scope = PROCESS_SCOPE
    if not found.all:
        return result
    hits = REGISTRY.lookup(scope, found.all, max_age=cfg.causal_max_age_seconds, now=time.monotonic())
    if not hits:
        return result
    matches, unused = linking.select(hits, found.all, cfg.causal_min_coverage, trace_id, found.wholes)
    if not matches:
        return result
    result.matches = matches
    result.links = [Link(m.source.ctx, linking.link_attributes(m)) for m in matches[: linking.MAX_LINKS]]
    labels: List[str] = []
    for match in matches:
        label = linking.source_label(match.source)
        if label not in labels:
            labels.append(label)
    attributes[sc.CAUSAL_SOURCE_COUNT] = len(matches)
    attributes[sc.CAUSAL_SOURCE_IDS] = tuple(labels[: cfg.max_documents])
    if any(m.source.kind == "document" for m in matches):
        attributes[sc.CAUSAL_UNUSED_IDS] = tuple(unused[: cfg.max_documents])
    return result
