"""Fixtures for the store tests: a provider exporting into a temporary store, and a
builder of seed-shaped RAG traces (plain tracer, the attribute names our instrumentors
emit, causal links set by hand) so the store is tested apart from the instrumentors.

The store's behaviour tests (modules in :data:`BOTH_BACKENDS`) run twice from the same
code: ``store_path`` is an SQLite file, then a chDB URL (in-process ClickHouse, the
Collector's ``otel_traces`` layout). A test about one engine's internals is marked
``@pytest.mark.sqlite_only``.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from typing import Optional, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from instrumentors import _semconv as sc
from instrumentors.store.exporter import SQLiteSpanExporter

BASE_NS = int(datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc).timestamp() * 1e9)
FRESH = "2026-11-01"
STALE = "2026-03-15"  # ~250 days before BASE


#: test modules whose tests run on SQLite and on chDB
BOTH_BACKENDS = {"test_store_query", "test_store_explain", "test_store_blame", "test_store_prompt_versions",
                 "test_feedback_record", "test_store_backends", "test_store_paging", "test_store_ui"}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: a test of the SQLite store's own internals")


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    both = module in BOTH_BACKENDS and not metafunc.definition.get_closest_marker("sqlite_only")
    metafunc.parametrize("backend", ["sqlite", "chdb"] if both else ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    """One chDB data directory for the whole run (chDB opens one per process); each test
    gets a database of its own in it."""
    pytest.importorskip("chdb")
    return str(tmp_path_factory.mktemp("chdb"))


_databases = iter(range(1, 1 << 30))


@pytest.fixture
def backend(request):
    return request.param


@pytest.fixture
def store_path(backend, tmp_path, request):
    if backend == "sqlite":
        return str(tmp_path / "traces.db")
    return f"chdb://{request.getfixturevalue('chdb_dir')}?database=t{next(_databases)}"


@pytest.fixture
def store_provider(store_path, backend, monkeypatch):
    provider = TracerProvider(resource=Resource.create({"service.name": "store-tests"}))
    if backend == "sqlite":
        provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(store_path)))
    else:
        # One insert per read instead of one per span (a ClickHouse insert makes a part:
        # milliseconds each): the SDK's batch processor, flushed before any store opens.
        from instrumentors.store import tracestore
        from instrumentors.store.clickhouse_exporter import ClickHouseSpanExporter

        provider.add_span_processor(BatchSpanProcessor(
            ClickHouseSpanExporter(store_path), max_queue_size=1 << 20, max_export_batch_size=1 << 16,
            schedule_delay_millis=3_600_000))
        real_open = tracestore.open_reader

        def flushing_open(*args, **kwargs):
            provider.force_flush()
            return real_open(*args, **kwargs)

        monkeypatch.setattr(tracestore, "open_reader", flushing_open)
    yield provider
    provider.shutdown()


class RagBuilder:
    """Makes one seed pipeline trace per call (rewriter, retrieval, context assembler,
    generator, validator) with explicit, increasing timestamps."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("tests.rag")
        self.clock = BASE_NS

    def _t(self, step_ms: float = 5.0) -> int:
        self.clock += int(step_ms * 1e6)
        return self.clock

    def run(
        self,
        query: str = "what is the refund window?",
        docs: Sequence[tuple] = (("kb/refunds", 0.82, FRESH), ("kb/shipping", 0.71, FRESH)),
        used: Optional[Sequence[str]] = None,
        model: str = "gpt-4o",
        finish: str = "stop",
        validator: str = "pass",
        template: str = "tpl-v1",
        error_at: Optional[str] = None,
        audit: Optional[str] = None,
        tokens_out: int = 60,
        empty: bool = False,
    ) -> str:
        t = self._t
        tracer = self.tracer
        root = tracer.start_span("rag_pipeline", start_time=t(), attributes={"input.query": query})
        ctx = trace.set_span_in_context(root)
        rewriter = tracer.start_span("chat gpt-4o-mini", context=ctx, kind=SpanKind.CLIENT, start_time=t(), attributes={
            sc.GEN_AI_OPERATION_NAME: "chat", sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 30, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 12,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",), sc.PROMPT_TEMPLATE_HASH: "rewrite-v1",
        })
        rewriter.end(t())
        docs = [] if empty else list(docs)
        scores = [d[1] for d in docs]
        entries = [{"id": d[0], "score": d[1], "metadata": {"indexed_at": d[2], "source": d[0]}} for d in docs]
        retrieval = tracer.start_span("retrieval kb", context=ctx, kind=SpanKind.CLIENT, start_time=t(), links=[
            Link(rewriter.get_span_context(), {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION,
                                               sc.LINK_SOURCE_KIND: "generation", sc.LINK_COVERAGE: 1.0})],
            attributes={
                sc.GEN_AI_OPERATION_NAME: "retrieval", sc.SPAN_KIND: sc.KIND_RETRIEVER,
                sc.RETRIEVAL_DOCUMENT_COUNT: len(docs),
                sc.RETRIEVAL_TOP_SCORE: max(scores) if scores else None,
                sc.RETRIEVAL_LOWEST_SCORE: min(scores) if scores else None,
                sc.RETRIEVAL_SCORE_ORDER: "higher_is_better" if scores else None,
                sc.GEN_AI_RETRIEVAL_DOCUMENTS: json.dumps(entries),
                sc.CAUSAL_SOURCE_COUNT: 1,
            })
        if error_at == "retrieval":
            retrieval.set_status(Status(StatusCode.ERROR, "index unavailable"))
            retrieval.set_attribute(sc.ERROR_TYPE, "TimeoutError")
        retrieval.end(t())
        used_ids = [d[0] for d in docs] if used is None else list(used)
        links = [Link(retrieval.get_span_context(), {
            sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY, sc.LINK_SOURCE_KIND: "document",
            sc.LINK_DOCUMENT_ID: d[0], sc.LINK_RANK: i, sc.LINK_SCORE: d[1], sc.LINK_COVERAGE: 1.0})
            for i, d in enumerate(docs) if d[0] in used_ids]
        unused = [d[0] for d in docs if d[0] not in used_ids]
        assembler = tracer.start_span("context assembler", context=ctx, start_time=t(), links=links, attributes={
            sc.SPAN_KIND: sc.KIND_STEP, sc.STEP_NAME: "context assembler", sc.LIBRARY: "user",
            sc.CAUSAL_SOURCE_COUNT: len(links),
            sc.CAUSAL_SOURCE_IDS: tuple(used_ids) if used_ids else None,
            sc.CAUSAL_UNUSED_IDS: tuple(unused) if unused else None,
        })
        assembler.end(t())
        generator = tracer.start_span(f"chat {model}", context=ctx, kind=SpanKind.CLIENT, start_time=t(), links=[
            Link(assembler.get_span_context(), {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_STEP,
                                                sc.LINK_SOURCE_KIND: "step", sc.LINK_COVERAGE: 1.0})],
            attributes={
                sc.GEN_AI_OPERATION_NAME: "chat", sc.SPAN_KIND: sc.KIND_LLM, sc.GEN_AI_REQUEST_MODEL: model,
                sc.GEN_AI_USAGE_INPUT_TOKENS: 400, sc.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
                sc.GEN_AI_RESPONSE_FINISH_REASONS: (finish,), sc.PROMPT_TEMPLATE_HASH: template,
            })
        if error_at == "generator":
            generator.set_status(Status(StatusCode.ERROR, "rate limited"))
            generator.set_attribute(sc.ERROR_TYPE, "RateLimitError")
        generator.end(t(40))
        if audit is not None:  # a side call linked to nothing: must never be blamed
            side = tracer.start_span("chat audit", context=ctx, kind=SpanKind.CLIENT, start_time=t(), attributes={
                sc.GEN_AI_OPERATION_NAME: "chat", sc.SPAN_KIND: sc.KIND_LLM, "audit.flag": audit})
            side.end(t())
        validator_span = tracer.start_span("output validator", context=ctx, start_time=t(), links=[
            Link(generator.get_span_context(), {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION,
                                                sc.LINK_SOURCE_KIND: "generation", sc.LINK_COVERAGE: 1.0})],
            attributes={sc.SPAN_KIND: sc.KIND_STEP, sc.STEP_NAME: "output validator", sc.STEP_STATUS: validator})
        validator_span.end(t())
        root.end(t())
        return format(root.get_span_context().trace_id, "032x")


@pytest.fixture
def rag(store_provider):
    return RagBuilder(store_provider)


def planted_dataset(rag: RagBuilder, store_path: str, n: int = 240, seed: int = 7) -> dict:
    """Traces with several causes of bad answers plus noise; feedback recorded.

    Causes: (A, planted, strongest) the stale pricing page is the top document, with a
    low score, and the answer is usually judged bad; (B) the generator hit the token
    limit; (C) prompt template v2 is slightly worse. Noise: model choice, token counts,
    a side "audit" call flagged in many negative traces but linked to nothing, and
    random feedback flips.
    """
    from instrumentors import record_feedback

    rnd = random.Random(seed)
    counts = {"A": 0, "B": 0, "neg": 0}
    for i in range(n):
        stale = rnd.random() < 0.3
        truncated = rnd.random() < 0.15
        template = "tpl-v2" if rnd.random() < 0.5 else "tpl-v1"
        model = rnd.choice(["gpt-4o", "gpt-4o-mini"])
        if stale:
            docs = [("kb/pricing-2025", round(rnd.uniform(0.38, 0.57), 3), STALE),
                    ("kb/plans", round(rnd.uniform(0.3, 0.5), 3), FRESH)]
        else:
            docs = [(rnd.choice(["kb/refunds", "kb/shipping", "kb/pricing-2026"]), round(rnd.uniform(0.62, 0.93), 3),
                     FRESH), ("kb/plans", round(rnd.uniform(0.5, 0.6), 3), FRESH)]
        p_bad = 0.08
        if stale:
            p_bad = 0.9
        if truncated:
            p_bad = max(p_bad, 0.7)
        if template == "tpl-v2":
            p_bad += 0.07
        bad = rnd.random() < p_bad
        audit = "on" if (bad and rnd.random() < 0.6) or rnd.random() < 0.1 else None
        trace_id = rag.run(query=f"question {i}", docs=docs, model=model, template=template,
                           finish="length" if truncated else "stop", tokens_out=rnd.randint(20, 200), audit=audit)
        score = 0.0 if bad else 1.0
        record_feedback(trace_id, score, reason="outdated" if bad and stale else None,
                        tracer_provider=rag.provider, store_path=store_path)
        counts["A"] += stale
        counts["B"] += truncated
        counts["neg"] += bad
    return counts


@pytest.fixture
def planted(rag, store_path):
    return planted_dataset(rag, store_path)
