/* instrumentors UI: plain JS, no dependencies, nothing fetched but this server's /api. */
"use strict";

const main = document.getElementById("main");
const SVGNS = "http://www.w3.org/2000/svg";
const RANGES = { "": null, "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const EDGE_COLORS = { INFORMED_BY: "#0969da", CAUSED_BY_GENERATION: "#8250df", CAUSED_BY_STEP: "#1a7f37",
  CAUSED_BY_TOOL: "#953800", retrieved: "#8c959f", output: "#24292f" };
const ROLE_FILL = { llm: "#f5f0ff", retriever: "#ddf4ff", reranker: "#ddf4ff", step: "#dafbe1", tool: "#fff1e5",
  document: "#ffffff", answer: "#f6f8fa", foreign: "#f6f8fa" };
let info = null;

// -- small helpers --------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false)
    el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v); else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined)
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// A page's data, unless the user has moved on meanwhile: the answer of a page left
// behind (a slow first list, then a click on a filter) must not draw over the new one.
let navigation = 0;
async function load(path) {
  const mine = navigation;
  const never = new Promise(() => {});
  try {
    const body = await api(path);
    return mine === navigation ? body : never;
  } catch (err) {
    if (mine !== navigation) return never;
    throw err;
  }
}

function num(v, digits = 2) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}
function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v >= 1000) return (v / 1000).toFixed(2) + " s";
  return (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
}
function pct(v) { return v === null || v === undefined ? "–" : Math.round(v * 100) + "%"; }
function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "–"; }
function cut(text, n) { text = text === null || text === undefined ? "" : String(text); return text.length > n ? text.slice(0, n - 1) + "…" : text; }
function short(id) { return id ? id.slice(0, 12) : "–"; }
function params(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== null && v !== undefined && v !== "") p.set(k, v);
  return p.toString();
}
function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "traces";
  const [path, query] = hash.split("?");
  const parts = path.split("/");
  return { page: parts[0], id: parts[1] ? decodeURIComponent(parts[1]) : null, q: new URLSearchParams(query || "") };
}
function go(page, obj) { location.hash = "#/" + page + (obj && params(obj) ? "?" + params(obj) : ""); }
function errorBox(err) { return h("section", { class: "error-text", id: "error" }, String(err.message || err)); }
function feedbackCell(score, count) {
  if (score === null || score === undefined) return h("span", { class: "muted" }, "–");
  const neg = score < 0.5;
  return h("span", { class: neg ? "fb-neg" : "fb-pos", title: `${count || 1} judgement(s); lowest ${score}` },
    (neg ? "▼ " : "▲ ") + num(score));
}

// -- traces list ----------------------------------------------------------------------

async function tracesPage(q) {
  const filter = q.get("q") || "";
  const range = q.get("range") || "";
  const limit = parseInt(q.get("limit") || "50", 10);
  const offset = parseInt(q.get("offset") || "0", 10);
  let since = q.get("since") || "", until = q.get("until") || "";
  if (range && range !== "custom" && RANGES[range]) { since = new Date(Date.now() - RANGES[range]).toISOString(); until = ""; }
  const input = h("input", { type: "text", id: "filter", value: filter, spellcheck: "false",
    placeholder: "retrieval.top_score < 0.6 and feedback.score < 0.5   (or a trace id)" });
  const rangeSel = h("select", { id: "range", title: "time range" },
    ...[["", "all time"], ["15m", "last 15 min"], ["1h", "last hour"], ["24h", "last 24 h"], ["7d", "last 7 days"],
      ["30d", "last 30 days"], ["custom", "custom…"]].map(([v, l]) => h("option", { value: v, selected: v === range }, l)));
  const localValue = (iso) => { if (!iso) return ""; const d = new Date(iso); if (isNaN(d)) return "";
    return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16); };
  const fromIn = h("input", { type: "datetime-local", id: "since", value: range === "custom" ? localValue(since) : "" });
  const toIn = h("input", { type: "datetime-local", id: "until", value: range === "custom" ? localValue(until) : "" });
  const custom = h("span", { id: "custom-range", style: range === "custom" ? "" : "display:none" }, "from ", fromIn, " to ", toIn);
  rangeSel.addEventListener("change", () => { custom.style.display = rangeSel.value === "custom" ? "" : "none"; });
  const apply = (text) => {
    const typed = text !== undefined ? text : input.value.trim();
    if (/^(0x)?[0-9a-f]{4,32}$/i.test(typed)) { location.hash = "#/trace/" + typed; return; }  // a trace id (or prefix)
    const obj = { q: typed, range: rangeSel.value, limit: limit !== 50 ? limit : "" };
    if (rangeSel.value === "custom") {
      obj.since = fromIn.value ? new Date(fromIn.value).toISOString() : "";
      obj.until = toIn.value ? new Date(toIn.value).toISOString() : "";
    }
    go("traces", obj);
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });
  const presets = (info ? info.presets : []).map((p, i) => h("button", {
    class: "preset" + (i === 0 ? " seed" : ""), id: i === 0 ? "seed-filter" : null, title: p.query,
    onclick: () => { input.value = p.query; apply(p.query); } }, p.label));
  const controls = h("section", {},
    h("div", { class: "controls" }, input, rangeSel, custom, h("button", { class: "primary", id: "apply", onclick: () => apply() }, "Apply"),
      filter ? h("button", { id: "clear", onclick: () => { input.value = ""; apply(""); } }, "Clear") : null),
    h("div", { class: "controls" }, h("span", { class: "muted" }, "Try:"), ...presets),
    h("div", { class: "muted" }, "Filters: KEY OP VALUE joined by 'and'; OP is = != < <= > >= ~ (contains), 'in a,b', 'exists', '!exists'. ",
      "A trace matches when some span satisfies each filter."));
  main.replaceChildren(controls, h("section", {}, h("p", { class: "muted" }, "Loading…")));
  let data;
  try {
    data = await load("/api/traces?" + params({ q: filter, limit, offset, since, until }));
  } catch (err) { main.replaceChildren(controls, errorBox(err)); return; }
  const keys = Object.keys(data.filters).filter((k) => !["retrieval.top_score", "feedback.score"].includes(k));
  const header = h("tr", {}, h("th", {}, "Started (UTC)"), h("th", {}, "Trace"), h("th", {}, "Question"),
    h("th", { class: "num" }, "Top score"), h("th", {}, "Feedback"), h("th", { class: "num" }, "Duration"),
    h("th", { class: "num" }, "Spans"), h("th", {}, "Model"), ...keys.map((k) => h("th", {}, k)));
  const rows = data.results.map((t) => h("tr", { class: "clickable trace-row", "data-trace": t.trace_id,
      onclick: (e) => { if (e.target.tagName !== "A") location.hash = "#/trace/" + t.trace_id; } },
    h("td", { class: "mono" }, when(t.start_time)),
    h("td", {}, h("a", { class: "trace-link mono", href: "#/trace/" + t.trace_id }, short(t.trace_id))),
    h("td", {}, cut(t["input.query"] || t.root_name || "", 80), t.error ? h("span", { class: "badge error" }, "error") : null),
    h("td", { class: "num" + (t["retrieval.top_score"] !== null && t["retrieval.top_score"] < 0.6 ? " low" : "") }, num(t["retrieval.top_score"])),
    h("td", {}, feedbackCell(t["feedback.score"], t["feedback.count"]),
      t["feedback.reason"] ? h("div", { class: "muted" }, cut(t["feedback.reason"], 50)) : null),
    h("td", { class: "num" }, ms(t.duration_ms)), h("td", { class: "num" }, t.span_count),
    h("td", {}, t["gen_ai.request.model"] || "–"), ...keys.map((k) => h("td", {}, num(t[k])))));
  const pages = Math.max(1, Math.ceil(data.total / data.limit));
  const page = Math.floor(data.offset / data.limit) + 1;
  const move = (o) => go("traces", { q: filter, range, since: range === "custom" ? since : "", until: range === "custom" ? until : "",
    limit: limit !== 50 ? limit : "", offset: o || "" });
  const size = h("select", { id: "page-size", onchange: (e) => go("traces", { q: filter, range, limit: e.target.value }) },
    ...[20, 50, 100, 200].map((n) => h("option", { value: n, selected: n === data.limit }, n + " per page")));
  const summary = data.total === 0
    ? (filter ? `No traces match ${filter}.` : "No traces in this time range (or the store is empty).")
    : `${data.offset + 1}–${data.offset + data.results.length} of ${data.total} traces` + (filter ? ` matching ${filter}` : "") + ", newest first";
  main.replaceChildren(controls, h("section", {},
    h("p", { id: "summary" }, summary),
    data.results.length ? h("table", { id: "traces" }, h("thead", {}, header), h("tbody", {}, rows)) : null,
    h("div", { class: "pager" },
      h("button", { id: "prev", disabled: data.offset <= 0, onclick: () => move(Math.max(0, data.offset - data.limit)) }, "← Newer"),
      h("span", { id: "page" }, `page ${page} of ${pages}`),
      h("button", { id: "next", disabled: data.offset + data.limit >= data.total, onclick: () => move(data.offset + data.limit) }, "Older →"),
      size)));
}

// -- one trace ------------------------------------------------------------------------

function attributesPanel(el, title, attrs, extra) {
  const rows = Object.entries(attrs || {}).map(([k, v]) => {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return h("tr", {}, h("td", {}, k), h("td", {}, text.length > 240
      ? h("details", {}, h("summary", {}, cut(text, 120)), text) : text));
  });
  el.replaceChildren(h("h2", {}, title), extra || null,
    rows.length ? h("table", { class: "attrs" }, h("tbody", {}, rows)) : h("p", { class: "muted" }, "no attributes"));
}

function spanIndex(trace) {
  const out = {};
  const walk = (span) => { out[span.span_id] = span; (span.children || []).forEach(walk); };
  (trace.roots || []).forEach(walk);
  return out;
}

function waterfallView(rows, flagged, select) {
  const total = Math.max(...rows.filter((r) => r.role !== "feedback").map((r) => r.offset_ms + (r.duration_ms || 0)), 0.001);
  const box = h("div", { class: "wf", id: "waterfall" });
  for (const r of rows) {
    const left = Math.min(100, (r.offset_ms / total) * 100);
    const width = Math.max(0.3, Math.min(100 - left, ((r.duration_ms || 0) / total) * 100));
    const bar = h("span", { class: `wf-bar r-${r.role}` + (r.status === "ERROR" ? " r-error" : ""),
      style: `left:${left}%;width:${width}%`, title: r.facts });
    box.append(h("div", { class: "wf-row" + (flagged[r.span_id] ? " flagged" : ""), "data-span": r.span_id,
        title: r.facts, onclick: () => select(r.span_id) },
      h("div", { class: "wf-name", style: `padding-left:${r.depth * 14}px` }, (flagged[r.span_id] ? "⚠ " : "") + r.name),
      h("div", { class: "wf-track" }, bar), h("div", { class: "wf-dur" }, ms(r.duration_ms))));
  }
  box.prepend(h("div", { class: "wf-axis" }, h("span", {}, "0"), h("span", {}, ms(total / 2)), h("span", {}, ms(total))));
  return box;
}

function graphView(graph, select) {
  const W = 190, H = 46, HG = 22, VG = 50, PAD = 16, SIDE = 110;
  const layers = [];
  for (const n of graph.nodes) (layers[n.column] = layers[n.column] || []).push(n);
  const widest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const inner = widest * W + (widest - 1) * HG;
  const width = PAD * 2 + SIDE * 2 + inner;
  const height = PAD * 2 + layers.length * H + Math.max(0, layers.length - 1) * VG;
  const pos = {};
  layers.forEach((layer, i) => {
    if (!layer) return;
    const rowW = layer.length * W + (layer.length - 1) * HG;
    layer.forEach((n, j) => { pos[n.id] = { x: (width - rowW) / 2 + j * (W + HG), y: PAD + i * (H + VG), col: i }; });
  });
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", id: "graph-svg",
    "font-family": "-apple-system, Segoe UI, Helvetica, Arial, sans-serif", "font-size": 11 });
  const defs = s("defs", {});
  for (const [type, color] of Object.entries(EDGE_COLORS))
    defs.append(s("marker", { id: "arrow-" + type, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0 0 L10 5 L0 10 z", fill: color })));
  svg.append(defs);
  const edgeLayer = s("g", { class: "edges" }), labelLayer = s("g", { class: "edge-labels" });
  const labelled = new Set();
  const lanes = { left: 0, right: 0 };
  const fanOut = {}, fanIn = {};
  graph.edges.forEach((e) => { fanOut[e.source] = (fanOut[e.source] || 0) + 1; fanIn[e.target] = (fanIn[e.target] || 0) + 1; });
  const seenOut = {}, seenIn = {};
  graph.edges.forEach((e, i) => {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) return;
    const k = (seenOut[e.source] = (seenOut[e.source] || 0) + 1) - 1, m = (seenIn[e.target] = (seenIn[e.target] || 0) + 1) - 1;
    const spread = (idx, count) => (count > 1 ? (idx / (count - 1) - 0.5) * Math.min(W - 40, count * 14) : 0);
    const x1 = a.x + W / 2 + spread(k, fanOut[e.source]), y1 = a.y + H;
    const x2 = b.x + W / 2 + spread(m, fanIn[e.target]), y2 = b.y;
    let d, lx, ly, anchor = "middle";
    if (b.col - a.col > 1) {  // a long edge goes around the layers it skips, on a side lane
      const side = (lanes.left <= lanes.right) ? "left" : "right";
      const lane = lanes[side]++;
      const reach = (inner / 2 + 24 + lane * 14) / 0.75;  // the curve bulges to 3/4 of its control points
      const sx = width / 2 + (side === "left" ? -1 : 1) * reach;
      const cy1 = y1 + (y2 - y1) * 0.15, cy2 = y2 - (y2 - y1) * 0.15;
      d = `M${x1} ${y1} C${sx} ${cy1}, ${sx} ${cy2}, ${x2} ${y2 - 2}`;
      lx = (x1 + 3 * sx + 3 * sx + x2) / 8 + (side === "left" ? -4 : 4); ly = (y1 + 3 * cy1 + 3 * cy2 + y2) / 8;
      anchor = side === "left" ? "end" : "start";
    } else {
      const dy = Math.max(20, (y2 - y1) / 2);
      d = `M${x1} ${y1} C${x1} ${y1 + dy}, ${x2} ${y2 - dy}, ${x2} ${y2 - 2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2;
    }
    const color = EDGE_COLORS[e.type] || "#6e7781";
    const title = `${e.label}${e.rebuilt ? " (rebuilt from fingerprints)" : ""}${e.coverage !== undefined && e.coverage !== null ? ` · coverage ${num(e.coverage)}` : ""}`;
    edgeLayer.append(s("path", { class: "edge", "data-type": e.type, "data-source": e.source, "data-target": e.target, d,
      fill: "none", stroke: color, "stroke-width": 1.4, "stroke-opacity": 0.8, "stroke-dasharray": e.rebuilt ? "4 3" : null,
      "marker-end": `url(#arrow-${EDGE_COLORS[e.type] ? e.type : "retrieved"})` }, s("title", {}, title)));
    const key = e.target + "|" + e.type;
    if (e.type !== "retrieved" && e.type !== "output" && !labelled.has(key)) {
      labelled.add(key);
      labelLayer.append(s("text", { x: lx, y: ly + 3, "text-anchor": anchor, fill: color, "font-size": 9.5, stroke: "#fff",
        "stroke-width": 3, "paint-order": "stroke", class: "edge-label" }, e.label));
    }
  });
  svg.append(edgeLayer);
  const nodeLayer = s("g", { class: "nodes" });
  for (const n of graph.nodes) {
    const p = pos[n.id];
    const flagged = (n.flagged || []).length > 0;
    const unused = n.kind === "document" && n.unused;
    const partly = n.kind === "document" && !unused && (n.unused_by || []).length > 0;
    const stroke = n.likely_cause || flagged || n.error ? "#cf222e" : "#8c959f";
    const tip = [n.label, n.facts || "", n.date ? "indexed " + n.date : "", unused ? "retrieved, used by no step" : "",
      partly ? "not in the input of: " + n.unused_by.join(", ") : "", ...(n.flagged || []).map((m) => "⚠ " + m)]
      .filter(Boolean).join("\n");
    const g = s("g", { class: `node node-${n.kind}` + (n.likely_cause ? " likely-cause" : "") + (unused ? " unused" : ""),
      "data-node": n.id, "data-span": n.span_id || "", transform: `translate(${p.x},${p.y})`, style: "cursor:pointer",
      onclick: () => select(n.span_id, n) }, s("title", {}, tip));
    g.append(s("rect", { width: W, height: H, rx: n.kind === "document" ? 2 : 8, fill: unused ? "#f6f8fa" : ROLE_FILL[n.role] || "#fff",
      stroke, "stroke-width": n.likely_cause ? 3 : flagged ? 2 : 1, "stroke-dasharray": unused ? "4 3" : null }));
    const kind = n.kind === "document" ? "doc" + (n.date ? " " + n.date : "") + (unused ? " · unused" : partly ? " · partly unused" : "")
      : n.kind === "answer" ? "answer" + (n.feedback && n.feedback.length ? " · feedback " + n.feedback.map((f) => num(f.score)).join(", ") : "")
      : n.role;
    g.append(s("text", { x: 8, y: 15, fill: unused ? "#9a6700" : "#656d76", "font-size": 9.5 }, kind));
    g.append(s("text", { x: 8, y: 32, fill: "#1f2328", "font-weight": 600 }, cut(n.label, 27)));
    if (n.likely_cause) g.append(s("text", { x: W - 6, y: 15, "text-anchor": "end", fill: "#cf222e", "font-size": 9.5, "font-weight": 700 }, "likely cause"));
    else if (flagged) g.append(s("text", { x: W - 8, y: 16, "text-anchor": "end", fill: "#cf222e", "font-weight": 700 }, "⚠"));
    nodeLayer.append(g);
  }
  svg.append(nodeLayer, labelLayer);
  return svg;
}

function linkedText(l) {
  const bits = [];
  if (l.document_id) bits.push(l.document_id + (l.score !== null && l.score !== undefined ? ` (${num(l.score)})` : ""));
  bits.push(`from ${l.step || short(l.span_id)} · ${l.link_type || "link"}`);
  return bits.join(" ");
}

function explainView(ex, select) {
  const bySpan = {};
  for (const a of ex.anomalies || []) if (a.span_id) (bySpan[a.span_id] = bySpan[a.span_id] || []).push(a);
  const causeId = ex.likely_cause ? ex.likely_cause.span_id : null;
  const items = (ex.steps || []).map((st, i) => {
    const io = [];
    const inp = st.inputs || {}, out = st.outputs || {};
    if (inp.query) io.push("query: " + cut(inp.query, 90));
    if (inp.linked_from) io.push("in: " + inp.linked_from.map(linkedText).join("; "));
    if (inp.retrieved_but_unused) io.push("retrieved but unused: " + inp.retrieved_but_unused.join(", "));
    if (out.documents) io.push("out: " + out.documents.map((d) => `${d.id} ${num(d.score)}` +
      (d.metadata && (d.metadata.indexed_at || d.metadata.updated_at) ? ` (${d.metadata.indexed_at || d.metadata.updated_at})` : "")).join(", "));
    if (out.status) io.push("status: " + out.status);
    if (out.finish_reasons) io.push("finish: " + out.finish_reasons.join(", "));
    if (out.error) io.push("error: " + out.error);
    const via = i === 0 ? "the final output" : st.reached_via === "link" ? "causal link" : "child step";
    return h("li", { class: st.span_id === causeId ? "cause-step" : null, "data-span": st.span_id, onclick: () => select(st.span_id) },
      h("div", {}, h("b", {}, st.name), " ", h("span", { class: "badge" }, st.role), " ", h("span", { class: "muted" }, ms(st.duration_ms)),
        " ", h("span", { class: "via" }, "← " + via)),
      io.map((t) => h("div", { class: "io" }, cut(t, 260))),
      (bySpan[st.span_id] || []).map((a) => h("div", {}, h("span", { class: "badge " + a.severity }, a.severity), a.message)));
  });
  const general = (ex.anomalies || []).filter((a) => !a.span_id).map((a) =>
    h("div", {}, h("span", { class: "badge " + a.severity }, a.severity), a.message));
  return h("div", { id: "explain" }, general, h("ol", { class: "walk" }, items));
}

function feedbackForm(tr, steps, enabled, onDone) {
  const status = h("span", { id: "fb-status", class: "muted" });
  const reason = h("input", { type: "text", id: "fb-reason", placeholder: "reason (optional), e.g. outdated price" });
  const step = h("select", { id: "fb-step", title: "the step you blame (optional)" }, h("option", { value: "" }, "step to blame (optional)"),
    ...steps.map((n) => h("option", { value: n }, n)));
  const send = async (score) => {
    status.className = "muted"; status.textContent = "recording…";
    try {
      const body = await api(`/api/traces/${tr.trace_id}/feedback`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ score, reason: reason.value, step_blamed: step.value }) });
      status.className = "ok-text";
      status.textContent = `recorded ${body.recorded.key} feedback ${num(body.recorded.score)} (span ${body.recorded.span_id})`;
      onDone(body);
    } catch (err) { status.className = "error-text"; status.textContent = "not recorded: " + err.message; }
  };
  const up = h("button", { id: "fb-up", onclick: () => send(1), disabled: !enabled }, "▲ Good");
  const down = h("button", { id: "fb-down", onclick: () => send(0), disabled: !enabled }, "▼ Bad");
  return h("div", {}, h("div", { id: "feedback-form" }, up, down, reason, step),
    h("div", {}, enabled ? status : h("span", { class: "muted" }, "feedback cannot be recorded into this store from the UI")));
}

function feedbackList(items) {
  return h("ul", { class: "fb-list", id: "feedback-list" }, items.length ? items.map((f) => h("li", {},
    feedbackCell(f.score), " ", h("span", { class: "badge" }, f.key), f.reason ? ` “${f.reason}”` : "",
    f.step_blamed ? ` · blames ${f.step_blamed}` : "", h("span", { class: "muted" }, " " + when(f.time)))) :
    h("li", { class: "muted" }, "no feedback yet"));
}

async function tracePage(id) {
  main.replaceChildren(h("p", { class: "muted" }, "Loading trace…"));
  let data;
  try { data = await load("/api/traces/" + encodeURIComponent(id)); } catch (err) { main.replaceChildren(errorBox(err)); return; }
  const tr = data.trace, ex = data.explain;
  const spans = spanIndex(tr);
  const flagged = {};
  for (const a of ex.anomalies || []) if (a.span_id && a.severity !== "info") flagged[a.span_id] = true;
  const attrs = h("section", { id: "attributes" }, h("h2", {}, "Attributes"), h("p", { class: "muted" }, "Click a span, a graph node or a step to see its attributes."));
  const select = (spanId, node) => {
    document.querySelectorAll(".wf-row.selected").forEach((e) => e.classList.remove("selected"));
    if (node && node.kind === "document") {
      attributesPanel(attrs, "Document " + (node.document_id || ""), { score: node.score, rank: node.rank, ...(node.metadata || {}) },
        h("p", { class: "muted" }, (node.flagged || []).join("; ") || (node.unused ? "retrieved, used by no step" : "")));
      return;
    }
    const span = spans[spanId];
    if (!span) return;
    const row = document.querySelector(`.wf-row[data-span="${spanId}"]`);
    if (row) row.classList.add("selected");
    const extra = h("div", {}, h("p", { class: "mono muted" }, `span ${span.span_id} · ${span.kind} · ${span.status}` +
        (span.status_message ? " · " + span.status_message : "") + ` · ${ms(span.duration_ms)}`),
      (span.links || []).length ? h("p", {}, h("b", {}, "links: "), span.links.map((l) =>
        `${l.link_type || "link"} ← ${l.name || short(l.span_id)}${l.document_id ? " (" + l.document_id + ")" : ""}`).join("; ")) : null,
      (span.events || []).length ? h("p", {}, h("b", {}, "events: "), span.events.map((e) => e.name).join(", ")) : null);
    attributesPanel(attrs, span.name, span.attributes, extra);
  };
  const cause = ex.likely_cause;
  const causeBox = cause ? h("div", { class: "cause", id: "likely-cause" }, "Likely cause: ", h("b", {}, cause.step || "trace"), ": ", cause.message,
      (cause.also || []).length ? h("div", {}, "also: " + cause.also.join("; ")) : null)
    : h("div", { class: "card muted", id: "likely-cause" }, "No likely cause: explain flagged nothing on the answer's causal path.");
  const fbList = feedbackList([...(tr.feedback || [])].reverse());
  const stepNames = data.waterfall.filter((r) => r.depth > 0 && r.role !== "feedback").map((r) => r.name);
  const form = feedbackForm(tr, [...new Set(stepNames)], data.feedback_enabled, (body) => {
    fbList.replaceWith(feedbackList(body.feedback));
    setTimeout(() => { const r = route(); if (r.page === "trace" && r.id === id) render(); }, 600);
  });
  const head = h("section", { class: "trace-head" },
    h("div", { class: "row" }, h("div", { class: "grow" },
        h("h1", {}, tr.root_name || "trace", " ", h("span", { class: "mono muted" }, tr.trace_id)),
        h("div", { class: "meta muted" }, h("span", {}, when(tr.start_time)), h("span", {}, ms(tr.duration_ms)), h("span", {}, tr.span_count + " spans"),
          tr.error_count ? h("span", { class: "error-text" }, tr.error_count + " errors") : null),
        ex.input ? h("p", { class: "question" }, "“" + ex.input + "”") : null),
      h("div", { class: "grow" }, h("h2", {}, "Feedback"), form, fbList)));
  const graphBox = h("div", { id: "causal-graph" }, data.graph.nodes.length ? graphView(data.graph, select)
    : h("p", { class: "muted" }, "No causal links or retrieved documents in this trace."));
  const legend = h("div", { class: "legend" }, ...Object.entries(EDGE_COLORS).filter(([t]) => t !== "output").map(([t, c]) =>
    h("span", {}, h("i", { style: `background:${c}` }), data.graph.legend[t] || t)),
    h("span", {}, " · dashed box: document no step used · red: flagged by explain"));
  setTimeout(() => select(cause && cause.span_id ? cause.span_id : (tr.roots[0] || {}).span_id), 0);
  main.replaceChildren(head, causeBox,
    h("div", { class: "row" },
      h("section", { class: "grow", style: "flex:3" }, h("h2", {}, "Spans"), waterfallView(data.waterfall, flagged, select)),
      h("div", { class: "grow", style: "flex:2" }, attrs)),
    h("div", { class: "row" },
      h("section", { class: "grow", style: "flex:3" }, h("h2", {}, "Causal graph: documents → steps → answer"),
        data.graph.has_links ? null : h("p", { class: "muted" }, "This trace has no causal links (content fingerprints did not match, or it ran without the causal registry)."),
        graphBox, legend),
      h("section", { class: "grow", style: "flex:2" }, h("h2", {}, "Explain: from the answer back to its inputs"), explainView(ex, select))));
}

// -- blame ----------------------------------------------------------------------------

function bar(kind, rate, count, total) {
  return h("div", { class: "bar " + kind, title: `${count} of ${total}` }, h("span", { style: `width:${Math.round((rate || 0) * 100)}%` }),
    h("em", {}, `${pct(rate)} (${count}/${total})`));
}

async function blamePage(q) {
  const filter = q.get("q") || "", threshold = q.get("threshold") || "0.5";
  const input = h("input", { type: "text", id: "filter", value: filter, placeholder: "only traces matching (optional)" });
  const thr = h("input", { type: "number", id: "threshold", value: threshold, step: "0.1", min: "0", max: "1", style: "width:80px" });
  const apply = () => go("blame", { q: input.value.trim(), threshold: thr.value !== "0.5" ? thr.value : "" });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });
  const controls = h("section", {}, h("div", { class: "controls" }, input, "negative below", thr, h("button", { class: "primary", onclick: apply }, "Rank")),
    h("div", { class: "muted" }, "What separates negatively judged traces from the others: each finding's share of negative vs positive traces, with a Fisher test adjusted for the number of candidates."));
  main.replaceChildren(controls, h("p", { class: "muted" }, "Ranking…"));
  let report;
  try { report = await load("/api/blame?" + params({ q: filter, threshold })); } catch (err) { main.replaceChildren(controls, errorBox(err)); return; }
  const rows = report.findings.map((f, i) => h("tr", { class: "finding" },
    h("td", { class: "num" }, i + 1), h("td", {}, f.description, (f.same_traces_as || []).length ? h("div", { class: "muted" }, "= " + f.same_traces_as.join("; ")) : null),
    h("td", {}, f.step || "–"),
    h("td", {}, bar("neg", f.negative_rate, f.negative_count, report.negative)),
    h("td", {}, bar("pos", f.positive_rate, f.positive_count, report.positive)),
    h("td", { class: "num mono" }, f.p_adjusted !== undefined ? f.p_adjusted.toExponential(1) : "–"),
    h("td", { class: "examples" }, (f.example_traces || []).map((t) => h("a", { href: "#/trace/" + t, class: "mono" }, short(t).slice(0, 8))))));
  main.replaceChildren(controls, h("section", {},
    h("p", { id: "blame-summary" }, `${report.negative} negative and ${report.positive} positive traces (feedback < ${report.threshold} is negative)`),
    report.note ? h("p", { class: "muted" }, report.note) : null,
    rows.length ? h("table", { id: "blame" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Finding"), h("th", {}, "Step"),
      h("th", {}, "Negative traces"), h("th", {}, "Positive traces"), h("th", {}, "p (adj.)"), h("th", {}, "Examples"))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "Nothing separates them (or there is not enough feedback).")));
}

// -- prompts --------------------------------------------------------------------------

function scoreColor(score) {
  const t = Math.max(0, Math.min(1, score));
  return `hsl(${Math.round(t * 120)}, 62%, ${t === 0.5 ? 60 : 45}%)`;
}

function distributionPlot(rows) {
  const W = 520, rowH = 26, L = 150, PAD = 6;
  const maxTraces = Math.max(1, ...rows.map((r) => r.traces));
  const svg = s("svg", { width: W + L + 90, height: PAD * 2 + rows.length * rowH + 18, class: "dist", role: "img", "font-size": 11,
    "font-family": "-apple-system, Segoe UI, Helvetica, Arial, sans-serif" });
  rows.forEach((r, i) => {
    const y = PAD + i * rowH;
    svg.append(s("text", { x: 0, y: y + 15, fill: "#1f2328", class: "mono" }, cut(r.fingerprint, 20)));
    let x = L;
    for (const [score, count] of r.score_distribution || []) {
      const w = (count / maxTraces) * W;
      svg.append(s("rect", { x, y: y + 4, width: Math.max(1, w - 1), height: rowH - 10, fill: scoreColor(score) },
        s("title", {}, `score ${score}: ${count} trace(s)`)));
      if (w > 22) svg.append(s("text", { x: x + w / 2, y: y + 16, "text-anchor": "middle", fill: "#fff", "font-size": 10 }, count));
      x += w;
    }
    svg.append(s("text", { x: x + 6, y: y + 15, fill: "#656d76" }, `mean ${num(r.mean_score)} · ${pct(r.negative_rate)} neg`));
  });
  const ly = PAD + rows.length * rowH + 12;
  [[0, "0 (bad)"], [0.5, "0.5"], [1, "1 (good)"]].forEach(([sc, label], i) => {
    svg.append(s("rect", { x: L + i * 90, y: ly - 9, width: 10, height: 10, fill: scoreColor(sc) }),
      s("text", { x: L + i * 90 + 14, y: ly, fill: "#656d76" }, "score " + label));
  });
  return svg;
}

async function promptsPage(q) {
  const threshold = q.get("threshold") || "0.5", filter = q.get("q") || "";
  main.replaceChildren(h("p", { class: "muted" }, "Comparing prompt versions…"));
  let data;
  try { data = await load("/api/prompts?" + params({ q: filter, threshold })); } catch (err) { main.replaceChildren(errorBox(err)); return; }
  const bySteps = {};
  for (const r of data.rows) (bySteps[r.step] = bySteps[r.step] || []).push(r);
  const sections = Object.entries(bySteps).map(([step, rows]) => h("section", { class: "prompt-step" },
    h("h2", {}, step, " ", h("span", { class: "muted" }, `${rows.length} version${rows.length > 1 ? "s" : ""}`)),
    distributionPlot(rows),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Version", "Basis", "Models", "Traces", "Mean score", "Negative", "p vs best", "Tokens in/out", "Preview"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", { class: "mono" }, r.fingerprint, r.best_in_step ? h("span", { class: "badge info" }, "best") : null),
        h("td", {}, r.basis), h("td", {}, (r.models || []).join(", ")), h("td", { class: "num" }, r.traces),
        h("td", { class: "num" }, num(r.mean_score)), h("td", { class: "num" }, pct(r.negative_rate)),
        h("td", { class: "num" }, r.p_value_vs_best === null ? "–" : num(r.p_value_vs_best, 4)),
        h("td", { class: "num" }, `${num(r.mean_input_tokens, 1)} / ${num(r.mean_output_tokens, 1)}`),
        h("td", { class: "muted" }, cut(r.preview || "", 80))))))));
  main.replaceChildren(h("section", {}, h("p", { id: "prompts-summary" },
    `Feedback per prompt version (a template hash, or the system prompt's), per step; negative below ${data.threshold}.`)),
    ...(sections.length ? sections : [h("section", { class: "muted" }, "No generations with feedback yet.")]));
}

// -- router ---------------------------------------------------------------------------

async function render() {
  navigation += 1;
  const r = route();
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active",
    a.dataset.route === r.page || (r.page === "trace" && a.dataset.route === "traces")));
  if (!info) {
    try { info = await api("/api/info"); const el = document.getElementById("store"); el.textContent = info.store.split(/[\\/]/).pop(); el.title = info.store; }
    catch (err) { main.replaceChildren(errorBox(err)); return; }
  }
  if (r.page === "trace" && r.id) return tracePage(r.id);
  if (r.page === "blame") return blamePage(r.q);
  if (r.page === "prompts") return promptsPage(r.q);
  return tracesPage(r.q);
}

window.addEventListener("hashchange", render);
render();
