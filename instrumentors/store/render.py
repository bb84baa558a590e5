"""Terminal rendering for the CLI: tables, span trees, explain/blame/prompt reports.

Plain text that fits 100 columns; no colour codes (output is often piped or pasted into
an issue). Everything here takes the JSON-able dicts the TraceStore API returns, so
``--json`` and the text views never disagree.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any, Iterable, Mapping, Optional, Sequence

from .. import _semconv as sc
from . import analysis as an

ELLIPSIS = "…"


def width() -> int:
    """The terminal's width (60..160); 120 when output is piped, unless COLUMNS says."""
    import os
    import sys

    if os.environ.get("COLUMNS", "").isdigit():
        return max(60, min(200, int(os.environ["COLUMNS"])))
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return max(60, min(160, shutil.get_terminal_size((120, 24)).columns)) if tty else 120


def cut(text: Any, limit: int) -> str:
    text = "" if text is None else " ".join(str(text).split())
    if limit <= 1:
        return text[:limit]
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def duration(ms: Optional[float]) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], max_width: Optional[int] = None,
          flexible: int = -1) -> str:
    """Left-aligned columns; the ``flexible`` column is cut so the table fits."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    total = sum(widths) + 2 * (len(widths) - 1)
    limit = max_width or width()
    if total > limit and headers:
        idx = flexible % len(headers)
        widths[idx] = max(len(headers[idx]), widths[idx] - (total - limit))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(cut(c, widths[i]).ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def short_id(trace_id: Optional[str]) -> str:
    return (trace_id or "")[:12]


def when(iso: Optional[str]) -> str:
    return "-" if not iso else iso.replace("T", " ")[:19]


def when_short(iso: Optional[str]) -> str:
    return "-" if not iso else iso.replace("T", " ")[5:19]


# ---------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------


def trace_table(summaries: Sequence[Mapping], extra_keys: Sequence[str] = ()) -> str:
    headers = ["TRACE", "START (UTC)", "DURATION", "SPANS", "ERR", "FEEDBACK", "TOP SCORE"]
    from .query import INTRINSICS, canonical_key

    extra = [k for k in dict.fromkeys(canonical_key(k) for k in extra_keys)
             if k not in ("feedback.score", "retrieval.top_score") and k not in INTRINSICS]
    headers += [k.upper() for k in extra] + ["ROOT / QUERY"]
    rows = []
    for s in summaries:
        label = s.get("input.query") or s.get("root_name") or "-"
        rows.append([short_id(s["trace_id"]), when_short(s.get("start_time")), duration(s.get("duration_ms")),
                     s.get("span_count"), s.get("error_count") or "-", num(s.get("feedback.score")),
                     num(s.get("retrieval.top_score")), *[num(s.get(k)) for k in extra], label])
    return table(rows, headers)


def span_table(spans: Sequence[Mapping]) -> str:
    rows = [[short_id(s["trace_id"]), s["span_id"], when(s.get("start_time")), duration(s.get("duration_ms")),
             s.get("status"), s["name"]] for s in spans]
    return table(rows, ["TRACE", "SPAN", "START (UTC)", "DURATION", "STATUS", "NAME"])


def span_facts(span: Mapping) -> str:
    """The few attributes that say what a span did, on one line."""
    attrs = span.get("attributes", {})
    parts = []
    role = an.role(span)
    if role not in ("span",):
        parts.append(f"[{role}]")
    parts.append(duration(span.get("duration_ms")))
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    if model and role in (sc.KIND_LLM, sc.KIND_EMBEDDING):
        parts.append(str(model))
    tin, tout = an.tokens(span)
    if tin is not None or tout is not None:
        parts.append(f"tokens {num(tin)}→{num(tout)}")
    reasons = an.finish_reasons(span)
    if reasons:
        parts.append("finish " + ",".join(reasons))
    if sc.RETRIEVAL_DOCUMENT_COUNT in attrs:
        parts.append(f"{attrs[sc.RETRIEVAL_DOCUMENT_COUNT]} docs")
    if sc.RETRIEVAL_TOP_SCORE in attrs:
        parts.append(f"top {num(attrs[sc.RETRIEVAL_TOP_SCORE])}")
    if attrs.get(sc.STEP_STATUS):
        parts.append(f"status {attrs[sc.STEP_STATUS]}")
    if sc.FEEDBACK_SCORE in attrs:
        parts.append(f"score {num(attrs[sc.FEEDBACK_SCORE])}")
        if attrs.get(sc.FEEDBACK_REASON):
            parts.append(repr(cut(attrs[sc.FEEDBACK_REASON], 40)))
        if attrs.get(sc.FEEDBACK_STEP_BLAMED):
            parts.append(f"blames {attrs[sc.FEEDBACK_STEP_BLAMED]!r}")
    if span.get("status") == "ERROR":
        parts.append(f"ERROR {attrs.get(sc.ERROR_TYPE) or ''} {cut(span.get('status_message'), 40)}".rstrip())
    return "  ".join(parts)


def link_text(link: Mapping) -> str:
    bits = []
    if link.get("document_id"):
        bits.append(str(link["document_id"]))
        rank = (link.get("attributes") or {}).get(sc.LINK_RANK, link.get("rank"))
        if rank is not None:
            bits.append(f"rank {rank}")
        if link.get("score") is not None:
            bits.append(f"score {num(link['score'])}")
    if link.get("coverage") is not None:
        bits.append(f"coverage {num(link['coverage'])}")
    source = link.get("name") or link.get("step") or link.get("span_id")
    kind = link.get("link_type") or "link"
    return f"{' '.join(bits) + ' ' if bits else ''}from {source} ({kind})"


def trace_tree(data: Mapping) -> str:
    head = (f"trace {data['trace_id']}  {data.get('root_name') or '-'}  {when(data.get('start_time'))}  "
            f"{duration(data.get('duration_ms'))}  {data.get('span_count')} spans")
    lines = [head]
    for fb in data.get("feedback", ()):
        reason = f" {cut(fb['reason'], 60)!r}" if fb.get("reason") else ""
        blamed = f" blames {fb['step_blamed']!r}" if fb.get("step_blamed") else ""
        lines.append(f"feedback ({fb['key']}): {num(fb['score'])}{reason}{blamed}")
    lines.append("")

    def walk(span: Mapping, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{span['name']}  {span_facts(span)}")
        child_prefix = prefix + ("" if top else ("   " if last else "│  "))
        kids = span.get("children", [])
        for link in an.causal_links(span) or span.get("links", []):
            lines.append(f"{child_prefix}{'│' if kids else ' '}   ← {link_text(link)}")
        for i, child in enumerate(kids):
            walk(child, child_prefix, i == len(kids) - 1, False)

    for root in data.get("roots", []):
        walk(root, "", True, True)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# explain / blame / prompts
# ---------------------------------------------------------------------------------------

_MARK = {"error": "✖", "warning": "⚠", "info": "·"}
_SOURCE_WORDS = {"generation": "generation of", "step": "output of", "tool_result": "result of",
                 "tool_call": "tool call of"}


def _docs_line(docs: Sequence[Mapping], limit: int = 4) -> str:
    parts = []
    for doc in docs[:limit]:
        bit = f"{doc.get('id') or '?'} {num(doc.get('score'))}"
        dated = an.document_date(doc)
        if dated:
            bit += f" ({dated[0]} {dated[1].date().isoformat()})"
        parts.append(bit)
    more = f" +{len(docs) - limit} more" if len(docs) > limit else ""
    return ", ".join(parts) + more


def explain_text(result: Mapping) -> str:
    w = width()
    lines = [f"Trace {result['trace_id']}  {result.get('root_name') or '-'}  {when(result.get('start_time'))}  "
             f"{duration(result.get('duration_ms'))}"]
    if result.get("input"):
        lines.append(f"Question: {cut(result['input'], w - 10)}")
    for fb in result.get("feedback", ()):
        reason = f" {cut(fb['reason'], 60)!r}" if fb.get("reason") else ""
        blamed = f", blames {fb['step_blamed']!r}" if fb.get("step_blamed") else ""
        lines.append(f"Feedback ({fb['key']}): {num(fb['score'])}{reason}{blamed}")
    if result.get("links_rebuilt"):
        lines.append("(causal links rebuilt from fingerprint digests)")
    if result.get("agent"):
        lines.append("")
        lines.extend(_agent_lines(result["agent"], w))
    lines.append("")
    lines.append("Walking back from the final output:")
    by_step: dict = {}
    for a in result.get("anomalies", ()):
        by_step.setdefault(a.get("span_id"), []).append(a)
    for i, step in enumerate(result.get("steps", ()), 1):
        off = "" if step.get("on_causal_path", True) else "  (not on the causal path of the output)"
        role = "final response" if i == 1 else step["role"]
        head = f"{i:>3}. {step['name']}  [{role}]  {duration(step.get('duration_ms'))}"
        if step.get("reached_via") == "link":
            head += "  ← feeds the step above"
        lines.append(head + off)
        ins, outs = step.get("inputs", {}), step.get("outputs", {})
        linked = ins.get("linked_from") or []
        docs_in = [l for l in linked if l.get("document_id")]
        others = [l for l in linked if not l.get("document_id")]
        if docs_in:
            text = ", ".join(f"{l['document_id']} (rank {num(l.get('rank'))}, score {num(l.get('score'))})"
                             for l in docs_in[:5])
            lines.append(f"       in:  {cut('documents ' + text, w - 13)}")
        for link in others[:3]:
            what = _SOURCE_WORDS.get(link.get("source_kind"), "output of")
            lines.append(f"       in:  {what} {link.get('step') or link['span_id']}")
        if ins.get("query"):
            lines.append(f"       in:  query {cut(ins['query'], w - 20)!r}")
        if ins.get("tokens") is not None or outs.get("tokens") is not None:
            lines.append(f"       tokens {num(ins.get('tokens'))} in, {num(outs.get('tokens'))} out"
                         + (f", finish {','.join(outs['finish_reasons'])}" if outs.get("finish_reasons") else ""))
        if outs.get("documents"):
            lines.append(f"       out: {cut(_docs_line(outs['documents']), w - 13)}")
        if outs.get("status"):
            lines.append(f"       out: verdict {outs['status']}")
        if outs.get("value") and step["role"] not in ("workflow",):
            lines.append(f"       out: {cut(outs['value'], w - 13)!r}")
        if outs.get("error"):
            lines.append(f"       out: {cut(outs['error'], w - 13)}")
        for a in by_step.get(step["span_id"], ()):
            lines.extend(textwrap.wrap(f"{_MARK.get(a['severity'], '-')} {a['message']}", w, initial_indent="       ",
                                       subsequent_indent="         "))
    general = by_step.get(None, [])
    if general:
        lines.append("")
        for a in general:
            lines.append(f"{_MARK.get(a['severity'], '-')} {cut(a['message'], w - 4)}")
    lines.append("")
    cause = result.get("likely_cause")
    if cause:
        also = f" (also: {'; '.join(cause['also'])})" if cause.get("also") else ""
        lines.extend(textwrap.wrap(f"Likely cause: {cause['step']}: {cause['message']}{also}", w,
                                   subsequent_indent="  "))
    else:
        lines.append("No anomaly found on the causal path.")
    return "\n".join(lines)


def _agent_lines(agent: Mapping, w: int) -> list:
    """The turns of an agent (graph) trace and where its final answer came from."""
    kind = "Agent" if agent.get("role") == "agent" else "Graph"
    facts = [f"{agent['steps']} steps" if agent.get("steps") is not None else None,
             agent.get("status"),
             f"recursion limit {agent['recursion_limit']}" if agent.get("recursion_limit") is not None else None,
             "interrupted" if agent.get("interrupted") else None,
             (f"resumed from trace {agent['resumed_from'].get('trace_id') or '?'}" if agent.get("resumed_from")
              else "resumed" if agent.get("resumed") else None)]
    out = [f"{kind} {agent.get('name') or '-'}: " + ", ".join(f for f in facts if f)]
    turns = []
    for turn in agent.get("turns", ()):
        text = f"{turn.get('step')} {turn['node']}"
        tools = [t["tool"] + (" [empty]" if t.get("empty") else "") + (" [error]" if t.get("status") == "ERROR" else "")
                 for t in turn.get("tools", ())]
        if tools:
            text += ": " + ", ".join(tools)
        elif turn.get("model_calls"):
            text += " (model)"
        if turn.get("status") == "ERROR":
            text += " [error]"
        if turn.get("interrupted"):
            text += " [interrupted]"
        turns.append(text)
    if turns:
        out.extend(textwrap.wrap("turns: " + " → ".join(turns), w, initial_indent="  ", subsequent_indent="    "))
    sources = []
    for source in agent.get("answer_from", ()):
        if source["kind"] == "tool_result":
            flags = ", empty" if source.get("empty") else ", failed" if source.get("status") == "ERROR" else ""
            sources.append(f"tool {source['tool']} (step {source.get('step')}{flags})")
        else:
            via = f" via tool {source['tool']}" if source.get("tool") else ""
            sources.append(f"document {source['document_id']}{via}")
    if sources:
        out.extend(textwrap.wrap("final answer from: " + "; ".join(sources), w, initial_indent="  ",
                                 subsequent_indent="    "))
    return out


def blame_text(report: Mapping) -> str:
    w = width()
    n_neg, n_pos = report.get("negative", 0), report.get("positive", 0)
    lines = [f"Blame: {n_neg + n_pos} traces with feedback: {n_neg} negative (score < {report['threshold']:g}), "
             f"{n_pos} positive"]
    if report.get("note"):
        lines.append(report["note"])
    for i, f in enumerate(report.get("findings", ()), 1):
        lines.extend(textwrap.wrap(f["description"], w, initial_indent=f"{i:>3}. ", subsequent_indent="       "))
        for same in f.get("same_traces_as", [])[:6]:
            lines.extend(textwrap.wrap(same, w, initial_indent="       = ", subsequent_indent="         "))
        lines.append(f"       p = {f['p_value']:.1e}" + (f", e.g. trace {short_id(f['example_traces'][0])}"
                                                          if f.get("example_traces") else ""))
    return "\n".join(lines)


def prompts_text(rows: Sequence[Mapping]) -> str:
    if not rows:
        return "No generations in traces with feedback."
    table_rows = []
    for r in rows:
        table_rows.append([r["step"], r["fingerprint"], r["basis"], r["generations"], r["traces"],
                           num(r["mean_score"]), f"{(r['negative_rate'] or 0):.0%}",
                           num(r.get("mean_output_tokens"), 0),
                           "best" if r.get("best_in_step") else (f"{r['p_value_vs_best']:.2g}"
                                                                 if r.get("p_value_vs_best") is not None else "-"),
                           r.get("preview") or ""])
    return table(table_rows, ["STEP", "FINGERPRINT", "BASIS", "GENS", "TRACES", "MEAN", "NEG", "OUT TOK",
                              "P VS BEST", "PREVIEW"])


def info_text(stats: Mapping) -> str:
    size = stats.get("bytes", 0)
    human = f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
    return "\n".join([
        f"store     {stats['path']} ({human})",
        f"traces    {stats['traces']}",
        f"spans     {stats['spans']}",
        f"links     {stats['links']}",
        f"feedback  {stats['feedback']}",
        f"from      {when(stats.get('first_trace'))}  to  {when(stats.get('last_trace'))}",
    ])


def describe_filters(filters: Mapping) -> str:
    symbols = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "eq": "=", "ne": "!=", "contains": "~"}
    parts = []
    for key, spec in filters.items():
        for op, value in (spec.items() if isinstance(spec, Mapping) else [("eq", spec)]):
            if op == "exists":
                parts.append(f"{key} {'exists' if value else 'missing'}")
            elif op == "in":
                parts.append(f"{key} in {','.join(map(str, value))}")
            else:
                parts.append(f"{key} {symbols[op]} {value}")
    return ", ".join(parts)


def lines(items: Iterable[str]) -> str:
    return "\n".join(items)
