"""The CLI's bad-input table: every bad input exits with its documented code (2 usage,
1 store/trace problem), prints one ``instrumentors: ...`` line and no traceback, and
changes no file (the store's bytes and the directory listing are as before)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys

import pytest

from instrumentors.cli import build_parser, main

TRACE = "ab" * 16


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A small real store (one trace), written and closed by the exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from instrumentors.store.exporter import SQLiteSpanExporter

    directory = tmp_path_factory.mktemp("cli-bad-input")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(str(directory / "traces.db"))))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root", attributes={"retrieval.top_score": 0.4}):
        pass
    with tracer.start_as_current_span("root", attributes={"retrieval.top_score": 0.9}):
        pass
    provider.shutdown()
    (directory / "garbage.db").write_bytes(b"\x00not sqlite" * 300)
    (directory / "empty.db").write_bytes(b"")
    with sqlite3.connect(directory / "other.db") as db:
        db.execute("CREATE TABLE t(x)")
    (directory / "adir.db").mkdir()
    return directory


def _state(directory):
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    out[path] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns)
            else:
                out[path] = "dir"
    return out


S = "{dir}/traces.db"
BAD = [
    # (argv, exit code, text the one error line contains)
    (["--timeout", "-1", "list"], 2, "--timeout"),
    (["--timeout", "nan", "list"], 2, "--timeout"),
    (["--timeout", "inf", "list"], 2, "--timeout"),
    (["--timeout", "soon", "list"], 2, "--timeout"),
    (["list", "-w", "retrieval.top_score<nan"], 2, "not a finite number"),
    (["list", "-w", "retrieval.top_score<inf"], 2, "not a finite number"),
    (["list", "-w", "retrieval.top_score>-inf"], 2, "not a finite number"),
    (["list", "-w", "retrieval.top_score<1e999999"], 2, "not a finite number"),
    (["list", "-w", "retrieval.top_score in 0.1,nan"], 2, "not a finite number"),
    (["query", "-w", "retrieval.top_score<<0.6"], 2, "filter"),
    (["query", "-w", "=3"], 2, "filter"),
    (["query", "-w", "x<true"], 2, "filter"),
    (["query", "-w", "x<1", "-w", "x<2"], 2, "already has"),
    (["query", "-w", "duration_ms~3"], 2, "duration_ms"),
    (["list", "-n", "-1"], 2, "--limit"),
    (["list", "-n", "many"], 2, "--limit"),
    (["blame", "--top", "-3"], 2, "--top"),
    (["blame", "--threshold", "nan"], 2, "finite"),
    (["explain", TRACE, "--low-score", "inf"], 2, "finite"),
    (["explain", TRACE, "--stale-days", "nan"], 2, "finite"),
    (["show", "fd"], 2, "4 or more"),
    (["show", "zzzz"], 2, "not a trace id"),
    (["show", "0x"], 2, "not a trace id"),
    (["show", "a" * 33], 2, "not a trace id"),
    (["feedback", TRACE], 2, "--score"),
    (["feedback", TRACE, "--score", "nan"], 2, "finite"),
    (["feedback", TRACE, "--score", "1e999999"], 2, "finite"),
    (["feedback", TRACE, "--score", "1", "--span-id", "xyz"], 2, "span"),
    (["graph", "{trace}", "-o", "{dir}/out.txt"], 2, "format"),
    (["bogus"], 2, "invalid choice"),
    (["show", "ffff" + "0" * 28], 1, "no trace ffff"),
    (["show", "0000"], 1, "no trace 0000"),
    (["--store", "{dir}/none.db", "list"], 1, "no trace store at"),
    (["--store", "{dir}/adir.db", "list"], 1, "directory"),
    (["--store", "{dir}/garbage.db", "info"], 1, "not a readable trace store"),
    (["--store", "{dir}/empty.db", "list"], 1, "empty"),
    (["--store", "{dir}/other.db", "blame"], 1, "not an instrumentors trace store"),
]


@pytest.mark.parametrize("argv, code, text", BAD, ids=[" ".join(b[0])[:60] for b in BAD])
def test_bad_input_exits_cleanly_and_changes_nothing(store_dir, capsys, argv, code, text):
    from instrumentors.store import TraceStore

    with TraceStore(S.format(dir=store_dir)) as store:
        trace = store.query()[0]["trace_id"]
    argv = [a.format(dir=store_dir, trace=trace) for a in argv]
    if "--store" not in argv:
        argv = ["--store", S.format(dir=store_dir), *argv]
    before = _state(store_dir)
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    out = capsys.readouterr()
    assert got == code, out.err
    assert "Traceback" not in out.err and "Traceback" not in out.out
    assert text in out.err, out.err
    messages = [line for line in out.err.splitlines() if line and not line.startswith(("usage:", " "))]
    assert len(messages) == 1 and messages[0].startswith("instrumentors"), out.err  # one line, no dump
    assert _state(store_dir) == before


def test_locked_store_exits_1_within_the_timeout(store_dir, capsys):
    path = S.format(dir=store_dir)
    before = _state(store_dir)
    locker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        code = main(["--store", path, "--timeout", "0.2", "list"])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    err = capsys.readouterr().err
    assert code == 1 and "is locked" in err and "Traceback" not in err
    assert {k: v for k, v in _state(store_dir).items() if k.endswith("traces.db")} == {
        k: v for k, v in before.items() if k.endswith("traces.db")}


def test_version_and_help_for_every_option(capsys):
    from instrumentors import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"instrumentors {__version__}"
    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, sub_name)
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append((name, action.option_strings or action.dest))

    walk(build_parser(), "instrumentors")
    assert not missing


def test_console_script_bad_input_prints_no_traceback(store_dir, tmp_path):
    """The installed command itself, in a subprocess: same codes, no traceback."""
    for argv, code in ((["show", "fd"], 2), (["--timeout", "-1", "list"], 2), (["list"], 1)):
        proc = subprocess.run([sys.executable, "-m", "instrumentors.cli", "--store", str(tmp_path / "no.db"), *argv],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []
