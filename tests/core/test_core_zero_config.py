"""Where spans go with no setup: instrument_all() and opentelemetry-instrument both
default to the embedded store, and the standard OTEL_TRACES_EXPORTER keeps working."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from instrumentors.store import TraceStore

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    if "--instrument-all" in sys.argv:
        import instrumentors
        instrumentors.instrument_all()
    tracer = trace.get_tracer("zero-config-app")
    with tracer.start_as_current_span("handle request") as span:
        span.set_attribute("retrieval.top_score", 0.42)
    """
)


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update({"INSTRUMENTORS_STORE_PATH": str(tmp_path / "store.db"), "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


def test_instrument_all_defaults_to_the_embedded_store(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    proc = subprocess.run([sys.executable, str(app), "--instrument-all"], env=_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with TraceStore(str(tmp_path / "store.db")) as store:
        found = store.query(filters={"retrieval.top_score": {"lt": 0.6}}, limit=10)
    assert len(found) == 1


def _otel_instrument() -> str:
    exe = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.fail("opentelemetry-instrument is not installed beside this python")
    return exe


def test_opentelemetry_instrument_zero_config_uses_the_store(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    proc = subprocess.run([_otel_instrument(), sys.executable, str(app)], env=_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Failed to export" not in proc.stderr
    with TraceStore(str(tmp_path / "store.db")) as store:
        found = store.query(filters={"retrieval.top_score": {"eq": 0.42}}, limit=10)
    assert len(found) == 1


def test_opentelemetry_instrument_honours_standard_exporter_variable(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / "spans.jsonl"
    proc = subprocess.run([_otel_instrument(), sys.executable, str(app)],
                          env=_env(tmp_path, OTEL_TRACES_EXPORTER="instrumentors_jsonl",
                                   INSTRUMENTORS_JSONL_PATH=str(out)),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["name"] for s in spans] == ["handle request"]
    assert spans[0]["attributes"]["retrieval.top_score"] == 0.42
    assert not (tmp_path / "store.db").exists(), "the store must not be written when another exporter is named"


class _OTLPSink:
    """A loopback HTTP server accepting OTLP/HTTP posts (what a Collector or Phoenix does)."""

    def __init__(self) -> None:
        import http.server
        import threading

        posts = self.posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                posts.append((self.path, self.headers.get("content-type"), body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_otlp_endpoint_alone_sends_to_it_and_to_the_store(tmp_path):
    """OTEL_EXPORTER_OTLP_ENDPOINT without OTEL_TRACES_EXPORTER: spans reach that endpoint
    (http/protobuf, /v1/traces) and the embedded store, never one silently instead of both."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    sink = _OTLPSink()
    try:
        app = tmp_path / "app.py"
        app.write_text(APP)
        proc = subprocess.run([sys.executable, str(app), "--instrument-all"],
                              env=_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=sink.url),
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        sink.close()
    assert proc.returncode == 0, proc.stderr
    assert "dropped" not in proc.stderr
    paths = {path for path, _type, _body in sink.posts}
    assert paths == {"/v1/traces"}
    names = []
    for _path, content_type, body in sink.posts:
        assert content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        names += [s.name for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert names == ["handle request"]
    with TraceStore(str(tmp_path / "store.db")) as store:
        assert len(store.query(filters={"retrieval.top_score": {"eq": 0.42}}, limit=10)) == 1


def test_otlp_endpoint_down_says_how_many_spans_were_dropped(tmp_path):
    """Nothing listens at the endpoint: the app exits normally and one line counts the loss."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    app = tmp_path / "app.py"
    app.write_text(APP)
    proc = subprocess.run([sys.executable, str(app), "--instrument-all"],
                          env=_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                                   OTEL_EXPORTER_OTLP_TIMEOUT="1", OTEL_BSP_EXPORT_TIMEOUT="3000"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "spans dropped" in line]
    assert len(lines) == 1 and lines[0].startswith(f"instrumentors: 1 spans dropped on the way to http://127.0.0.1:{port}")
    with TraceStore(str(tmp_path / "store.db")) as store:  # the store still has it
        assert len(store.query(filters={"retrieval.top_score": {"eq": 0.42}}, limit=10)) == 1
