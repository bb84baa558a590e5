"""Prebuilt agents (``create_react_agent``, ``langchain.agents.create_agent``) on ChatOpenAI
against an in-process OpenAI: one trace per run, an ``invoke_agent`` root, one span per
node execution with its step and trigger, the chat span (and the OpenAI client span
inside it) under the node that ran the model, the tool span under the ``tools`` node;
causal links turn by turn, with content capture off."""

from __future__ import annotations

import warnings

import pytest

from instrumentors import _semconv as sc

from lg_helpers import QUESTION, FakeOpenAI, graph_outline, links_of, search_web

CHAT = "chat gpt-4o-mini"

REACT_OUTLINE = [
    "invoke_agent LangGraph",
    "  agent",
    f"    {CHAT}",
    f"      {CHAT}",
    "  tools",
    "    execute_tool search_web",
    "  agent",
    f"    {CHAT}",
    f"      {CHAT}",
]


def react_agent(fake: FakeOpenAI, **kwargs):
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moved to langchain.agents in 1.x; still supported
        return create_react_agent(fake.chat_model(), [search_web], **kwargs)


def _assert_react_tree(spans) -> None:
    tree = spans()
    assert graph_outline(tree) == REACT_OUTLINE
    assert len(tree.trace_ids()) == 1
    root = tree.one("invoke_agent LangGraph")
    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_AGENT
    assert root.attributes[sc.GEN_AI_AGENT_NAME] == "LangGraph"
    assert root.attributes[sc.SPAN_KIND] == sc.KIND_AGENT
    assert root.attributes[sc.GRAPH_STATUS] == "done"
    assert root.attributes[sc.GRAPH_STEPS] == 4
    nodes = tree.kind(sc.KIND_NODE)
    assert [(n.attributes[sc.GRAPH_NODE], n.attributes[sc.GRAPH_STEP]) for n in nodes] == [
        ("agent", 1), ("tools", 2), ("agent", 3)]
    assert nodes[0].attributes[sc.GRAPH_TRIGGERS] == ("branch:to:agent",)
    assert nodes[1].attributes[sc.GRAPH_TRIGGERS] == ("__pregel_push",)  # a Send per tool call
    assert all(tree.parent(n) is root for n in nodes)
    # every chat span (LangChain's and the OpenAI client's) is inside an agent node
    for chat in tree.named(CHAT):
        assert nodes[0] in tree.ancestors(chat) or nodes[2] in tree.ancestors(chat)
    tool = tree.one("execute_tool search_web")
    assert tree.parent(tool) is nodes[1]
    assert tool.attributes[sc.GEN_AI_TOOL_CALL_ID] == "call_1"


def _assert_turn_links(spans) -> None:
    """The tool span was caused by the first model call's tool-call arguments; the second
    model call read the tool's result."""
    tree = spans()
    nodes = tree.kind(sc.KIND_NODE)
    first_chat = next(s for s in tree.named(CHAT) if s.attributes.get(sc.LIBRARY) == "langchain"
                      and nodes[0] in tree.ancestors(s))
    second_chat = next(s for s in tree.named(CHAT) if s.attributes.get(sc.LIBRARY) == "langchain"
                       and nodes[2] in tree.ancestors(s))
    tool = tree.one("execute_tool search_web")
    caused = links_of(tool, sc.LINK_CAUSED_BY_GENERATION)
    assert [link.context.span_id for link in caused] == [first_chat.context.span_id]
    by_tool = links_of(second_chat, sc.LINK_CAUSED_BY_TOOL)
    assert [link.context.span_id for link in by_tool] == [tool.context.span_id]


def test_react_agent_invoke(lc, spans):
    fake = FakeOpenAI()
    out = react_agent(fake).invoke({"messages": [("user", QUESTION)]})
    assert "9:00" in out["messages"][-1].content
    _assert_react_tree(spans)
    _assert_turn_links(spans)


async def test_react_agent_ainvoke(lc, spans):
    fake = FakeOpenAI()
    out = await react_agent(fake).ainvoke({"messages": [("user", QUESTION)]})
    assert "9:00" in out["messages"][-1].content
    _assert_react_tree(spans)
    _assert_turn_links(spans)


def test_capture_off_writes_no_text_and_keeps_links(lc, spans, set_config):
    set_config(capture_content=False, causal_links=True)
    react_agent(FakeOpenAI()).invoke({"messages": [("user", QUESTION)]})
    _assert_turn_links(spans)
    for span in spans().spans:
        for value in span.attributes.values():
            assert "9:00" not in str(value) and QUESTION not in str(value)


def test_named_agent_and_thread_id(lc, spans):
    from langgraph.checkpoint.memory import MemorySaver

    agent = react_agent(FakeOpenAI(), name="office_agent", checkpointer=MemorySaver())
    agent.invoke({"messages": [("user", QUESTION)]}, {"configurable": {"thread_id": "thread-7"}})
    root = spans().one("invoke_agent office_agent")
    assert root.attributes[sc.GEN_AI_AGENT_NAME] == "office_agent"
    assert root.attributes[sc.GEN_AI_CONVERSATION_ID] == "thread-7"


def test_langchain_create_agent(lc, spans):
    agents = pytest.importorskip("langchain.agents")
    fake = FakeOpenAI()
    agent = agents.create_agent(fake.chat_model(), [search_web], name="kb_agent")
    out = agent.invoke({"messages": [("user", QUESTION)]})
    assert "9:00" in out["messages"][-1].content
    tree = spans()
    root = tree.one("invoke_agent kb_agent")
    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_AGENT
    assert len(tree.trace_ids()) == 1
    nodes = [n.attributes[sc.GRAPH_NODE] for n in tree.kind(sc.KIND_NODE)]
    assert nodes == ["model", "tools", "model"]
    tool = tree.one("execute_tool search_web")
    assert tree.parent(tool).attributes[sc.GRAPH_NODE] == "tools"
    assert links_of(tool, sc.LINK_CAUSED_BY_GENERATION)


@pytest.mark.parametrize("mode", ["values", "updates", "messages", "custom", "debug", "tasks", "checkpoints",
                                  ("updates", "messages")])
def test_react_agent_stream_modes(lc, spans, mode):
    from langgraph.checkpoint.memory import MemorySaver

    agent = react_agent(FakeOpenAI(), checkpointer=MemorySaver())
    chunks = list(agent.stream({"messages": [("user", QUESTION)]}, {"configurable": {"thread_id": "s"}},
                               stream_mode=list(mode) if isinstance(mode, tuple) else mode))
    assert chunks or mode == "custom"
    _assert_react_tree(spans)
    _assert_turn_links(spans)


@pytest.mark.parametrize("mode", ["values", "updates", "messages", ("values", "messages", "debug")])
async def test_react_agent_astream_modes(lc, spans, mode):
    agent = react_agent(FakeOpenAI())
    chunks = [c async for c in agent.astream({"messages": [("user", QUESTION)]},
                                             stream_mode=list(mode) if isinstance(mode, tuple) else mode)]
    assert chunks
    _assert_react_tree(spans)
    _assert_turn_links(spans)


def test_stream_abandoned_midway_ends_every_span(lc, spans):
    agent = react_agent(FakeOpenAI())
    stream = agent.stream({"messages": [("user", QUESTION)]}, stream_mode="updates")
    next(stream)  # the first agent step only
    stream.close()
    tree = spans()
    root = tree.one("invoke_agent LangGraph")
    assert root.status.status_code.name == "UNSET"  # closed by the consumer: no error
    assert [n.attributes[sc.GRAPH_NODE] for n in tree.kind(sc.KIND_NODE)][0] == "agent"


async def test_astream_abandoned_midway_ends_every_span(lc, spans):
    agent = react_agent(FakeOpenAI())
    stream = agent.astream({"messages": [("user", QUESTION)]}, stream_mode="updates")
    async for _ in stream:
        break
    await stream.aclose()
    assert spans().one("invoke_agent LangGraph").end_time is not None


def test_agent_loop_stopped_by_the_recursion_limit(lc, spans):
    """The prebuilt agent stops itself just before the limit ("need more steps"): the
    graph span says how many steps ran and what the limit was."""
    from lg_helpers import always_call

    agent = react_agent(FakeOpenAI(always_call()))
    out = agent.invoke({"messages": [("user", QUESTION)]}, {"recursion_limit": 6})
    assert "more steps" in out["messages"][-1].content
    tree = spans()
    root = tree.one("invoke_agent LangGraph")
    assert root.attributes[sc.GRAPH_RECURSION_LIMIT] == 6
    assert root.attributes[sc.GRAPH_STEPS] >= 5
    assert len(tree.named("execute_tool search_web")) == 2


def _broken_agent(handle_tool_errors):
    from langgraph.prebuilt import ToolNode, create_react_agent

    from lg_helpers import broken_search, react_policy

    fake = FakeOpenAI(react_policy("broken_search"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(fake.chat_model(), ToolNode([broken_search], handle_tool_errors=handle_tool_errors))


def test_tool_exception_fails_the_node_and_the_graph(lc, spans):
    with pytest.raises(ConnectionError):
        _broken_agent(False).invoke({"messages": [("user", QUESTION)]})
    tree = spans()
    tool = tree.one("execute_tool broken_search")
    node = tree.parent(tool)
    root = tree.one("invoke_agent LangGraph")
    for span in (tool, node, root):
        assert span.status.status_code.name == "ERROR"
        assert span.attributes[sc.ERROR_TYPE] == "ConnectionError"


async def test_tool_exception_async(lc, spans):
    with pytest.raises(ConnectionError):
        await _broken_agent(False).ainvoke({"messages": [("user", QUESTION)]})
    assert spans().one("invoke_agent LangGraph").status.status_code.name == "ERROR"


def test_handled_tool_error_stays_on_the_tool_span(lc, spans):
    out = _broken_agent(True).invoke({"messages": [("user", QUESTION)]})
    assert "unreachable" in out["messages"][2].content  # the error went back to the model
    tree = spans()
    tool = tree.one("execute_tool broken_search")
    assert tool.status.status_code.name == "ERROR"
    assert tool.attributes[sc.ERROR_TYPE] == "ConnectionError"
    assert tree.one("invoke_agent LangGraph").status.status_code.name == "UNSET"
