"""One trace's causal graph as a self-contained SVG or HTML page.

One row per span (tree order), an event-order timeline, what each span did and which
documents it took in, and the causal links drawn as arrows from the producing span to the
consuming one. Spans with anomalies (from ``explain``) have a red outline; hovering any
bar shows its attributes (SVG ``<title>``, no script). The file references nothing
outside itself: no scripts, fonts, stylesheets or images are fetched, so it opens offline
and can be attached to an issue.
"""

from __future__ import annotations

from html import escape
from typing import Mapping, Optional

from .. import _semconv as sc
from . import analysis as an
from . import render

ROLE_COLORS = {
    sc.KIND_LLM: "#8250df", sc.KIND_RETRIEVER: "#0969da", sc.KIND_RERANKER: "#0550ae", sc.KIND_STEP: "#1a7f37",
    sc.KIND_FEEDBACK: "#bf8700", sc.KIND_TOOL: "#953800", sc.KIND_EMBEDDING: "#57606a", sc.KIND_AGENT: "#cf222e",
}
DEFAULT_COLOR = "#6e7781"
ROW = 30
LABEL_W = 260
CHART_W = 420
FACTS_W = 420
PAD = 16


def _rows(trace: Mapping) -> list:
    out = []

    def visit(span: Mapping, depth: int) -> None:
        out.append((span, depth))
        for child in span.get("children", []):
            visit(child, depth + 1)

    for root in trace.get("roots", []):
        visit(root, 0)
    return out


def _tooltip(span: Mapping) -> str:
    lines = [f"{span['name']} ({span['span_id']})", render.span_facts(span)]
    for key, value in list(span.get("attributes", {}).items())[:40]:
        if key in (sc.CAUSAL_PRODUCED_DIGESTS, sc.CAUSAL_CONSUMED_DIGESTS):
            continue
        lines.append(f"{key} = {render.cut(value, 120)}")
    return "\n".join(lines)


def _inputs_text(span: Mapping) -> str:
    docs = [l for l in an.causal_links(span) if l.get("document_id")]
    if not docs:
        return ""
    return "in: " + ", ".join(f"{l['document_id']} {render.num(l.get('score'))}" for l in docs[:3]) + (
        " …" if len(docs) > 3 else "")


def svg(trace: Mapping, explanation: Optional[Mapping] = None, *, standalone: bool = True) -> str:
    """The SVG document (``standalone``) or element for an HTML page.

    Columns: span names (indented by nesting), an event-order timeline (every start and
    end is one step along x, so a 1 ms step next to a 2 s call stays visible; the order
    and nesting are exact, the proportions are not), and what each span did. Causal links
    are red arrows from the producer's end to the consumer's start; hover for details.
    """
    rows = _rows(trace)
    spans = [s for s, _ in rows]
    flagged = {a["span_id"]: a for a in (explanation or {}).get("anomalies", [])
               if a.get("span_id") and a.get("severity") in ("error", "warning")}
    times = sorted({t for s in spans if not an.is_feedback(s) for t in (s["start_ns"], s["end_ns"])})
    slot = {t: i for i, t in enumerate(times)}
    last = max(len(times) - 1, 1)
    height = PAD * 2 + ROW * (len(rows) + 1)
    chart_x = LABEL_W + PAD * 2
    facts_x = chart_x + CHART_W + PAD
    full_w = facts_x + FACTS_W + PAD
    index = {s["span_id"]: i for i, (s, _) in enumerate(rows)}
    parts = []
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    parts.append(f'<svg{ns} width="{full_w}" height="{height}" viewBox="0 0 {full_w} {height}" '
                 f'font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12" role="img">')
    parts.append(f"<title>{escape('trace ' + trace['trace_id'])}</title>")
    parts.append('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                 'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#cf222e"/></marker></defs>')
    parts.append(f'<rect x="0" y="0" width="{full_w}" height="{height}" fill="#ffffff"/>')
    header = f"trace {trace['trace_id']}  ·  {trace.get('root_name') or ''}  ·  {render.duration(trace.get('duration_ms'))}"
    parts.append(f'<text x="{PAD}" y="{PAD + 12}" font-weight="bold">{escape(header)}</text>')

    def x_of(ns_value: int) -> float:
        return chart_x + slot.get(ns_value, last) / last * CHART_W

    centers = {}
    for i, (span, depth) in enumerate(rows):
        y = PAD + ROW * (i + 1)
        if i % 2:
            parts.append(f'<rect x="0" y="{y}" width="{full_w}" height="{ROW}" fill="#f6f8fa"/>')
        role = an.role(span)
        color = "#cf222e" if span.get("status") == "ERROR" else ROLE_COLORS.get(role, DEFAULT_COLOR)
        if an.is_feedback(span):
            x0 = chart_x + CHART_W - 8
            x1 = x0 + 8
        else:
            x0 = x_of(span["start_ns"])
            x1 = max(x_of(span["end_ns"]), x0 + 4)
        centers[span["span_id"]] = (x0, x1, y + ROW / 2)
        label = render.cut(("  " * depth) + span["name"], 34)
        outline = ' stroke="#cf222e" stroke-width="2.5"' if span["span_id"] in flagged else ""
        facts = render.span_facts(span)
        inputs = _inputs_text(span)
        parts.append("<g>")
        parts.append(f"<title>{escape(_tooltip(span))}</title>")
        parts.append(f'<text x="{PAD}" y="{y + ROW / 2 + 4}" xml:space="preserve">{escape(label)}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 7}" width="{x1 - x0:.1f}" height="{ROW - 14}" rx="3" '
                     f'fill="{color}" fill-opacity="0.85"{outline}/>')
        parts.append(f'<text x="{facts_x}" y="{y + ROW / 2 - (2 if inputs else -4)}" fill="#24292f" font-size="10">'
                     f'{escape(render.cut(facts, 72))}</text>')
        if inputs:
            parts.append(f'<text x="{facts_x}" y="{y + ROW / 2 + 10}" fill="#cf222e" font-size="10">'
                         f'{escape(render.cut(inputs, 72))}</text>')
        if span["span_id"] in flagged:
            parts.append(f'<text x="{facts_x - 12}" y="{y + ROW / 2 + 4}" fill="#cf222e" font-weight="bold">!</text>')
        parts.append("</g>")
    # causal links: producer end -> consumer start
    for span, _ in rows:
        for link in an.causal_links(span):
            if link["span_id"] not in centers:
                continue
            _, px1, py = centers[link["span_id"]]
            cx0, _, cy = centers[span["span_id"]]
            bend = 24 + 4 * abs(index[span["span_id"]] - index[link["span_id"]])
            path = (f"M {px1:.1f} {py:.1f} C {px1 + bend:.1f} {py:.1f}, {cx0 - bend:.1f} {cy:.1f}, "
                    f"{cx0:.1f} {cy:.1f}")
            parts.append(f'<g><title>{escape(render.link_text(link))}</title>'
                         f'<path d="{path}" fill="none" stroke="#cf222e" stroke-width="1.3" stroke-opacity="0.75" '
                         f'marker-end="url(#arrow)"/></g>')
    parts.append("</svg>")
    return "\n".join(parts)


_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px; color: #24292f; }
h1 { font-size: 18px; } h2 { font-size: 15px; margin-top: 24px; }
table { border-collapse: collapse; font-size: 12px; } td, th { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
.warning { color: #9a6700; } .error { color: #cf222e; } .info { color: #57606a; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; }
pre { background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; }
"""


def html(trace: Mapping, explanation: Optional[Mapping] = None) -> str:
    """A complete HTML page: the graph, the anomalies and the explanation."""
    title = f"trace {trace['trace_id']}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{escape(title)} — {escape(str(trace.get('root_name') or ''))}</h1>"]
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(r)}</span>' for r, c in ROLE_COLORS.items())
    out.append(f'<div class="legend">{legend}<span><i style="background:#cf222e"></i>causal link / error</span></div>')
    out.append(svg(trace, explanation, standalone=False))
    if explanation:
        cause = explanation.get("likely_cause")
        if cause:
            out.append(f"<h2>Likely cause</h2><p class=\"warning\">{escape(cause['step'] or '')}: "
                       f"{escape(cause['message'])}</p>")
        if explanation.get("anomalies"):
            out.append("<h2>Anomalies</h2><ul>")
            for a in explanation["anomalies"]:
                out.append(f'<li class="{escape(a["severity"])}">{escape(a.get("step") or "trace")}: '
                           f'{escape(a["message"])}</li>')
            out.append("</ul>")
        out.append(f"<h2>Explanation</h2><pre>{escape(render.explain_text(explanation))}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def export(trace: Mapping, explanation: Optional[Mapping], fmt: str) -> str:
    if fmt == "svg":
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg(trace, explanation)
    if fmt == "html":
        return html(trace, explanation)
    raise ValueError(f"unknown format {fmt!r}; use html or svg")
