"""The seed pipeline's spans over OTLP (http/protobuf and gRPC) into a real Arize Phoenix
server on loopback, read back through Phoenix's REST API: every span arrived with its
trace and parent, Phoenix recognises the LLM / RETRIEVER / CHAIN / EVALUATOR kinds, token
counts and scored documents are there, causal links are listed, the feedback span is in
its trace and maps onto a Phoenix span annotation. Then Phoenix is stopped mid-run: the
app's calls return without waiting on the exporter and one line counts the dropped spans.

Skipped (with the reason) when no Phoenix can be started: see phoenix_server.py.
"""

from __future__ import annotations

import logging
import os

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import instrumentors
import seed_pipeline
from instrumentors import _export
from instrumentors import _semconv as sc
from phoenix_server import SKIP_REASON, PhoenixServer, phoenix_python

pytestmark = pytest.mark.timeout(600)

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    python = phoenix_python()
    required = os.environ.get("INSTRUMENTORS_PHOENIX_REQUIRED") == "1"  # .ci/matrix.d/phoenix.sh
    if python is None:
        if required:
            pytest.fail(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    server = PhoenixServer(python, tmp_path_factory.mktemp("phoenix"))
    try:
        server.start()
    except RuntimeError as exc:
        text = str(exc)
        if not required and ("SyntaxError" in text or "requires Python" in text
                             or "No module named 'phoenix'" in text):
            pytest.skip(f"arize-phoenix cannot start on this Python: {text.splitlines()[0]}")
        raise
    yield server
    server.stop()


def _hex(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


def _export_seed(phoenix, seed_provider, tmp_path, protocol: str, semconv: str, questions: int = 3):
    project = f"seed-{protocol.replace('/', '-')}-{semconv}"
    endpoint = phoenix.base_url if protocol == "http/protobuf" else phoenix.grpc_endpoint
    sent = InMemorySpanExporter()  # what the app exported, to compare with what Phoenix stored
    otlp = _export.ReportingSpanProcessor(_export.otlp_exporter(endpoint, protocol), schedule_delay_millis=50)
    provider = seed_provider(SimpleSpanProcessor(sent), otlp,
                             resource={"service.name": "acme-helpcenter", "openinference.project.name": project})
    instrumentors.instrument_all(tracer_provider=provider, semconv=semconv, enabled_libraries={"openai", "langchain"})
    results = seed_pipeline.run(provider, questions, str(tmp_path / "no-store.db"))
    assert provider.force_flush(60_000)
    assert otlp.dropped == 0 and otlp.exported == len(sent.get_finished_spans())
    instrumentors.uninstrument_all()
    spans = sent.get_finished_spans()
    stored = phoenix.wait_for_spans(project, len(spans))
    return project, spans, stored, results


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_seed_pipeline_round_trip(phoenix, seed_provider, tmp_path, protocol):
    if protocol == "grpc":
        pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    semconv = "openinference" if protocol == "http/protobuf" else "both"
    project, spans, stored, results = _export_seed(phoenix, seed_provider, tmp_path, protocol, semconv)

    # every span arrived, once, with its trace id and parent
    by_id = {s["context"]["span_id"]: s for s in stored}
    assert len(stored) == len(spans) == len(by_id)
    for span in spans:
        got = by_id[_hex(span.context.span_id, 16)]
        assert got["name"] == span.name
        assert got["context"]["trace_id"] == _hex(span.context.trace_id, 32)
        assert got["parent_id"] == (_hex(span.parent.span_id, 16) if span.parent else None)
    # each question's trace (indexing the articles made a few embedding traces too)
    assert {r[0] for r in results} <= {s["context"]["trace_id"] for s in stored}

    # Phoenix recognised our kinds
    kinds = {}
    for s in stored:
        kinds.setdefault(s["name"], set()).add(s["span_kind"])
    assert kinds["chat gpt-4o-mini"] == {"LLM"} and kinds["chat gpt-4o"] == {"LLM"}
    assert kinds["retrieval InMemoryVectorStore"] == {"RETRIEVER"}
    assert kinds["context assembler"] == {"CHAIN"} and kinds["output validator"] == {"CHAIN"}
    assert kinds["feedback"] == {"EVALUATOR"}

    for s in stored:
        attrs = s["attributes"]
        if s["span_kind"] == "LLM":  # token counts
            assert attrs["llm.token_count.prompt"] > 0 and attrs["llm.token_count.completion"] > 0
            assert attrs["llm.token_count.total"] == attrs["llm.token_count.prompt"] + attrs["llm.token_count.completion"]
            assert attrs["llm.model_name"].startswith("gpt-4o")
            assert ("gen_ai.usage.input_tokens" in attrs) is (semconv == "both")
        if s["span_kind"] == "RETRIEVER":  # documents with scores
            assert attrs["retrieval.documents.0.document.id"].startswith("kb/")
            scores = [attrs[f"retrieval.documents.{i}.document.score"] for i in range(2)]
            assert scores == sorted(scores, reverse=True) and attrs["retrieval.top_score"] == scores[0]

    # causal links: Phoenix does not store OTLP span links, so the linked span ids travel as
    # attributes; every one names a span Phoenix has
    answers = [s for s in stored if s["name"] == "chat gpt-4o"]
    for answer in answers:
        linked = answer["attributes"][sc.CAUSAL_LINKED_SPAN_IDS]
        assert linked and all(span_id in by_id for span_id in linked)
        assert "INFORMED_BY" in answer["attributes"][sc.CAUSAL_LINK_TYPES] or \
            "CAUSED_BY_STEP" in answer["attributes"][sc.CAUSAL_LINK_TYPES]
    sent_links = {_hex(s.context.span_id, 16): [_hex(link.context.span_id, 16) for link in s.links] for s in spans}
    for answer in answers:
        assert answer["attributes"][sc.CAUSAL_LINKED_SPAN_IDS] == sent_links[answer["context"]["span_id"]]

    # the feedback span sits in the trace it judges, under that trace's root
    for trace_id, _answer, record in results:
        feedback = by_id[record.span_id]
        assert feedback["context"]["trace_id"] == trace_id
        assert feedback["parent_id"] == record.parent_span_id and by_id[record.parent_span_id]["parent_id"] is None
        assert feedback["attributes"][sc.FEEDBACK_SCORE] == record.score

    # ... and the same judgement as a Phoenix span annotation on the judged span
    record = results[0][2]
    annotation_id = instrumentors.send_feedback_to_phoenix(record, endpoint=phoenix.base_url)
    assert annotation_id
    found = phoenix.get(f"/v1/projects/{project}/span_annotations", span_ids=record.target_span_id)["data"]
    assert [(a["name"], a["annotator_kind"], a["result"]["score"]) for a in found] == [
        ("user", "HUMAN", record.score)]
    assert found[0]["span_id"] == record.target_span_id
    # sending it again updates that annotation (its identifier is the feedback span id)
    instrumentors.send_feedback_to_phoenix(record, endpoint=phoenix.base_url)
    assert len(phoenix.get(f"/v1/projects/{project}/span_annotations", span_ids=record.target_span_id)["data"]) == 1


def test_phoenix_stopped_mid_run_drops_are_counted_and_calls_return(phoenix, seed_provider, tmp_path, caplog):
    """Runs last in this module: it stops the server."""
    project = "seed-stopped"
    otlp = _export.ReportingSpanProcessor(_export.otlp_exporter(phoenix.base_url, "http/protobuf", timeout=2),
                                          max_queue_size=16, max_export_batch_size=8, schedule_delay_millis=20,
                                          export_timeout_millis=5_000, target="phoenix")
    sent = InMemorySpanExporter()
    provider = seed_provider(SimpleSpanProcessor(sent), otlp,
                             resource={"service.name": "acme-helpcenter", "openinference.project.name": project})
    instrumentors.instrument_all(tracer_provider=provider, semconv="openinference",
                                 enabled_libraries={"openai", "langchain"})
    seed_pipeline.run(provider, 1, str(tmp_path / "no-store.db"))
    assert provider.force_flush(60_000) and otlp.dropped == 0
    delivered = len(sent.get_finished_spans())
    assert len(phoenix.wait_for_spans(project, delivered)) == delivered

    phoenix.stop()
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        results = seed_pipeline.run(provider, 6, str(tmp_path / "no-store.db"))  # returns: never waits on export
        assert len(results) == 6 and all(answer for _t, answer, _r in results)
        made = len(sent.get_finished_spans()) - delivered
        provider.shutdown()
    assert otlp.exported == delivered and otlp.dropped == made  # nothing reached the stopped server
    lines = [r.getMessage() for r in caplog.records if r.name == "instrumentors" and "dropped" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"instrumentors: {made} spans dropped on the way to phoenix")
