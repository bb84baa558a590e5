"""benchmarks/peers.py is not run by CI (minutes, and peers' venvs): its smoke mode is,
so the pipelines, the worker protocol and the tables cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_peers_smoke_measures_every_pipeline_with_our_spans(tmp_path):
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--smoke", "--only", "ours", "--markdown", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.strip() in done.stdout
    cpu = text.split("### Overhead per call, wall time")[0]
    rows = {}
    for line in cpu.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 11 and cells[1] == "ours":
            rows[cells[0]] = cells
    assert set(rows) == {"chat", "chat async", "chat stream", "chat tools", "embeddings", "lcel rag invoke",
                         "query engine"}
    for name, cells in rows.items():
        spans, attrs = int(cells[2]), int(cells[3])
        assert spans >= 1 and attrs >= 1, (name, cells)
        assert float(cells[4]) > 0 and float(cells[7]) > 0, (name, cells)  # baseline and floor were timed
    assert int(rows["lcel rag invoke"][2]) >= 9 and int(rows["query engine"][2]) >= 4
    assert re.search(r"- ours \(langchain\): .*instrumentors \S+", text)
