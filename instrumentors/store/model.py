"""The shape of stored traces as every backend hands them over: trace ids, times, the
span / feedback / trace-meta dicts and the trace summary a query returns.

Backends (``sqlite_reader``, ``clickhouse_reader``) build these dicts with the helpers
here, so the analyses (explain, blame, prompts), the CLI and the web UI see the same
data whichever engine answered, and a test can compare two engines' answers with ``==``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence, Union

from .. import _semconv as sc
from .analysis import input_query
from .errors import StoreError

TimeLike = Union[datetime, float, int, None]

#: attributes every trace summary carries (None when absent).
SUMMARY_KEYS = ("retrieval.top_score", "input.query", "gen_ai.request.model",
                "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


class TraceNotFound(StoreError, KeyError):
    """No trace with that id (or prefix) in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "trace not found"


def iso_time(ns: Optional[int]) -> Optional[str]:
    if ns is None or ns <= 0 or ns >= 1 << 62:
        return None
    dt = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_ns(value: TimeLike) -> Optional[int]:
    """Epoch nanoseconds, clamped to 64-bit integers (``since=year 2999`` is "nothing
    yet", not an OverflowError)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        ns = int(value.timestamp() * 1e9)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        ns = int(value * 1e9)
    else:
        raise ValueError(f"expected a datetime or epoch seconds, not {value!r}")
    return max(-(2 ** 63) + 1, min(ns, 2 ** 63 - 1))


def normalize_trace_id(value: Any) -> str:
    """A trace id as lower-case hex: accepts 32 hex digits, ``0x...``, a W3C
    ``traceparent`` or a prefix of at least 4 hex digits (for the CLI)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, "032x")
    if not isinstance(value, str):
        raise ValueError(f"trace id must be a hex string, not {type(value).__name__}")
    text = value.strip().lower()
    parts = text.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        text = parts[1]
    if text.startswith("0x"):
        text = text[2:]
    if not (4 <= len(text) <= 32) or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a trace id: {value!r} (expected 32 hex digits, or a unique prefix of 4 or more)")
    return text


def span_record(span_id: str, parent_span_id: Optional[str], parent_remote: bool, name: str, kind: str,
                start_ns: int, end_ns: int, status: str, status_message: Optional[str], scope: Optional[str],
                attributes: dict) -> dict:
    """One span as ``load()``/``query(level="span")`` return it (``links``/``events`` added
    by the loader)."""
    return {
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "parent_remote": bool(parent_remote),
        "name": name,
        "kind": kind,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "start_time": iso_time(start_ns),
        "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        "status": status,
        "status_message": status_message,
        "scope": scope,
        "attributes": attributes,
    }


def feedback_record(trace_id: str, span_id: str, target_span_id: Optional[str], key: str, score: float,
                    reason: Optional[str], step_blamed: Optional[str], time_ns: int, attributes: dict) -> dict:
    return {
        "trace_id": trace_id, "span_id": span_id, "target_span_id": target_span_id, "key": key, "score": score,
        "reason": reason, "step_blamed": step_blamed, "time": iso_time(time_ns), "time_ns": time_ns,
        "attributes": attributes,
    }


def trace_meta(trace_id: str, start_ns: Optional[int], end_ns: Optional[int], span_count: int, error_count: int,
               root_span_id: Optional[str], root_name: Optional[str]) -> dict:
    """A trace's facts; ``start_ns`` None for a trace known only from its feedback (its
    spans went elsewhere): no start, end or duration then."""
    has_spans = start_ns is not None
    return {
        "trace_id": trace_id,
        "root_name": root_name,
        "root_span_id": root_span_id,
        "start_ns": start_ns if has_spans else None,
        "end_ns": end_ns if has_spans else None,
        "start_time": iso_time(start_ns) if has_spans else None,
        "duration_ms": round((end_ns - start_ns) / 1e6, 3) if has_spans else None,
        "span_count": span_count,
        "error_count": error_count,
        "error": error_count > 0,
    }


def summarize(meta: Mapping, spans: Sequence[dict], feedback: Sequence[dict], extra_keys: Sequence[str] = ()) -> dict:
    """One trace summary (see :meth:`TraceStore.query`)."""
    out = dict(meta)
    scores = [f["score"] for f in feedback]
    lowest = min(feedback, key=lambda f: f["score"]) if feedback else None
    if lowest is None:  # feedback.score set by hand on a span (no record_feedback): what the filter saw
        hand = [v for s in spans if (v := s["attributes"].get(sc.FEEDBACK_SCORE)) is not None
                and isinstance(v, (int, float)) and not isinstance(v, bool)]
        out["feedback.score"] = min(hand) if hand else None
    else:
        out["feedback.score"] = lowest["score"]
    out["feedback.count"] = len(scores)
    out["feedback.reason"] = lowest["reason"] if lowest else None
    out["feedback.step_blamed"] = lowest["step_blamed"] if lowest else None
    top_scores = []
    model = None
    tokens_in = tokens_out = None
    for span in spans:
        attrs = span["attributes"]
        value = attrs.get(sc.RETRIEVAL_TOP_SCORE)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            top_scores.append(value)
        if model is None and isinstance(attrs.get(sc.GEN_AI_REQUEST_MODEL), str):
            model = attrs[sc.GEN_AI_REQUEST_MODEL]
        for key, current in ((sc.GEN_AI_USAGE_INPUT_TOKENS, "in"), (sc.GEN_AI_USAGE_OUTPUT_TOKENS, "out")):
            tokens = attrs.get(key)
            if isinstance(tokens, int) and not isinstance(tokens, bool):
                if current == "in":
                    tokens_in = (tokens_in or 0) + tokens
                else:
                    tokens_out = (tokens_out or 0) + tokens
    out["retrieval.top_score"] = min(top_scores) if top_scores else None
    out["input.query"] = input_query(spans, out.get("root_span_id"))
    out[sc.GEN_AI_REQUEST_MODEL] = model
    out[sc.GEN_AI_USAGE_INPUT_TOKENS] = tokens_in
    out[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = tokens_out
    for key in extra_keys:
        if key in out:
            continue
        values = [s["attributes"][key] for s in spans if key in s["attributes"]]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[key] = min(numbers) if numbers else (values[0] if values else None)
    return out
