"""record_feedback: the feedback span, its parent, validation, and the current ids."""

from __future__ import annotations

import math
import os

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import instrumentors
from instrumentors import _feedback
from instrumentors import _semconv as sc
from instrumentors import record_feedback
from instrumentors.store import TraceStore


def _hex(span) -> tuple:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_current_trace_and_span_ids(tracer_provider):
    assert instrumentors.current_trace_id() is None
    assert instrumentors.current_span_id() is None
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("inner") as inner:
            assert instrumentors.current_trace_id() == _hex(outer)[0]
            assert instrumentors.current_span_id() == _hex(inner)[1]
            assert len(instrumentors.current_trace_id()) == 32 and len(instrumentors.current_span_id()) == 16
    assert instrumentors.current_trace_id() is None


def test_feedback_span_on_a_span_context(tracer_provider, span_exporter):
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("rag_pipeline") as root:
        pass
    trace_hex, root_hex = _hex(root)
    span_exporter.clear()
    record = record_feedback(root.get_span_context(), 0.0, reason="answer was factually wrong",
                             step_blamed="retrieval", attributes={"ticket": "T-9", "tags": ("a", "b")},
                             tracer_provider=tracer_provider)
    [span] = span_exporter.get_finished_spans()
    assert span.name == "feedback" and span.kind == SpanKind.INTERNAL
    assert format(span.context.trace_id, "032x") == trace_hex
    assert format(span.parent.span_id, "016x") == root_hex and span.parent.is_remote
    assert dict(span.attributes) == {
        sc.SPAN_KIND: sc.KIND_FEEDBACK, sc.FEEDBACK_SCORE: 0.0, sc.FEEDBACK_KEY: "user",
        sc.FEEDBACK_REASON: "answer was factually wrong", sc.FEEDBACK_STEP_BLAMED: "retrieval",
        sc.FEEDBACK_TARGET_SPAN_ID: root_hex, "ticket": "T-9", "tags": ("a", "b"),
    }
    assert span.start_time == span.end_time
    assert (record.trace_id, record.parent_span_id, record.parent_source, record.score, record.key) == (
        trace_hex, root_hex, "span", 0.0, "user")
    assert record.span_id == format(span.context.span_id, "016x")


def test_hex_id_after_the_trace_ended_finds_the_root_in_the_store(store_provider, store_path, span_exporter):
    tracer = store_provider.get_tracer("t")
    with tracer.start_as_current_span("rag_pipeline") as root:
        with tracer.start_as_current_span("retrieval", attributes={sc.RETRIEVAL_TOP_SCORE: 0.42}):
            trace_hex = instrumentors.current_trace_id()
    record = record_feedback(trace_hex, 0.25, key="thumbs", tracer_provider=store_provider, store_path=store_path)
    assert record.parent_source == "root" and record.parent_span_id == _hex(root)[1]
    with TraceStore(store_path) as store:
        data = store.trace(trace_hex)
        [fb] = data["feedback"]
        assert (fb["score"], fb["key"], fb["target_span_id"], fb["span_id"]) == (
            0.25, "thumbs", _hex(root)[1], record.span_id)
        [root_node] = data["roots"]
        assert [c["name"] for c in root_node["children"]] == ["retrieval", "feedback"]
        # TraceQL's { .retrieval.top_score < 0.6 } && { .feedback.score < 0.5 }
        matches = store.query({"retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}})
        assert [m["trace_id"] for m in matches] == [trace_hex]
        assert matches[0]["feedback.score"] == 0.25 and matches[0]["duration_ms"] == data["duration_ms"]
    assert span_exporter.get_finished_spans() == ()  # nothing went to the global provider


def test_span_id_argument_and_traceparent(store_provider, store_path):
    tracer = store_provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("generator") as gen:
            pass
    trace_hex, gen_hex = _hex(gen)
    record = record_feedback(trace_hex, 1, span_id=gen_hex, tracer_provider=store_provider, store_path=store_path)
    assert (record.parent_span_id, record.parent_source, record.score) == (gen_hex, "span", 1.0)
    record = record_feedback(f"00-{trace_hex}-{gen_hex}-01", 0.5, tracer_provider=store_provider,
                             store_path=store_path)
    assert (record.parent_span_id, record.target_span_id) == (gen_hex, gen_hex)


def test_unknown_root_makes_a_root_level_span_of_the_judged_trace(store_provider, store_path):
    trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736"
    record = record_feedback(trace_hex, 0.0, tracer_provider=store_provider, store_path=store_path)
    assert (record.parent_source, record.parent_span_id, record.target_span_id) == ("trace", None, None)
    assert record.trace_id == trace_hex and record.stored is True
    with TraceStore(store_path) as store:
        [summary] = store.query({"feedback.score": {"lt": 0.5}})
        assert summary["trace_id"] == trace_hex and summary["feedback.count"] == 1
        [fb] = store.feedback(trace_hex)
        assert fb["target_span_id"] is None and fb["span_id"] == record.span_id   # the trace as a whole
        [node] = store.trace(trace_hex)["roots"]
        assert (node["name"], node["parent_span_id"]) == ("feedback", None)        # no made-up parent


@pytest.mark.sqlite_only
def test_root_level_feedback_joins_its_trace_when_the_spans_arrive_later(store_provider, store_path, tracer_provider,
                                                                         span_exporter):
    # the app's spans go elsewhere first (here: the in-memory provider, e.g. OTLP only)
    with tracer_provider.get_tracer("app").start_as_current_span("rag_pipeline") as root:
        with tracer_provider.get_tracer("app").start_as_current_span("retrieval"):
            pass
    trace_hex, root_hex = _hex(root)
    app_spans = span_exporter.get_finished_spans()
    span_exporter.clear()
    record = record_feedback(trace_hex, 0.0, reason="stale", tracer_provider=tracer_provider, store_path=store_path)
    [span] = span_exporter.get_finished_spans()
    assert span.parent is None and format(span.context.trace_id, "032x") == trace_hex   # what a backend receives
    assert sc.FEEDBACK_TARGET_SPAN_ID not in span.attributes
    assert record.stored is None                      # no embedded store on this provider: not verifiable here
    # the same spans reach the store later (a collector fan-out, an import): one trace, root unchanged
    from instrumentors.store.exporter import SQLiteSpanExporter

    exporter = SQLiteSpanExporter(store_path)
    assert exporter.export([span]) .name == "SUCCESS"
    assert exporter.export(list(app_spans)).name == "SUCCESS"
    exporter.shutdown()
    with TraceStore(store_path) as store:
        data = store.trace(trace_hex)
        assert data["root_span_id"] == root_hex and data["root_name"] == "rag_pipeline"
        [root_node] = data["roots"]
        assert [c["name"] for c in root_node["children"]] == ["retrieval", "feedback"]
        explained = store.explain(trace_hex)
        assert [f["reason"] for f in explained["feedback"]] == ["stale"]


def test_first_run_in_a_new_directory_finds_the_root_still_queued(tmp_path):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from instrumentors.store.exporter import SQLiteSpanExporter

    path = str(tmp_path / "new" / "traces.db")
    provider = TracerProvider()   # what instrument_all() installs: a batch processor into the store
    provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(path), schedule_delay_millis=60_000))
    try:
        with provider.get_tracer("t").start_as_current_span("rag_pipeline") as root:
            pass
        assert not os.path.exists(path)                       # nothing exported yet: no file at all
        record = record_feedback(_hex(root)[0], 0.0, tracer_provider=provider, store_path=path)
        assert (record.parent_source, record.target_span_id, record.stored) == ("root", _hex(root)[1], True)
        with TraceStore(path) as store:
            [fb] = store.feedback(_hex(root)[0])
            assert fb["target_span_id"] == _hex(root)[1]
    finally:
        provider.shutdown()


def test_without_an_sdk_provider_feedback_is_written_straight_to_the_store(monkeypatch, tmp_path):
    path = str(tmp_path / "direct.db")
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    record = record_feedback("0af7651916cd43dd8448eb211c80319c", 0.0, reason="stale", store_path=path)
    with TraceStore(path) as store:
        [fb] = store.feedback()
    assert (fb["trace_id"], fb["score"], fb["reason"], fb["span_id"]) == (
        "0af7651916cd43dd8448eb211c80319c", 0.0, "stale", record.span_id)


def test_redaction_hook_applies_to_the_reason(tracer_provider, span_exporter, set_config):
    set_config(redact=lambda text: text.replace("alice@example.com", "[email]"))
    record_feedback("0af7651916cd43dd8448eb211c80319c", 0.0, reason="mail alice@example.com",
                    tracer_provider=tracer_provider)
    [span] = span_exporter.get_finished_spans()
    assert span.attributes[sc.FEEDBACK_REASON] == "mail [email]"


GOOD = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("kwargs, message", [
    ({"trace_id": "xyz"}, "trace_id must be 32 hex digits"),
    ({"trace_id": GOOD[:-1]}, "trace_id must be 32 hex digits"),
    ({"trace_id": "0" * 32}, "not a valid id"),
    ({"trace_id": None}, "hex string"),
    ({"trace_id": True}, "boolean"),
    ({"trace_id": trace.INVALID_SPAN_CONTEXT}, "not valid"),
    ({"score": float("nan")}, "finite"),
    ({"score": math.inf}, "finite"),
    ({"score": "0.5"}, "must be a number"),
    ({"score": True}, "must be a number"),
    ({"score": None}, "must be a number"),
    ({"reason": "x" * (_feedback.MAX_REASON_LENGTH + 1)}, "at most 4096"),
    ({"reason": 42}, "reason must be a string"),
    ({"reason": "   "}, "must not be empty"),
    ({"step_blamed": "s" * 300}, "at most 256"),
    ({"key": ""}, "must not be empty"),
    ({"key": None}, "key must be a string"),
    ({"span_id": "123"}, "span_id must be 16 hex digits"),
    ({"span_id": "0" * 16}, "not a valid id"),
    ({"attributes": {"feedback.score": 1}}, "reserved"),
    ({"attributes": {"x": {"nested": 1}}}, "not a valid OpenTelemetry attribute value"),
    ({"attributes": {"x": [1, "a"]}}, "not a valid OpenTelemetry attribute value"),
    ({"attributes": {"x": "y" * 5000}}, "longer than"),
    ({"attributes": ["x"]}, "must be a mapping"),
])
def test_bad_input_raises_and_writes_nothing(tracer_provider, span_exporter, store_path, kwargs, message):
    args = {"trace_id": GOOD, "score": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        record_feedback(**args, tracer_provider=tracer_provider, store_path=store_path)
    assert span_exporter.get_finished_spans() == ()
    import os

    assert not os.path.exists(store_path)


def test_private_store_providers_are_bounded(monkeypatch, tmp_path):
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    monkeypatch.setattr(_feedback, "_private_providers", {})
    paths = [str(tmp_path / f"s{i}.db") for i in range(_feedback._MAX_PRIVATE_PROVIDERS + 3)]
    for path in paths:
        record_feedback(GOOD, 1.0, store_path=path)
        assert len(_feedback._private_providers) <= _feedback._MAX_PRIVATE_PROVIDERS
    assert [path for path, _ in _feedback._private_providers] == [os.path.abspath(p) for p in paths[-4:]]  # oldest out
    for path in paths:  # every record reached its store, evicted providers included
        with TraceStore(path) as store:
            assert [f["score"] for f in store.feedback()] == [1.0]
    for provider in _feedback._private_providers.values():
        provider.shutdown()


from opentelemetry.sdk.trace import SpanProcessor  # noqa: E402


class _FlushCounter(SpanProcessor):
    """A span processor that counts force_flush calls (and keeps nothing)."""

    def __init__(self) -> None:
        self.flushes = 0

    def force_flush(self, timeout_millis=30000):
        self.flushes += 1
        return True


def test_flushes_pending_spans_only_when_the_store_is_in_use(tmp_path, store_provider, store_path):
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    counter = _FlushCounter()
    provider.add_span_processor(counter)
    record = record_feedback(GOOD, 0.0, tracer_provider=provider, store_path=str(tmp_path / "absent.db"))
    assert (record.parent_source, counter.flushes) == ("trace", 0)  # e.g. OTLP only: never waits
    with store_provider.get_tracer("t").start_as_current_span("root"):
        pass  # creates the store file
    record = record_feedback(GOOD, 0.0, tracer_provider=provider, store_path=store_path)
    assert (record.parent_source, counter.flushes) == ("trace", 1)  # looked, flushed once, looked again
    provider.shutdown()


def test_a_store_file_without_schema_yet_is_not_an_error(tracer_provider, span_exporter, tmp_path, caplog):
    path = tmp_path / "being-created.db"
    path.write_bytes(b"")  # what a reader sees while the first export creates the schema
    record = record_feedback(GOOD, 0.0, tracer_provider=tracer_provider, store_path=str(path))
    assert record.parent_source == "trace"
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
