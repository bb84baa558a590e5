"""``compare_prompts()``: which prompt version gets better feedback (the seed's question).

Every generation (an LLM span) is grouped by the fingerprint of the prompt it used:

1. ``instrumentors.prompt.template_hash`` (the LangChain instrumentor writes it on prompt
   template spans and, where it knows it, on the model span), on the generation span itself,
   on a span causally linked into it, or on the nearest earlier prompt-template sibling;
2. ``instrumentors.prompt.system_hash`` (same places);
3. a hash of ``gen_ai.system_instructions`` or of the system messages in
   ``gen_ai.input.messages`` when content capture was on.

Generations without any of these fall in a ``(no fingerprint)`` group. Groups are per
step (a query rewriter and an answer generator are compared separately). For each group:
generations, traces with feedback, mean score, share of negative traces (score below
``threshold``), tokens, truncations, errors, and a one-sided Fisher p-value against the
best group of the same step ("is this version really worse?").
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Mapping, Optional

from .. import _semconv as sc
from . import analysis as an
from .blame import fisher_greater


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _system_text(attrs: Mapping) -> Optional[str]:
    raw = attrs.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS)
    if isinstance(raw, str) and raw:
        return raw
    messages = attrs.get(sc.GEN_AI_INPUT_MESSAGES)
    if isinstance(messages, str):
        try:
            parsed = json.loads(messages)
        except ValueError:
            return None
        if isinstance(parsed, list):
            parts = [json.dumps(m.get("parts", m.get("content")), sort_keys=True, ensure_ascii=False)
                     for m in parsed if isinstance(m, Mapping) and m.get("role") in ("system", "developer")]
            if parts:
                return "\n".join(parts)
    return None


def own_fingerprint(span: Mapping) -> Optional[tuple]:
    """(basis, fingerprint, template preview) from the span's own attributes."""
    attrs = span["attributes"]
    preview = attrs.get(sc.PROMPT_TEMPLATE) if isinstance(attrs.get(sc.PROMPT_TEMPLATE), str) else None
    if isinstance(attrs.get(sc.PROMPT_TEMPLATE_HASH), str):
        return "template", attrs[sc.PROMPT_TEMPLATE_HASH], preview
    if isinstance(attrs.get(sc.SYSTEM_PROMPT_HASH), str):
        return "system", attrs[sc.SYSTEM_PROMPT_HASH], preview
    text = _system_text(attrs)
    if text:
        return "system_text", _digest(text), an.short(text, 60)
    return None


def generation_fingerprint(span: Mapping, by_id: Mapping, children: Mapping) -> Optional[tuple]:
    found = own_fingerprint(span)
    if found:
        return found
    for link in an.causal_links(span):
        source = by_id.get(link["span_id"])
        if source is not None and (found := own_fingerprint(source)):
            return found
    siblings = [s for s in children.get(span.get("parent_span_id"), ())
                if s is not span and s["end_ns"] <= span["start_ns"] and an.role(s) == sc.KIND_PROMPT]
    for sibling in sorted(siblings, key=lambda s: s["end_ns"], reverse=True):
        if found := own_fingerprint(sibling):
            return found
    # a nested client span (OpenAI under a LangChain model span): the framework span's
    parent = by_id.get(span.get("parent_span_id"))
    if parent is not None and an.role(parent) == sc.KIND_LLM:
        return generation_fingerprint(parent, by_id, children)
    return None


def compare_prompts(scored: Iterable[tuple], *, threshold: float = 0.5) -> list:
    """One row per (step, prompt fingerprint); see the module docstring. ``scored``:
    ``(loaded trace, score)`` pairs, selected and loaded by :meth:`TraceStore.compare_prompts`."""
    groups: dict = {}
    for loaded, score in scored:
        ref = loaded["meta"]["trace_id"]
        spans = loaded["spans"]
        by_id = {s["span_id"]: s for s in spans}
        children = an.children_index(spans)
        labels = an.step_labels([s for s in spans if not an.is_feedback(s)])
        for span in spans:
            if an.role(span) != sc.KIND_LLM:
                continue
            parent = by_id.get(span.get("parent_span_id"))
            if parent is not None and an.role(parent) == sc.KIND_LLM:
                continue  # the nested client call of a framework model span: counted once
            found = generation_fingerprint(span, by_id, children)
            basis, fingerprint, preview = found if found else ("none", "(no fingerprint)", None)
            key = (labels[span["span_id"]], fingerprint)
            group = groups.setdefault(key, {
                "step": key[0], "fingerprint": fingerprint, "basis": basis, "preview": preview,
                "generations": 0, "traces": set(), "scores": {}, "input_tokens": [], "output_tokens": [],
                "truncated": 0, "errors": 0, "models": set(),
            })
            group["generations"] += 1
            group["traces"].add(ref)
            group["scores"][ref] = score
            tin, tout = an.tokens(span)
            if tin is not None:
                group["input_tokens"].append(tin)
            if tout is not None:
                group["output_tokens"].append(tout)
            if any(r in an.TRUNCATED_FINISH for r in an.finish_reasons(span)):
                group["truncated"] += 1
            if span["status"] == "ERROR":
                group["errors"] += 1
            model = span["attributes"].get(sc.GEN_AI_REQUEST_MODEL)
            if isinstance(model, str):
                group["models"].add(model)
            if preview and not group["preview"]:
                group["preview"] = preview
    rows = []
    for group in groups.values():
        scores = list(group["scores"].values())
        negative = sum(1 for s in scores if s < threshold)
        rows.append({
            "step": group["step"], "fingerprint": group["fingerprint"], "basis": group["basis"],
            "preview": group["preview"], "models": sorted(group["models"]),
            "generations": group["generations"], "traces": len(group["traces"]),
            "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
            "negative": negative, "negative_rate": round(negative / len(scores), 4) if scores else None,
            "mean_input_tokens": _mean(group["input_tokens"]), "mean_output_tokens": _mean(group["output_tokens"]),
            "truncated": group["truncated"], "errors": group["errors"],
            "score_distribution": _distribution(scores),
        })
    by_step: dict = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row)
    out = []
    for step in sorted(by_step):
        step_rows = sorted(by_step[step], key=lambda r: (-(r["mean_score"] or 0), r["negative_rate"] or 0,
                                                         r["fingerprint"]))
        best = step_rows[0]
        for row in step_rows:
            if row is best or len(step_rows) == 1:
                row["p_value_vs_best"] = None
            else:
                a, b = row["negative"], row["traces"] - row["negative"]
                c, d = best["negative"], best["traces"] - best["negative"]
                row["p_value_vs_best"] = round(fisher_greater(a, b, c, d), 6)
            row["best_in_step"] = row is best and len(step_rows) > 1
            out.append(row)
    return out


def _mean(values: list) -> Optional[float]:
    return round(sum(values) / len(values), 1) if values else None


def _distribution(scores: list) -> list:
    """[[score, traces], ...] by score: what a version's feedback looks like (a plot)."""
    counts: dict = {}
    for score in scores:
        counts[score] = counts.get(score, 0) + 1
    return [[score, counts[score]] for score in sorted(counts)]
