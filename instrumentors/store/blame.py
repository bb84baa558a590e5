"""``blame()``: what separates the badly judged answers from the good ones.

Traces with feedback are split at ``threshold`` (a trace's score is its lowest
feedback, as in the trace-level filter). For every trace we collect *features* of the
spans that fed its output -- following causal links when the trace has them, so a side
call that did not contribute is not blamed:

* ``step attribute < t`` / ``> t`` for numeric attributes (``retrieval.top_score``,
  token counts, scores...), the cut ``t`` chosen where it best separates the groups and
  then rounded to the shortest number giving the same split (0.6, not 0.5873);
* ``step attribute = value`` for short strings and booleans (model, finish reason,
  validator verdict, prompt template hash), and ``step status = ERROR``;
* ``document X linked into step S`` (the causal link from the retrieval to the
  generation that used it; to any consuming step when no model span took documents),
  ``document X ranked first by step R``, and ``the top-ranked / a document retrieved by
  R was stale`` (date-like metadata older than ``stale_after_days``);
* in agent traces, by tool and node *name* (wherever in the loop they ran): ``tool T was
  called``, ``tool T returned empty``, ``tool T failed``, ``node N failed``, and ``graph G
  ran up to its recursion limit``.

Each feature's share of negative vs positive traces is compared; findings are ranked by
the difference of the two shares, keeping those seen in at least ``min_support``
negative traces and with a one-sided Fisher exact p < 0.05 after a Bonferroni
correction for the number of features tested. Features that occur in
exactly the same traces as a better-ranked one are folded into it.
"""

from __future__ import annotations

import bisect
import math
from functools import partial
from typing import Iterable, Mapping, Optional

from .. import _semconv as sc
from . import analysis as an
from .analysis import NOT_INDEXED
from .explain import _feeds_output

#: content or identity attributes never used as features.
SKIPPED_KEYS = frozenset({
    sc.INPUT_VALUE, sc.OUTPUT_VALUE, sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES,
    sc.GEN_AI_SYSTEM_INSTRUCTIONS, sc.GEN_AI_RETRIEVAL_QUERY_TEXT, sc.GEN_AI_RETRIEVAL_DOCUMENTS,
    sc.GEN_AI_RESPONSE_ID, sc.PROMPT_TEMPLATE, sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT,
    sc.GEN_AI_TOOL_CALL_ID, sc.CAUSAL_SOURCE_IDS, sc.CAUSAL_UNUSED_IDS, sc.TRUNCATED, sc.SPAN_KIND,
    sc.LIBRARY, sc.GEN_AI_TOOL_DEFINITIONS, sc.RERANK_INPUT_DOCUMENTS, sc.RERANK_OUTPUT_DOCUMENTS,
    sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "input.query",
    sc.GEN_AI_CONVERSATION_ID, sc.TOOL_RESULT_EMPTY,  # identity; a tool feature of its own
}) | NOT_INDEXED
MAX_CATEGORICAL_LENGTH = 80
P_VALUE_LIMIT = 0.05


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p: chance of >= ``a`` negatives among the ``a + c`` traces
    with the feature, given the margins (``a`` neg with, ``b`` neg without, ``c`` pos
    with, ``d`` pos without)."""
    n_neg, n_pos, with_feature = a + b, c + d, a + c
    total = n_neg + n_pos
    denom = _log_comb(total, with_feature)
    p = 0.0
    for x in range(a, min(n_neg, with_feature) + 1):
        if with_feature - x > n_pos:
            continue
        p += math.exp(_log_comb(n_neg, x) + _log_comb(n_pos, with_feature - x) - denom)
    return min(1.0, p)


class _Features:
    """Per trace: set of categorical feature keys, numeric (min, max) per (step, key)."""

    def __init__(self) -> None:
        self.categorical: dict = {}  # feature tuple -> description data
        self.numeric: dict = {}  # (step, key) -> (min, max)
        self.stale_docs: dict = {}  # stale feature -> ids of the stale documents

    def add_cat(self, feature: tuple) -> None:
        self.categorical[feature] = True

    def add_num(self, step: str, key: str, value: float) -> None:
        current = self.numeric.get((step, key))
        if current is None:
            self.numeric[(step, key)] = (value, value)
        else:
            self.numeric[(step, key)] = (min(current[0], value), max(current[1], value))


def trace_features(loaded: Mapping, stale_after_days: Optional[float]) -> _Features:
    """The features of one trace (``loaded``: :meth:`TraceStore.load` or
    :meth:`TraceStore.iter_lean` data, from any backend). Runs once per trace in ``blame()``, so the
    per-attribute work is kept to a type dispatch and a dict update."""
    spans = loaded["spans"]
    meta = loaded["meta"]
    for span in spans:
        span.setdefault("trace_id", meta["trace_id"])
    causal = {s["span_id"]: an.causal_links(s) for s in spans}
    if not any(causal.values()) and an.rebuild_trace_links(spans):
        causal = {s["span_id"]: an.causal_links(s) for s in spans}
    by_id = {s["span_id"]: s for s in spans}
    children = an.children_index(spans)
    root = an.root_of(spans, meta.get("root_span_id"))
    on_path = _feeds_output(root, by_id, children, causal) if root is not None else set(by_id)
    features = _Features()
    categorical = features.categorical
    numeric = features.numeric
    not_feedback = [s for s in spans if not an.is_feedback(s)]
    labels = an.step_labels(not_feedback)
    # documents count as "linked into the answer" where a generation took them in; a
    # pipeline without an instrumented model falls back to every consuming step
    doc_consumers = [s for s in spans if any(l.get("document_id") for l in causal[s["span_id"]])]
    answer_consumers = {s["span_id"] for s in doc_consumers if an.role(s) == sc.KIND_LLM} or {
        s["span_id"] for s in doc_consumers}
    skipped = _skip_cache
    for span in not_feedback:
        span_id = span["span_id"]
        if span_id not in on_path:
            continue
        step = labels[span_id]
        if span["status"] == "ERROR":
            categorical[("attr", step, "status", "ERROR")] = True
        _agent_features(span, categorical)
        for key, value in span["attributes"].items():
            skip = skipped.get(key)
            if skip is None:
                skip = _skip_key(key)
            if skip:
                continue
            kind = type(value)
            if kind is list or kind is tuple:
                items = value[:16]
            elif kind is str or kind is float or kind is int or kind is bool:
                items = (value,)
            else:
                items = value[:16] if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                kind = type(item)
                if kind is float or kind is int:
                    if kind is float and not math.isfinite(item):
                        continue
                    number = float(item)
                    current = numeric.get((step, key))
                    if current is None:
                        numeric[(step, key)] = (number, number)
                    else:  # the same choice as min()/max(): the first of equal values stays
                        low, high = current
                        if number < low or number > high:
                            numeric[(step, key)] = (number if number < low else low, number if number > high else high)
                elif kind is str:
                    if 0 < len(item) <= MAX_CATEGORICAL_LENGTH:
                        categorical[("attr", step, key, item)] = True
                elif kind is bool:
                    categorical[("attr", step, key, "true" if item else "false")] = True
                else:  # not a JSON scalar (subclasses from a hand-made trace): the general rules
                    number = an.number(item)
                    if number is not None:
                        features.add_num(step, key, number)
                    elif isinstance(item, bool):
                        features.add_cat(("attr", step, key, "true" if item else "false"))
                    elif isinstance(item, str) and 0 < len(item) <= MAX_CATEGORICAL_LENGTH:
                        features.add_cat(("attr", step, key, item))
        if span_id in answer_consumers:
            for link in causal[span_id]:
                doc = link.get("document_id")
                if doc:
                    source = by_id.get(link["span_id"])
                    features.add_cat(("linked", str(doc), step, labels.get(source["span_id"]) if source else None))
        if an.role(span) in (sc.KIND_RETRIEVER, sc.KIND_RERANKER):
            for doc in an.documents(span):
                if doc.get("id") and doc.get("rank") == 0:
                    features.add_cat(("retrieved", str(doc["id"]), step))
                if stale_after_days is not None:
                    dated = an.document_date(doc)
                    age = an.age_days(dated[1], meta.get("start_ns")) if dated else None
                    if age is not None and age > stale_after_days:
                        for which in ("any", "top") if doc.get("rank") == 0 else ("any",):
                            features.add_cat(("stale", step, which))
                            features.stale_docs.setdefault(("stale", step, which), set()).add(str(doc.get("id")))
    return features


def _agent_features(span: dict, categorical: dict) -> None:
    """Tools and nodes by name, so a tool that returned nothing counts the same whether it
    ran in the loop's first turn or its fifth."""
    attrs = span["attributes"]
    role = attrs.get(sc.SPAN_KIND)
    if role == sc.KIND_TOOL:
        name = str(attrs.get(sc.GEN_AI_TOOL_NAME) or span["name"])
        categorical[("tool", name, "called")] = True
        if attrs.get(sc.TOOL_RESULT_EMPTY) is True:
            categorical[("tool", name, "empty")] = True
        if span["status"] == "ERROR":
            categorical[("tool", name, "error")] = True
    elif role == sc.KIND_NODE and span["status"] == "ERROR":
        categorical[("node", str(attrs.get(sc.GRAPH_NODE) or span["name"]), "error")] = True
    if sc.GRAPH_STATUS in attrs:
        steps, limit = an.number(attrs.get(sc.GRAPH_STEPS)), an.number(attrs.get(sc.GRAPH_RECURSION_LIMIT))
        if attrs[sc.GRAPH_STATUS] == "out_of_steps" or (
                steps is not None and limit is not None and steps >= limit - 1):
            categorical[("graph", str(attrs.get(sc.GRAPH_NAME) or span["name"]), "recursion_limit")] = True


_AGENT_WORDS = {"called": "was called", "empty": "returned empty", "error": "failed",
                "recursion_limit": "ran up to its recursion limit"}


#: attribute key -> not a feature (filled as keys are met; keys are a small vocabulary,
#: bounded so a store with generated key names cannot grow it without limit)
_skip_cache: dict = {}
_SKIP_CACHE_MAX = 4096


def _skip_key(key: str) -> bool:
    skip = key in SKIPPED_KEYS or key.startswith("feedback.")
    if len(_skip_cache) < _SKIP_CACHE_MAX:
        _skip_cache[key] = skip
    return skip


def _describe(feature: tuple, neg_rate: float, pos_rate: float) -> str:
    share = f"in {neg_rate:.0%} of negative traces vs {pos_rate:.0%} of positive"
    kind = feature[0]
    if kind == "num":
        _, step, key, op, cut = feature
        return f"{key} {'<' if op == 'lt' else '>'} {cut:g} at step {step!r} {share}"
    if kind == "attr":
        _, step, key, value = feature
        return f"{key} = {value} at step {step!r} {share}"
    if kind == "linked":
        _, doc, step, source = feature
        via = f" (retrieved by {source!r})" if source else ""
        return (f"document {doc!r} linked into {step!r}{via}: {neg_rate:.0%} of negative answers "
                f"vs {pos_rate:.0%} of positive")
    if kind == "retrieved":
        _, doc, step = feature
        return f"document {doc!r} ranked first by {step!r} {share}"
    if kind in ("tool", "node", "graph"):
        _, name, what = feature
        return f"{kind} {name!r} {_AGENT_WORDS.get(what, what)} {share}"
    if kind == "stale":
        which = "the top-ranked document" if feature[2] == "top" else "a document"
        return f"{which} retrieved by {feature[1]!r} was stale (indexed long ago) {share}"
    return f"{feature} {share}"


def _finding(feature: tuple, neg_with: set, pos_with: set, n_neg: int, n_pos: int) -> dict:
    a, c = len(neg_with), len(pos_with)
    neg_rate, pos_rate = a / n_neg, c / n_pos
    out = {
        "kind": {"num": "attribute", "attr": "attribute", "linked": "document", "retrieved": "document",
                 "stale": "document", "tool": "tool", "node": "node", "graph": "graph"}[feature[0]],
        "description": _describe(feature, neg_rate, pos_rate),
        "negative_count": a, "negative_rate": round(neg_rate, 4),
        "positive_count": c, "positive_rate": round(pos_rate, 4),
        "difference": round(neg_rate - pos_rate, 4),
        "p_value": fisher_greater(a, n_neg - a, c, n_pos - c),
    }
    if feature[0] == "num":
        out.update(step=feature[1], key=feature[2], op=feature[3], value=feature[4])
    elif feature[0] == "attr":
        out.update(step=feature[1], key=feature[2], op="eq", value=feature[3])
    elif feature[0] == "linked":
        out.update(step=feature[2], document_id=feature[1], produced_by=feature[3], relation="linked")
    elif feature[0] == "retrieved":
        out.update(step=feature[2], document_id=feature[1], relation="retrieved")
    elif feature[0] in ("tool", "node", "graph"):
        out.update(step=feature[1], relation=feature[2], **{feature[0]: feature[1]})
    else:
        out.update(step=feature[1], relation="stale", which=feature[2])
    return out


#: a rounder cut is preferred when it separates at most this much worse (in share).
CUT_TOLERANCE = 0.02


def _decimals(value: float) -> int:
    text = repr(float(value))
    if "e" in text:
        return 12
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def _best_cut(neg_values: list, pos_values: list, n_neg: int, n_pos: int, op: str) -> Optional[tuple]:
    """(cut, neg_with_count, pos_with_count) separating best for "value < cut" (op lt,
    values = per-trace minima) or "value > cut" (gt, maxima). Among cuts within
    :data:`CUT_TOLERANCE` of the best split the roundest wins (0.6 rather than 0.6213).

    Candidate cuts: each midpoint between neighbouring distinct values and each value
    and midpoint rounded to 0-3 decimals; every one is scored (bisect, mapped in C)."""
    neg_sorted, pos_sorted = sorted(neg_values), sorted(pos_values)
    distinct = sorted(set(neg_sorted) | set(pos_sorted))
    if len(distinct) < 2:
        return None
    mids = [(lo + hi) / 2 for lo, hi in zip(distinct, distinct[1:])]
    candidates = set(mids)
    for digits in range(0, 4):
        candidates.update([round(v, digits) for v in distinct])
        candidates.update([round(m, digits) for m in mids])
    if 0.0 in candidates:  # 0.0 == -0.0: keep the sign the pairwise order met first ("-0" prints)
        candidates.discard(0.0)
        candidates.add(_first_zero(distinct, mids))
    cuts = list(candidates)
    if op == "lt":
        neg_counts = list(map(partial(bisect.bisect_left, neg_sorted), cuts))
        pos_counts = list(map(partial(bisect.bisect_left, pos_sorted), cuts))
    else:
        n_neg_values, n_pos_values = len(neg_sorted), len(pos_sorted)
        neg_counts = [n_neg_values - i for i in map(partial(bisect.bisect_right, neg_sorted), cuts)]
        pos_counts = [n_pos_values - i for i in map(partial(bisect.bisect_right, pos_sorted), cuts)]
    scored = [(a / n_neg - c / n_pos, cut, a, c) for cut, a, c in zip(cuts, neg_counts, pos_counts) if a]
    if not scored:
        return None
    best = max(d for d, _, _, _ in scored)
    near = [s for s in scored if s[0] >= best - CUT_TOLERANCE]
    diff, cut, a, c = min(near, key=lambda s: (_decimals(s[1]), -s[0], s[1]))
    return cut, a, c


def _first_zero(distinct: list, mids: list) -> float:
    """The first zero (0.0 or -0.0) in the order cuts were once generated pair by pair."""
    for lo, hi, mid in zip(distinct, distinct[1:], mids):
        for value in (mid, *(v for digits in range(0, 4) for v in (round(lo, digits), round(hi, digits),
                                                                       round(mid, digits)))):
            if value == 0.0:
                return value
    return 0.0


def blame(scored: Iterable[tuple], *, threshold: float = 0.5, feedback_key: Optional[str] = None,
          top: int = 10, min_support: int = 3, stale_after_days: Optional[float] = 180.0) -> dict:
    """Rank features that separate negative (score < ``threshold``) from positive traces.

    ``scored``: ``(loaded trace, score)`` pairs (a trace's score is its lowest feedback of
    ``feedback_key``); :meth:`TraceStore.blame` selects and loads them (filters,
    ``max_traces``), so this never knows which engine they came from. Returns
    ``{"negative": n, "positive": n, "threshold": t, "findings": [...], "note": ...}``;
    each finding has ``description``, ``step``, ``negative_rate``/``positive_rate`` (and
    counts), ``difference`` and ``p_value``.
    """
    report: dict = {"threshold": threshold, "feedback_key": feedback_key, "negative": 0, "positive": 0,
                    "findings": [], "note": None}
    per_trace: dict = {}
    negatives, positives = set(), set()
    for loaded, score in scored:
        ref = loaded["meta"]["trace_id"]
        per_trace[ref] = (ref, trace_features(loaded, stale_after_days))
        (negatives if score < threshold else positives).add(ref)
    n_neg, n_pos = len(negatives), len(positives)
    report["negative"], report["positive"] = n_neg, n_pos
    if not n_neg or not n_pos:
        report["note"] = ("need traces on both sides of the threshold: "
                          f"{n_neg} negative, {n_pos} positive with feedback")
        return report

    categorical: dict = {}
    numeric: dict = {}
    for ref, (_, feats) in per_trace.items():
        for feature in feats.categorical:
            categorical.setdefault(feature, set()).add(ref)
        for step_key, (low, high) in feats.numeric.items():
            numeric.setdefault(step_key, []).append((ref, low, high))

    candidates = []
    for feature, traces in categorical.items():
        neg_with = traces & negatives
        if len(neg_with) < min_support:
            continue
        candidates.append((feature, neg_with, traces & positives))
    for (step, key), values in numeric.items():
        neg_items, pos_items = [], []
        for item in values:  # every ref of per_trace is on one side
            (neg_items if item[0] in negatives else pos_items).append(item)
        if len(neg_items) < min_support:
            continue
        for op, at in (("lt", 1), ("gt", 2)):
            neg_v = [item[at] for item in neg_items]
            pos_v = [item[at] for item in pos_items]
            best = _best_cut(neg_v, pos_v, n_neg, n_pos, op)
            if best is None:
                continue
            cut = best[0]
            if op == "lt":
                neg_with = {ref for ref, low, _ in neg_items if low < cut}
                pos_with = {ref for ref, low, _ in pos_items if low < cut}
            else:
                neg_with = {ref for ref, _, high in neg_items if high > cut}
                pos_with = {ref for ref, _, high in pos_items if high > cut}
            if len(neg_with) >= min_support:
                candidates.append((("num", step, key, op, cut), neg_with, pos_with))

    findings = []
    tested = max(1, len(candidates))
    for feature, neg_with, pos_with in candidates:
        finding = _finding(feature, neg_with, pos_with, n_neg, n_pos)
        # Bonferroni over every feature tested: with hundreds of attributes and a
        # searched cut, something always looks "significant" at 0.05 by chance.
        finding["p_adjusted"] = min(1.0, finding["p_value"] * tested)
        if finding["difference"] <= 0 or finding["p_adjusted"] >= P_VALUE_LIMIT:
            continue
        finding["_sets"] = (frozenset(neg_with), frozenset(pos_with))
        if feature[0] == "stale":  # which documents: the thing to re-index
            counts: dict = {}
            for ref in neg_with:
                for doc in per_trace[ref][1].stale_docs.get(feature, ()):
                    counts[doc] = counts.get(doc, 0) + 1
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            finding["documents"] = [doc for doc, _ in ranked]
            finding["description"] += "; stale: " + ", ".join(f"{doc} ({n})" for doc, n in ranked[:5])
        finding["example_traces"] = sorted(per_trace[r][0] for r in neg_with)[:3]
        findings.append(finding)
    findings.sort(key=lambda f: (-f["difference"], f["p_value"], -f["negative_count"], _kind_rank(f), f["description"]))
    kept: list = []
    seen_sets: dict = {}
    for finding in findings:
        sets = finding.pop("_sets")
        if sets in seen_sets:
            seen_sets[sets].setdefault("same_traces_as", []).append(finding["description"])
            continue
        seen_sets[sets] = finding
        kept.append(finding)
    report["findings"] = kept[:top] if top else kept
    if not kept:
        report["note"] = "no step attribute or document separates negative from positive traces (p < 0.05)"
    return report


def _kind_rank(finding: dict) -> int:
    """On a tie (the same traces), prefer what a person acts on: the document used,
    its staleness, the document retrieved, then a step attribute."""
    if finding.get("kind") in ("tool", "node", "graph"):  # a named tool's outcome before a raw attribute
        return 2 if finding.get("relation") != "called" else 3
    return {"linked": 0, "stale": 1, "retrieved": 2}.get(finding.get("relation"), 3)
