"""Sending spans to an OTLP backend (Phoenix, a Collector, Tempo...) without ever slowing
the traced app, and without losing spans silently.

Why not only the SDK's BatchSpanProcessor: it already keeps the app's calls off the
network (a bounded queue drained by a thread), but when the backend is down it says
"Queue full, dropping spans." without a number, and each failed batch is logged by the
exporter separately. :class:`ReportingSpanProcessor` keeps the same shape (bounded queue,
one worker thread, the exporter's own timeout bounds each export) and counts every span it
could not deliver: queue full, export failed, timed out, or still queued at shutdown.
One warning line says how many, per outage (when the backend answers again, at shutdown,
or at most once a minute while it lasts).

Settings are the standard ``OTEL_BSP_*`` variables; the exporter reads the standard
``OTEL_EXPORTER_OTLP_*`` ones (endpoint, protocol, headers, timeout).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger("instrumentors")

_DEFAULTS = {
    "OTEL_BSP_MAX_QUEUE_SIZE": 2048,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
    "OTEL_BSP_SCHEDULE_DELAY": 5000,  # ms
    "OTEL_BSP_EXPORT_TIMEOUT": 30000,  # ms: the longest shutdown/flush waits for the worker
}


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "").strip()
    default = _DEFAULTS[name]
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        _log.warning("instrumentors: ignoring %s=%r (expected a positive integer); using %d", name, raw, default)
        return default
    return value


class ReportingSpanProcessor(SpanProcessor):
    """Bounded batch export; the app thread only appends to a queue (or counts a drop)."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: Optional[int] = None,
        max_export_batch_size: Optional[int] = None,
        schedule_delay_millis: Optional[float] = None,
        export_timeout_millis: Optional[float] = None,
        target: Optional[str] = None,
        report_interval_s: float = 60.0,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size or _env_int("OTEL_BSP_MAX_QUEUE_SIZE")
        self.max_export_batch_size = min(max_export_batch_size or _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
                                         self.max_queue_size)
        self.schedule_delay_s = (schedule_delay_millis or _env_int("OTEL_BSP_SCHEDULE_DELAY")) / 1000
        self.export_timeout_s = (export_timeout_millis or _env_int("OTEL_BSP_EXPORT_TIMEOUT")) / 1000
        self.target = target or _target_of(exporter)
        self.report_interval_s = report_interval_s
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._flush_requests = 0
        self._exporting = 0  # spans of the batch the worker is exporting right now
        self._abandoned = False  # shutdown gave up on that batch (and counted it)
        self._shutdown = False
        self._worker: Optional[threading.Thread] = None
        self._pid = os.getpid()
        # drops not yet reported (the app thread and the worker both add, under _cond)
        self._dropped_full = 0
        self._dropped_failed = 0
        self._last_report = time.monotonic()
        self._failing = False
        #: spans handed to the exporter successfully / dropped, since creation (for tests, stats)
        self.exported = 0
        self.dropped = 0

    # -- the app's side: must never block on the network ------------------------------------
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._cond:
            if self._shutdown:
                return
            if self._worker is None or self._pid != os.getpid():
                self._start_worker()
            if len(self._queue) >= self.max_queue_size:
                self._dropped_full += 1
                self.dropped += 1
                return
            self._queue.append(span)
            if len(self._queue) >= self.max_export_batch_size:
                self._cond.notify()

    # -- the worker -------------------------------------------------------------------------
    def _start_worker(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread and spans are not ours
            self._queue.clear()
            self._pid = os.getpid()
        self._worker = threading.Thread(target=self._run, name="instrumentors-otlp-export", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._shutdown and not self._flush_requests:
                    self._cond.wait(self.schedule_delay_s)
                if len(self._queue) < self.max_export_batch_size and not (
                        self._shutdown or self._flush_requests):
                    self._cond.wait_for(lambda: len(self._queue) >= self.max_export_batch_size
                                        or self._shutdown or self._flush_requests, self.schedule_delay_s)
                if not self._queue:
                    self._flush_requests = 0
                    self._cond.notify_all()
                    if self._shutdown:
                        return
                    self._maybe_report()
                    continue
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_export_batch_size))]
                self._exporting = len(batch)
            ok = self._export(batch)
            with self._cond:
                self._exporting = 0
                if self._abandoned:  # shutdown stopped waiting and already counted this batch
                    return
                if ok:
                    self.exported += len(batch)
                    if self._failing:
                        self._failing = False
                        self._report("the backend answers again")
                else:
                    self._failing = True
                    self._dropped_failed += len(batch)
                    self.dropped += len(batch)
                self._maybe_report()
                self._cond.notify_all()

    def _export(self, batch: list) -> bool:
        try:
            return self.exporter.export(batch) == SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001 - a broken exporter loses the batch, never the app
            _log.debug("instrumentors: exporter raised", exc_info=exc)
            return False

    # -- reporting (under _cond) --------------------------------------------------------------
    def _maybe_report(self) -> None:
        if (self._dropped_full or self._dropped_failed) and \
                time.monotonic() - self._last_report >= self.report_interval_s:
            self._report("still failing")

    def _report(self, state: str) -> None:
        full, failed = self._dropped_full, self._dropped_failed
        self._last_report = time.monotonic()
        if not full and not failed:
            return
        self._dropped_full = self._dropped_failed = 0
        _log.warning(
            "instrumentors: %d spans dropped on the way to %s (%d in exports that failed or timed out, %d while "
            "the queue of %d was full; %s); the traced calls were not delayed",
            full + failed, self.target, failed, full, self.max_queue_size, state)

    # -- flush / shutdown ---------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            if self._worker is None:
                return True
            self._flush_requests += 1
            self._cond.notify_all()
            while (self._queue or self._exporting) and not self._abandoned:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def shutdown(self) -> None:
        with self._cond:
            if self._shutdown:
                return
            self._shutdown = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(self.export_timeout_s)
        exporter_down = False
        if worker is not None and worker.is_alive():
            self._shutdown_exporter()  # interrupts an exporter waiting between retries
            exporter_down = True
            worker.join(1.0)
        with self._cond:
            left = len(self._queue) + self._exporting
            self._queue.clear()
            if self._exporting:
                self._abandoned = True
            if left:
                self._dropped_failed += left
                self.dropped += left
            self._report("at shutdown" + (", still queued" if left else ""))
        if not exporter_down:
            self._shutdown_exporter()

    def _shutdown_exporter(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception as exc:  # noqa: BLE001
            _log.debug("instrumentors: exporter shutdown raised", exc_info=exc)


def _target_of(exporter: Any) -> str:
    endpoint = getattr(exporter, "_endpoint", None)
    return str(endpoint) if endpoint else type(exporter).__name__


def otlp_endpoint() -> Optional[str]:
    """The OTLP traces endpoint the standard variables name, if any."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def otlp_protocol() -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            return value
    return "http/protobuf"


def otlp_exporter(endpoint: Optional[str] = None, protocol: Optional[str] = None,
                  timeout: Optional[float] = None) -> SpanExporter:
    """An OTLP span exporter (http/protobuf by default, or ``grpc``). With no ``endpoint``
    the exporter reads the standard variables itself (and appends ``/v1/traces`` for http).
    ``timeout`` (seconds, retries included) defaults to ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10)."""
    protocol = (protocol or otlp_protocol()).lower()
    extra = {"timeout": timeout} if timeout is not None else {}
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, **extra) if endpoint else GrpcExporter(**extra)
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"unsupported OTLP protocol {protocol!r} (expected http/protobuf or grpc)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if endpoint:
        if not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=endpoint, **extra)
    return HttpExporter(**extra)


def otlp_span_processor(endpoint: Optional[str] = None, protocol: Optional[str] = None,
                        **options: Any) -> ReportingSpanProcessor:
    """``provider.add_span_processor(otlp_span_processor("http://localhost:6006"))``: spans to an
    OTLP backend through a :class:`ReportingSpanProcessor` (``options`` are its keywords)."""
    exporter = otlp_exporter(endpoint, protocol)
    return ReportingSpanProcessor(exporter, **options)
