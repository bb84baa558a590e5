"""Where spans go when the app configures things its own way: ``OTEL_TRACES_EXPORTER=otlp``
with only the HTTP exporter installed (the ``otlp`` extra), exporters that cannot be built
(never silently untraced: the store takes over and one warning says so), and an app that
installs its own tracer provider after (or before) a zero-config ``instrument_all()``.

Each case runs in a fresh interpreter: OpenTelemetry's global provider is per process.
The OTLP receiver is an in-process HTTP server on loopback speaking the real protobuf
wire format, fed by the real opentelemetry-exporter-otlp-proto-http."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from instrumentors.store import TraceStore

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    import instrumentors
    instrumentors.instrument_all()
    tracer = trace.get_tracer("where-app")
    with tracer.start_as_current_span("handle request") as span:
        span.set_attribute("retrieval.top_score", 0.42)
        trace_id = instrumentors.current_trace_id()
    record = instrumentors.record_feedback(trace_id, 0.0, reason="stale")
    trace.get_tracer_provider().shutdown()
    print(json.dumps({"trace_id": trace_id, "feedback_trace": record.trace_id}))
    """
)


def _grpc_installed() -> bool:
    return any(True for _ in metadata.entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_grpc"))


class _Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1: decodes every request it is sent."""

    def __init__(self) -> None:
        received = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append((self.path, self.headers.get("Content-Type"), message))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list:
        out = []
        for _, _, message in self.requests:
            for resource_spans in message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    out.extend(scope_spans.spans)
        return out

    def __enter__(self) -> "_Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    with _Receiver() as r:
        yield r


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update({"INSTRUMENTORS_STORE_PATH": str(tmp_path / "store.db"), "PYTHONPATH": str(ROOT),
                "INSTRUMENTORS_DIGEST_KEY": "where-spans-go-tests"})
    env.update(extra)
    return env


def _run(tmp_path: Path, env: dict, code: str = APP, argv: tuple = ()) -> subprocess.CompletedProcess:
    app = tmp_path / "app.py"
    app.write_text(code)
    proc = subprocess.run([*argv, sys.executable, str(app)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _instrumentors_warnings(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("instrumentors:")]


def _store_spans(tmp_path: Path) -> list:
    path = tmp_path / "store.db"
    if not path.exists():
        return []
    with TraceStore(str(path)) as store:
        return [(t["trace_id"], t["root_name"], t["feedback.score"]) for t in store.query(limit=100)]


# ---------------------------------------------------------------------------------------
# OTEL_TRACES_EXPORTER=otlp as written
# ---------------------------------------------------------------------------------------


@pytest.mark.skipif(_grpc_installed(), reason="with the gRPC exporter installed, a bare `otlp` is gRPC")
@pytest.mark.parametrize("launcher", ["instrument_all", "opentelemetry-instrument"])
def test_otlp_with_only_the_http_exporter_installed_sends_over_http(tmp_path, receiver, launcher):
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    proc = _run(tmp_path, env, argv=_launcher(launcher))
    out = json.loads(proc.stdout)
    assert out["trace_id"] and out["trace_id"] != "0" * 32 and out["feedback_trace"] == out["trace_id"]
    assert {path for path, _, _ in receiver.requests} == {"/v1/traces"}
    assert {ctype for _, ctype, _ in receiver.requests} == {"application/x-protobuf"}
    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"handle request", "feedback"}
    assert spans["handle request"].trace_id.hex() == out["trace_id"]
    assert spans["feedback"].trace_id.hex() == out["trace_id"]
    # OTLP only, so no store knows the root: the feedback is a root-level span of the judged trace,
    # never a child of a span id that does not exist
    assert spans["feedback"].parent_span_id == b""
    assert "feedback.target_span_id" not in {a.key for a in spans["feedback"].attributes}
    assert _instrumentors_warnings(proc.stderr) == [], proc.stderr
    assert not (tmp_path / "store.db").exists(), "OTLP only: the store must not be written"


def _launcher(name: str) -> tuple:
    if name == "instrument_all":
        return ()
    exe = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert exe is not None, "opentelemetry-instrument is not installed beside this python"
    return (exe,)


@pytest.mark.parametrize("launcher", ["instrument_all", "opentelemetry-instrument"])
def test_an_exporter_that_is_not_installed_falls_back_to_the_store_with_one_warning(tmp_path, launcher):
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc")
    if _grpc_installed():
        env["OTEL_TRACES_EXPORTER"] = "no_such_exporter"
    proc = _run(tmp_path, env, argv=_launcher(launcher))
    out = json.loads(proc.stdout)
    assert out["trace_id"] != "0" * 32
    [warning] = _instrumentors_warnings(proc.stderr)
    assert "cannot build the traces exporter" in warning and "embedded store" in warning
    assert str(tmp_path / "store.db") in warning
    if not _grpc_installed():
        assert "opentelemetry-exporter-otlp-proto-grpc" in warning
    assert _store_spans(tmp_path) == [(out["trace_id"], "handle request", 0.0)]


def test_a_bad_exporter_beside_a_good_one_is_replaced_by_the_store(tmp_path):
    out_file = tmp_path / "spans.jsonl"
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="instrumentors_jsonl,otlp_proto_nope",
               INSTRUMENTORS_JSONL_PATH=str(out_file))
    proc = _run(tmp_path, env)
    trace_id = json.loads(proc.stdout)["trace_id"]
    [warning] = _instrumentors_warnings(proc.stderr)
    assert "'otlp_proto_nope'" in warning and "also go to the embedded store" in warning
    assert sorted(json.loads(line)["name"] for line in out_file.read_text().splitlines()) == [
        "feedback", "handle request"]
    assert _store_spans(tmp_path) == [(trace_id, "handle request", 0.0)]


def test_an_exporter_whose_constructor_raises_falls_back_to_the_store(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_exporter-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-exporter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[opentelemetry_traces_exporter]\nbroken = broken_exporter:Broken\n")
    (site / "broken_exporter.py").write_text(textwrap.dedent("""
        from opentelemetry.sdk.trace.export import SpanExporter
        class Broken(SpanExporter):
            def __init__(self):
                raise OSError("certificate file /etc/otel/ca.pem not found")
    """))
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="broken")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    proc = _run(tmp_path, env)
    trace_id = json.loads(proc.stdout)["trace_id"]
    [warning] = _instrumentors_warnings(proc.stderr)
    assert "certificate file /etc/otel/ca.pem not found" in warning and "embedded store" in warning
    assert _store_spans(tmp_path) == [(trace_id, "handle request", 0.0)]


# ---------------------------------------------------------------------------------------
# the app installs its own provider
# ---------------------------------------------------------------------------------------

OWN_PROVIDER_APP = textwrap.dedent(
    """
    import json, sys
    import httpx, openai
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import instrumentors

    early_tracer = trace.get_tracer("app.module")        # module level, before anything is set up
    exporter = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(exporter))

    def install_app_provider():
        trace.set_tracer_provider(app_provider)

    if sys.argv[1] == "app-first":
        install_app_provider()
        instrumentors.instrument_all(enabled_libraries={"openai"})
    else:
        instrumentors.instrument_all(enabled_libraries={"openai"})
        with early_tracer.start_as_current_span("before the app's provider"):
            pass
        install_app_provider()

    def answer(request):
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "fourteen days"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

    client = openai.OpenAI(api_key="sk-test", http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    with early_tracer.start_as_current_span("handle request"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "refunds?"}])
        trace_id = instrumentors.current_trace_id()
    instrumentors.record_feedback(trace_id, 1.0)
    spans = exporter.get_finished_spans()
    print(json.dumps({
        "provider_is_app": trace.get_tracer_provider() is app_provider,
        "spans": [[s.name, format(s.context.trace_id, "032x"), s.parent and format(s.parent.span_id, "016x"),
                   format(s.context.span_id, "016x")] for s in spans],
        "trace_id": trace_id,
    }))
    """
)


@pytest.mark.parametrize("order", ["app-first", "instrument-all-first"])
def test_the_app_provider_gets_every_span_in_either_order(tmp_path, order):
    app = tmp_path / "app.py"
    app.write_text(OWN_PROVIDER_APP)
    proc = subprocess.run([sys.executable, str(app), order], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Overriding of current TracerProvider is not allowed" not in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    assert out["provider_is_app"] is True
    by_name = {name: (trace_id, parent, span_id) for name, trace_id, parent, span_id in out["spans"]}
    assert set(by_name) == {"handle request", "chat gpt-4o-mini", "feedback"}, out["spans"]
    request = by_name["handle request"]
    assert request[0] == out["trace_id"]
    assert by_name["chat gpt-4o-mini"][:2] == (out["trace_id"], request[2]), "the client span nests in the app's"
    assert by_name["feedback"][0] == out["trace_id"]
    if order == "app-first":
        assert not (tmp_path / "store.db").exists(), "the app's provider was there first: the store is not used"
    else:
        # what ran before the app installed its provider went to the store, nothing after it
        store_names = []
        with TraceStore(str(tmp_path / "store.db")) as store:
            store_names = [t["root_name"] for t in store.query(limit=10)]
        assert store_names == ["before the app's provider"]
