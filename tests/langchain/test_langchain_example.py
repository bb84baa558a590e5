"""examples/langchain_rag.py runs offline and exports the expected span tree."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _console_spans(text: str) -> list:
    decoder, spans, i = json.JSONDecoder(), [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return spans
        obj, i = decoder.raw_decode(text, i)
        if isinstance(obj, dict) and "context" in obj:
            spans.append(obj)


def test_example_runs_offline_and_traces_one_tree(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_", "INSTRUMENTORS_"))}
    env["OTEL_TRACES_EXPORTER"] = "console"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "langchain_rag.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "invoke: Paris is the capital of France" in proc.stdout
    assert "tool call: get_weather -> It is 18°C and sunny in Paris." in proc.stdout
    spans = _console_spans(proc.stdout)
    names = collections.Counter(s["name"] for s in spans)
    assert names["chat gpt-4o-mini"] == 8  # 4 LangChain chat spans, each with its OpenAI client span
    assert names["retrieval InMemoryVectorStore"] == 2
    assert names["execute_tool get_weather"] == 1
    by_id = {s["context"]["span_id"]: s for s in spans}
    clients = [s for s in spans if s["attributes"].get("instrumentors.library") == "openai"]
    assert len(clients) == 4
    for client in clients:
        parent = by_id[client["parent_id"]]
        assert parent["name"] == "chat gpt-4o-mini"
        assert parent["attributes"]["instrumentors.library"] == "langchain"
    example_root = next(s for s in spans if s["name"] == "langchain example")
    assert {s["context"]["trace_id"] for s in spans if s["name"] != "embeddings" or s["parent_id"]} == {
        example_root["context"]["trace_id"]}
