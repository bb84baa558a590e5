"""Fixtures for the web UI tests: the seed demo's store (made once per session by running
examples/seed_demo.py, as a user would) and a fresh copy of it for tests that write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "seed_demo.py"
SEED_FILTER = "retrieval.top_score < 0.6 and feedback.score < 0.5"


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory) -> str:
    """A store holding the seed story: 54 traces, 22 judged bad, 20 of those with a low
    retrieval score and stale documents."""
    pytest.importorskip("openai")
    pytest.importorskip("langchain_core")
    folder = tmp_path_factory.mktemp("seed")
    path = folder / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update(OPENAI_API_KEY="")
    out = subprocess.run([sys.executable, str(DEMO), "--store", str(path)], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr
    return str(path)


@pytest.fixture
def seed_copy(seed_store, tmp_path) -> str:
    """A copy of the seed store this test may write feedback into."""
    target = tmp_path / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(seed_store + suffix):
            shutil.copyfile(seed_store + suffix, str(target) + suffix)
    return str(target)


def pytest_terminal_summary(terminalreporter):
    """Say it when the browser tests did not run (``-q`` alone shows only an 's')."""
    reasons = set()
    for report in terminalreporter.stats.get("skipped", []):
        if "tests/ui/" in report.nodeid.replace("\\", "/") and isinstance(report.longrepr, tuple):
            reasons.add(report.longrepr[2])
    for reason in sorted(reasons):
        terminalreporter.write_line(f"web UI tests skipped: {reason}", yellow=True)
