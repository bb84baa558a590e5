"""Causal links across the turns of an agent loop, with content capture off: a chunk a
retriever tool found in the first turn still links the model call three turns later
(INFORMED_BY, by document id), each tool result links the next model call
(CAUSED_BY_TOOL), each tool span links the model call whose arguments it ran
(CAUSED_BY_GENERATION). All within the one trace of the run."""

from __future__ import annotations

import json
import warnings

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool

from instrumentors import _semconv as sc

from lg_helpers import QUESTION, FakeOpenAI, links_of, search_web

CHUNK = ("Office hours policy: the Paris office opens at 8:30 on weekdays and stays closed on public "
         "holidays, according to the facilities team handbook.")


class HandbookRetriever(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager=None):
        return [Document(id="handbook-7", page_content=CHUNK, metadata={"source": "handbook.md"})]


@tool
def lookup_handbook(query: str) -> str:
    """Look a question up in the handbook."""
    return "\n".join(d.page_content for d in HandbookRetriever().invoke(query))


QUERIES = ["paris office opening hours in the staff handbook", "public holidays calendar for france this year",
           "facilities team contact phone number and email"]


def scripted_tools(*names):
    """One tool call per turn, in this order, then an answer."""

    def reply(body):
        turns = sum(1 for m in body["messages"] if m["role"] == "tool")
        if turns < len(names):
            call = {"id": f"call_{turns + 1}", "type": "function",
                    "function": {"name": names[turns], "arguments": json.dumps({"query": QUERIES[turns]})}}
            return {"content": None, "tool_calls": [call]}, "tool_calls"
        return {"content": "The office opens at 8:30."}, "stop"

    return reply


def _run(agent_input, invoke):
    from langgraph.prebuilt import create_react_agent

    fake = FakeOpenAI(scripted_tools("lookup_handbook", "search_web", "search_web"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(fake.chat_model(), [lookup_handbook, search_web])
    return invoke(agent, agent_input)


def _assert_links(tree):
    assert len(tree.trace_ids()) == 1
    chats = [s for s in tree.named("chat gpt-4o-mini") if s.attributes.get(sc.LIBRARY) == "langchain"]
    tools = tree.kind(sc.KIND_TOOL)
    assert [t.name for t in tools] == ["execute_tool lookup_handbook", "execute_tool search_web",
                                      "execute_tool search_web"]
    assert len(chats) == 4
    retrieval = tree.kind(sc.KIND_RETRIEVER)[0]
    # every tool span: caused by the model call just before it
    for chat, tool_span in zip(chats, tools):
        assert [ln.context.span_id for ln in links_of(tool_span, sc.LINK_CAUSED_BY_GENERATION)] == [
            chat.context.span_id]
    # every later model call: caused by the tool results it read (all still in its history)
    for i, chat in enumerate(chats[1:], start=1):
        linked = {ln.context.span_id for ln in links_of(chat, sc.LINK_CAUSED_BY_TOOL)}
        assert tools[i - 1].context.span_id in linked
    # the chunk retrieved in turn 1 still informs the final call, three turns later
    final = chats[-1]
    informed = links_of(final, sc.LINK_INFORMED_BY)
    assert [(ln.context.span_id, ln.attributes[sc.LINK_DOCUMENT_ID]) for ln in informed] == [
        (retrieval.context.span_id, "handbook-7")]
    assert "handbook-7" in final.attributes[sc.CAUSAL_SOURCE_IDS]


def test_links_across_turns_capture_off(lc, spans, set_config):
    set_config(capture_content=False, causal_links=True)
    out = _run({"messages": [("user", QUESTION)]}, lambda a, i: a.invoke(i))
    assert out["messages"][-1].content == "The office opens at 8:30."
    _assert_links(spans())
    for span in spans().spans:
        assert not any("8:30" in str(v) for v in span.attributes.values())


async def test_links_across_turns_async_capture_on(lc, spans, set_config):
    set_config(capture_content=True, causal_links=True)

    async def ainvoke(agent, agent_input):
        return await agent.ainvoke(agent_input)

    await _run({"messages": [("user", QUESTION)]}, ainvoke)
    _assert_links(spans())


def test_empty_tool_result_is_flagged_and_still_links_by_call_id(lc, spans, set_config):
    """An empty result has no text to match: the next model call links the tool span by
    its tool call id, and the tool span says it returned nothing (capture off)."""
    from langgraph.prebuilt import create_react_agent

    from lg_helpers import empty_search, react_policy

    set_config(capture_content=False, causal_links=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(FakeOpenAI(react_policy("empty_search")).chat_model(), [empty_search])
    agent.invoke({"messages": [("user", QUESTION)]})
    tree = spans()
    tool = tree.one("execute_tool empty_search")
    assert tool.attributes[sc.TOOL_RESULT_EMPTY] is True
    final = [s for s in tree.named("chat gpt-4o-mini") if s.attributes.get(sc.LIBRARY) == "langchain"][-1]
    by_tool = links_of(final, sc.LINK_CAUSED_BY_TOOL)
    assert [(ln.context.span_id, ln.attributes[sc.GEN_AI_TOOL_CALL_ID]) for ln in by_tool] == [
        (tool.context.span_id, "call_1")]
    assert sc.TOOL_RESULT_EMPTY not in tree.one("invoke_agent LangGraph").attributes


def test_tool_call_map_is_bounded_and_scoped_to_the_trace():
    from opentelemetry.sdk.trace import TracerProvider
    from langchain_core.messages import ToolMessage

    from instrumentors.langchain._causal import ToolCallSpans

    tracer = TracerProvider().get_tracer("t")
    calls = ToolCallSpans(max_entries=3)
    spans_made = []
    with tracer.start_as_current_span("request") as request:
        for i in range(5):
            span = tracer.start_span(f"tool {i}")
            calls.put(span, f"call_{i}")
            spans_made.append(span)
        assert len(calls) == 3  # the two oldest evicted
        found = calls.links([ToolMessage("", tool_call_id="call_0"), ToolMessage("", tool_call_id="call_4")],
                            None, None)
        assert [link.context.span_id for link in found] == [spans_made[4].get_span_context().span_id]
    with tracer.start_as_current_span("another request"):  # same call id, other trace: no link
        assert calls.links([ToolMessage("", tool_call_id="call_4")], None, None) == []
    assert request is not None
