"""Prompt-version fingerprints on LlamaIndex LLM spans: the template hash (and the
template's system hash) where ``predict``/``apredict``/``stream``/``structured``-style
calls and query engines' synthesizers announce their template, the actual system
message's hash on plain chat calls; with content capture off no template text anywhere;
the pending-template map is bounded and emptied when calls end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.mock import MockLLM
from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate, SelectorPromptTemplate

from instrumentors import _content
from instrumentors import _semconv as sc
from instrumentors.llama_index._prompts import PromptTemplates
from li_helpers import QUESTION, build_index

TEMPLATE_A = "Answer briefly.\nContext: {context_str}\nQuestion: {query_str}\nAnswer: "
TEMPLATE_B = "Answer in detail, citing sources.\nContext: {context_str}\nQuestion: {query_str}\nAnswer: "
SYSTEM = "You are a careful geography tutor."


class TextLLM(CustomLLM):
    """A completion model (``predict`` formats the template into one prompt)."""

    chat_model: bool = False

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="fake-1", is_chat_model=self.chat_model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="Paris.")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        def gen():
            yield CompletionResponse(text="Paris.", delta="Paris.")

        return gen()


def _llm_spans(span_exporter) -> list:
    return [s for s in span_exporter.get_finished_spans() if s.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM]


def _no_text(span_exporter, *texts: str) -> None:
    for span in span_exporter.get_finished_spans():
        written = repr(dict(span.attributes)) + "".join(repr(dict(e.attributes)) for e in span.events)
        for text in texts:
            assert text not in written, (span.name, text)


def _predict(llm, how: str, prompt, **args) -> str:
    if how == "predict":
        return llm.predict(prompt, **args)
    if how == "apredict":
        return asyncio.run(llm.apredict(prompt, **args))
    if how == "stream":
        return "".join(llm.stream(prompt, **args))

    async def consume():
        return "".join([t async for t in await llm.astream(prompt, **args)])

    return asyncio.run(consume())


@pytest.mark.parametrize("how", ["predict", "apredict", "stream", "astream"])
def test_predict_writes_the_template_hash_with_capture_off(li, span_exporter, how):
    assert _content.capture_enabled() is False
    llm = TextLLM()
    assert _predict(llm, how, PromptTemplate(TEMPLATE_A), context_str="Paris is in France.", query_str="Capital?") \
        == "Paris."
    assert _predict(llm, how, PromptTemplate(TEMPLATE_A), context_str="Rome is in Italy.", query_str="Italy?") \
        == "Paris."
    assert _predict(llm, how, PromptTemplate(TEMPLATE_B), context_str="Paris is in France.", query_str="Capital?") \
        == "Paris."
    spans = _llm_spans(span_exporter)
    assert [s.name for s in spans] == ["text_completion fake-1"] * 3
    assert [s.attributes.get(sc.PROMPT_TEMPLATE_HASH) for s in spans] == [
        _content.content_hash(TEMPLATE_A), _content.content_hash(TEMPLATE_A), _content.content_hash(TEMPLATE_B)]
    assert [s.attributes.get(sc.SYSTEM_PROMPT_HASH) for s in spans] == [None, None, None]
    _no_text(span_exporter, "Answer briefly", "Answer in detail", "Paris is in France")
    assert li.session.tel.templates.pending == {}  # forgotten when the predict call ended


@pytest.mark.parametrize("how", ["predict", "apredict", "stream", "astream"])
def test_chat_template_hash_and_its_system_hash(li, span_exporter, how):
    llm = TextLLM(chat_model=True)  # predict formats messages and calls chat (CustomLLM: one span)
    template = ChatPromptTemplate.from_messages([("system", SYSTEM), ("user", "Question: {query_str}")])
    _predict(llm, how, template, query_str=QUESTION)
    [span] = _llm_spans(span_exporter)
    assert span.name == "chat fake-1"
    assert span.attributes[sc.PROMPT_TEMPLATE_HASH] == _content.content_hash(
        f"system: {SYSTEM}\nuser: Question: {{query_str}}")
    assert span.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(SYSTEM)
    _no_text(span_exporter, SYSTEM, QUESTION, "Question:")


def test_selector_template_hashes_the_variant_the_model_gets(li, span_exporter):
    selector = SelectorPromptTemplate(
        default_template=PromptTemplate(TEMPLATE_A),
        conditionals=[(lambda llm: llm.metadata.is_chat_model,
                       ChatPromptTemplate.from_messages([("system", SYSTEM), ("user", TEMPLATE_B)]))],
    )
    TextLLM().predict(selector, context_str="c", query_str="q")
    TextLLM(chat_model=True).predict(selector, context_str="c", query_str="q")
    completion, chat = _llm_spans(span_exporter)
    assert completion.attributes[sc.PROMPT_TEMPLATE_HASH] == _content.content_hash(TEMPLATE_A)
    assert chat.attributes[sc.PROMPT_TEMPLATE_HASH] == _content.content_hash(f"system: {SYSTEM}\nuser: {TEMPLATE_B}")
    assert chat.attributes[sc.SYSTEM_PROMPT_HASH] == _content.content_hash(SYSTEM)
    assert selector.default_template.output_parser is None  # we selected without LlamaIndex's side effects


def test_plain_chat_hashes_the_actual_system_message(li, span_exporter):
    llm = TextLLM(chat_model=True)
    llm.chat([ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=QUESTION)])
    llm.chat([ChatMessage(role="system", content=SYSTEM), ChatMessage(role="developer", content="Be brief."),
              ChatMessage(role="user", content=QUESTION)])
    llm.chat([ChatMessage(role="user", content=QUESTION)])
    spans = _llm_spans(span_exporter)
    assert [s.attributes.get(sc.SYSTEM_PROMPT_HASH) for s in spans] == [
        _content.content_hash(SYSTEM), _content.content_hash(f"{SYSTEM}\nBe brief."), None]
    assert [s.attributes.get(sc.PROMPT_TEMPLATE_HASH) for s in spans] == [None, None, None]
    _no_text(span_exporter, SYSTEM, "Be brief.")


def test_a_plain_call_after_predict_gets_no_stale_template(li, span_exporter):
    llm = TextLLM()
    llm.predict(PromptTemplate(TEMPLATE_A), context_str="c", query_str="q")
    llm.complete("no template here")
    first, second = _llm_spans(span_exporter)
    assert first.attributes[sc.PROMPT_TEMPLATE_HASH] == _content.content_hash(TEMPLATE_A)
    assert sc.PROMPT_TEMPLATE_HASH not in second.attributes


def test_query_engines_with_different_qa_templates(li, span_exporter):
    index = build_index()
    span_exporter.clear()
    for template in (TEMPLATE_A, TEMPLATE_A, TEMPLATE_B):
        engine = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1,
                                       text_qa_template=PromptTemplate(template))
        engine.query(QUESTION)
    spans = _llm_spans(span_exporter)
    assert [s.name for s in spans] == ["text_completion"] * 3
    assert [s.attributes.get(sc.PROMPT_TEMPLATE_HASH) for s in spans] == [
        _content.content_hash(TEMPLATE_A), _content.content_hash(TEMPLATE_A), _content.content_hash(TEMPLATE_B)]
    _no_text(span_exporter, "Answer briefly", "Answer in detail", "Paris is the capital")
    assert li.session.tel.templates.pending == {}


def test_pending_templates_are_bounded():
    templates = PromptTemplates(max_pending=3)
    for i in range(5):
        templates.announce(f"span-{i}", f"template-{i}")
    assert list(templates.pending) == ["span-2", "span-3", "span-4"]
    templates.inherit("child", "span-4")
    assert list(templates.pending) == ["span-3", "span-4", "child"]
    assert templates.get("child") == "template-4"
    templates.inherit("orphan", "span-0")  # evicted parent: nothing inherited
    assert templates.get("orphan") is None
    templates.forget("span-4")
    assert list(templates.pending) == ["span-3", "child"]


def test_uninstrument_clears_pending_templates(tracer_provider):
    from instrumentors.llama_index import LlamaIndexInstrumentor

    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    tel = instrumentor.session.tel
    tel.templates.announce("left-open", PromptTemplate(TEMPLATE_A))
    instrumentor.uninstrument()
    assert tel.templates.pending == {}
