"""User steps: ``instrumentors.step`` as a context manager and a decorator (sync, async)."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import instrumentors
from instrumentors import _semconv as sc
from instrumentors.causal import Produced, consume, produce, steps

DOC_A = ("Orders above fifty euros ship for free within the European Union, and delivery "
         "usually takes three working days from the moment payment is confirmed.")
DOC_B = ("Customers can return unopened items within thirty days; opened software and "
         "personalised products cannot be returned unless they arrived damaged.")
ANSWER = ("Shipping is free above fifty euros in the EU and takes about three working days, "
          "and you may return unopened items within thirty days of delivery.")


def by_name(spans):
    out = {}
    for span in spans:
        assert span.name not in out, f"duplicate span {span.name}"
        out[span.name] = span
    return out


def link_summary(span):
    return [(link.context.span_id, dict(link.attributes)) for link in span.links]


def retrieval(tracer, docs):
    span = tracer.start_span("retrieve")
    produce(span, [Produced(text, "document", doc_id, rank, 0.5) for rank, (doc_id, text) in enumerate(docs)])
    span.end()
    return span


def test_context_manager_step_consumes_and_produces(tracer, tracer_provider, span_exporter):
    with tracer.start_as_current_span("request") as root:
        retrieved = retrieval(tracer, [("a", DOC_A), ("b", DOC_B)])
        with instrumentors.step("context assembler", inputs=[DOC_A], tracer_provider=tracer_provider) as s:
            assert trace.get_current_span() is s.span
            context = "Context:\n1. " + DOC_A
            s.produce(context)
        consumption = consume(["System: answer from context.", context + "\nQuestion: shipping?"])
    spans = by_name(span_exporter.get_finished_spans())
    step_span = spans["context assembler"]
    assert step_span.kind == SpanKind.INTERNAL
    assert step_span.parent.span_id == root.get_span_context().span_id
    assert step_span.attributes[sc.SPAN_KIND] == sc.KIND_STEP
    assert step_span.attributes[sc.STEP_NAME] == "context assembler"
    assert step_span.attributes[sc.LIBRARY] == "user"
    assert step_span.attributes[sc.CAUSAL_SOURCE_IDS] == ("a",)
    assert step_span.attributes[sc.CAUSAL_UNUSED_IDS] == ("b",)
    assert link_summary(step_span) == [(retrieved.get_span_context().span_id, {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY, sc.LINK_SOURCE_KIND: "document",
        sc.LINK_COVERAGE: 1.0, sc.LINK_DOCUMENT_ID: "a", sc.LINK_RANK: 0, sc.LINK_SCORE: 0.5})]
    assert step_span.attributes[sc.CAUSAL_PRODUCED_DIGESTS][0] == "fp1 k=5 kid=360251e5"  # test-suite key
    assert sc.INPUT_VALUE not in step_span.attributes and sc.OUTPUT_VALUE not in step_span.attributes
    assert step_span.status.status_code == StatusCode.UNSET
    # the generator consuming the assembled context links to the step AND the document
    kinds = [(link.attributes[sc.LINK_SOURCE_KIND], link.context.span_id) for link in consumption.links]
    assert kinds == [("document", retrieved.get_span_context().span_id),
                     ("step", step_span.context.span_id)]
    assert consumption.links[1].attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE] == sc.LINK_CAUSED_BY_STEP


def test_decorated_function_uses_arguments_and_return_value(tracer, tracer_provider, span_exporter):
    calls = []

    @instrumentors.step("output validator", tracer_provider=tracer_provider)
    def validate(answer: str, *, strict: bool = True) -> dict:
        calls.append(answer)
        ok = "thirty days" in answer
        instrumentors.step.current().set_status("pass" if ok else "fail")
        return {"verdict": "grounded answer about shipping and returns" if ok else "ungrounded"}

    with tracer.start_as_current_span("request"):
        llm = tracer.start_span("chat answer")
        produce(llm, [Produced(ANSWER, "generation")])
        llm.end()
        result = validate(ANSWER, strict=False)
        after = consume([result["verdict"]])
    assert calls == [ANSWER] and result == {"verdict": "grounded answer about shipping and returns"}
    span = by_name(span_exporter.get_finished_spans())["output validator"]
    assert span.attributes[sc.STEP_STATUS] == "pass"
    assert link_summary(span) == [(llm.get_span_context().span_id, {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION, sc.LINK_SOURCE_KIND: "generation",
        sc.LINK_COVERAGE: 1.0})]
    assert [link.context.span_id for link in after.links] == [span.context.span_id]
    assert validate.__name__ == "validate"


async def test_async_decorator_and_async_context_manager(tracer, tracer_provider, span_exporter):
    @instrumentors.step(tracer_provider=tracer_provider)
    async def rewrite(query: str) -> str:
        await asyncio.sleep(0)
        return query + " in the European Union with free shipping"

    with tracer.start_as_current_span("request"):
        rewritten = await rewrite("delivery time")
        async with instrumentors.step("search", inputs=rewritten, tracer_provider=tracer_provider) as s:
            await asyncio.sleep(0)
            s.set_attribute("custom.attribute", 3)
    spans = by_name(span_exporter.get_finished_spans())
    rewrite_span = spans["test_async_decorator_and_async_context_manager.<locals>.rewrite"]
    assert rewrite_span.attributes[sc.STEP_NAME] == rewrite_span.name
    search = spans["search"]
    assert search.attributes["custom.attribute"] == 3
    assert [link.context.span_id for link in search.links] == [rewrite_span.context.span_id]


def test_bare_decorator_and_explicit_inputs(tracer, tracer_provider, span_exporter):
    @instrumentors.step
    def plain(x):
        return x

    @instrumentors.step("picky", inputs=lambda question, docs: docs, tracer_provider=tracer_provider)
    def picky(question, docs):
        return None

    with tracer.start_as_current_span("request"):
        retrieved = retrieval(tracer, [("a", DOC_A)])
        assert plain(DOC_B) == DOC_B
        picky("what about " + DOC_A, ["unrelated words that are not in any document at all"])
    spans = by_name(span_exporter.get_finished_spans())
    assert spans["test_bare_decorator_and_explicit_inputs.<locals>.plain"].attributes[sc.SPAN_KIND] == "step"
    assert spans["picky"].links == ()  # the question (which quotes DOC_A) was not an input
    assert retrieved.attributes[sc.CAUSAL_PRODUCED_DIGESTS]


def test_exceptions_propagate_unchanged_and_mark_the_span(tracer_provider, span_exporter):
    error = ValueError("bad input")

    @instrumentors.step("fails", tracer_provider=tracer_provider)
    def fails(text):
        raise error

    with pytest.raises(ValueError) as info:
        fails("x")
    assert info.value is error
    with pytest.raises(KeyError):
        with instrumentors.step("fails in with", tracer_provider=tracer_provider):
            raise KeyError("k")
    spans = by_name(span_exporter.get_finished_spans())
    for name, type_name in (("fails", "ValueError"), ("fails in with", "KeyError")):
        assert spans[name].status.status_code == StatusCode.ERROR
        assert spans[name].attributes[sc.ERROR_TYPE] == type_name


async def test_async_exception_propagates(tracer_provider, span_exporter):
    @instrumentors.step("async fails", tracer_provider=tracer_provider)
    async def fails():
        raise asyncio.TimeoutError()

    with pytest.raises(asyncio.TimeoutError):
        await fails()
    (span,) = span_exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR


def test_return_value_is_the_same_object(tracer_provider):
    marker = ["same list with enough words to be fingerprinted here"]

    @instrumentors.step("identity", tracer_provider=tracer_provider)
    def identity():
        return marker

    assert identity() is marker


def test_content_capture_on_records_inputs_and_outputs(tracer_provider, span_exporter, set_config):
    set_config(capture_content=True)
    with instrumentors.step("assemble", inputs=["first input", "second input"], tracer_provider=tracer_provider) as s:
        s.produce("the assembled output")
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes[sc.INPUT_VALUE] == '["first input","second input"]'
    assert span.attributes[sc.OUTPUT_VALUE] == "the assembled output"


def test_document_kind_step_registers_documents_with_ids(tracer, tracer_provider, span_exporter):
    from langchain_core.documents import Document

    @instrumentors.step("custom retriever", kind="document", tracer_provider=tracer_provider)
    def search(query):
        return [Document(page_content=DOC_A, id="a", metadata={"score": 0.9}),
                Document(page_content=DOC_B, metadata={"id": "b", "score": 0.4})]

    with tracer.start_as_current_span("request"):
        search("shipping")
        consumption = consume([DOC_B])
    (link,) = consumption.links
    assert dict(link.attributes) == {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY, sc.LINK_SOURCE_KIND: "document",
        sc.LINK_COVERAGE: 1.0, sc.LINK_DOCUMENT_ID: "b", sc.LINK_RANK: 1, sc.LINK_SCORE: 0.4}
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("a",)


def test_llama_index_nodes_are_inputs(tracer, tracer_provider, span_exporter):
    from llama_index.core.schema import NodeWithScore, TextNode

    with tracer.start_as_current_span("request"):
        retrieved = retrieval(tracer, [("a", DOC_A), ("b", DOC_B)])
        nodes = [NodeWithScore(node=TextNode(text=DOC_B, id_="n1"), score=0.3)]
        with instrumentors.step("assembler", inputs=nodes, tracer_provider=tracer_provider):
            pass
    span = by_name(span_exporter.get_finished_spans())["assembler"]
    assert [(l.context.span_id, l.attributes[sc.LINK_DOCUMENT_ID]) for l in span.links] == [
        (retrieved.get_span_context().span_id, "b")]


def test_late_consume_adds_links(tracer, tracer_provider, span_exporter):
    with tracer.start_as_current_span("request"):
        retrieved = retrieval(tracer, [("a", DOC_A)])
        with instrumentors.step("late", tracer_provider=tracer_provider) as s:
            s.consume({"doc": DOC_A})
    span = by_name(span_exporter.get_finished_spans())["late"]
    assert [l.context.span_id for l in span.links] == [retrieved.get_span_context().span_id]


def test_nested_step_and_generation_with_the_same_output_link_once(tracer, tracer_provider, span_exporter):
    """A step wrapping an LLM call returns the completion: the outer span is linked."""

    @instrumentors.step("answer generator", tracer_provider=tracer_provider)
    def generate(context):
        llm = tracer.start_span("chat inner")
        produce(llm, [Produced(ANSWER, "generation")])
        llm.end()
        return ANSWER

    with tracer.start_as_current_span("request"):
        generate("context")
        consumption = consume([ANSWER])
    spans = by_name(span_exporter.get_finished_spans())
    assert [l.context.span_id for l in consumption.links] == [spans["answer generator"].context.span_id]


def test_generator_functions_are_left_alone():
    def gen():
        yield 1

    async def agen():
        yield 1

    assert instrumentors.step("g")(gen) is gen
    assert instrumentors.step("ag")(agen) is agen


def test_current_outside_a_step_is_a_harmless_stand_in(span_exporter):
    run = instrumentors.step.current()
    run.set_status("fail")
    run.produce("text that goes nowhere at all")
    run.consume("x")
    assert span_exporter.get_finished_spans() == ()


def test_step_internals_failing_never_break_the_function(tracer_provider, span_exporter, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(steps, "start_span", boom)

    @instrumentors.step("broken", tracer_provider=tracer_provider)
    def work(x):
        instrumentors.step.current().set_status("pass")
        return x * 2

    assert work(21) == 42
    with instrumentors.step("broken with", tracer_provider=tracer_provider) as s:
        s.produce("still fine")
        s.set_status("fail")
    assert span_exporter.get_finished_spans() == ()


def test_causal_off_still_makes_the_span(tracer_provider, span_exporter, set_config):
    set_config(causal_links=False)
    with instrumentors.step("plain", inputs="some input text here", tracer_provider=tracer_provider) as s:
        s.produce("some output text that would be registered")
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes[sc.SPAN_KIND] == "step"
    assert not any(key.startswith("instrumentors.causal.") for key in span.attributes)
