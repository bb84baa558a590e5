"""``explain(trace)``: walk back from the final output to the inputs and say what is odd.

The walk starts at the trace's root (the final response) and goes, step by step, to what
produced each step's input: causal links first (the retrieval whose documents the prompt
contained, the generation a validator checked), then the work done inside a span (its
children), latest first. Each step lists what went in (linked sources with document id,
rank, score, coverage; query; input tokens) and what came out (documents with scores and
dates, output tokens, finish reasons, a validator's verdict).

Anomalies flagged: errors, empty retrievals, low retrieval / linked-document scores
(``low_score``, default 0.6), stale documents (a date-like metadata field older than
``stale_after_days`` at trace time), documents retrieved but unused by the step that
took the retrieval's output, ``finish_reason=length``, failed validators
(``instrumentors.step.status``), the step a negative feedback blamed, and in agent traces
(LangGraph) a tool that returned nothing, a loop that hit or ran up to the recursion limit,
an interrupted run, and a run resuming an interrupted one (the trace it continues: its
``RESUMED_FROM`` link); documents a tool retrieved say which tool. The "likely
cause" is the most upstream warning on the causal path of the output, because a
downstream symptom (a wrong answer) is explained by what fed it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from .. import _semconv as sc
from . import analysis as an

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _anomaly(kind: str, severity: str, span: Optional[dict], message: str, **extra: Any) -> dict:
    out = {"kind": kind, "severity": severity, "message": message,
           "span_id": span["span_id"] if span else None, "step": span["name"] if span else None}
    out.update(extra)
    return out


def _inputs(span: dict, by_id: dict) -> dict:
    attrs = span["attributes"]
    out: dict = {}
    links = []
    for link in an.causal_links(span):
        source = by_id.get(link["span_id"])
        links.append({
            "span_id": link["span_id"],
            "step": source["name"] if source else link.get("name"),
            "link_type": link.get("link_type"),
            "source_kind": link.get("source_kind"),
            "document_id": link.get("document_id"),
            "rank": link["attributes"].get(sc.LINK_RANK),
            "score": link.get("score"),
            "coverage": link.get("coverage"),
            "rebuilt": bool(link.get("rebuilt")),
            "foreign": source is None,
        })
    if links:
        out["linked_from"] = links
    for key, name in ((sc.GEN_AI_RETRIEVAL_QUERY_TEXT, "query"), ("input.query", "query"),
                      (sc.INPUT_VALUE, "value"), (sc.GEN_AI_INPUT_MESSAGES, "messages")):
        if isinstance(attrs.get(key), str) and name not in out:
            out[name] = an.short(attrs[key], 160)
    if attrs.get(sc.GEN_AI_REQUEST_MODEL):
        out["model"] = attrs[sc.GEN_AI_REQUEST_MODEL]
    tin, _ = an.tokens(span)
    if tin is not None:
        out["tokens"] = tin
    if attrs.get(sc.PROMPT_TEMPLATE_HASH):
        out["prompt_template"] = attrs[sc.PROMPT_TEMPLATE_HASH]
    unused = attrs.get(sc.CAUSAL_UNUSED_IDS)
    if unused:
        out["retrieved_but_unused"] = list(unused)
    return out


def _outputs(span: dict) -> dict:
    attrs = span["attributes"]
    out: dict = {}
    docs = an.documents(span)
    if docs:
        out["documents"] = docs
    for key, name in ((sc.RETRIEVAL_DOCUMENT_COUNT, "document_count"), (sc.RETRIEVAL_TOP_SCORE, "top_score")):
        if key in attrs:
            out[name] = attrs[key]
    _, tout = an.tokens(span)
    if tout is not None:
        out["tokens"] = tout
    reasons = an.finish_reasons(span)
    if reasons:
        out["finish_reasons"] = reasons
    if attrs.get(sc.STEP_STATUS) is not None:
        out["status"] = attrs[sc.STEP_STATUS]
    for key, name in ((sc.OUTPUT_VALUE, "value"), (sc.GEN_AI_OUTPUT_MESSAGES, "messages")):
        if isinstance(attrs.get(key), str):
            out[name] = an.short(attrs[key], 160)
            break
    if span["status"] == "ERROR":
        out["error"] = f"{attrs.get(sc.ERROR_TYPE) or 'error'}: {span.get('status_message') or ''}".strip(": ")
    return out


def _walk(root: dict, by_id: dict, children: dict) -> list:
    """(span, from span id, edge) in walk order, final output first, each span once.

    Depth first from the root, causal links before children and later children first,
    so the chain reads output -> validator -> generator -> assembler -> retrieval ->
    rewriter even though they are all siblings under the root."""
    order = []
    seen = set()
    stack = [(root, None, None)]
    while stack:
        span, via, edge = stack.pop()
        if span["span_id"] in seen:
            continue
        seen.add(span["span_id"])
        order.append((span, via, edge))
        preds = []
        sources = [by_id[l["span_id"]] for l in an.causal_links(span) if l["span_id"] in by_id]
        for source in sorted(sources, key=lambda s: s["end_ns"], reverse=True):
            preds.append((source, span["span_id"], "link"))
        kids = [c for c in children.get(span["span_id"], []) if not an.is_feedback(c)]
        for child in sorted(kids, key=lambda c: (c["end_ns"], c["start_ns"]), reverse=True):
            preds.append((child, span["span_id"], "child"))
        stack.extend(reversed(preds))
    return order


def _feeds_output(root: dict, by_id: dict, children: dict, causal: Optional[Mapping] = None) -> set:
    """Spans that the final output causally depends on, when the trace has causal links:
    the last step under the root and everything reachable from it through links and
    children. Without any links every span counts (we cannot tell).

    ``causal`` (span id -> its causal links) saves recomputing them (blame over
    thousands of traces has them already)."""
    if causal is None:
        causal = {span_id: an.causal_links(s) for span_id, s in by_id.items()}
    if not any(causal.values()):
        return set(by_id)
    kids = [c for c in children.get(root["span_id"], []) if not an.is_feedback(c)]
    if not kids:
        return set(by_id)
    # the output step: the last direct step that takes part in the causal graph (a
    # logging call after the validator, linked to nothing, is not the output)
    used = {l["span_id"] for links in causal.values() for l in links}

    def _links(span: dict) -> list:
        links = causal.get(span["span_id"])
        return an.causal_links(span) if links is None else links

    def linked(span: dict) -> bool:
        stack, seen = [span], set()
        while stack:
            node = stack.pop()
            if node["span_id"] in seen:
                continue
            seen.add(node["span_id"])
            if node["span_id"] in used or _links(node):
                return True
            stack.extend(children.get(node["span_id"], ()))
        return False

    pool = [c for c in kids if linked(c)] or kids
    final = max(pool, key=lambda c: (c["end_ns"], c["start_ns"]))
    reached = {root["span_id"]}
    stack = [final]
    while stack:
        span = stack.pop()
        if span["span_id"] in reached:
            continue
        reached.add(span["span_id"])
        stack.extend(by_id[l["span_id"]] for l in _links(span) if l["span_id"] in by_id)
        stack.extend(c for c in children.get(span["span_id"], []) if not an.is_feedback(c))
    # ancestors of reached spans are containers of the causal path
    for span_id in list(reached):
        parent = by_id.get(span_id, {}).get("parent_span_id")
        while parent in by_id and parent not in reached:
            reached.add(parent)
            parent = by_id[parent].get("parent_span_id")
    return reached


def _matches_blamed(span: dict, blamed: str) -> bool:
    needle = blamed.strip().lower()
    if not needle:
        return False
    attrs = span["attributes"]
    names = [span["name"], attrs.get(sc.STEP_NAME), attrs.get(sc.SPAN_KIND), attrs.get(sc.GEN_AI_OPERATION_NAME),
             attrs.get(sc.COMPONENT), an.role(span)]
    return any(isinstance(n, str) and (needle in n.lower() or n.lower() in needle) for n in names if n)


def _tool_name(span: dict) -> str:
    attrs = span["attributes"]
    return str(attrs.get(sc.GEN_AI_TOOL_NAME) or span["name"])


def _nearest_ancestor(span: dict, by_id: dict, matches: Callable[[dict], bool]) -> Optional[dict]:
    """The closest span above ``span`` in its tree that ``matches``, if any."""
    parent = by_id.get(span.get("parent_span_id"))
    while parent is not None:
        if matches(parent):
            return parent
        parent = by_id.get(parent.get("parent_span_id"))
    return None


def _inside_tool(span: dict, by_id: dict) -> Optional[dict]:
    """The tool span a step ran inside (a retriever an agent's tool called), if any."""
    return _nearest_ancestor(span, by_id, lambda s: an.role(s) == sc.KIND_TOOL)


def _graph_anomalies(span: dict) -> list:
    """A graph run (LangGraph) that looped to its recursion limit or stopped at an interrupt."""
    attrs = span["attributes"]
    out = []
    status, steps = attrs.get(sc.GRAPH_STATUS), an.number(attrs.get(sc.GRAPH_STEPS))
    limit = an.number(attrs.get(sc.GRAPH_RECURSION_LIMIT))
    what = "agent" if an.role(span) == sc.KIND_AGENT else "graph"
    if status == "out_of_steps":
        out.append(_anomaly("recursion_limit", "error", span,
                            f"the {what} loop hit the recursion limit"
                            + (f" ({limit:g} steps)" if limit is not None else "") + " without finishing",
                            steps=steps, limit=limit))
    elif limit is not None and steps is not None and steps >= limit - 1:
        out.append(_anomaly("recursion_limit", "warning", span,
                            f"the {what} loop ran {steps:g} steps, up to its recursion limit ({limit:g}): "
                            "it stopped for lack of steps, not because it had an answer",
                            steps=steps, limit=limit))
    if attrs.get(sc.GRAPH_INTERRUPTED) is True:
        out.append(_anomaly("interrupted", "info", span, f"the {what} stopped at an interrupt (waiting for input)"))
    earlier = _resumed_from(span)
    if earlier is not None:
        out.append(_anomaly("resumed", "info", span,
                            f"the {what} resumed an earlier run that stopped at an interrupt: trace "
                            f"{earlier['trace_id'] or '?'} (what happened before the interrupt is there)",
                            resumed_trace_id=earlier["trace_id"], resumed_span_id=earlier["span_id"]))
    return out


def _resumed_from(span: dict) -> Optional[dict]:
    """The interrupted graph run a resumed graph run continues (its ``RESUMED_FROM`` link)."""
    for link in span.get("links", ()):
        if link.get("link_type") == sc.LINK_RESUMED_FROM:
            return {"trace_id": link.get("trace_id"), "span_id": link.get("span_id")}
    return None


def _span_anomalies(span: dict, by_id: dict, low_score: float, stale_after_days: Optional[float],
                    trace_start: Optional[int]) -> list:
    attrs = span["attributes"]
    out = []
    if span["status"] == "ERROR":
        out.append(_anomaly("error", "error", span,
                            f"failed: {attrs.get(sc.ERROR_TYPE) or 'error'} {span.get('status_message') or ''}".strip()))
    role = an.role(span)
    if role == sc.KIND_TOOL and attrs.get(sc.TOOL_RESULT_EMPTY) is True:
        out.append(_anomaly("empty_tool_result", "warning", span, f"tool {_tool_name(span)!r} returned nothing",
                            tool=_tool_name(span)))
    if sc.GRAPH_STATUS in attrs:
        out.extend(_graph_anomalies(span))
    if role in (sc.KIND_RETRIEVER, sc.KIND_RERANKER):
        count = attrs.get(sc.RETRIEVAL_DOCUMENT_COUNT)
        if count == 0:
            out.append(_anomaly("empty_retrieval", "warning", span, "retrieval returned no documents"))
        top = an.number(attrs.get(sc.RETRIEVAL_TOP_SCORE))
        if top is not None and attrs.get(sc.RETRIEVAL_SCORE_ORDER) != "lower_is_better" and top < low_score:
            out.append(_anomaly("low_score", "warning", span,
                                f"top retrieval score {top:.2f} < {low_score:g}", value=top))
        if stale_after_days is not None:
            stale = []
            for doc in an.documents(span):
                dated = an.document_date(doc)
                if dated is None:
                    continue
                age = an.age_days(dated[1], trace_start)
                if age is not None and age > stale_after_days:
                    stale.append((doc, dated, age))
            if stale:
                parts = [f"{d['id']} ({key} {when.date().isoformat()}, {age:.0f} days old)"
                         for d, (key, when), age in stale[:5]]
                out.append(_anomaly("stale_documents", "warning", span,
                                    f"stale documents (> {stale_after_days:g} days): " + ", ".join(parts),
                                    documents=[d["id"] for d, _, _ in stale]))
    low_links = [l for l in an.causal_links(span) if l.get("source_kind") == "document"
                 and an.number(l.get("score")) is not None and l["score"] < low_score]
    if low_links:
        parts = [f"{l.get('document_id') or l['span_id']} (score {l['score']:.2f})" for l in low_links[:5]]
        out.append(_anomaly("low_score_input", "warning", span,
                            f"used low-scoring documents (< {low_score:g}): " + ", ".join(parts),
                            documents=[l.get("document_id") for l in low_links]))
    unused = attrs.get(sc.CAUSAL_UNUSED_IDS)
    if unused:
        out.append(_anomaly("retrieved_unused", "info" if len(unused) < 3 else "warning", span,
                            "retrieved but not in this step's input: " + ", ".join(map(str, list(unused)[:8])),
                            documents=list(unused)))
    if role in (sc.KIND_RETRIEVER, sc.KIND_RERANKER) and out:
        tool = _inside_tool(span, by_id)
        if tool is not None:
            for a in out:
                a["tool"] = _tool_name(tool)
                a["message"] += f" (retrieved by tool {_tool_name(tool)!r})"
    reasons = an.finish_reasons(span)
    if any(r in an.TRUNCATED_FINISH for r in reasons):
        out.append(_anomaly("finish_length", "warning", span,
                            "output cut at the token limit (finish_reason=length)"))
    status = attrs.get(sc.STEP_STATUS)
    if isinstance(status, str) and status.strip().lower() in an.FAILED_STATUSES:
        out.append(_anomaly("validator_failed", "warning", span, f"step verdict: {status}"))
    return out


def explain(data: Mapping, *, low_score: float = 0.6, feedback_threshold: float = 0.5,
            stale_after_days: Optional[float] = 180.0) -> dict:
    """See the module docstring. ``data``: one loaded trace (``TraceStore.load``: ``meta``,
    ``spans``, ``feedback``), whatever backend it came from. Returns a JSON-able dict:
    trace facts, ``steps`` in walk order (final output first), ``anomalies`` and
    ``likely_cause``."""
    meta = data["meta"]
    spans = [s for s in data["spans"]]
    for span in spans:
        span["trace_id"] = meta["trace_id"]
    rebuilt = an.rebuild_trace_links(spans)
    by_id = {s["span_id"]: s for s in spans}
    children = an.children_index(spans)
    root = an.root_of(spans, meta.get("root_span_id"))
    feedback = data["feedback"]
    score = an.trace_score(feedback)
    result: dict = {
        "trace_id": meta["trace_id"], "root_name": meta.get("root_name"), "start_time": meta.get("start_time"),
        "duration_ms": meta.get("duration_ms"), "span_count": meta.get("span_count"),
        "feedback": feedback, "feedback_score": score, "links_rebuilt": rebuilt,
        "thresholds": {"low_score": low_score, "feedback": feedback_threshold, "stale_after_days": stale_after_days},
        "steps": [], "anomalies": [], "likely_cause": None,
    }
    if root is None:
        return result
    result["root_name"] = root["name"]
    result["input"] = an.short(v, 200) if (v := _root_input(root, spans)) else None
    on_path = _feeds_output(root, by_id, children)
    used_by: dict = {}
    for span in spans:
        for link in an.causal_links(span):
            used_by.setdefault(link["span_id"], []).append(span["name"])
    walk = _walk(root, by_id, children)
    position = {s["span_id"]: i for i, (s, _, _) in enumerate(walk)}
    anomalies = []
    for span, via, edge in walk:
        step_anomalies = _span_anomalies(span, by_id, low_score, stale_after_days, meta.get("start_ns"))
        for a in step_anomalies:
            a["on_causal_path"] = span["span_id"] in on_path
        anomalies.extend(step_anomalies)
        result["steps"].append({
            "span_id": span["span_id"], "name": span["name"], "role": an.role(span),
            "parent_span_id": span.get("parent_span_id"), "reached_via": edge, "from_span_id": via,
            "start_offset_ms": round((span["start_ns"] - root["start_ns"]) / 1e6, 3),
            "duration_ms": span["duration_ms"], "status": span["status"],
            "on_causal_path": span["span_id"] in on_path,
            "inputs": _inputs(span, by_id), "outputs": _outputs(span),
            "used_by": used_by.get(span["span_id"], []),
            "anomalies": [a["kind"] for a in step_anomalies],
        })
    # feedback: negative judgements and the step they blame
    for fb in feedback:
        if fb["score"] >= feedback_threshold:
            continue
        reason = f": {fb['reason']!r}" if fb.get("reason") else ""
        blamed = fb.get("step_blamed")
        if blamed:
            matched = [s for s, _, _ in walk if _matches_blamed(s, blamed) and s is not root]
            for span in matched or [None]:
                anomalies.append(_anomaly(
                    "feedback_blame", "warning", span,
                    f"{fb['key']} feedback {fb['score']:g}{reason} blames {blamed!r}"
                    + ("" if span else " (no step by that name)"),
                    on_causal_path=True if span is None else span["span_id"] in on_path))
        else:
            anomalies.append(_anomaly("negative_feedback", "info", None,
                                      f"{fb['key']} feedback {fb['score']:g}{reason}", on_causal_path=True))
    anomalies = _first_consumer_only(anomalies, by_id, low_score)
    anomalies.sort(key=lambda a: (SEVERITY_ORDER.get(a["severity"], 3), not a.get("on_causal_path", True),
                                  -position.get(a["span_id"], -1)))
    result["anomalies"] = anomalies
    result["likely_cause"] = _likely_cause(anomalies, position)
    agent = _agent_summary(spans, by_id, children)
    if agent is not None:
        result["agent"] = agent
    return result


def _agent_summary(spans: list, by_id: dict, children: dict) -> Optional[dict]:
    """For a trace with a graph run (LangGraph): its turns (node executions in step order
    with the tools they ran) and where the final answer came from: the tool results and
    documents the last model call took in, each with its outcome."""
    graphs = sorted((s for s in spans if sc.GRAPH_NAME in s["attributes"]), key=lambda s: s["start_ns"])
    if not graphs:
        return None
    top = next((g for g in graphs if _enclosing_graph(g, by_id) is None), graphs[0])
    attrs = top["attributes"]
    turns = []
    for node in sorted(children.get(top["span_id"], []), key=lambda s: (s["start_ns"], s["end_ns"])):
        if an.role(node) != sc.KIND_NODE:
            continue
        below = _descendants(node, children)
        tools = [{"tool": _tool_name(t), "span_id": t["span_id"], "status": t["status"],
                  "empty": t["attributes"].get(sc.TOOL_RESULT_EMPTY) is True}
                 for t in below if an.role(t) == sc.KIND_TOOL]
        turns.append({"step": node["attributes"].get(sc.GRAPH_STEP),
                      "node": node["attributes"].get(sc.GRAPH_NODE, node["name"]), "span_id": node["span_id"],
                      "status": node["status"], "interrupted": node["attributes"].get(sc.GRAPH_INTERRUPTED) is True,
                      "model_calls": sum(1 for d in below if an.role(d) == sc.KIND_LLM
                                         and an.role(by_id.get(d.get("parent_span_id"), {"attributes": {}}))
                                         != sc.KIND_LLM),
                      "tools": tools})
    top_below = _descendants(top, children)
    models = [s for s in top_below if an.role(s) == sc.KIND_LLM
              and an.role(by_id.get(s.get("parent_span_id"), {"attributes": {}})) != sc.KIND_LLM]
    answer_from = []
    if models:
        final = max(models, key=lambda s: (s["end_ns"], s["start_ns"]))
        for link in an.causal_links(final):
            source = by_id.get(link["span_id"])
            if source is None:
                continue
            if an.role(source) == sc.KIND_TOOL:
                node = _enclosing_node(source, by_id)
                answer_from.append({
                    "kind": "tool_result", "tool": _tool_name(source), "span_id": source["span_id"],
                    "step": node["attributes"].get(sc.GRAPH_STEP) if node else None,
                    "status": source["status"], "empty": source["attributes"].get(sc.TOOL_RESULT_EMPTY) is True})
            elif link.get("document_id"):
                tool = _inside_tool(source, by_id)
                answer_from.append({"kind": "document", "document_id": link["document_id"],
                                    "span_id": source["span_id"], "score": link.get("score"),
                                    "tool": _tool_name(tool) if tool else None})
        answer_from.sort(key=lambda a: (by_id[a["span_id"]]["start_ns"]))
    return {
        "name": attrs.get(sc.GRAPH_NAME), "span_id": top["span_id"], "role": an.role(top),
        "status": attrs.get(sc.GRAPH_STATUS), "steps": attrs.get(sc.GRAPH_STEPS),
        "recursion_limit": attrs.get(sc.GRAPH_RECURSION_LIMIT),
        "interrupted": attrs.get(sc.GRAPH_INTERRUPTED) is True, "resumed": attrs.get(sc.GRAPH_RESUMED) is True,
        "resumed_from": _resumed_from(top),
        "conversation_id": attrs.get(sc.GEN_AI_CONVERSATION_ID),
        "turns": turns, "answer_from": answer_from,
    }


def _descendants(span: dict, children: dict) -> list:
    out, stack = [], list(children.get(span["span_id"], []))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(children.get(node["span_id"], []))
    return sorted(out, key=lambda s: (s["start_ns"], s["end_ns"]))


def _enclosing_graph(span: dict, by_id: dict) -> Optional[dict]:
    return _nearest_ancestor(span, by_id, lambda s: sc.GRAPH_NAME in s["attributes"])


def _enclosing_node(span: dict, by_id: dict) -> Optional[dict]:
    return _nearest_ancestor(span, by_id, lambda s: an.role(s) == sc.KIND_NODE)


def _first_consumer_only(anomalies: list, by_id: dict, low_score: float) -> list:
    """A low-scoring or unused document is reported once, at the first step that took
    the retrieval's output (the assembler), not again at every later step whose input
    still contains its text (the generator, the validator)."""
    seen: dict = {"low_score_input": set(), "retrieved_unused": set()}
    out = []
    ordered = sorted(anomalies, key=lambda a: by_id[a["span_id"]]["start_ns"] if a["span_id"] in by_id else 0)
    keep = set()
    for a in ordered:
        if a["kind"] not in seen:
            keep.add(id(a))
            continue
        fresh = [d for d in a.get("documents", []) if d not in seen[a["kind"]]]
        seen[a["kind"]].update(a.get("documents", []))
        if fresh:
            a["documents"] = fresh
            if a["kind"] == "low_score_input":
                span = by_id[a["span_id"]]
                low = {l.get("document_id"): l["score"] for l in an.causal_links(span)}
                a["message"] = (f"used low-scoring documents (< {low_score:g}): "
                                + ", ".join(f"{d} (score {low[d]:.2f})" for d in fresh[:5] if d in low))
            else:
                a["message"] = "retrieved but not in this step's input: " + ", ".join(map(str, fresh[:8]))
                a["severity"] = "info" if len(fresh) < 3 else "warning"
            keep.add(id(a))
    for a in anomalies:
        if id(a) in keep:
            out.append(a)
    return out


def _root_input(root: dict, spans: list) -> Optional[str]:
    return an.input_query(spans, root["span_id"])


_CAUSE_KINDS = ("error", "empty_retrieval", "low_score", "stale_documents", "low_score_input", "retrieved_unused",
                "empty_tool_result", "recursion_limit", "finish_length", "validator_failed")


def _likely_cause(anomalies: list, position: dict) -> Optional[dict]:
    """The most upstream (latest in walk order) warning/error on the causal path."""
    candidates = [a for a in anomalies if a["kind"] in _CAUSE_KINDS and a["severity"] in ("error", "warning")
                  and a.get("on_causal_path", True) and a["span_id"] is not None]
    if not candidates:
        return None
    rank = {k: i for i, k in enumerate(_CAUSE_KINDS)}
    # upstream first; on the same step prefer errors, then the order of _CAUSE_KINDS
    best = max(candidates, key=lambda a: (position.get(a["span_id"], -1), -SEVERITY_ORDER[a["severity"]],
                                          -rank[a["kind"]]))
    related = [a for a in candidates if a["span_id"] == best["span_id"] and a is not best]
    cause = dict(best)
    if related:
        cause["also"] = [a["message"] for a in related]
    return cause
