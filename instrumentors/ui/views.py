"""What the web UI's pages draw, computed from the store's plain dicts (no HTTP here).

``causal_graph`` turns one trace (``TraceStore.trace``) and its explanation into the
documents -> steps -> answer graph the trace page draws: nodes in columns (a node's
column is the longest causal path that reaches it), edges labelled by link type, the
documents a retrieval returned that no step took in marked unused, and the spans and
documents ``explain`` flagged marked with their anomalies. ``waterfall`` flattens the
span tree into rows with offsets from the trace start. The browser only positions what
these return, so what the page shows is tested here without a browser.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from .. import _semconv as sc
from ..store import analysis as an
from ..store import render

#: link types, as the legend names them
LINK_LABELS = {
    sc.LINK_INFORMED_BY: "informed by",
    sc.LINK_CAUSED_BY_GENERATION: "generated",
    sc.LINK_CAUSED_BY_TOOL: "tool result",
    sc.LINK_CAUSED_BY_STEP: "step output",
    "retrieved": "retrieved",
    "output": "answer",
}
MAX_DOCUMENTS_PER_RETRIEVAL = 20


def flat_spans(trace: Mapping) -> list:
    """(span, depth) in tree order (parents before children, children by start)."""
    out = []
    stack = [(root, 0) for root in reversed(trace.get("roots", []))]
    while stack:
        span, depth = stack.pop()
        out.append((span, depth))
        stack.extend((child, depth + 1) for child in reversed(span.get("children", [])))
    return out


def waterfall(trace: Mapping) -> list:
    """One row per span: offset and duration in ms from the trace start, depth, role,
    a one-line summary; the browser draws the bars."""
    rows = flat_spans(trace)
    starts = [s["start_ns"] for s, _ in rows if not an.is_feedback(s)]
    t0 = min(starts) if starts else 0
    out = []
    for span, depth in rows:
        out.append({
            "span_id": span["span_id"], "parent_span_id": span.get("parent_span_id"), "name": span["name"],
            "depth": depth, "role": an.role(span), "status": span.get("status"),
            "offset_ms": round((span["start_ns"] - t0) / 1e6, 3), "duration_ms": span.get("duration_ms"),
            "facts": render.span_facts(span), "links": len(an.causal_links(span)),
        })
    return out


def _flags(explanation: Optional[Mapping]) -> tuple:
    """(span id -> [anomaly], document id -> [anomaly]) of warnings and errors."""
    spans: dict = {}
    docs: dict = {}
    for anomaly in (explanation or {}).get("anomalies", []):
        if anomaly.get("severity") not in ("error", "warning"):
            continue
        if anomaly.get("span_id"):
            spans.setdefault(anomaly["span_id"], []).append(anomaly)
        for doc in anomaly.get("documents") or ():
            docs.setdefault(str(doc), []).append(anomaly)
    return spans, docs


def _doc_label(doc: Mapping) -> str:
    bits = [str(doc.get("id") or "(no id)")]
    if doc.get("score") is not None:
        bits.append(render.num(doc["score"]))
    return " · ".join(bits)


def causal_graph(trace: Mapping, explanation: Optional[Mapping] = None) -> dict:
    """``{"nodes": [...], "edges": [...], "columns": n, "has_links": bool}``.

    Nodes: ``{"id", "kind": "step"|"document"|"answer", "label", "role", "span_id",
    "column", "flagged": [messages], "likely_cause": bool, "unused": bool, ...}``.
    Edges: ``{"source", "target", "type", "label", "rebuilt"}``; a document edge goes
    retrieval -> document ("retrieved") and document -> consuming step (its link type),
    so a chunk is drawn once however many steps took it in.
    """
    spans = [s for s, _ in flat_spans(trace) if not an.is_feedback(s)]
    by_id = {s["span_id"]: s for s in spans}
    if explanation and explanation.get("links_rebuilt"):
        an.rebuild_trace_links(spans)  # what explain walked: the links rebuilt from digests
    flagged_spans, flagged_docs = _flags(explanation)
    cause = (explanation or {}).get("likely_cause") or {}
    nodes: dict = {}
    edges: list = []

    def step_node(span: Mapping) -> str:
        key = "s:" + span["span_id"]
        if key not in nodes:
            nodes[key] = {"id": key, "kind": "step", "label": span["name"], "role": an.role(span),
                          "span_id": span["span_id"], "facts": render.span_facts(span),
                          "error": span.get("status") == "ERROR",
                          "flagged": [a["message"] for a in flagged_spans.get(span["span_id"], [])],
                          "likely_cause": bool(cause.get("span_id")) and cause.get("span_id") == span["span_id"]}
        return key

    def doc_node(retrieval_id: Optional[str], doc: Mapping) -> str:
        key = f"d:{retrieval_id or '?'}:{doc.get('id')}"
        if key not in nodes:
            meta = doc.get("metadata") or {}
            dated = an.document_date(doc)
            nodes[key] = {"id": key, "kind": "document", "label": _doc_label(doc), "role": "document",
                          "document_id": doc.get("id"), "score": doc.get("score"), "rank": doc.get("rank"),
                          "span_id": retrieval_id, "date": dated[1].date().isoformat() if dated else None,
                          "metadata": {k: v for k, v in list(meta.items())[:12]},
                          "flagged": [a["message"] for a in flagged_docs.get(str(doc.get("id")), [])],
                          "unused": True, "unused_by": [], "likely_cause": False}
        return key

    # documents each retrieval returned
    for span in spans:
        docs = an.documents(span)[:MAX_DOCUMENTS_PER_RETRIEVAL] if an.role(span) in (
            sc.KIND_RETRIEVER, sc.KIND_RERANKER) else []
        for doc in docs:
            if doc.get("id") is None:
                continue
            key = doc_node(span["span_id"], doc)
            edges.append({"source": step_node(span), "target": key, "type": "retrieved",
                          "label": f"rank {doc['rank']}" if doc.get("rank") is not None else "retrieved",
                          "rebuilt": False})
    has_links = False
    for span in spans:
        for link in an.causal_links(span):
            has_links = True
            source_span = by_id.get(link["span_id"])
            target = step_node(span)
            if link.get("document_id") is not None:
                doc_key = f"d:{link['span_id']}:{link['document_id']}"
                if doc_key not in nodes:  # a document the retrieval did not list (or a foreign one)
                    doc_key = doc_node(link["span_id"], {"id": link["document_id"], "score": link.get("score"),
                                                         "rank": (link.get("attributes") or {}).get(sc.LINK_RANK)})
                    if source_span is not None:
                        edges.append({"source": step_node(source_span), "target": doc_key, "type": "retrieved",
                                      "label": "retrieved", "rebuilt": bool(link.get("rebuilt"))})
                nodes[doc_key]["unused"] = False
                source = doc_key
            elif source_span is not None:
                source = step_node(source_span)
            else:  # produced in another trace
                source = "x:" + str(link["span_id"])
                nodes.setdefault(source, {"id": source, "kind": "step", "label": link.get("name") or "other trace",
                                          "role": "foreign", "span_id": None, "flagged": [], "likely_cause": False,
                                          "foreign_trace_id": link.get("trace_id")})
            kind = link.get("link_type") or link.get("source_kind") or "link"
            edges.append({"source": source, "target": target, "type": kind, "label": LINK_LABELS.get(kind, kind),
                          "rebuilt": bool(link.get("rebuilt")), "coverage": link.get("coverage")})
    # documents a step's linked retrieval returned that its input did not contain
    for span in spans:
        unused = span["attributes"].get(sc.CAUSAL_UNUSED_IDS) or ()
        for doc_id in unused if isinstance(unused, (list, tuple)) else (unused,):
            for node in nodes.values():
                if node["kind"] == "document" and str(node.get("document_id")) == str(doc_id):
                    node.setdefault("unused_by", []).append(span["name"])
    # the answer: the root, fed by the output step (the last direct step in the graph)
    root = an.root_of(spans, trace.get("root_span_id"))
    if root is not None and nodes:
        answer = {"id": "answer", "kind": "answer", "label": "answer", "role": "answer", "span_id": root["span_id"],
                  "facts": root["name"], "flagged": [], "likely_cause": False,
                  "feedback": [{"score": f["score"], "reason": f.get("reason")} for f in trace.get("feedback", [])]}
        in_graph = [by_id[n["span_id"]] for n in nodes.values() if n["kind"] == "step" and n.get("span_id") in by_id
                    and n["span_id"] != root["span_id"]]
        direct = [s for s in in_graph if s.get("parent_span_id") == root["span_id"]] or in_graph
        if direct:
            last = max(direct, key=lambda s: (s["end_ns"], s["start_ns"]))
            nodes["answer"] = answer
            edges.append({"source": step_node(last), "target": "answer", "type": "output", "label": "answer",
                          "rebuilt": False})
    _columns(nodes, edges)
    ordered = sorted(nodes.values(), key=lambda n: (n["column"], _order_key(n, by_id)))
    return {"nodes": ordered, "edges": edges, "columns": 1 + max((n["column"] for n in ordered), default=-1),
            "has_links": has_links, "legend": LINK_LABELS}


def _order_key(node: Mapping, by_id: Mapping) -> tuple:
    span = by_id.get(node.get("span_id") or "")
    start = span["start_ns"] if span else 0
    return (start, node.get("rank") if node.get("rank") is not None else -1, node["id"])


def _columns(nodes: dict, edges: Sequence[Mapping]) -> None:
    """column = length of the longest path reaching the node (Kahn's order; a cycle,
    which causal links cannot make but hand-made ones might, is cut where it closes)."""
    succs: dict = {key: [] for key in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for edge in edges:
        if edge["source"] in nodes and edge["target"] in nodes and edge["source"] != edge["target"]:
            succs[edge["source"]].append(edge["target"])
            indegree[edge["target"]] += 1
    column = dict.fromkeys(nodes, 0)
    ready = [key for key, n in indegree.items() if n == 0]
    done: set = set()
    while len(done) < len(nodes):
        if not ready:  # only cycles left: start from one of them
            ready = [next(key for key in nodes if key not in done)]
        key = ready.pop()
        if key in done:
            continue
        done.add(key)
        for nxt in succs[key]:
            if nxt in done:
                continue
            column[nxt] = max(column[nxt], column[key] + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    for key in nodes:
        nodes[key]["column"] = column[key]


def json_safe(value: Any) -> Any:
    """Non-finite floats -> None (JSON has no NaN; the browser's parser rejects it)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return value
