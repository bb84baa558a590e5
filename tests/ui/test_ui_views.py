"""The trace page's causal graph and waterfall, computed from plain trace dicts."""

from __future__ import annotations

import json

from instrumentors import _semconv as sc
from instrumentors.ui.views import causal_graph, json_safe, waterfall


def _span(span_id, name, start, end, parent="root", kind=None, links=(), **attrs):
    attributes = dict(attrs)
    if kind:
        attributes[sc.SPAN_KIND] = kind
    return {"span_id": span_id, "parent_span_id": parent if span_id != "root" else None, "name": name,
            "start_ns": start, "end_ns": end, "duration_ms": (end - start) / 1e6, "status": "UNSET",
            "attributes": attributes, "links": list(links), "children": []}


def _link(span_id, link_type, document_id=None, source_kind=None):
    return {"trace_id": "t" * 32, "span_id": span_id, "link_type": link_type, "document_id": document_id,
            "source_kind": source_kind or ("document" if document_id else "generation"), "score": None,
            "coverage": 1.0, "attributes": {}}


def _trace(spans):
    root = spans[0]
    root["children"] = spans[1:]
    return {"trace_id": "t" * 32, "root_span_id": "root", "roots": [root], "feedback": [{"score": 0.0, "reason": "old"}]}


def _rag():
    docs = [{"id": "kb/a", "score": 0.55, "metadata": {"indexed_at": "2026-01-01"}},
            {"id": "kb/b", "score": 0.5, "metadata": {}}, {"id": "kb/c", "score": 0.4, "metadata": {}}]
    return _trace([
        _span("root", "rag", 0, 100_000_000),
        _span("ret", "retrieval kb", 10_000_000, 20_000_000, kind=sc.KIND_RETRIEVER,
              **{sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(docs), sc.RETRIEVAL_TOP_SCORE: 0.55}),
        _span("asm", "context assembler", 20_000_000, 21_000_000, kind=sc.KIND_STEP,
              links=[_link("ret", sc.LINK_INFORMED_BY, "kb/a"), _link("ret", sc.LINK_INFORMED_BY, "kb/b")]),
        _span("gen", "chat gpt-4o", 21_000_000, 90_000_000, kind=sc.KIND_LLM,
              links=[_link("asm", sc.LINK_CAUSED_BY_STEP, source_kind="step")],
              **{sc.CAUSAL_UNUSED_IDS: ["kb/b"]}),
        _span("log", "audit log", 95_000_000, 96_000_000),
    ])


def test_documents_flow_through_the_steps_to_the_answer():
    explanation = {"anomalies": [
        {"severity": "warning", "span_id": "ret", "message": "top retrieval score 0.55 < 0.6"},
        {"severity": "warning", "span_id": "ret", "message": "stale documents: kb/a", "documents": ["kb/a"]},
        {"severity": "info", "span_id": "gen", "message": "retrieved but unused: kb/b", "documents": ["kb/b"]}],
        "likely_cause": {"span_id": "ret"}}
    graph = causal_graph(_rag(), explanation)
    nodes = {n["id"]: n for n in graph["nodes"]}
    col = {k: n["column"] for k, n in nodes.items()}
    assert col["s:ret"] < col["d:ret:kb/a"] < col["s:asm"] < col["s:gen"] < col["answer"]
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert edges[("s:ret", "d:ret:kb/a")]["type"] == "retrieved"
    assert edges[("d:ret:kb/a", "s:asm")]["label"] == "informed by"
    assert edges[("s:asm", "s:gen")]["type"] == sc.LINK_CAUSED_BY_STEP
    assert edges[("s:gen", "answer")]["type"] == "output"  # the last step in the graph, not the audit log
    assert "s:log" not in nodes  # a span with no causal part is in the waterfall only
    # kb/c was retrieved and taken in by nobody; kb/b was used by the assembler but not by the generator
    assert nodes["d:ret:kb/c"]["unused"] and not nodes["d:ret:kb/a"]["unused"]
    assert nodes["d:ret:kb/b"]["unused_by"] == ["chat gpt-4o"] and not nodes["d:ret:kb/b"]["unused"]
    assert nodes["s:ret"]["likely_cause"] and not nodes["s:gen"]["likely_cause"]
    assert nodes["d:ret:kb/a"]["flagged"] == ["stale documents: kb/a"] and nodes["d:ret:kb/a"]["date"] == "2026-01-01"
    assert nodes["d:ret:kb/b"]["flagged"] == []  # info is not a flag
    assert nodes["answer"]["feedback"] == [{"score": 0.0, "reason": "old"}]


def test_a_trace_without_causal_links_has_no_graph_but_its_waterfall():
    trace = _trace([_span("root", "job", 0, 10_000_000), _span("a", "step a", 1_000_000, 4_000_000)])
    graph = causal_graph(trace, {"anomalies": []})
    assert graph["nodes"] == [] and graph["has_links"] is False
    rows = waterfall(trace)
    assert [(r["name"], r["depth"], r["offset_ms"]) for r in rows] == [("job", 0, 0.0), ("step a", 1, 1.0)]


def test_a_link_cycle_does_not_hang_the_layout():
    trace = _trace([_span("root", "r", 0, 10),
                    _span("a", "a", 1, 2, links=[_link("b", sc.LINK_CAUSED_BY_STEP)]),
                    _span("b", "b", 3, 4, links=[_link("a", sc.LINK_CAUSED_BY_STEP)])])
    graph = causal_graph(trace)
    assert {n["id"] for n in graph["nodes"]} == {"s:a", "s:b", "answer"}


def test_a_long_causal_chain_is_laid_out_without_recursion():
    spans = [_span("root", "r", 0, 10**9)]
    for i in range(3000):
        links = [_link(f"s{i - 1}", sc.LINK_CAUSED_BY_STEP)] if i else []
        spans.append(_span(f"s{i}", f"step {i}", i + 1, i + 2, links=links))
    graph = causal_graph(_trace(spans))
    assert max(n["column"] for n in graph["nodes"]) == 3000


def test_json_safe_drops_non_finite_numbers():
    assert json_safe({"a": float("nan"), "b": [float("inf"), 1.5], "c": (1, "x")}) == {"a": None, "b": [None, 1.5],
                                                                                      "c": [1, "x"]}
