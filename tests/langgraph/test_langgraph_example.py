"""examples/agent.py runs offline: explain traces the agent's bad answer back through the
tool to the stale handbook page, and blame ranks that page first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_agent_example_explains_the_bad_answer(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_", "INSTRUMENTORS_"))}
    env["COLUMNS"] = "200"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "agent.py"), "--store", str(tmp_path / "a.db")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "24 answers, 9 judged wrong." in out
    assert "Agent office_assistant: 4 steps, done" in out
    assert "turns: 1 agent (model) → 2 tools: lookup_policy → 3 agent (model)" in out
    assert "final answer from: tool lookup_policy (step 2); document hours-paris via tool lookup_policy" in out
    assert ("Likely cause: retrieval HandbookRetriever: stale documents (> 180 days): hours-paris" in out
            and "(retrieved by tool 'lookup_policy')" in out)
    blame = out[out.index("Blame:"):]
    assert "1. document 'hours-paris' linked into" in blame
    assert not (tmp_path / ".instrumentors").exists() or not any((tmp_path / ".instrumentors").glob("*.db"))
