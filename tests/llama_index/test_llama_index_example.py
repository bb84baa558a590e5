"""``opentelemetry-instrument python examples/llamaindex_rag.py`` exports the real tree:
entry point loaded, offline OpenAI wire format, OpenAI spans nested under the LlamaIndex
LLM spans, usage counted once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def test_opentelemetry_instrument_runs_the_rag_example(tmp_path):
    pytest.importorskip("llama_index.llms.openai")
    exe = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable)) \
        or shutil.which("opentelemetry-instrument")
    if exe is None:
        pytest.skip("opentelemetry-instrument is not installed in this environment")
    out = tmp_path / "spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.pop("OPENAI_API_KEY", None)
    env.update({
        "OTEL_TRACES_EXPORTER": "instrumentors_jsonl",
        "INSTRUMENTORS_JSONL_PATH": str(out),
        "OTEL_SERVICE_NAME": "llamaindex-example",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "instrumentors_langchain",
    })
    proc = subprocess.run([exe, sys.executable, str(ROOT / "examples" / "llamaindex_rag.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "query: Paris is the capital of France." in proc.stdout
    assert "stream: Berlin is the capital of Germany." in proc.stdout
    assert "chat: Rome is the capital of Italy." in proc.stdout
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    (root,) = [s for s in spans if s["name"] == "llamaindex rag example"]
    in_trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
    by_id = {s["span_id"]: s for s in in_trace}

    def path(span):
        names = []
        while span is not None:
            names.append(span["name"])
            span = by_id.get(span.get("parent_span_id"))
        return list(reversed(names))

    llm = [s for s in in_trace if s["attributes"].get("instrumentors.library") == "llama_index"
           and s["attributes"].get("instrumentors.span.kind") == "llm"]
    client = [s for s in in_trace if s["attributes"].get("instrumentors.library") == "openai"]
    assert len(llm) == len(client) == 3
    for span in client:
        parent = by_id[span["parent_span_id"]]
        assert parent in llm
        assert parent["attributes"]["instrumentors.usage.reported_by_child"] is True
    assert sum(s["attributes"].get("gen_ai.usage.input_tokens", 0) for s in in_trace) == sum(
        s["attributes"]["gen_ai.usage.input_tokens"] for s in client)
    assert sorted(path(s)[1:3] for s in llm) == [
        ["chat ContextChatEngine", "synthesize CompactAndRefine"],
        ["query RetrieverQueryEngine", "synthesize CompactAndRefine"],
        ["query RetrieverQueryEngine", "synthesize CompactAndRefine"],
    ]
    streamed = [s for s in llm if s["attributes"].get("gen_ai.request.stream")]
    assert [s["attributes"]["instrumentors.stream.ended_by"] for s in streamed] == ["exhausted"]
    assert not any("gen_ai.input.messages" in s["attributes"] for s in in_trace)  # capture off by default
