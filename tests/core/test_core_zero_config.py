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
