"""Feedback that could not be stored is never reported as recorded: the CLI exits 1 with
one clear line (no traceback), ``record_feedback`` raises ``FeedbackNotStored``, and the
CLI's ``--timeout`` bounds how long a write waits for a locked store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from instrumentors import FeedbackNotStored, record_feedback
from instrumentors.store import TraceStore
from instrumentors.store.exporter import SQLiteSpanExporter

ROOT = Path(__file__).resolve().parents[2]
GOOD = "0af7651916cd43dd8448eb211c80319c"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = shutil.which("instrumentors", path=os.path.dirname(sys.executable))
    assert exe is not None, "the instrumentors console script is not installed beside this python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _seeded(path: str) -> str:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    with provider.get_tracer("t").start_as_current_span("rag_pipeline") as root:
        pass
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def _feedback_rows(path: str) -> list:
    with TraceStore(path) as store:
        return [(f["trace_id"], f["score"]) for f in store.feedback()]


def test_cli_store_path_is_a_directory(tmp_path):
    target = tmp_path / "a-directory"
    target.mkdir()
    proc = _cli("--store", str(target), "feedback", GOOD, "--score", "0")
    assert proc.returncode == 1
    assert "recorded" not in proc.stdout.replace("nothing was recorded", "")
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("instrumentors: feedback not stored:") and "is a directory" in line
    assert line.endswith("nothing was recorded")
    assert os.listdir(target) == []


def test_cli_locked_store_honours_timeout_then_records_once_unlocked(tmp_path):
    path = str(tmp_path / "traces.db")
    trace_id = _seeded(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        # the exporter's own busy timeout is 30 s: finishing well within 20 s means --timeout was used
        proc = _cli("--store", path, "--timeout", "0.5", "feedback", trace_id, "--score", "0", timeout=20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert "write-locked" in line and "0.5 s" in line and line.endswith("nothing was recorded")
    assert _feedback_rows(path) == []
    proc = _cli("--store", path, "feedback", trace_id, "--score", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("recorded user feedback 0 on trace " + trace_id)
    assert _feedback_rows(path) == [(trace_id, 0.0)]


def test_record_feedback_raises_when_written_straight_to_an_unwritable_store(monkeypatch, tmp_path):
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    target = tmp_path / "dir.db"
    target.mkdir()
    with pytest.raises(FeedbackNotStored, match="is a directory") as info:
        record_feedback(GOOD, 0.0, reason="stale", store_path=str(target))
    assert info.value.record.trace_id == GOOD and info.value.record.reason == "stale"
    assert info.value.path == str(target)


def test_record_feedback_verifies_a_provider_that_exports_to_the_store(tmp_path):
    path = str(tmp_path / "traces.db")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(path)))  # what instrument_all() installs
    try:
        record = record_feedback(GOOD, 1.0, tracer_provider=provider, store_path=path)
        assert record.stored is True
        assert _feedback_rows(path) == [(GOOD, 1.0)]
    finally:
        provider.shutdown()


def test_record_feedback_raises_when_a_batch_export_stays_blocked(tmp_path):
    path = str(tmp_path / "traces.db")
    trace_id = _seeded(path)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(path, busy_timeout_ms=1000)))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(FeedbackNotStored, match="still pending|write-locked") as info:
            record_feedback(trace_id, 0.0, tracer_provider=provider, store_path=path, timeout=0.2)
        assert info.value.record.parent_source == "root"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        provider.shutdown()


def test_record_feedback_raises_when_a_synchronous_export_fails(tmp_path):
    target = tmp_path / "dir.db"
    target.mkdir()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(str(target))))
    try:
        with pytest.raises(FeedbackNotStored, match="is a directory"):
            record_feedback(GOOD, 0.0, tracer_provider=provider)
    finally:
        provider.shutdown()


def test_over_a_provider_without_store_nothing_is_claimed(tracer_provider, span_exporter, tmp_path):
    record = record_feedback(GOOD, 0.0, tracer_provider=tracer_provider, store_path=str(tmp_path / "absent.db"))
    assert record.stored is None                   # handed to the provider: its exporter reports delivery
    assert [s.name for s in span_exporter.get_finished_spans()] == ["feedback"]


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5"])
def test_bad_timeout_is_rejected_before_anything_is_written(tracer_provider, span_exporter, bad):
    with pytest.raises(ValueError, match="timeout"):
        record_feedback(GOOD, 0.0, tracer_provider=tracer_provider, timeout=bad)
    assert span_exporter.get_finished_spans() == ()
