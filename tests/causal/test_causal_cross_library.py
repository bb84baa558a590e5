"""Causal links across libraries, through the real instrumentors (offline: in-process
fake httpx transports for openai, fake LangChain/LlamaIndex models and retrievers).

* LangChain retriever -> raw OpenAI call
* LlamaIndex retriever -> LangChain chat model
* OpenAI generation (query rewriter) -> LangChain and LlamaIndex retriever queries
* a generation -> a user validator step
* LangChain ChatOpenAI (framework span + nested OpenAI client span) -> one link, to the
  framework span
"""

from __future__ import annotations

import importlib
import json
from typing import List

import pytest
from opentelemetry.trace import SpanKind

import instrumentors
from instrumentors import _semconv as sc


def _instrumentor(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


OpenAIInstrumentor = _instrumentor("instrumentors.openai", "OpenAIInstrumentor")
LangChainInstrumentor = _instrumentor("instrumentors.langchain", "LangChainInstrumentor")
LlamaIndexInstrumentor = _instrumentor("instrumentors.llama_index", "LlamaIndexInstrumentor")

needs_openai = pytest.mark.skipif(OpenAIInstrumentor is None, reason="instrumentors.openai.OpenAIInstrumentor missing")
needs_langchain = pytest.mark.skipif(LangChainInstrumentor is None,
                                     reason="instrumentors.langchain.LangChainInstrumentor missing")
needs_llama_index = pytest.mark.skipif(LlamaIndexInstrumentor is None,
                                       reason="instrumentors.llama_index.LlamaIndexInstrumentor missing")

DOCS = {
    "kb/returns": ("Customers may return unopened items within thirty days of delivery for a full refund. "
                   "Opened electronics can be returned within fourteen days if all accessories are included."),
    "kb/shipping": ("Standard delivery inside the European Union takes three to five working days, and orders "
                    "above fifty euros ship for free."),
    "kb/warranty": ("Every device comes with a two year manufacturer warranty that covers hardware defects but "
                    "not accidental damage or liquid damage."),
}
QUESTION = "can I send back headphones I opened?"
REWRITTEN = "return policy for opened electronics such as headphones"
ANSWER = ("Yes. Opened electronics like headphones can be returned within fourteen days as long as every "
          "accessory is included in the box.")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def instrumented(tracer_provider, span_exporter, set_config):
    """Every available instrumentor on, causal links on, content capture off (default)."""
    set_config(causal_links=True, capture_content=False)
    active = []
    for cls in (OpenAIInstrumentor, LangChainInstrumentor, LlamaIndexInstrumentor):
        if cls is not None:
            instrumentor = cls()
            instrumentor.instrument(tracer_provider=tracer_provider)
            active.append(instrumentor)
    yield
    for instrumentor in reversed(active):
        instrumentor.uninstrument()


def _httpx():
    import openai

    return importlib.import_module("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")


def fake_openai_transport(reply: str):
    """An in-process transport answering every chat completion with ``reply``."""
    httpx = _httpx()
    body = json.dumps({
        "id": "chatcmpl-causal", "object": "chat.completion", "created": 1764230400,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }).encode()
    seen: List[dict] = []

    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, headers={"content-type": "application/json"}, content=body)

    return httpx.MockTransport(handler), seen


def openai_client(reply: str):
    import openai

    transport, seen = fake_openai_transport(reply)
    return openai.OpenAI(api_key="sk-test", max_retries=0, http_client=_httpx().Client(transport=transport)), seen


def langchain_retriever():
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class KBRetriever(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager=None):
            return [Document(page_content=text, id=doc_id, metadata={"source": doc_id})
                    for doc_id, text in DOCS.items()]

    return KBRetriever()


def llama_index_retriever():
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class KBRetriever(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(id_=doc_id, text=text), score=0.9 - i / 10)
                    for i, (doc_id, text) in enumerate(DOCS.items())]

    return KBRetriever()


def finished(span_exporter):
    return span_exporter.get_finished_spans()


def one(spans, predicate, what):
    matching = [s for s in spans if predicate(s)]
    assert len(matching) == 1, f"expected one {what}, got {[s.name for s in matching]} of {[s.name for s in spans]}"
    return matching[0]


def retrieval_span(spans, library):
    return one(spans, lambda s: s.attributes.get(sc.SPAN_KIND) == sc.KIND_RETRIEVER
               and s.attributes.get(sc.LIBRARY) == library, f"{library} retrieval span")


def llm_span(spans, library):
    return one(spans, lambda s: s.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM
               and s.attributes.get(sc.LIBRARY, library) == library
               and s.kind == SpanKind.CLIENT, f"{library} llm span")


def doc_links(span, producer):
    return [(l.attributes[sc.LINK_DOCUMENT_ID], l.attributes[sc.LINK_RANK], l.attributes[sc.LINK_COVERAGE],
             l.attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE])
            for l in span.links if l.context.span_id == producer.context.span_id]


def context_prompt(doc_ids):
    return "Answer from the context.\n\n" + "\n\n".join(f"[{i}] {DOCS[d]}" for i, d in enumerate(doc_ids, 1))


# --- tests --------------------------------------------------------------------------------


@needs_openai
@needs_langchain
def test_langchain_retriever_into_raw_openai_call(instrumented, tracer, span_exporter):
    client, seen = openai_client(ANSWER)
    with tracer.start_as_current_span("request"):
        docs = langchain_retriever().invoke(QUESTION)
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": context_prompt(["kb/returns", "kb/warranty"])},
            {"role": "user", "content": QUESTION}])
    assert len(docs) == 3 and len(seen) == 1
    spans = finished(span_exporter)
    retrieval = retrieval_span(spans, "langchain")
    chat = one(spans, lambda s: s.name == "chat gpt-4o-mini", "openai chat span")
    assert doc_links(chat, retrieval) == [("kb/returns", 0, 1.0, sc.LINK_INFORMED_BY),
                                          ("kb/warranty", 2, 1.0, sc.LINK_INFORMED_BY)]
    assert chat.attributes[sc.CAUSAL_UNUSED_IDS] == ("kb/shipping",)
    assert chat.attributes[sc.CAUSAL_SOURCE_IDS] == ("kb/returns", "kb/warranty")


@needs_langchain
@needs_llama_index
def test_llama_index_retriever_into_langchain_chat_model(instrumented, tracer, span_exporter):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.messages import HumanMessage, SystemMessage

    model = FakeListChatModel(responses=[ANSWER])
    with tracer.start_as_current_span("request"):
        nodes = llama_index_retriever().retrieve(QUESTION)
        model.invoke([SystemMessage(content=context_prompt(["kb/shipping"])), HumanMessage(content=QUESTION)])
    assert len(nodes) == 3
    spans = finished(span_exporter)
    retrieval = retrieval_span(spans, "llama_index")
    chat = llm_span(spans, "langchain")
    assert doc_links(chat, retrieval) == [("kb/shipping", 1, 1.0, sc.LINK_INFORMED_BY)]
    (link,) = chat.links
    assert link.attributes[sc.LINK_SCORE] == pytest.approx(0.8)
    assert chat.attributes[sc.CAUSAL_UNUSED_IDS] == ("kb/returns", "kb/warranty")


@needs_openai
@needs_langchain
@needs_llama_index
@pytest.mark.parametrize("library", ["langchain", "llama_index"])
def test_openai_query_rewriter_into_a_retriever_query(instrumented, tracer, span_exporter, library):
    client, _ = openai_client(REWRITTEN)
    with tracer.start_as_current_span("request"):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": "Rewrite the question as a search query."},
            {"role": "user", "content": QUESTION}])
        query = response.choices[0].message.content
        if library == "langchain":
            langchain_retriever().invoke(query)
        else:
            llama_index_retriever().retrieve(query)
    spans = finished(span_exporter)
    rewriter = one(spans, lambda s: s.name == "chat gpt-4o-mini", "openai chat span")
    retrieval = retrieval_span(spans, library)
    assert [(l.context.span_id, dict(l.attributes)) for l in retrieval.links] == [(rewriter.context.span_id, {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION, sc.LINK_SOURCE_KIND: "generation",
        sc.LINK_COVERAGE: 1.0})]
    assert retrieval.attributes[sc.CAUSAL_SOURCE_COUNT] == 1


@needs_openai
def test_short_rewritten_query_links_too(instrumented, tracer, span_exporter):
    client, _ = openai_client("opened headphones returns")  # fewer words than a shingle
    with tracer.start_as_current_span("request"):
        query = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": "Rewrite as keywords: " + QUESTION}]).choices[0].message.content
        with instrumentors.step("search", inputs=query) as s:
            s.produce(DOCS["kb/returns"], kind="document", document_id="kb/returns", rank=0)
    spans = finished(span_exporter)
    rewriter = one(spans, lambda s: s.name == "chat gpt-4o-mini", "openai chat span")
    search = one(spans, lambda s: s.name == "search", "search step")
    assert [l.context.span_id for l in search.links] == [rewriter.context.span_id]


@needs_openai
def test_openai_generation_into_a_user_validator_step(instrumented, tracer, span_exporter):
    client, _ = openai_client(ANSWER)

    @instrumentors.step("output validator")
    def validate(answer: str) -> bool:
        ok = "fourteen days" in answer
        instrumentors.step.current().set_status("pass" if ok else "fail")
        return ok

    with tracer.start_as_current_span("request"):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": QUESTION}]).choices[0].message.content
        assert validate(answer) is True
    spans = finished(span_exporter)
    chat = one(spans, lambda s: s.name == "chat gpt-4o-mini", "openai chat span")
    validator = one(spans, lambda s: s.name == "output validator", "validator step")
    assert validator.attributes[sc.STEP_STATUS] == "pass"
    assert [(l.context.span_id, dict(l.attributes)) for l in validator.links] == [(chat.context.span_id, {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION, sc.LINK_SOURCE_KIND: "generation",
        sc.LINK_COVERAGE: 1.0})]


@needs_openai
@needs_langchain
def test_langchain_chat_openai_generation_links_once_to_the_framework_span(instrumented, tracer, span_exporter):
    """ChatOpenAI makes a LangChain span with the OpenAI client span nested inside: the
    completion is produced once (by the framework span) and the validator links once."""
    from langchain_openai import ChatOpenAI

    transport, _ = fake_openai_transport(ANSWER)
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0,
                       http_client=_httpx().Client(transport=transport))
    with tracer.start_as_current_span("request"):
        docs = langchain_retriever().invoke(QUESTION)
        message = model.invoke("Context:\n" + DOCS["kb/returns"] + "\n\nQuestion: " + QUESTION)
        with instrumentors.step("output validator", inputs=message.content):
            pass
    assert len(docs) == 3
    spans = finished(span_exporter)
    framework = llm_span(spans, "langchain")
    client_spans = [s for s in spans if s.attributes.get(sc.LIBRARY) != "langchain"
                    and s.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM]
    assert all(s.parent.span_id == framework.context.span_id for s in client_spans)
    assert all(not s.links and sc.CAUSAL_PRODUCED_DIGESTS not in s.attributes for s in client_spans)
    validator = one(spans, lambda s: s.name == "output validator", "validator step")
    assert [l.context.span_id for l in validator.links] == [framework.context.span_id]
    retrieval = retrieval_span(spans, "langchain")
    assert doc_links(framework, retrieval) == [("kb/returns", 0, 1.0, sc.LINK_INFORMED_BY)]


@needs_openai
@needs_langchain
def test_cross_library_links_are_identical_with_capture_on_and_no_text_when_off(
        instrumented, tracer, span_exporter, set_config):
    def run():
        client, _ = openai_client(ANSWER)
        with tracer.start_as_current_span("request"):
            langchain_retriever().invoke(QUESTION)
            client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "user", "content": context_prompt(["kb/returns"]) + "\n" + QUESTION}])
        spans = finished(span_exporter)
        names = {s.context.span_id: s.name for s in spans}
        links = sorted((s.name, names[l.context.span_id], tuple(sorted(l.attributes.items())))
                       for s in spans for l in s.links)
        span_exporter.clear()
        return spans, links

    set_config(capture_content=True)
    _, with_capture = run()
    set_config(capture_content=False)
    spans, without = run()
    assert with_capture == without and len(without) == 1
    fragments = [frag for text in DOCS.values() for frag in text.split(". ")]
    for span in spans:
        values = [span.name, *[v for v in span.attributes.values()],
                  *[v for e in span.events for v in e.attributes.values()],
                  *[v for l in span.links for v in l.attributes.values()]]
        flat = [x for v in values for x in (v if isinstance(v, tuple) else (v,)) if isinstance(x, str)]
        assert not any(frag[:40] in value for frag in fragments for value in flat), span.name
