"""Feedback recorded by another process, after the judged trace ended."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from instrumentors.store import TraceStore

APP = textwrap.dedent("""
    from opentelemetry import trace
    import instrumentors
    from instrumentors._distro import install_default_tracer_provider
    provider = install_default_tracer_provider()          # the store, as with no exporter configured
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("rag_pipeline"):
        with tracer.start_as_current_span("retrieval", attributes={"retrieval.top_score": 0.41}):
            print(instrumentors.current_trace_id())
    provider.shutdown()
""")

FEEDBACK_PLAIN = textwrap.dedent("""
    import sys, instrumentors
    record = instrumentors.record_feedback(sys.argv[1], 0.0, reason="answer was outdated", step_blamed="retrieval")
    print(record.parent_source, record.parent_span_id)
""")

FEEDBACK_WITH_SDK = textwrap.dedent("""
    import sys, instrumentors
    from instrumentors._distro import install_default_tracer_provider
    provider = install_default_tracer_provider()
    record = instrumentors.record_feedback(sys.argv[1], 1.0, key="judge")
    provider.shutdown()
    print(record.parent_source, record.parent_span_id)
""")


def _run(code: str, env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout.strip()


def test_feedback_from_other_processes(tmp_path):
    path = str(tmp_path / "shared.db")
    env = {**os.environ, "INSTRUMENTORS_STORE_PATH": path}
    env.pop("OTEL_TRACES_EXPORTER", None)
    trace_id = _run(APP, env)
    assert len(trace_id) == 32
    with TraceStore(path) as store:
        root_id = store.trace(trace_id)["root_span_id"]
    source, parent = _run(FEEDBACK_PLAIN, env, trace_id).split()
    assert (source, parent) == ("root", root_id)
    source, parent = _run(FEEDBACK_WITH_SDK, env, trace_id).split()
    assert (source, parent) == ("root", root_id)
    with TraceStore(path) as store:
        data = store.trace(trace_id)
        assert [(f["key"], f["score"], f["reason"], f["step_blamed"], f["target_span_id"]) for f in data["feedback"]] == [
            ("user", 0.0, "answer was outdated", "retrieval", root_id), ("judge", 1.0, None, None, root_id)]
        assert [c["name"] for c in data["roots"][0]["children"]] == ["retrieval", "feedback", "feedback"]
        [match] = store.query({"retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}})
        assert match["trace_id"] == trace_id and match["feedback.score"] == 0.0 and match["feedback.count"] == 2
