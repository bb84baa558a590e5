"""TraceStore.blame finds the planted cause among several causes and noise;
compare_prompts ranks prompt versions by feedback."""

from __future__ import annotations

import random

import pytest

from instrumentors import _semconv as sc
from instrumentors import record_feedback
from instrumentors.store import TraceStore
from instrumentors.store.blame import _best_cut, fisher_greater


def test_blame_finds_the_planted_cause(planted, store_path):
    assert planted == {"A": 78, "B": 37, "neg": 113}  # the seeded data set (guards the expectations below)
    with TraceStore(store_path) as store:
        report = store.blame()
    assert (report["negative"], report["positive"], report["threshold"]) == (113, 127, 0.5)
    findings = report["findings"]
    top = findings[0]
    # cause A: the stale pricing page, linked into the context assembler, low retrieval scores
    assert (top["kind"], top["document_id"], top["step"], top["produced_by"]) == (
        "document", "kb/pricing-2025", "context assembler", "retrieval kb")
    assert (top["negative_count"], top["positive_count"]) == (76, 2)
    assert top["description"] == ("document 'kb/pricing-2025' linked into 'context assembler' (retrieved by "
                                  "'retrieval kb'): 67% of negative answers vs 2% of positive")
    assert ("retrieval.top_score < 0.6 at step 'retrieval kb' in 67% of negative traces vs 2% of positive"
            in top["same_traces_as"])
    assert ("the top-ranked document retrieved by 'retrieval kb' was stale (indexed long ago) in 67% of negative "
            "traces vs 2% of positive; stale: kb/pricing-2025 (76)" in top["same_traces_as"])
    assert top["p_value"] < 1e-20
    # cause B: truncated generations, found and ranked below A
    truncation = [f for f in findings if f.get("key") == sc.GEN_AI_RESPONSE_FINISH_REASONS]
    assert truncation and all(f["value"] == "length" for f in truncation)
    assert findings.index(truncation[0]) >= 1
    text = " ".join(f["description"] + " ".join(f.get("same_traces_as", [])) for f in findings)
    # noise: the model choice, token counts, the weak template effect and the side "audit"
    # call (linked to nothing, so off the causal path) are never blamed
    assert "audit" not in text
    assert sc.GEN_AI_REQUEST_MODEL not in text
    assert "output_tokens" not in text
    assert "tpl-v2" not in text


def test_blame_threshold_filters_and_empty_sides(planted, store_path):
    with TraceStore(store_path) as store:
        none_negative = store.blame(threshold=0.0)
        assert none_negative["negative"] == 0 and none_negative["findings"] == []
        assert "need traces on both sides" in none_negative["note"]
        only_truncated = store.blame(filters={sc.GEN_AI_RESPONSE_FINISH_REASONS: "length"})
        assert only_truncated["negative"] + only_truncated["positive"] == 37
        assert store.blame(top=1)["findings"][0]["document_id"] == "kb/pricing-2025"


def test_fisher_and_cuts():
    assert fisher_greater(5, 0, 0, 5) == pytest.approx(1 / 252)
    assert fisher_greater(0, 5, 5, 0) == pytest.approx(1.0)
    # the best split of these minima is anywhere in (0.571, 0.623]: the roundest cut wins
    cut, neg, pos = _best_cut([0.41, 0.5, 0.571, 0.7], [0.623, 0.8, 0.9, 0.95], 4, 4, "lt")
    assert (cut, neg, pos) == (0.6, 3, 0)
    cut, neg, pos = _best_cut([900, 1200, 1500], [100, 150, 200, 950], 3, 4, "gt")
    assert (cut, neg, pos) == (200, 3, 1)  # 100% vs 25% beats 67% vs 0%


def test_compare_prompts_ranks_template_versions(rag, store_path):
    rnd = random.Random(3)
    for i in range(60):
        template = "tpl-v2" if i % 2 else "tpl-v1"
        bad = rnd.random() < (0.7 if template == "tpl-v2" else 0.1)
        trace_id = rag.run(template=template, finish="length" if (template == "tpl-v2" and i % 4 == 1) else "stop")
        record_feedback(trace_id, 0.0 if bad else 1.0, tracer_provider=rag.provider, store_path=store_path)
    with TraceStore(store_path) as store:
        rows = store.compare_prompts()
    generator = [r for r in rows if r["step"] == "chat gpt-4o"]
    assert [(r["fingerprint"], r["basis"], r["generations"], r["traces"], r["best_in_step"]) for r in generator] == [
        ("tpl-v1", "template", 30, 30, True), ("tpl-v2", "template", 30, 30, False)]
    v1, v2 = generator
    assert v1["negative"] == 1 and v2["negative"] == 19  # what Random(3) drew
    assert v1["mean_score"] == pytest.approx(29 / 30, abs=1e-4) and v2["mean_score"] == pytest.approx(11 / 30, abs=1e-4)
    assert v2["truncated"] == 15 and v1["truncated"] == 0
    assert v2["p_value_vs_best"] < 1e-4 and v1["p_value_vs_best"] is None
    rewriter = [r for r in rows if r["step"] == "chat gpt-4o-mini"]
    assert [(r["fingerprint"], r["generations"], r["best_in_step"]) for r in rewriter] == [("rewrite-v1", 60, False)]


def test_compare_prompts_falls_back_to_system_instructions(store_provider, store_path):
    tracer = store_provider.get_tracer("p")
    for i in range(6):
        system = "Answer briefly." if i % 2 else "Cite your sources."
        with tracer.start_as_current_span("rag") as root:
            with tracer.start_as_current_span("framework chat", attributes={
                    sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_SYSTEM_INSTRUCTIONS: f'[{{"type":"text","content":"{system}"}}]'}):
                with tracer.start_as_current_span("chat gpt-4o", attributes={
                        sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10}):
                    pass
        record_feedback(root.get_span_context(), 0.0 if i % 2 else 1.0, tracer_provider=store_provider,
                        store_path=store_path)
    with TraceStore(store_path) as store:
        rows = store.compare_prompts()
    assert [(r["step"], r["basis"], r["generations"], r["mean_score"]) for r in rows] == [
        ("framework chat", "system_text", 3, 1.0), ("framework chat", "system_text", 3, 0.0)]
    assert rows[0]["preview"].startswith('[{"type":"text","content":"Cite your sources."')
