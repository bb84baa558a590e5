"""The ``instrumentors`` CLI: output, --json, exit codes, read-only guarantee, graph export."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from instrumentors.cli import main
from instrumentors.store import TraceStore

from .conftest import FRESH, STALE


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_exit(capsys, *argv):
    """Commands that end through argparse's exit (usage errors)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def _seeded_store(tmp_path_factory):
    """The planted blame data set plus one fully explained bad trace, built once."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from instrumentors import record_feedback
    from instrumentors.store.exporter import SQLiteSpanExporter

    from .conftest import RagBuilder, planted_dataset

    path = str(tmp_path_factory.mktemp("cli") / "seeded.db")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    rag = RagBuilder(provider)
    planted_dataset(rag, path)
    bad = rag.run(query="How much is the Pro plan?", docs=[("kb/pricing-2025", 0.44, STALE), ("kb/plans", 0.4, FRESH)])
    record_feedback(bad, 0.0, reason="price is outdated", step_blamed="retrieval", tracer_provider=provider,
                    store_path=path)
    provider.shutdown()
    return path, bad


@pytest.fixture
def seeded(_seeded_store, store_path):
    """A private copy of the seeded store at ``store_path`` (tests may write to it)."""
    source, bad = _seeded_store
    shutil.copyfile(source, store_path)
    return bad


def _fingerprint(path):
    out = {}
    for suffix in ("", "-wal"):
        p = path + suffix
        if os.path.exists(p):
            with open(p, "rb") as fh:
                out[suffix] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def test_list_and_query(seeded, store_path, capsys):
    code, out, _ = run(capsys, "--store", store_path, "list", "-n", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["TRACE", "START", "(UTC)", "DURATION", "SPANS", "ERR", "FEEDBACK", "TOP", "SCORE",
                                "ROOT", "/", "QUERY"]
    assert lines[1].startswith(seeded[:12]) and lines[1].endswith("How much is the Pro plan?")
    assert lines[-1] == "3 of 241 traces, newest first"

    code, out, _ = run(capsys, "query", "--store", store_path, "--where", "user_feedback.score<0.5",
                       "-w", "retrieval.top_score<0.6", "-n", "5")
    assert code == 0
    assert out.splitlines()[-1] == ("5 of 77 traces matching user_feedback.score < 0.5, retrieval.top_score < 0.6, "
                                    "newest first")
    assert "0.44" in out.splitlines()[1] and "0.00" in out.splitlines()[1]

    code, out, _ = run(capsys, "query", "--store", store_path, "-w", "feedback.score<0.5", "-w",
                       "retrieval.top_score<0.6", "--json", "-n", "2")
    payload = json.loads(out)
    assert payload["total"] == 77 and payload["level"] == "trace"
    assert payload["filters"] == {"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}
    first = payload["results"][0]
    assert (first["trace_id"], first["retrieval.top_score"], first["input.query"], first["feedback.score"]) == (
        seeded, 0.44, "How much is the Pro plan?", 0.0)

    code, out, _ = run(capsys, "query", "--store", store_path, "-w", "name=output validator", "-w",
                       "instrumentors.step.status=pass", "--span-level", "--json", "-n", "1")
    assert json.loads(out)["total"] == 241 and json.loads(out)["results"][0]["name"] == "output validator"

    code, out, _ = run(capsys, "query", "--store", store_path, "-w", "retrieval.top_score<0")
    assert (code, out.strip()) == (0, "No traces match (retrieval.top_score < 0).")


def test_env_var_selects_the_store(seeded, store_path, capsys, monkeypatch):
    monkeypatch.setenv("INSTRUMENTORS_STORE_PATH", store_path)
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert out.splitlines()[0].startswith(f"store     {os.path.abspath(store_path)}")
    assert "traces    241" in out and "feedback  241" in out


def test_show_explain_blame_prompts(seeded, store_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: whole lines below
    code, out, _ = run(capsys, "--store", store_path, "show", seeded[:10])
    assert code == 0
    assert out.splitlines()[1] == "feedback (user): 0.00 'price is outdated' blames 'retrieval'"
    assert "├─ retrieval kb  [retriever]  5.0 ms  2 docs  top 0.44" in out
    assert "│      ← kb/pricing-2025 rank 0 score 0.44 coverage 1.00 from retrieval kb (INFORMED_BY)" in out
    assert "└─ feedback  [feedback]" in out

    code, out, _ = run(capsys, "--store", store_path, "explain", seeded)
    assert code == 0
    assert "Question: How much is the Pro plan?" in out
    assert "out: kb/pricing-2025 0.44 (indexed_at 2026-03-15), kb/plans 0.40 (indexed_at 2026-11-01)" in out
    assert "⚠ stale documents (> 180 days): kb/pricing-2025 (indexed_at 2026-03-15, 251 days old)" in out
    assert "⚠ user feedback 0: 'price is outdated' blames 'retrieval'" in out
    assert "\nLikely cause: retrieval kb: top retrieval score 0.44 < 0.6 (also: stale documents" in out

    code, out, _ = run(capsys, "--store", store_path, "explain", seeded, "--json", "--low-score", "0.3",
                       "--stale-days", "0")
    result = json.loads(out)
    assert [a["kind"] for a in result["anomalies"]] == ["feedback_blame"]
    assert result["thresholds"] == {"low_score": 0.3, "feedback": 0.5, "stale_after_days": None}

    code, out, _ = run(capsys, "--store", store_path, "blame")
    assert code == 0
    assert out.splitlines()[0] == "Blame: 241 traces with feedback: 114 negative (score < 0.5), 127 positive"
    assert "1. document 'kb/pricing-2025' linked into 'context assembler' (retrieved by 'retrieval kb'):" in out
    assert "= retrieval.top_score < 0.6 at step 'retrieval kb' in 68% of negative traces vs 2% of positive" in out

    code, out, _ = run(capsys, "--store", store_path, "blame", "--json", "--threshold", "0.5", "--top", "2")
    report = json.loads(out)
    assert len(report["findings"]) == 2 and report["findings"][0]["document_id"] == "kb/pricing-2025"

    code, out, _ = run(capsys, "--store", store_path, "prompts")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["STEP", "FINGERPRINT", "BASIS", "GENS"]
    assert any(r.startswith("chat gpt-4o ") and "tpl-v1" in r for r in rows)
    code, out, _ = run(capsys, "--store", store_path, "prompts", "--json")
    assert {r["fingerprint"] for r in json.loads(out)} >= {"tpl-v1", "tpl-v2", "rewrite-v1"}


def test_reads_never_change_the_store(seeded, store_path, capsys, tmp_path):
    before = _fingerprint(store_path)
    listing = sorted(os.listdir(tmp_path))
    for argv in (["list"], ["query", "-w", "feedback.score<0.5"], ["show", seeded], ["explain", seeded],
                 ["blame"], ["prompts"], ["info"], ["graph", seeded, "-o", str(tmp_path / "g.html")],
                 ["list", "--json"]):
        assert run(capsys, "--store", store_path, *argv)[0] == 0
    after = _fingerprint(store_path)
    assert after == before  # the database file: same bytes, same mtime
    # a store at rest is left in rollback mode by its last writer, so a read-only reader
    # creates no -wal/-shm beside it: the directory is as it was (plus the graph file)
    assert sorted(set(os.listdir(tmp_path)) - {"g.html"}) == listing


def test_read_beside_a_running_writer_sees_its_rows_and_adds_no_file(store_path, tmp_path, capsys):
    """A writer still connected keeps the file in WAL: the reader uses its -wal/-shm
    (seeing rows not yet checkpointed) and adds nothing; once the writer shuts down the
    directory holds the database file alone."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from instrumentors.store.exporter import SQLiteSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(store_path)))
    provider.get_tracer("t").start_span("live").end()
    listing = sorted(os.listdir(tmp_path))
    assert {"traces.db-wal", "traces.db-shm"} <= set(listing)
    code, out, _ = run(capsys, "--store", store_path, "--json", "list")
    assert code == 0 and json.loads(out)["total"] == 1
    assert sorted(os.listdir(tmp_path)) == listing
    provider.shutdown()
    assert os.listdir(tmp_path) == ["traces.db"]
    assert run(capsys, "--store", store_path, "info")[0] == 0
    assert os.listdir(tmp_path) == ["traces.db"]


@pytest.mark.parametrize("where", ["retrieval.top_score<<0.6", "retrieval.top_score", "x<", "=3",
                                   "retrieval.top_score<true", "x in"])
def test_malformed_filter_exits_2(store_path, capsys, where):
    code, out, err = run_exit(capsys, "--store", store_path, "query", "--where", where)
    assert code == 2
    assert err.startswith("instrumentors: error: ")
    assert "filter" in err


def test_usage_errors_exit_2(store_path, capsys):
    assert run_exit(capsys, "--store", store_path, "bogus")[0] == 2
    assert run_exit(capsys, "--store", store_path, "feedback", "abc")[0] == 2  # --score missing
    code, _, err = run_exit(capsys, "--store", store_path, "feedback", "f" * 32, "--score", "nan")
    assert code == 2 and "finite" in err
    code, _, err = run_exit(capsys, "--store", store_path, "list", "-n", "-1")
    assert code == 2 and "--limit must be >= 0" in err
    assert main([]) == 2


def test_missing_corrupt_and_locked_stores(tmp_path, capsys, seeded, store_path):
    code, out, err = run(capsys, "--store", str(tmp_path / "none.db"), "list")
    assert code == 1 and out == ""
    assert err.startswith(f"instrumentors: no trace store at {tmp_path / 'none.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 512)
    code, _, err = run(capsys, "--store", str(garbage), "show", "abcd")
    assert code == 1 and "not a readable trace store" in err
    assert garbage.read_bytes() == b"\x00garbage" * 512
    locker = sqlite3.connect(store_path, isolation_level=None, timeout=5)
    try:
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        code, _, err = run(capsys, "--store", store_path, "--timeout", "0.1", "list")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert code == 1 and "is locked" in err
    code, _, err = run(capsys, "--store", store_path, "show", "ffff" + "0" * 28)
    assert code == 1 and "no trace ffff" in err


def test_feedback_command_writes(seeded, store_path, capsys):
    code, out, _ = run(capsys, "--store", store_path, "feedback", seeded[:12], "--score", "1", "--key", "judge",
                       "--reason", "fine after reindex", "--json")
    record = json.loads(out)
    assert code == 0 and record["parent_source"] == "root" and record["trace_id"] == seeded
    with TraceStore(store_path) as store:
        assert [(f["key"], f["score"], f["reason"]) for f in store.feedback(seeded)][0] == (
            "judge", 1.0, "fine after reindex")


_REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("fmt", ["html", "svg"])
def test_graph_export_is_self_contained(seeded, store_path, capsys, tmp_path, fmt):
    target = tmp_path / f"graph.{fmt}"
    code, out, _ = run(capsys, "--store", store_path, "graph", seeded, "-o", str(target))
    assert code == 0 and out.startswith(f"wrote {target} ({fmt},")
    text = target.read_text(encoding="utf-8")
    assert not _REMOTE.search(text)
    assert "<script" not in text and "@import" not in text and "url(http" not in text
    assert text.count("<rect") >= 8  # background + one bar per span
    assert "marker-end=\"url(#arrow)\"" in text  # causal links drawn
    assert "in: kb/pricing-2025 0.44, kb/plans 0.40" in text
    if fmt == "svg":
        import xml.etree.ElementTree as ET

        ET.fromstring(text.split("?>", 1)[1])  # well-formed
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "Likely cause" in text
    else:
        assert text.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in text
    code, out, _ = run(capsys, "--store", store_path, "graph", seeded, "--format", "svg", "-o", "-")
    assert out.lstrip().startswith("<?xml")


def test_console_script_is_installed(tmp_path):
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "instrumentors"), "--store",
                          str(tmp_path / "none.db"), "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no trace store at" in out.stderr
    out = subprocess.run([sys.executable, "-m", "instrumentors.cli", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "explain" in out.stdout and "blame" in out.stdout
