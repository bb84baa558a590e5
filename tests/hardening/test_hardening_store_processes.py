"""Four processes write one new store file at once (racing to create it) while this
process reads it: no row is lost, no writer or reader errs, and every read sees a
consistent state (a trace's summary agrees with the spans read with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from instrumentors.store import TraceStore
from instrumentors.store.errors import StoreError

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
TRACES_PER_WRITER = 120
SPANS_PER_TRACE = 5
FEEDBACK_EVERY = 10

WRITER = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    import instrumentors
    from instrumentors.store.exporter import SQLiteSpanExporter

    path, writer, count, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    provider = TracerProvider()
    # small batches, short delay: many commits, so the writers contend for the lock all the time
    provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(path), max_export_batch_size=7,
                                                   schedule_delay_millis=2))
    tracer = provider.get_tracer("writer")
    ids, judged = [], []
    for i in range(count):
        with tracer.start_as_current_span("request", attributes={"writer": writer, "i": i}) as root:
            for k in range(%d):
                with tracer.start_as_current_span(f"step {k}", attributes={"retrieval.top_score": k / 10}):
                    pass
        trace_id = format(root.get_span_context().trace_id, "032x")
        ids.append(trace_id)
        if i %% every == 0:
            record = instrumentors.record_feedback(trace_id, 0.0, reason=f"w{writer} t{i}",
                                                   tracer_provider=provider, store_path=path)
            assert record.stored is True and record.parent_source == "root", record
            judged.append(trace_id)
    provider.shutdown()
    print(json.dumps({"ids": ids, "judged": judged}))
    """ % (SPANS_PER_TRACE - 1)
)


class _Reader(threading.Thread):
    """Reads the store in a loop until told to stop; keeps every inconsistency it saw."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.problems: list = []
        self.reads = 0
        self.opened = False

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if not os.path.exists(self.path):
                    continue
                with TraceStore(self.path, timeout=10) as store:
                    self.opened = True
                    for summary in store.query(limit=5):
                        data = store.trace(summary["trace_id"])
                        spans = _flatten(data["roots"])
                        if len(spans) != data["span_count"]:
                            self.problems.append(f"{data['trace_id']}: span_count {data['span_count']} but "
                                                 f"{len(spans)} spans read")
                        names = sorted(s["name"] for s in spans if s["name"] != "feedback")
                        if "request" in names and data["root_name"] != "request":
                            self.problems.append(f"{data['trace_id']}: root is {data['root_name']!r}")
                        if len(data["feedback"]) != sum(s["name"] == "feedback" for s in spans):
                            self.problems.append(f"{data['trace_id']}: feedback rows and spans disagree")
                    self.reads += 1
            except StoreError as exc:
                # before the first writer has created the schema, "empty" is the truth
                if self.opened or "no trace store schema" not in str(exc):
                    self.problems.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - every error is a finding
                self.problems.append(f"{type(exc).__name__}: {exc}")


def _flatten(nodes: list) -> list:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_flatten(node["children"]))
    return out


def test_four_writer_processes_and_a_reader_lose_nothing(tmp_path):
    path = str(tmp_path / "shared" / "traces.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update({"PYTHONPATH": str(ROOT), "INSTRUMENTORS_DIGEST_KEY": "hardening"})
    reader = _Reader(path)
    reader.start()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(w), str(TRACES_PER_WRITER),
                                 str(FEEDBACK_EVERY)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for w in range(WRITERS)]
    results = []
    try:
        for proc in writers:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            assert "internal error" not in stderr and "Traceback" not in stderr, stderr
            results.append(json.loads(stdout))
    finally:
        for proc in writers:
            if proc.poll() is None:
                proc.kill()
        reader.stop.set()
        reader.join(30)
    assert reader.problems == [], "\n".join(sorted(set(reader.problems))[:20])
    assert reader.reads > 0, "the reader never got to read while the writers ran"

    ids = [t for r in results for t in r["ids"]]
    judged = sorted(t for r in results for t in r["judged"])
    assert len(set(ids)) == WRITERS * TRACES_PER_WRITER
    with TraceStore(path) as store:
        stats = store.stats()
        assert stats["traces"] == len(ids)
        assert stats["spans"] == len(ids) * SPANS_PER_TRACE + len(judged)
        assert stats["feedback"] == len(judged)
        assert sorted(f["trace_id"] for f in store.feedback(limit=None)) == judged
        assert store.count({"retrieval.top_score": {"eq": 0.3}}) == len(ids)
        for trace_id in ids[::37]:
            data = store.trace(trace_id)
            assert data["span_count"] == SPANS_PER_TRACE + (trace_id in judged)
            assert [r["name"] for r in data["roots"]] == ["request"]
