"""Workflow agents (llama-index-core 0.13+ on llama-index-workflows): the agent's or
workflow's span is a real parent. Code inside a step (your own span, a raw OpenAI client
call), the LLM calls and the tool calls all nest under ``invoke_agent``/``invoke_workflow``
in the caller's trace; the caller's context is untouched afterwards, also when a step
raises or the run is cancelled. FunctionAgent on llama-index's OpenAI LLM (an in-process
OpenAI), ReActAgent (tool calls parsed from text; streamed or not, sync or async tool),
AgentWorkflow with a handoff."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from instrumentors import _semconv as sc

pytest.importorskip("llama_index.core.agent.workflow")
import llama_index.core as _core  # noqa: E402

if tuple(int(p) for p in _core.__version__.split(".")[:2]) < (0, 13):
    pytest.skip("workflow agents as real parents: llama-index-core 0.13+ only (0.12 runs on llama-index-workflows 1.x, whose run-span entry this does not hook yet; id-only parents there)",
                allow_module_level=True)

from llama_index.core.tools import FunctionTool  # noqa: E402
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step  # noqa: E402

from openai_wire import MODEL, FakeOpenAI, react_policy  # noqa: E402

HOURS = "The Paris office opens at 9:00 on weekdays."


def search_kb(query: str) -> str:
    """Search the knowledge base."""
    return HOURS


def _memory():
    from llama_index.core.memory import ChatMemoryBuffer

    return ChatMemoryBuffer.from_defaults()  # in-process (the default SQL one leaves a thread)


class Middle(Event):
    text: str


class Steps(Workflow):
    """Your own code in steps: a span of yours, a raw OpenAI call, a sync step."""

    client = None

    @step
    async def first(self, ev: StartEvent) -> Middle:
        with trace.get_tracer("test").start_as_current_span("inside async step"):
            reply = await self.client.chat.completions.create(model=MODEL,
                                                              messages=[{"role": "user", "content": "hi"}])
        return Middle(text=reply.choices[0].message.content)

    @step
    def middle(self, ev: Middle) -> StopEvent:
        with trace.get_tracer("test").start_as_current_span("inside sync step"):
            return StopEvent(result=ev.text)


def test_code_inside_steps_nests_under_the_workflow_span(li, openai_on, spans, tracer_provider):
    flow = Steps(timeout=10)
    flow.client = FakeOpenAI().async_client()
    tracer = tracer_provider.get_tracer("test")
    before = otel_context.get_current()

    async def main():
        with tracer.start_as_current_span("user request"):
            result = await flow.run()
        assert otel_context.get_current() == before
        return result

    assert asyncio.run(main()) == "I do not know."
    tree = spans()
    run = tree.one("invoke_workflow Steps")
    assert tree.parent(run) is tree.one("user request")
    for name in ("inside async step", "inside sync step"):
        assert tree.parent(tree.one(name)) is run
    assert tree.parent(tree.one(f"chat {MODEL}")) is tree.one("inside async step")
    assert len({s.context.trace_id for s in tree.spans}) == 1


class Failing(Workflow):
    @step
    async def boom(self, ev: StartEvent) -> StopEvent:
        with trace.get_tracer("test").start_as_current_span("before the error"):
            pass
        raise ValueError("bad step")


def test_a_failing_step_ends_the_span_and_restores_the_context(li, spans):
    async def main():
        before = otel_context.get_current()
        with pytest.raises(ValueError):
            await Failing(timeout=10).run()
        assert otel_context.get_current() == before

    asyncio.run(main())
    tree = spans()
    run = tree.one("invoke_workflow Failing")
    assert run.status.status_code.name == "ERROR"
    assert tree.parent(tree.one("before the error")) is run


class Slow(Workflow):
    @step
    async def wait(self, ev: StartEvent) -> StopEvent:
        with trace.get_tracer("test").start_as_current_span("waiting"):
            await asyncio.sleep(30)
        return StopEvent(result="late")


def test_a_cancelled_run_ends_every_span(li, spans):
    async def main():
        handler = Slow(timeout=60).run()
        await asyncio.sleep(0.2)
        await handler.cancel_run()
        with pytest.raises(BaseException):
            await handler

    asyncio.run(main())
    tree = spans()
    run = tree.one("invoke_workflow Slow")
    assert tree.parent(tree.one("waiting")) is run


def _function_agent(fake: FakeOpenAI, name: str = "kb_agent", **kwargs):
    from llama_index.core.agent.workflow import FunctionAgent

    return FunctionAgent(name=name, description="Answers from the knowledge base",
                         tools=[FunctionTool.from_defaults(fn=search_kb)], llm=fake.llama_index_llm(), **kwargs)


def test_function_agent_tool_loop(li, openai_on, spans, tracer_provider, set_config):
    set_config(causal_links=True)
    tracer = tracer_provider.get_tracer("test")

    async def main():
        with tracer.start_as_current_span("user request"):
            return await _function_agent(FakeOpenAI(react_policy("search_kb"))).run(
                user_msg="When does the Paris office open?", memory=_memory())

    assert "9:00" in str(asyncio.run(main()))
    tree = spans()
    agent = tree.one("invoke_agent kb_agent")
    assert agent.attributes[sc.GEN_AI_AGENT_NAME] == "kb_agent"
    tool = tree.one("execute_tool search_kb")
    assert tree.parent(tool) is agent
    chats = [s for s in tree.named(f"chat {MODEL}") if s.attributes.get(sc.LIBRARY) == "llama_index"]
    assert len(chats) == 2 and all(tree.parent(c) is agent for c in chats)
    clients = [s for s in tree.named(f"chat {MODEL}") if s.attributes.get(sc.LIBRARY) == "openai"]
    assert len(clients) == 2 and {tree.parent(c).context.span_id for c in clients} == {
        c.context.span_id for c in chats}
    # turn by turn: the tool ran the first call's arguments, the second call read its result
    links = {(ln.attributes.get(sc.GEN_AI_ATTRIBUTION_LINK_TYPE), ln.context.span_id) for ln in chats[1].links}
    assert (sc.LINK_CAUSED_BY_TOOL, tool.context.span_id) in links
    assert {ln.context.span_id for ln in tool.links} == {chats[0].context.span_id}
    assert len({s.context.trace_id for s in tree.spans}) == 1


def _handoff_policy(body):
    """triage hands off to kb; kb searches, then answers from the result."""
    import json

    messages = body["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    tool_results = [m for m in messages if m["role"] == "tool"]
    if "triage" in system and not tool_results:
        call = {"id": "call_handoff", "type": "function", "function": {
            "name": "handoff", "arguments": json.dumps({"to_agent": "kb", "reason": "a knowledge base question"})}}
        return {"content": None, "tool_calls": [call]}, "tool_calls"
    if "knowledge base" in system and len(tool_results) == 1:
        call = {"id": "call_search", "type": "function", "function": {
            "name": "search_kb", "arguments": json.dumps({"query": "paris office opening hours"})}}
        return {"content": None, "tool_calls": [call]}, "tool_calls"
    return {"content": "Answer: " + tool_results[-1]["content"]}, "stop"


def test_agent_workflow_handoff(li, openai_on, spans, set_config):
    from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent

    set_config(causal_links=True)
    fake = FakeOpenAI(_handoff_policy)
    triage = FunctionAgent(name="triage", description="Routes questions", system_prompt="You are triage.",
                           llm=fake.llama_index_llm(), tools=[], can_handoff_to=["kb"])
    kb = FunctionAgent(name="kb", description="Answers", system_prompt="You answer from the knowledge base.",
                       llm=fake.llama_index_llm(), tools=[FunctionTool.from_defaults(fn=search_kb)])
    flow = AgentWorkflow(agents=[triage, kb], root_agent="triage")

    async def main():
        return await flow.run(user_msg="When does the Paris office open?", memory=_memory())

    assert "9:00" in str(asyncio.run(main()))
    tree = spans()
    [run] = [s for s in tree.spans if tree.parent(s) is None]
    assert run.name == "invoke_agent triage"  # the workflow, named after its root agent
    turns = [s for s in tree.spans if s.attributes.get(sc.SPAN_KIND) == sc.KIND_AGENT and s is not run]
    turns.sort(key=lambda s: s.start_time)
    assert [t.attributes[sc.GEN_AI_AGENT_NAME] for t in turns] == ["triage", "kb", "kb"]
    assert all(tree.parent(t) is run for t in turns)
    for turn in turns:  # each turn's model call nests in it
        [chat] = [c for c in tree.children(turn) if c.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM]
    handoff = tree.one("execute_tool handoff")
    assert tree.parent(handoff) is run
    links = [(ln.context.span_id, ln.attributes.get(sc.LINK_SOURCE_KIND)) for ln in turns[1].links]
    assert links == [(handoff.context.span_id, "handoff")]
    assert not turns[0].links and not turns[2].links
    assert tree.parent(tree.one("execute_tool search_kb")) is run


# ---------------------------------------------------------------------------------------
# ReActAgent: the tool call is parsed out of the completion's text
# ---------------------------------------------------------------------------------------

REACT_ACTION = ('Thought: I need to search the knowledge base.\nAction: search_kb\n'
                'Action Input: {"query": "paris office opening hours"}')


def _react_policy(body):
    """A ReAct model: an action in text first, then an answer from the observation."""
    observations = [m for m in body["messages"] if m["role"] != "system" and "Observation:" in (m["content"] or "")]
    assert not body.get("tools")  # ReAct sends no tool schema: the call is in the text
    if not observations:
        return {"content": REACT_ACTION}, "stop"
    seen = observations[-1]["content"].split("Observation:", 1)[1].strip()
    return {"content": f"Thought: I can answer without using any more tools.\nAnswer: {seen}"}, "stop"


async def search_kb_async(query: str) -> str:
    """Search the knowledge base."""
    return HOURS


def _react_run(tracer_provider, streaming: bool, async_tool: bool):
    from llama_index.core.agent.workflow import ReActAgent

    fake = FakeOpenAI(_react_policy)
    tool = FunctionTool.from_defaults(async_fn=search_kb_async, name="search_kb") if async_tool \
        else FunctionTool.from_defaults(fn=search_kb)
    agent = ReActAgent(name="react_kb", description="Answers from the knowledge base", tools=[tool],
                       llm=fake.llama_index_llm(), streaming=streaming)
    tracer = tracer_provider.get_tracer("test")

    async def main():
        with tracer.start_as_current_span("user request"):
            return await agent.run(user_msg="When does the Paris office open?", memory=_memory())

    return str(asyncio.run(main())), fake


def _react_links(tree):
    """The ReAct loop's shape and links, asserted; returns them by span role (no ids)."""
    agent = tree.one("invoke_agent react_kb")
    assert tree.parent(agent) is tree.one("user request")
    assert agent.attributes[sc.GEN_AI_AGENT_NAME] == "react_kb"
    assert agent.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_AGENT
    tool = tree.one("execute_tool search_kb")
    assert tree.parent(tool) is agent
    chats = sorted((s for s in tree.named(f"chat {MODEL}") if s.attributes.get(sc.LIBRARY) == "llama_index"),
                   key=lambda s: s.start_time)
    assert len(chats) == 2 and all(tree.parent(c) is agent for c in chats)
    clients = [s for s in tree.named(f"chat {MODEL}") if s.attributes.get(sc.LIBRARY) == "openai"]
    assert sorted(tree.parent(c).context.span_id for c in clients) == sorted(c.context.span_id for c in chats)
    assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time
    assert len({s.context.trace_id for s in tree.spans}) == 1
    role = {chats[0].context.span_id: "first call", tool.context.span_id: "tool"}

    def links(span):
        return sorted((role.get(ln.context.span_id, "?"), ln.attributes.get(sc.GEN_AI_ATTRIBUTION_LINK_TYPE),
                       ln.attributes.get(sc.LINK_SOURCE_KIND)) for ln in span.links)

    # the tool ran the arguments the first call wrote in its text
    assert links(tool) == [("first call", sc.LINK_CAUSED_BY_GENERATION, "tool_call")]
    # the second call read the tool's observation (and the first call's reasoning)
    assert ("tool", sc.LINK_CAUSED_BY_TOOL, "tool_result") in links(chats[1])
    assert ("first call", sc.LINK_CAUSED_BY_GENERATION, "generation") in links(chats[1])
    return {"tool": links(tool), "second call": links(chats[1]), "first call": links(chats[0])}


@pytest.mark.parametrize("streaming", [False, True], ids=["achat", "astream_chat"])
@pytest.mark.parametrize("async_tool", [False, True], ids=["sync_tool", "async_tool"])
def test_react_agent_tool_loop(li, openai_on, spans, tracer_provider, set_config, streaming, async_tool):
    set_config(causal_links=True)
    answer, fake = _react_run(tracer_provider, streaming, async_tool)
    assert answer == HOURS
    assert len(fake.requests) == 2 and bool(fake.requests[0].get("stream")) is streaming
    assert _react_links(spans())["first call"] == []


def test_react_agent_links_are_the_same_with_capture_on_and_off(li, openai_on, span_exporter, spans,
                                                                 tracer_provider, set_config):
    set_config(causal_links=True, capture_content=False)
    _react_run(tracer_provider, streaming=True, async_tool=False)
    off = _react_links(spans())
    assert not any(HOURS in str(v) or "paris office" in str(v)
                   for s in spans().spans for v in s.attributes.values())
    span_exporter.clear()
    set_config(causal_links=True, capture_content=True)
    _react_run(tracer_provider, streaming=True, async_tool=False)
    tree = spans()
    assert any("paris office" in str(v) for v in tree.one("execute_tool search_kb").attributes.values())
    assert _react_links(tree) == off


def test_react_action_arguments_are_read_only_from_an_action():
    from instrumentors.llama_index._readers import react_action_arguments

    assert react_action_arguments(REACT_ACTION) == '{"query": "paris office opening hours"}'
    assert react_action_arguments("Thought: done.\nAnswer: Action Input: none") is None
    assert react_action_arguments("Action Input: {\"query\": \"x\"}") is None  # no Action line
    assert react_action_arguments("plain text") is None
