"""Helpers shared by explain, blame and compare_prompts: what a stored span *is*
(retriever, LLM, step, feedback), what it took in and gave out, and its causal edges.

They read only what the instrumentors emit (``_semconv`` names), so a span made by any
of our instrumentors, a user step or a hand-written tracer with the seed's attribute
names is understood the same way.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional, Sequence

from .. import _semconv as sc

#: metadata keys that say when a document was indexed or last changed.
DATE_METADATA_KEYS = ("indexed_at", "last_indexed", "updated_at", "last_modified", "modified_at", "modified",
                      "updated", "created_at", "published_at", "date", "timestamp")
FAILED_STATUSES = {"fail", "failed", "failure", "error", "invalid", "rejected"}
TRUNCATED_FINISH = {"length", "max_tokens", "max_output_tokens"}
LLM_OPERATIONS = {sc.OP_CHAT, sc.OP_TEXT_COMPLETION, sc.OP_GENERATE_CONTENT}
#: kept with the span but never indexed nor used as a blame feature: fingerprint digests
#: are for rebuilding links, never for filtering, and a consuming span carries ~150 of them.
NOT_INDEXED = frozenset({sc.CAUSAL_PRODUCED_DIGESTS, sc.CAUSAL_CONSUMED_DIGESTS})


def number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def is_feedback(span: Mapping) -> bool:
    return span["attributes"].get(sc.SPAN_KIND) == sc.KIND_FEEDBACK


def role(span: Mapping) -> str:
    """retriever | llm | embedding | reranker | tool | step | workflow | agent | feedback | span."""
    attrs = span["attributes"]
    kind = attrs.get(sc.SPAN_KIND)
    if isinstance(kind, str) and kind:
        return kind
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
    if operation == sc.OP_RETRIEVAL or sc.RETRIEVAL_TOP_SCORE in attrs or sc.RETRIEVAL_DOCUMENT_COUNT in attrs:
        return sc.KIND_RETRIEVER
    if operation in LLM_OPERATIONS:
        return sc.KIND_LLM
    if operation == sc.OP_EMBEDDINGS:
        return sc.KIND_EMBEDDING
    if operation == sc.OP_EXECUTE_TOOL:
        return sc.KIND_TOOL
    return "span"


def step_label(span: Mapping) -> str:
    """A stable name for "the same step" across traces (blame groups by it)."""
    attrs = span["attributes"]
    name = attrs.get(sc.STEP_NAME)
    return name if isinstance(name, str) and name else span["name"]


def step_labels(spans: Sequence[dict]) -> dict:
    """span id -> step label, made unique within the trace: the second span named
    ``chat gpt-4o`` (the answer generator after a query rewriter on the same model)
    is ``chat gpt-4o #2``, so steps line up across traces of the same pipeline."""
    seen: dict = {}
    out = {}
    for span in sorted(spans, key=lambda s: (s["start_ns"], s["end_ns"])):
        label = step_label(span)
        seen[label] = seen.get(label, 0) + 1
        out[span["span_id"]] = label if seen[label] == 1 else f"{label} #{seen[label]}"
    return out


def tokens(span: Mapping) -> tuple:
    attrs = span["attributes"]
    tin = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS, attrs.get(sc.USAGE_INPUT_TOKENS))
    tout = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, attrs.get(sc.USAGE_OUTPUT_TOKENS))
    return (tin if isinstance(tin, int) else None, tout if isinstance(tout, int) else None)


def finish_reasons(span: Mapping) -> list:
    value = span["attributes"].get(sc.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def documents(span: Mapping) -> list:
    """Documents a retrieval/rerank span returned: ``{"id", "score", "rank", "metadata"}``.

    From ``gen_ai.retrieval.documents`` (JSON) when present, else from the span's
    produced-fingerprint digests (ids, ranks and scores only; no text ever)."""
    attrs = span["attributes"]
    raw = attrs.get(sc.GEN_AI_RETRIEVAL_DOCUMENTS)
    out = []
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            for rank, entry in enumerate(parsed):
                if not (isinstance(entry, dict) or isinstance(entry, Mapping)):  # dict first: ABC checks are slow
                    continue
                meta = entry.get("metadata")
                if not (isinstance(meta, dict) or isinstance(meta, Mapping)):
                    meta = {}
                doc_id = entry.get("id")
                if doc_id is None:
                    for key in ("id", "doc_id", "document_id", "source", "chunk_id"):
                        if meta.get(key) is not None:
                            doc_id = meta[key]
                            break
                out.append({"id": None if doc_id is None else str(doc_id), "score": number(entry.get("score")),
                            "rank": rank, "metadata": dict(meta)})
    if out:
        return out
    produced = attrs.get(sc.CAUSAL_PRODUCED_DIGESTS)
    if produced:
        try:
            from ..causal.digests import parse_produced
        except ImportError:  # pragma: no cover - the causal package is part of us
            return out
        _, outputs = parse_produced(produced)
        for output in outputs:
            if output.kind == "document":
                out.append({"id": output.document_id, "score": output.score, "rank": output.rank, "metadata": {}})
    return out


def parse_date(value: Any) -> Optional[datetime]:
    """ISO dates/datetimes and epoch seconds (or milliseconds) -> aware UTC datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 1e8:
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and 8 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def document_date(doc: Mapping) -> Optional[tuple]:
    """(metadata key, datetime) of the first date-like metadata field of a document."""
    meta = doc.get("metadata") or {}
    for key in DATE_METADATA_KEYS:
        if key in meta:
            parsed = parse_date(meta[key])
            if parsed is not None:
                return key, parsed
    return None


def age_days(when: datetime, reference_ns: Optional[int]) -> Optional[float]:
    if reference_ns is None:
        return None
    return (reference_ns / 1e9 - when.timestamp()) / 86400.0


def causal_links(span: Mapping) -> list:
    """The span's links that are causal (carry our attribution attributes)."""
    out = []
    for link in span.get("links", ()):
        if link.get("link_type") or link.get("source_kind") or link.get("document_id"):
            out.append(link)
    return out


def rebuild_trace_links(spans: Sequence[dict], min_coverage: float = 0.5) -> bool:
    """Rebuild causal links from fingerprint digests for a trace stored without any
    (steps in different processes). Adds them to ``span["links"]`` marked ``rebuilt``;
    returns whether any were added."""
    if any(causal_links(s) for s in spans):
        return False
    if not any(sc.CAUSAL_CONSUMED_DIGESTS in s["attributes"] for s in spans):
        return False
    try:
        from ..causal.digests import SpanDigests, rebuild_links
    except ImportError:  # pragma: no cover
        return False
    trace_id = spans[0].get("trace_id", "t") if spans else "t"
    by_id = {s["span_id"]: s for s in spans}
    digests = [SpanDigests.from_attributes(trace_id, s["span_id"], s["attributes"], s["start_ns"], s["end_ns"])
               for s in spans]
    added = False
    for link in rebuild_links(digests, min_coverage=min_coverage):
        consumer = by_id.get(link.consumer_span_id)
        if consumer is None:
            continue
        consumer.setdefault("links", []).append({
            "trace_id": consumer.get("trace_id"), "span_id": link.producer_span_id,
            "link_type": link.link_type, "document_id": link.document_id, "source_kind": link.source_kind,
            "score": link.score, "coverage": link.coverage, "attributes": link.attributes(), "rebuilt": True,
        })
        added = True
    return added


def trace_score(feedback: Iterable[Mapping], key: Optional[str] = None) -> Optional[float]:
    """The lowest feedback score of a trace (of ``key`` if given): the same rule as the
    trace-level filter ``feedback.score < x``."""
    scores = [f["score"] for f in feedback if key is None or f["key"] == key]
    return min(scores) if scores else None


def children_index(spans: Sequence[dict]) -> dict:
    by_parent: dict = {}
    for span in spans:
        by_parent.setdefault(span.get("parent_span_id"), []).append(span)
    return by_parent


def root_of(spans: Sequence[dict], root_span_id: Optional[str]) -> Optional[dict]:
    ids = {s["span_id"] for s in spans}
    for span in spans:
        if span["span_id"] == root_span_id:
            return span
    candidates = [s for s in spans if not is_feedback(s) and s.get("parent_span_id") not in ids]
    return min(candidates, key=lambda s: s["start_ns"]) if candidates else None


def short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_num(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.2f}"


def input_query(spans: Sequence[dict], root_span_id: Optional[str] = None) -> Optional[str]:
    """The user's question when it was captured: the root's ``input.query`` or input
    value, else any span's ``input.query``, else what the *first* step of the pipeline
    was asked: the earliest retrieval query or LLM user message.

    Why the earliest: the seed's pipeline rewrites the question before it searches, so
    the retrieval query is the rewriter's output, not the user's words; the rewriter's
    own prompt (earlier) holds them."""
    root = next((s for s in spans if s["span_id"] == root_span_id), None)
    candidates = []
    if root is not None:
        candidates += [root["attributes"].get("input.query"), root["attributes"].get(sc.INPUT_VALUE)]
    candidates += [s["attributes"].get("input.query") for s in spans]
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    for span in sorted(spans, key=lambda s: s.get("start_ns") or 0):
        attrs = span["attributes"]
        value = attrs.get(sc.GEN_AI_RETRIEVAL_QUERY_TEXT)
        if isinstance(value, str) and value:
            return value
        value = _last_user_text(attrs.get(sc.GEN_AI_INPUT_MESSAGES))
        if value:
            return value
    return None


def _last_user_text(messages: Any) -> Optional[str]:
    """The text of the last user message in a ``gen_ai.input.messages`` JSON value."""
    if not isinstance(messages, str) or not messages.startswith("["):
        return None
    try:
        parsed = json.loads(messages)
    except ValueError:  # cut by the length limit: not JSON any more
        return None
    for message in reversed(parsed if isinstance(parsed, list) else ()):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = [p.get("content") for p in message.get("parts") or () if isinstance(p, dict)
                     and p.get("type") == "text" and isinstance(p.get("content"), str)]
            if texts:
                return "\n".join(texts)
    return None
