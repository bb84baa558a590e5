"""ReportingSpanProcessor: a backend that is down or slow never blocks the traced app, and
the spans it could not deliver are counted in one log line. Behaviour, not timings: a
blocked exporter must not hold up span ends, and the reported count must be exact."""

from __future__ import annotations

import logging
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from instrumentors import _export


class GateExporter(SpanExporter):
    """Blocks every export until ``gate`` is set (a backend that hangs), then fails or succeeds."""

    def __init__(self, succeed: bool = True, hang_on_shutdown: bool = False) -> None:
        self.hang_on_shutdown = hang_on_shutdown
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.succeed = succeed
        self.received: list = []

    def export(self, spans):
        self.entered.set()
        self.gate.wait(30)
        if self.succeed:
            self.received.extend(spans)
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE

    def shutdown(self):
        if not self.hang_on_shutdown:
            self.gate.set()


def _drop_lines(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.name == "instrumentors" and "dropped" in r.getMessage()]


def _tracer(processor):
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("t")


@pytest.mark.timeout(60)
def test_hung_backend_never_blocks_span_end_and_drops_are_counted(caplog):
    exporter = GateExporter(succeed=True)
    processor = _export.ReportingSpanProcessor(exporter, max_queue_size=10, max_export_batch_size=5,
                                               schedule_delay_millis=10, export_timeout_millis=5000,
                                               target="http://backend")
    provider, tracer = _tracer(processor)
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    assert exporter.entered.wait(10)  # the worker is now stuck inside export()
    # 30 more calls while the backend hangs: each returns (the test would time out if an end()
    # waited on the exporter); 10 fit in the queue, 20 are dropped
    for i in range(30):
        tracer.start_span(f"t{i}").end()
    assert processor.dropped == 20
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        exporter.gate.set()
        assert processor.force_flush(10_000)
        provider.shutdown()
    assert len(exporter.received) == 15
    lines = _drop_lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith("instrumentors: 20 spans dropped on the way to http://backend")
    assert "20 while the queue of 10 was full" in lines[0]


@pytest.mark.timeout(60)
def test_failed_exports_counted_then_one_line_when_backend_returns(caplog):
    exporter = GateExporter(succeed=False)
    exporter.gate.set()
    processor = _export.ReportingSpanProcessor(exporter, max_queue_size=100, max_export_batch_size=4,
                                               schedule_delay_millis=10, target="down")
    provider, tracer = _tracer(processor)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        for i in range(8):
            tracer.start_span(f"s{i}").end()
        assert processor.force_flush(10_000)
        assert processor.dropped == 8 and not _drop_lines(caplog)  # reported per outage, not per batch
        exporter.succeed = True
        tracer.start_span("back").end()
        assert processor.force_flush(10_000)
        lines = _drop_lines(caplog)
        assert len(lines) == 1 and "8 spans dropped" in lines[0] and "answers again" in lines[0]
        provider.shutdown()
    assert len(_drop_lines(caplog)) == 1  # nothing more to report at shutdown
    assert [s.name for s in exporter.received] == ["back"]


@pytest.mark.timeout(60)
def test_spans_still_queued_at_shutdown_are_reported(caplog):
    exporter = GateExporter(succeed=True, hang_on_shutdown=True)  # not even shutdown() unblocks it
    processor = _export.ReportingSpanProcessor(exporter, max_queue_size=50, max_export_batch_size=1,
                                               schedule_delay_millis=10, export_timeout_millis=200, target="slow")
    provider, tracer = _tracer(processor)
    for i in range(6):
        tracer.start_span(f"s{i}").end()
    assert exporter.entered.wait(10)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        processor.shutdown()  # the worker is stuck: waits export_timeout, then counts what is left
    lines = _drop_lines(caplog)
    # 5 queued + the 1 the worker is stuck on
    assert len(lines) == 1 and "6 spans dropped" in lines[0] and "still queued" in lines[0]
    assert processor.dropped == 6
    exporter.gate.set()  # the stuck export returns late: not counted twice
    processor._worker.join(5)
    assert processor.dropped == 6 and processor.exported == 0


def test_exporter_that_raises_loses_the_batch_not_the_app(caplog):
    class Raising(SpanExporter):
        def export(self, spans):
            raise RuntimeError("boom")

        def shutdown(self):
            pass

    processor = _export.ReportingSpanProcessor(Raising(), schedule_delay_millis=10, target="raising")
    provider, tracer = _tracer(processor)
    tracer.start_span("x").end()
    assert processor.force_flush(10_000)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        provider.shutdown()
    assert processor.dropped == 1 and "1 spans dropped" in _drop_lines(caplog)[0]


def test_otlp_exporters_by_protocol(monkeypatch):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    http = _export.otlp_exporter("http://127.0.0.1:6006", "http/protobuf")
    assert isinstance(http, Http) and http._endpoint == "http://127.0.0.1:6006/v1/traces"
    assert isinstance(_export.otlp_exporter("http://127.0.0.1:4317", "grpc"), Grpc)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert _export.otlp_protocol() == "grpc"
    with pytest.raises(ValueError):
        _export.otlp_exporter("x", "http/json")
