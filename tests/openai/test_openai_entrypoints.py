"""opentelemetry-instrument finds and loads the OpenAI instrumentor.

1. Its dependency check runs per *distribution*: with only openai installed (no
   langchain-core, no llama-index-core) our ``instruments-any`` extra must let the
   instrumentors load. Proven against the installed distribution's real metadata with
   the installed-version lookup replaced.
2. ``opentelemetry-instrument python examples/openai_chat.py`` exports real spans.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from opentelemetry.instrumentation import dependencies
from opentelemetry.instrumentation.auto_instrumentation import _load
from opentelemetry.util._importlib_metadata import PackageNotFoundError

ROOT = Path(__file__).resolve().parent.parent.parent


def _only_installed(monkeypatch, installed: dict) -> None:
    def version(name: str) -> str:
        try:
            return installed[name]
        except KeyError:
            raise PackageNotFoundError(name) from None

    monkeypatch.setattr(dependencies, "version", version)


@pytest.fixture(scope="module")
def dist():
    return metadata.distribution("instrumentors")


def test_metadata_uses_instruments_any_not_instruments(dist):
    extras = [req.split("extra ==")[-1].strip(' "') for req in dist.requires or () if "extra ==" in req]
    assert "instruments-any" in extras
    assert "instruments" not in extras  # "all of these" would need openai AND langchain AND llama-index


def test_only_openai_installed_has_no_conflict(dist, monkeypatch):
    _only_installed(monkeypatch, {"openai": "1.109.1"})
    assert dependencies.get_dist_dependency_conflicts(dist) is None


def test_nothing_installed_is_a_conflict(dist, monkeypatch):
    _only_installed(monkeypatch, {})
    conflict = dependencies.get_dist_dependency_conflicts(dist)
    assert conflict is not None
    assert sorted(r.split(">=")[0] for r in conflict.required_any) == ["langchain-core", "llama-index-core", "openai"]


def test_too_old_openai_alone_is_a_conflict(dist, monkeypatch):
    _only_installed(monkeypatch, {"openai": "0.28.1"})
    conflict = dependencies.get_dist_dependency_conflicts(dist)
    assert conflict is not None and conflict.found_any == ["openai 0.28.1"]


def test_opentelemetry_instrument_loads_the_openai_entry_point(monkeypatch):
    """The loader itself (what opentelemetry-instrument runs), with only openai installed."""
    _only_installed(monkeypatch, {"openai": "2.0.0"})
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    loaded = []

    class RecordingDistro:
        def load_instrumentor(self, entry_point, **kwargs):
            loaded.append((entry_point.name, entry_point.load(), kwargs))

    _load._load_instrumentors(RecordingDistro())
    ours = {name: (cls, kwargs) for name, cls, kwargs in loaded if name.startswith("instrumentors_")}
    from instrumentors.openai import OpenAIInstrumentor

    assert ours["instrumentors_openai"] == (OpenAIInstrumentor, {"skip_dep_check": True})


def test_instrumentor_reports_its_library():
    from instrumentors.openai import OpenAIInstrumentor

    assert list(OpenAIInstrumentor().instrumentation_dependencies()) == ["openai >= 1.0"]


def test_opentelemetry_instrument_runs_the_example(tmp_path):
    exe = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable)) \
        or shutil.which("opentelemetry-instrument")
    if exe is None:
        pytest.skip("opentelemetry-instrument is not installed in this environment")
    out = tmp_path / "spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.pop("OPENAI_API_KEY", None)  # offline: the example's in-process transport
    env.update({
        "OTEL_TRACES_EXPORTER": "instrumentors_jsonl",
        "INSTRUMENTORS_JSONL_PATH": str(out),
        "OTEL_SERVICE_NAME": "openai-example",
        # this test is about the OpenAI instrumentor; the others have their own
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "instrumentors_langchain,instrumentors_llama_index",
    })
    proc = subprocess.run([exe, sys.executable, str(ROOT / "examples" / "openai_chat.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tool call: get_weather -> It is 18°C and sunny in Paris." in proc.stdout
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert sorted(by_name) == ["chat gpt-4o-mini", "openai example"]
    (root,) = by_name["openai example"]
    chats = sorted(by_name["chat gpt-4o-mini"], key=lambda s: s["start_time_unix_nano"])
    assert len(chats) == 4
    for span in chats:
        assert span["kind"] == "CLIENT"
        assert span["parent_span_id"] == root["span_id"] and span["trace_id"] == root["trace_id"]
        assert span["attributes"]["gen_ai.provider.name"] == "openai"
        assert span["attributes"]["server.address"] == "api.openai.com"
        assert span["resource"]["service.name"] == "openai-example"
    plain, streamed, tool_request, tool_answer = (s["attributes"] for s in chats)
    assert plain["gen_ai.response.finish_reasons"] == ["stop"]
    assert (plain["gen_ai.usage.input_tokens"], plain["gen_ai.usage.output_tokens"]) == (21, 8)
    assert streamed["gen_ai.request.stream"] is True
    assert streamed["instrumentors.stream.ended_by"] == "exhausted"
    assert streamed["gen_ai.usage.output_tokens"] == 15
    assert tool_request["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert json.loads(tool_request["instrumentors.response.tool_calls"]) == [
        {"id": "call_offline1", "name": "get_weather", "type": "function"}]
    assert json.loads(tool_request["gen_ai.tool.definitions"])[0]["name"] == "get_weather"
    assert tool_answer["gen_ai.response.finish_reasons"] == ["stop"]
    assert not any("gen_ai.input.messages" in s["attributes"] for s in chats)  # capture is off by default
