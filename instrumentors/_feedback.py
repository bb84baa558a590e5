"""``record_feedback``: a user's judgement as a span inside the judged trace.

Why a span and not a side table: every OTLP backend then has it next to the spans it
judges, so Tempo's ``{ .retrieval.top_score < 0.6 } && { .feedback.score < 0.5 }``
works with no extra system, and the embedded store derives its ``feedback`` table from
the very same span. It works after the trace ended and from another process: all it
needs is the trace id the web client sends back.

Parent of the feedback span, in order: the given span (``span_id`` or the span of a
given SpanContext), else the trace's root span as found in the embedded store
(flushing this process's pending spans first if needed, also before the store file
exists), else none: the feedback span is then a root-level span *of the judged trace*
(same trace id, no ``feedback.target_span_id``), which is how Phoenix's trace
annotations and LangSmith's trace-level feedback attach a judgement to a whole trace.
It never points at a span that does not exist, so no backend shows it dangling.

Storage is checked, not assumed: when the feedback goes to the embedded store, the
write's result (or the row, after a flush) is verified and :class:`FeedbackNotStored`
is raised if it is not there.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from . import _config, _render
from . import _semconv as sc
from ._spans import report_internal_error
from ._version import __version__

MAX_REASON_LENGTH = 4096
MAX_KEY_LENGTH = 128
MAX_STEP_LENGTH = 256
MAX_EXTRA_ATTRIBUTES = 64
_RESERVED_PREFIXES = ("feedback.", sc.SPAN_KIND)
_MAX_PRIVATE_PROVIDERS = 4
#: how long a feedback write waits for a store another process holds locked, by default
DEFAULT_STORE_TIMEOUT_MS = 30_000

_private_providers: dict = {}
_private_lock = threading.Lock()


@dataclass(frozen=True)
class FeedbackRecord:
    """What :func:`record_feedback` wrote (ids as hex)."""

    trace_id: str
    span_id: str  # the feedback span
    parent_span_id: Optional[str]  # None: a root-level span of the judged trace
    parent_source: str  # "span" (given) | "root" (found in the store) | "trace" (root unknown: the whole trace)
    target_span_id: Optional[str]  # the judged span; None: the trace as a whole
    score: float
    key: str
    reason: Optional[str]
    step_blamed: Optional[str]
    #: True: verified in the embedded store; None: handed to a provider without one (OTLP...)
    stored: Optional[bool] = None


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


class FeedbackNotStored(RuntimeError):
    """``record_feedback`` could not store the feedback in the embedded store (the file is
    a directory, it stayed write-locked longer than the timeout, the disk is full...).

    Raised only when the store is where the feedback was going and the write is known to
    have failed; ``record`` is what would have been written, ``path`` the store."""

    def __init__(self, message: str, record: "FeedbackRecord", path: str) -> None:
        super().__init__(message)
        self.record = record
        self.path = path


class _CheckedExport(SpanProcessor):
    """The private store provider's processor: exports each feedback span synchronously
    and keeps the result for the caller (``SimpleSpanProcessor`` drops it)."""

    _MAX_RESULTS = 64

    def __init__(self, exporter: Any) -> None:
        self.span_exporter = exporter
        self._results: dict = {}
        self._lock = threading.Lock()

    def on_end(self, span: Any) -> None:
        try:
            ok = self.span_exporter.export((span,)) == SpanExportResult.SUCCESS
        except Exception:  # noqa: BLE001 - the exporter reports its own errors
            ok = False
        with self._lock:
            if len(self._results) >= self._MAX_RESULTS:  # results nobody asked for: bounded
                self._results.clear()
            self._results[span.context.span_id] = ok

    def result(self, span_id: int) -> Optional[bool]:
        with self._lock:
            return self._results.pop(span_id, None)

    def shutdown(self) -> None:
        self.span_exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _is_sdk_provider(provider: Any) -> bool:
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return False
    return isinstance(provider, TracerProvider)


def _is_url(store: Any) -> bool:
    """A store URL (``clickhouse://``, ``chdb://``, ``sqlite://``, or a parsed one) rather
    than a file path."""
    return not isinstance(store, (str, os.PathLike)) or "://" in str(store)


def _store_location(store: str) -> str:
    return store if _is_url(store) else os.path.abspath(store)


def _private_exporter(path: str, busy_ms: int):
    from .store.exporter import SQLiteSpanExporter

    if _is_url(path):
        from .store import url as _url

        location = _url.parse(path)
        if not location.is_sqlite:
            from .store.clickhouse_exporter import ClickHouseSpanExporter

            return ClickHouseSpanExporter(location)
        path = location.path
    return SQLiteSpanExporter(path, busy_timeout_ms=busy_ms, keys_digests=False)


def _store_provider(store_path: str, timeout: Optional[float] = None):
    """A private provider writing straight into the store (a file, or the store URL
    names): used when the app configured no SDK provider (a feedback endpoint in another
    process, the CLI). ``timeout``: how long a write waits for an SQLite store another
    process holds locked (default 30 s)."""
    path = _store_location(store_path)
    busy_ms = DEFAULT_STORE_TIMEOUT_MS if timeout is None else max(0, int(timeout * 1000))
    with _private_lock:
        provider = _private_providers.get((path, busy_ms))
        if provider is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            if len(_private_providers) >= _MAX_PRIVATE_PROVIDERS:
                oldest = next(iter(_private_providers))
                _private_providers.pop(oldest).shutdown()
            provider = TracerProvider(resource=Resource.create())
            provider.add_span_processor(_CheckedExport(_private_exporter(path, busy_ms)))
            _private_providers[(path, busy_ms)] = provider
        return provider


def _processors(provider: Any) -> tuple:
    active = getattr(provider, "_active_span_processor", None)
    return tuple(getattr(active, "_span_processors", ()) or ())


def _store_exporters(provider: Any) -> list:
    """(processor, exporter, store location) of the trace stores ``provider`` feeds (best
    effort: the SDK keeps its processors in private fields; an unknown shape means none)."""
    from .store.exporter import SQLiteSpanExporter

    try:
        from .store.clickhouse_exporter import ClickHouseSpanExporter
    except ImportError:  # pragma: no cover - the ClickHouse exporter ships with the package
        ClickHouseSpanExporter = ()  # type: ignore[assignment,misc]  # noqa: N806
    out = []
    for processor in _processors(provider):
        exporter = getattr(processor, "span_exporter", None)
        if isinstance(exporter, SQLiteSpanExporter):
            out.append((processor, exporter, exporter.path))
        elif isinstance(exporter, ClickHouseSpanExporter):
            out.append((processor, exporter, exporter.location))  # a StoreURL: TraceStore opens it
    return out


def _root_from_store(store_path: str, trace_hex: str, timeout: float) -> Optional[int]:
    if not _is_url(store_path) and not os.path.isfile(store_path):
        return None
    from .store.schema import StoreError
    from .store.tracestore import TraceStore

    try:
        store = TraceStore(store_path, timeout=timeout)
    except StoreError:  # still being created by the first export, or not a store: no root known
        return None
    try:
        root = store.root_span_id(trace_hex)
    finally:
        store.close()
    return int(root, 16) if root else None


def _find_root(provider: Any, paths: list, trace_hex: str, timeout: float) -> Optional[int]:
    """The judged trace's root span, from the store(s) the trace's spans may be in."""
    try:
        for path in paths:
            root = _root_from_store(path, trace_hex, min(timeout, 2.0))
            if root is not None:
                return root
        if _is_sdk_provider(provider) and (_store_exporters(provider)
                                           or any(_is_url(p) or os.path.exists(p) for p in paths)):
            # The trace may have just ended with its spans still queued in a batch
            # processor (also before the very first export created the file): flush
            # them, then look again. Never when no store is in use (OTLP only): no wait.
            provider.force_flush(timeout_millis=1000)
            for path in paths:
                root = _root_from_store(path, trace_hex, min(timeout, 2.0))
                if root is not None:
                    return root
        return None
    except Exception as exc:  # noqa: BLE001 - an unreadable store only costs the real parent
        report_internal_error("record_feedback root lookup", exc)
        return None


class _JudgedTraceIds(IdGenerator):
    """Ids for a feedback span that starts the judged trace's *own* root-level span: the
    judged trace id, and fresh span ids from the provider's generator."""

    def __init__(self, trace_int: int, spans: Any) -> None:
        self._trace = trace_int
        self._spans = spans

    def generate_trace_id(self) -> int:
        return self._trace

    def generate_span_id(self) -> int:
        return self._spans.generate_span_id()


def _root_level_tracer(tracer: Any, trace_int: int) -> Optional[Any]:
    """A copy of an SDK tracer whose root spans get ``trace_int`` as trace id, or None
    when ``tracer`` is not one (then no parentless span can join the judged trace)."""
    target = getattr(tracer, "_target", None)
    if callable(target):  # our default provider's tracer: the SDK tracer it delegates to
        tracer = target()
    ids = getattr(tracer, "id_generator", None)
    if ids is None or not hasattr(ids, "generate_span_id"):
        return None
    clone = copy.copy(tracer)
    clone.id_generator = _JudgedTraceIds(trace_int, ids)
    return clone


def _stored(path: Any, trace_hex: str, span_hex: str, timeout: float) -> bool:
    """Is the feedback row of ``span_hex`` in the store at ``path`` (a file or a StoreURL)?"""
    from .store.schema import StoreError
    from .store.tracestore import TraceNotFound, TraceStore

    try:
        with TraceStore(path, timeout=timeout) as store:
            return any(f["span_id"] == span_hex for f in store.feedback(trace_hex))
    except (StoreError, TraceNotFound, OSError, ValueError):
        return False


def _failure_reason(exporter: Any, timeout_ms: int, waited: Optional[float] = None) -> str:
    path = getattr(exporter, "path", None) or getattr(exporter, "url", None) or "the store"  # a URL: masked
    error = getattr(exporter, "last_error", None)
    if os.path.isdir(path):
        return f"{path} is a directory, not a trace store file"
    if error is None and waited is not None:  # a batch processor still holds it
        return (f"it is not in the store {path} after waiting {waited:g} s (the export is still pending, "
                f"e.g. the store is locked by another process; it may be written later)")
    text = f"{type(error).__name__}: {error}" if error is not None else "the export did not complete"
    if error is not None and "locked" in str(error).lower():
        return (f"the store {path} stayed write-locked by another process for longer than the timeout "
                f"({timeout_ms / 1000:g} s) ({text})")
    return f"writing to {path} failed ({text})"


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
    timeout: Optional[float] = None,
) -> FeedbackRecord:
    """Attach a judgement (``score``, e.g. 1.0 up / 0.0 down) to a trace.

    ``trace_id``: 32 hex digits (what :func:`instrumentors.current_trace_id` gave the
    client), a W3C traceparent, a ``SpanContext`` or a span (then that span is the one
    judged). ``span_id``: judge that span instead of the trace's root. ``reason`` and
    ``step_blamed`` (e.g. ``"retrieval"``) are free text from the user; the redaction
    hook applies to ``reason``. ``key`` separates sources ("user", "llm_judge"...).

    The feedback span's parent: the judged span, else the trace's root found in the
    embedded store, else none -- a root-level span *of the judged trace* (same trace id,
    no ``feedback.target_span_id``: it judges the trace as a whole). It never names a
    span that does not exist.

    Raises ``ValueError`` for a malformed id, a non-finite score, an oversized reason or
    invalid attributes -- before anything is written. Raises :class:`FeedbackNotStored`
    when the feedback was going to the embedded store and is not in it (written
    directly with no SDK tracer provider installed, in ``store_path`` or
    ``INSTRUMENTORS_STORE_PATH``; or through a provider that exports to the store, which
    is flushed and checked, waiting up to ``timeout`` seconds, default 30). The returned
    record says ``stored=True`` when the row is verified in the store, ``stored=None``
    when the span went to a provider with no embedded store (OTLP...), whose exporter
    delivers it asynchronously and reports failures itself.
    """
    trace_int, target = _target(trace_id)
    if span_id is not None:
        target = _hex_id(span_id, 16, "span_id")
    value = _check_score(score)
    reason = _check_text(reason, "reason", MAX_REASON_LENGTH)
    step_blamed = _check_text(step_blamed, "step_blamed", MAX_STEP_LENGTH)
    key = _check_text(key, "key", MAX_KEY_LENGTH, allow_none=False)  # type: ignore[assignment]
    extra = _check_attributes(attributes)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout < 0):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")
    wait = DEFAULT_STORE_TIMEOUT_MS / 1000 if timeout is None else float(timeout)

    cfg = _config.get_config()
    if reason is not None and cfg.redact is not None:
        try:
            redacted = cfg.redact(reason)
            reason = redacted if isinstance(redacted, str) else str(redacted)
        except Exception:  # noqa: BLE001 - a broken redactor must not leak the text
            reason = "[redaction failed]"
    path = _store_location(os.fspath(store_path) if store_path is not None else (cfg.store_url or cfg.store_path))
    provider = tracer_provider
    if provider is None:
        provider = trace.get_tracer_provider()
        if not _is_sdk_provider(provider):
            provider = _store_provider(path, timeout)
    stores = _store_exporters(provider)
    paths = [location for _, _, location in stores]
    if path not in paths:
        paths.append(path)

    trace_hex = format(trace_int, "032x")
    source = "span"
    parent = target
    if parent is None:
        parent = _find_root(provider, paths, trace_hex, wait)
        source = "root" if parent is not None else "trace"

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
    if parent is not None:
        attrs[sc.FEEDBACK_TARGET_SPAN_ID] = format(parent, "016x")

    tracer = provider.get_tracer("instrumentors.feedback", __version__)
    now = time.time_ns()
    span = None
    if parent is None:
        root_level = _root_level_tracer(tracer, trace_int)
        if root_level is not None:
            span = _render.instrumented_tracer(root_level).start_span(
                "feedback", context=Context(), kind=SpanKind.INTERNAL, attributes=attrs, start_time=now)
            if span.get_span_context().trace_id != trace_int:  # pragma: no cover - a tracer of another shape
                span = None
    if span is None:
        # A tracer we cannot give a trace id to: a remote parent carrying the trace id
        # (its span id names no stored span, and target_span_id stays unset).
        ctx_parent = parent if parent is not None else (random.getrandbits(64) or 1)
        parent_ctx = SpanContext(trace_int, ctx_parent, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        span = _render.instrumented_tracer(tracer).start_span(
            "feedback", context=trace.set_span_in_context(NonRecordingSpan(parent_ctx)),
            kind=SpanKind.INTERNAL, attributes=attrs, start_time=now)
    span.end(end_time=now)
    ctx = span.get_span_context()
    record = FeedbackRecord(
        trace_id=trace_hex,
        span_id=format(ctx.span_id, "016x") if ctx.is_valid else "",
        parent_span_id=format(parent, "016x") if parent is not None else None,
        parent_source=source,
        target_span_id=format(parent, "016x") if parent is not None else None,
        score=value,
        key=key,
        reason=reason,
        step_blamed=step_blamed,
    )
    return _check_stored(record, provider, stores, ctx, wait)


def _check_stored(record: FeedbackRecord, provider: Any, stores: list, ctx: SpanContext,
                  wait: float) -> FeedbackRecord:
    """Verify the feedback reached every embedded store it was sent to; raise if not."""
    if not stores or not ctx.is_valid or not ctx.trace_flags.sampled:
        return record
    failures = []
    flushed = None
    for processor, exporter, location in stores:
        if isinstance(processor, _CheckedExport):
            ok = processor.result(ctx.span_id)
        else:
            if flushed is None:
                flushed = provider.force_flush(timeout_millis=int(wait * 1000) + 1000)
            ok = _stored(location, record.trace_id, record.span_id, min(wait, 5.0) or 0.1)
        if not ok:
            failures.append(_failure_reason(exporter, getattr(exporter, "_busy_timeout_ms", int(wait * 1000)),
                                            None if isinstance(processor, _CheckedExport) else wait))
    if failures:
        exporter = stores[0][1]
        raise FeedbackNotStored("feedback not stored: " + "; ".join(failures), record,
                                getattr(exporter, "path", None) or getattr(exporter, "url", ""))
    return dataclasses.replace(record, stored=True)


__all__ = ["FeedbackNotStored", "FeedbackRecord", "record_feedback"]
