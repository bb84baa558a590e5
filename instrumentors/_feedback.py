"""``record_feedback``: a user's judgement as a span inside the judged trace.

Why a span and not a side table: every OTLP backend then has it next to the spans it
judges, so Tempo's ``{ .retrieval.top_score < 0.6 } && { .feedback.score < 0.5 }``
works with no extra system, and the embedded store derives its ``feedback`` table from
the very same span. It works after the trace ended and from another process: all it
needs is the trace id the web client sends back.

Parent of the feedback span, in order: the given span (``span_id`` or the span of a
given SpanContext), else the trace's root span as found in the embedded store
(flushing this process's pending spans first if needed), else a synthetic remote parent
carrying the trace id -- the span is then still in the right trace, and the store shows
it under the root.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from . import _config
from . import _semconv as sc
from ._spans import report_internal_error
from ._version import __version__

MAX_REASON_LENGTH = 4096
MAX_KEY_LENGTH = 128
MAX_STEP_LENGTH = 256
MAX_EXTRA_ATTRIBUTES = 64
_RESERVED_PREFIXES = ("feedback.", sc.SPAN_KIND)
_MAX_PRIVATE_PROVIDERS = 4

_private_providers: dict = {}
_private_lock = threading.Lock()


@dataclass(frozen=True)
class FeedbackRecord:
    """What :func:`record_feedback` wrote (ids as hex)."""

    trace_id: str
    span_id: str  # the feedback span
    parent_span_id: str
    parent_source: str  # "span" (given) | "root" (found) | "synthetic" (root unknown)
    target_span_id: Optional[str]
    score: float
    key: str
    reason: Optional[str]
    step_blamed: Optional[str]


# ---------------------------------------------------------------------------------------
# validation (all of it happens before anything is written)
# ---------------------------------------------------------------------------------------


def _hex_id(value: Any, digits: int, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be {digits} hex digits, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("0x"):
            text = text[2:]
        if len(text) != digits or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"{what} must be {digits} hex digits, got {value!r}")
        number = int(text, 16)
    else:
        raise ValueError(f"{what} must be a {digits}-digit hex string, not {type(value).__name__}")
    if not 0 < number < (1 << (4 * digits)):
        raise ValueError(f"{what} {value!r} is not a valid id (zero or out of range)")
    return number


def _target(trace_id: Any) -> tuple:
    """(trace id int, judged span id int or None)."""
    if isinstance(trace_id, SpanContext):
        if not trace_id.is_valid:
            raise ValueError("the SpanContext given as trace_id is not valid")
        return trace_id.trace_id, trace_id.span_id
    if hasattr(trace_id, "get_span_context") and not isinstance(trace_id, (str, int)):
        ctx = trace_id.get_span_context()
        if ctx is None or not ctx.is_valid:
            raise ValueError("the span given as trace_id has no valid context")
        return ctx.trace_id, ctx.span_id
    if isinstance(trace_id, str):
        parts = trace_id.strip().split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:  # a W3C traceparent
            return _hex_id(parts[1], 32, "trace_id"), _hex_id(parts[2], 16, "traceparent span id")
    return _hex_id(trace_id, 32, "trace_id"), None


def _check_text(value: Any, what: str, limit: int, allow_none: bool = True) -> Optional[str]:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; at most {limit} are accepted")
    return value


def _check_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ValueError(f"score must be a number (e.g. 1.0 thumbs up, 0.0 thumbs down), not {score!r}")
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"score must be a finite number, not {score!r}")
    return value


def _valid_attribute_value(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, (list, tuple)):
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        return len(kinds) <= 1 and all(isinstance(v, (str, bool, int, float)) for v in value)
    return False


def _check_attributes(attributes: Optional[Mapping[str, Any]]) -> dict:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise ValueError(f"attributes must be a mapping, not {type(attributes).__name__}")
    if len(attributes) > MAX_EXTRA_ATTRIBUTES:
        raise ValueError(f"at most {MAX_EXTRA_ATTRIBUTES} extra attributes are accepted")
    out = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"attribute names must be non-empty strings, not {key!r}")
        if key.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"attribute {key!r} is reserved; use the record_feedback arguments instead")
        if not _valid_attribute_value(value):
            raise ValueError(f"attribute {key!r}: {value!r} is not a valid OpenTelemetry attribute value")
        if isinstance(value, str) and len(value) > MAX_REASON_LENGTH:
            raise ValueError(f"attribute {key!r} is longer than {MAX_REASON_LENGTH} characters")
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


# ---------------------------------------------------------------------------------------
# where the span goes
# ---------------------------------------------------------------------------------------


def _is_sdk_provider(provider: Any) -> bool:
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return False
    return isinstance(provider, TracerProvider)


def _store_provider(store_path: str):
    """A private provider writing straight into the store: used when the app configured
    no SDK provider (a feedback endpoint in another process, the CLI)."""
    path = store_path if _is_url(store_path) else os.path.abspath(store_path)
    with _private_lock:
        provider = _private_providers.get(path)
        if provider is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            from .store.clickhouse_exporter import span_exporter_for

            if len(_private_providers) >= _MAX_PRIVATE_PROVIDERS:
                oldest = next(iter(_private_providers))
                _private_providers.pop(oldest).shutdown()
            provider = TracerProvider(resource=Resource.create())
            provider.add_span_processor(SimpleSpanProcessor(span_exporter_for(path)))
            _private_providers[path] = provider
        return provider


def _is_url(store: str) -> bool:
    """A store URL (``clickhouse://``, ``chdb://``, ``sqlite://``) rather than a file path."""
    return "://" in str(store)


def _root_from_store(store_path: str, trace_hex: str) -> Optional[int]:
    if not _is_url(store_path) and not os.path.exists(store_path):
        return None
    from .store.schema import StoreError
    from .store.tracestore import TraceStore

    try:
        store = TraceStore(store_path, timeout=2.0)
    except StoreError:  # still being created by the first export, or not a store: no root known
        return None
    try:
        root = store.root_span_id(trace_hex)
    finally:
        store.close()
    return int(root, 16) if root else None


def _find_root(provider: Any, store_path: str, trace_hex: str) -> Optional[int]:
    if not _is_url(store_path) and not os.path.exists(store_path):
        return None  # spans go elsewhere (e.g. OTLP only): no lookup, and no flush to wait for
    try:
        root = _root_from_store(store_path, trace_hex)
        if root is None and _is_sdk_provider(provider):
            # The trace may have just ended with its spans still queued in a batch
            # processor: flush them, then look again.
            provider.force_flush(timeout_millis=1000)
            root = _root_from_store(store_path, trace_hex)
        return root
    except Exception as exc:  # noqa: BLE001 - an unreadable store only costs the real parent
        report_internal_error("record_feedback root lookup", exc)
        return None


def record_feedback(
    trace_id: Union[str, int, SpanContext, Any],
    score: float,
    reason: Optional[str] = None,
    step_blamed: Optional[str] = None,
    key: str = "user",
    span_id: Union[str, int, None] = None,
    attributes: Optional[Mapping[str, Any]] = None,
    *,
    tracer_provider: Optional[trace.TracerProvider] = None,
    store_path: Optional[str] = None,
) -> FeedbackRecord:
    """Attach a judgement (``score``, e.g. 1.0 up / 0.0 down) to a trace.

    ``trace_id``: 32 hex digits (what :func:`instrumentors.current_trace_id` gave the
    client), a W3C traceparent, a ``SpanContext`` or a span (then that span is the one
    judged). ``span_id``: judge that span instead of the trace's root. ``reason`` and
    ``step_blamed`` (e.g. ``"retrieval"``) are free text from the user; the redaction
    hook applies to ``reason``. ``key`` separates sources ("user", "llm_judge"...).

    Raises ``ValueError`` for a malformed id, a non-finite score, an oversized reason or
    invalid attributes -- before anything is written. With no SDK tracer provider
    installed, the span is written straight into the embedded store (``store_path`` or
    ``INSTRUMENTORS_STORE_PATH``).
    """
    trace_int, target = _target(trace_id)
    if span_id is not None:
        target = _hex_id(span_id, 16, "span_id")
    value = _check_score(score)
    reason = _check_text(reason, "reason", MAX_REASON_LENGTH)
    step_blamed = _check_text(step_blamed, "step_blamed", MAX_STEP_LENGTH)
    key = _check_text(key, "key", MAX_KEY_LENGTH, allow_none=False)  # type: ignore[assignment]
    extra = _check_attributes(attributes)

    cfg = _config.get_config()
    if reason is not None and cfg.redact is not None:
        try:
            redacted = cfg.redact(reason)
            reason = redacted if isinstance(redacted, str) else str(redacted)
        except Exception:  # noqa: BLE001 - a broken redactor must not leak the text
            reason = "[redaction failed]"
    path = os.fspath(store_path) if store_path is not None else (cfg.store_url or cfg.store_path)
    provider = tracer_provider
    if provider is None:
        provider = trace.get_tracer_provider()
        if not _is_sdk_provider(provider):
            provider = _store_provider(path)

    trace_hex = format(trace_int, "032x")
    source = "span"
    parent = target
    if parent is None:
        parent = _find_root(provider, path, trace_hex)
        source = "root"
        if parent is None:
            parent = random.getrandbits(64) or 1
            source = "synthetic"

    attrs: dict = dict(extra)
    attrs.update({
        sc.SPAN_KIND: sc.KIND_FEEDBACK,
        sc.FEEDBACK_SCORE: value,
        sc.FEEDBACK_KEY: key,
    })
    if reason is not None:
        attrs[sc.FEEDBACK_REASON] = reason
    if step_blamed is not None:
        attrs[sc.FEEDBACK_STEP_BLAMED] = step_blamed
    target_hex = format(parent, "016x") if source != "synthetic" else None
    if target_hex is not None:
        attrs[sc.FEEDBACK_TARGET_SPAN_ID] = target_hex

    parent_ctx = SpanContext(trace_int, parent, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(parent_ctx))
    tracer = provider.get_tracer("instrumentors.feedback", __version__)
    now = time.time_ns()
    span = tracer.start_span("feedback", context=context, kind=SpanKind.INTERNAL, attributes=attrs, start_time=now)
    span.end(end_time=now)
    ctx = span.get_span_context()
    return FeedbackRecord(
        trace_id=trace_hex,
        span_id=format(ctx.span_id, "016x") if ctx.is_valid else "",
        parent_span_id=format(parent, "016x"),
        parent_source=source,
        target_span_id=target_hex,
        score=value,
        key=key,
        reason=reason,
        step_blamed=step_blamed,
    )


__all__ = ["FeedbackRecord", "record_feedback"]
