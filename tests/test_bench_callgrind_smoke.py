"""benchmarks/callgrind_pipelines.py and opcodes_pipelines.py are not run by CI (valgrind,
minutes): their workers are, without valgrind, so the scripts cannot rot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("worker", ["ours", "none", "floor"])
@pytest.mark.parametrize("group", ["langchain", "llama_index"])
def test_callgrind_worker_runs_the_pipeline_and_reports_its_spans(group, worker):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "callgrind_pipelines.py"), "--worker", worker, "--group", group,
         "--calls", "2", "--warmup", "1", "--attributes", "6"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    if worker == "none":
        assert info["spans_per_call"] == 0
    else:
        assert info["spans_per_call"] >= 1 and info["names"]
    if worker == "floor":
        assert info["names"] == ["floor"] and info["attrs_per_span"] == 6


def test_opcodes_profile_reports_what_our_instrumentation_adds():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "opcodes_pipelines.py"), "--group", "llama_index",
         "--calls", "1", "--warmup", "1", "--top", "5"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    added = int(re.search(r"added (-?\d+)", result.stdout).group(1))
    assert added > 0
    assert "instrumentors/llama_index/" in result.stdout
