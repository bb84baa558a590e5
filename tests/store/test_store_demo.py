"""The README's main command: examples/seed_demo.py tells the seed's story end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "seed_demo.py"


@pytest.mark.timeout(180)
def test_seed_demo_runs_offline_and_finds_the_stale_documents(tmp_path):
    pytest.importorskip("openai")
    pytest.importorskip("langchain_core")
    store = tmp_path / "demo.db"
    store.write_bytes(b"left over from a previous run")  # the demo starts from a fresh file
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    env.update(COLUMNS="100", OPENAI_API_KEY="")
    out = subprocess.run([sys.executable, str(DEMO), "--store", str(store)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Traceback" not in out.stderr
    assert max(len(line) for line in text.splitlines() if str(store) not in line) <= 100  # fits a terminal
    assert "Answered 44 questions; users gave 22 thumbs down." in text
    assert "retrieval.top_score < 0.6 in 20 of them (and in 0 of 22 positive ones)" in text
    # step 2: the seed's query prints low scores with the questions about renamed plans
    assert re.search(r"^    0\.5\d How much does the Team plan cost per user\?$", text, re.M)
    # step 3: the opened trace shows stale documents and the low score as the likely cause
    assert re.search(r"⚠ stale documents \(> 180 days\): kb/(pricing|storage|mobile) \(indexed_at \d{4}-\d\d-\d\d, "
                     r"24\d days old\)", text)
    assert "Likely cause: retrieval InMemoryVectorStore: top retrieval score 0.5" in text
    assert "-> the retrieved chunks come from documents indexed ~8 months ago: kb/" in text
    # step 4: the blame line
    blame = text.split("Step 4.")[1].split("Step 5.")[0]
    assert "1. the top-ranked document retrieved by 'retrieval InMemoryVectorStore' was stale" in blame
    assert "in 91% of negative traces vs 0% of positive; stale: kb/pricing (8), kb/mobile (6), kb/storage (6)" in " ".join(
        blame.split())
    assert ("= retrieval.top_score < 0.6 at step 'retrieval InMemoryVectorStore' in 91% of negative traces vs 0% of "
            "positive") in " ".join(blame.split())
    # step 5: after re-indexing, the same questions get good answers
    assert "before: 20 of 20 answers judged bad" in text
    assert "after:  0 of 10 answers judged bad" in text
    assert store.stat().st_size > 100_000
