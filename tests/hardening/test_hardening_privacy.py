"""The privacy canary: a unique marker in every user-written field, through every library.

Fields: system prompts, user prompts, assistant turns and completions (the fakes echo
the marker back), content-part lists, tool descriptions and parameter descriptions,
tool-call arguments and tool results, documents and their metadata, retriever
queries, prompt templates, embeddings and moderation inputs, Responses instructions.

* Capture off: the marker appears nowhere -- no span name, attribute, event, link
  attribute, status or resource, no byte of the store file (read raw, after the
  exporter closed it), no log line of ours.
* Capture on with a redaction hook: the marker never appears, the hook's replacement
  does (so the text really was captured and went through the hook), also in the
  feedback reason.

Feedback ``reason`` is not content capture: the app passes it to ``record_feedback``
to be stored, so it is kept with capture off (the redaction hook still applies).
"""

from __future__ import annotations

import json
import logging
import os

import pytest

import instrumentors
import openai_scenarios as S
import workloads as W

MARK = "zqxcanary"  # never produced by any library, tokenizer or hash here
SECRET = f"{MARK}91f3"
REDACTED = "[redacted-by-hook]"


def _redact(text: str) -> str:
    return text.replace(SECRET, REDACTED)


# --- the workloads, each field carrying the marker ------------------------------------


def _openai_handler(request):
    """OpenAI's wire format, echoing the marker in completions, tool-call arguments,
    Responses output and stream deltas."""
    httpx = S.http_module()
    body = json.loads(request.content)
    path = request.url.path
    if path.endswith("/embeddings"):
        return httpx.Response(200, json=S.embeddings_body(body, 5))
    if path.endswith("/moderations"):
        return httpx.Response(200, json=W.MODERATION)
    if path.endswith("/responses"):
        return httpx.Response(200, json=S.response_object("resp_c", "gpt-4o-mini", [
            S.message_item("msg_c", f"Responses answer {SECRET}")], S.responses_usage(5, 5)))
    answer = f"The answer is {SECRET}."
    if body.get("stream"):
        events = [S.chat_chunk("c1", "gpt-4o-mini", [S.delta_choice({"role": "assistant", "content": ""})])]
        events += [S.chat_chunk("c1", "gpt-4o-mini", [S.delta_choice({"content": w + " "})]) for w in answer.split()]
        events.append(S.chat_chunk("c1", "gpt-4o-mini", [S.delta_choice({}, "stop")]))
        return httpx.Response(200, headers={"content-type": S.EVENTS}, content=S.sse(events))
    tool_calls = None
    if body.get("tools"):
        tool_calls = [S.tool_call("call_c", "lookup", json.dumps({"q": SECRET}))]
    return httpx.Response(200, json=S.chat_completion("chatcmpl-c", "gpt-4o-mini-2024-07-18", [
        S.choice(0, None if tool_calls else answer, "tool_calls" if tool_calls else "stop", tool_calls)],
        S.chat_usage(10, 5)))


TOOL = {"type": "function", "function": {
    "name": "lookup", "description": f"Looks things up in the {SECRET} atlas.",
    "parameters": {"type": "object", "properties": {
        "q": {"type": "string", "description": f"what to look up, e.g. {SECRET}", "enum": [SECRET, "other"],
              "default": SECRET}}, "required": ["q"]}}}


def run_openai() -> None:
    client = S.mock_client(_openai_handler, False)
    messages = [
        {"role": "system", "content": f"You are the {SECRET} assistant."},
        {"role": "user", "content": [{"type": "text", "text": f"Question {SECRET}?"},
                                     {"type": "image_url", "image_url": {"url": f"https://x.test/{SECRET}.png"}}]},
        {"role": "assistant", "content": f"Earlier answer {SECRET}", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"q": SECRET})}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": f"tool result {SECRET}"},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[TOOL])
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
    client.responses.create(model="gpt-4o-mini", instructions=f"Be {SECRET}.", input=f"Responses input {SECRET}",
                            tools=[{"type": "function", "name": "lookup", "description": f"atlas {SECRET}",
                                    "parameters": TOOL["function"]["parameters"]}])
    client.embeddings.create(model="text-embedding-3-small", input=[f"embed {SECRET}", "plain"])
    client.moderations.create(model="omni-moderation-latest", input=[f"moderate {SECRET}"])


def run_langchain() -> None:
    from langchain_core.documents import Document
    from langchain_core.messages import AIMessage
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.tools import StructuredTool

    from langchain_helpers import fake_chat, make_store, format_docs

    store = make_store([Document(page_content=f"Paris is the capital of France. {SECRET} notes.", id="kb/paris",
                                 metadata={"source": "kb/paris", "author": f"{SECRET} team"}),
                        Document(page_content="Berlin is the capital of Germany.", id="kb/berlin",
                                 metadata={"source": "kb/berlin"})])
    prompt = ChatPromptTemplate.from_messages([("system", f"Use the context ({SECRET}):\n{{context}}"),
                                               ("human", "{question}")])
    model = fake_chat(AIMessage(content=f"Paris, says {SECRET}.",
                                usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}))
    retriever = store.as_retriever(search_kwargs={"k": 2})
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.runnables import RunnablePassthrough

    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | model | StrOutputParser()
    chain.invoke(f"What is the capital of France, {SECRET}?")
    list(chain.stream(f"streamed {SECRET}?"))
    store.similarity_search_with_score(f"scored {SECRET}", k=2)

    def lookup(q: str) -> str:
        return f"found {q} and {SECRET}"

    tool = StructuredTool.from_function(lookup, name="lookup", description=f"Looks up the {SECRET} atlas.")
    tool.invoke({"q": f"arg {SECRET}"})
    bound = fake_chat(AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"q": SECRET}, "id": "c1"}]))
    from langchain_core.utils.function_calling import convert_to_openai_tool

    bound.bind(tools=[convert_to_openai_tool(tool)]).invoke(f"use the tool {SECRET}")  # as bind_tools does
    W.langchain_legacy_llm(f"legacy {SECRET}")


def run_llama_index() -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import ChatMessage
    from llama_index.core.llms.mock import MockLLM
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.schema import TextNode
    from llama_index.core.tools import FunctionTool

    from li_helpers import KeywordEmbedding

    index = VectorStoreIndex(nodes=[
        TextNode(id_="paris", text=f"Paris is the capital of France. {SECRET}.", metadata={"author": SECRET}),
        TextNode(id_="rome", text="Rome is the capital of Italy.", metadata={"file_name": "rome.txt"})],
        embed_model=KeywordEmbedding())
    llm = MockLLM(max_tokens=6)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    engine.query(f"What is the capital of France {SECRET}?")
    list(index.as_query_engine(llm=llm, streaming=True).query(f"stream {SECRET}").response_gen)
    index.as_retriever(similarity_top_k=2).retrieve(f"retrieve {SECRET}")
    llm.chat([ChatMessage(role="system", content=f"sys {SECRET}"), ChatMessage(role="user", content=f"hi {SECRET}"),
              ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
                  {"id": "c1", "type": "function", "function": {"name": "atlas", "arguments": json.dumps({"q": SECRET})}}]}),
              ChatMessage(role="tool", content=f"tool says {SECRET}", additional_kwargs={"tool_call_id": "c1"})])
    llm.predict(PromptTemplate(f"Template {SECRET}: {{question}}"), question=f"q {SECRET}")

    def atlas(q: str) -> str:
        """Looks up the atlas."""
        return f"atlas result {SECRET} for {q}"

    FunctionTool.from_defaults(atlas, description=f"The {SECRET} atlas tool.").call(q=f"arg {SECRET}")


def _run_everything(traced, instrument_all_with, store_path, **config):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from instrumentors.store.exporter import SQLiteSpanExporter

    traced.provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(store_path)))
    libs = instrument_all_with(traced, causal_links=True, **config)
    assert sorted(libs) == ["langchain", "llama_index", "openai"]
    with traced.provider.get_tracer("app").start_as_current_span("request") as root:
        run_openai()
        run_langchain()
        run_llama_index()
    trace_id = format(root.get_span_context().trace_id, "032x")
    instrumentors.record_feedback(trace_id, 0.0, reason=f"wrong, says {SECRET}", tracer_provider=traced.provider,
                                  store_path=store_path)
    instrumentors.uninstrument_all()
    traced.provider.force_flush()
    spans = traced.spans()
    assert traced.counter.still_open() == []
    return spans


def _written(span) -> str:
    parts = [span.name, json.dumps(dict(span.attributes), default=repr), repr(span.status.description),
             json.dumps(dict(span.resource.attributes), default=repr)]
    for event in span.events:
        parts.append(event.name + json.dumps(dict(event.attributes or {}), default=repr))
    for link in span.links:
        parts.append(json.dumps(dict(link.attributes or {}), default=repr))
    return "\n".join(parts)


def _store_bytes(path: str) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as fh:
                data += fh.read()
    return data


@pytest.mark.timeout(300)
def test_capture_off_the_marker_appears_nowhere(traced, instrument_all_with, tmp_path, caplog):
    store_path = str(tmp_path / "traces.db")
    with caplog.at_level(logging.DEBUG, logger="instrumentors"):
        spans = _run_everything(traced, instrument_all_with, store_path, capture_content=False)
    kinds = {s.attributes.get("instrumentors.span.kind") for s in spans}
    assert {"llm", "retriever", "tool", "embedding"} <= kinds, kinds  # every shape really ran
    assert any(s.attributes.get("gen_ai.tool.definitions") for s in spans)  # tool definitions were written
    leaks = []
    for span in spans:
        if span.attributes.get("instrumentors.span.kind") == "feedback":
            continue  # the reason the app asked to store (see the module docstring)
        if MARK in _written(span):
            leaks.append((span.name, [k for k, v in span.attributes.items() if MARK in repr(v)]))
    assert not leaks, leaks
    traced.provider.shutdown()
    raw = _store_bytes(store_path)
    assert raw.count(MARK.encode()) == raw.count(f"wrong, says {SECRET}".encode()) >= 1, \
        "the marker is in the store outside the feedback reason"
    assert MARK not in caplog.text


@pytest.mark.timeout(300)
def test_capture_on_with_redaction_the_marker_is_only_ever_redacted(traced, instrument_all_with, tmp_path):
    store_path = str(tmp_path / "traces.db")
    spans = _run_everything(traced, instrument_all_with, store_path, capture_content=True, redact=_redact)
    text = "\n".join(_written(s) for s in spans)
    assert MARK not in text, [(s.name, [k for k, v in s.attributes.items() if MARK in repr(v)])
                              for s in spans if MARK in _written(s)]
    # the hook really saw the captured text: prompts, documents, tool descriptions, completions, the reason
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.retrieval.documents",
                "gen_ai.tool.definitions", "gen_ai.tool.description", "feedback.reason"):
        assert any(REDACTED in str(s.attributes.get(key, "")) for s in spans), key
    traced.provider.shutdown()
    raw = _store_bytes(store_path)
    assert MARK.encode() not in raw and REDACTED.encode() in raw
