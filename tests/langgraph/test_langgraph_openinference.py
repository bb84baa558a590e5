"""INSTRUMENTORS_SEMCONV=openinference on a LangGraph agent: the agent, node, chat and tool
spans in Phoenix's kinds (AGENT, CHAIN with graph.node.*, LLM, TOOL), the thread id as
session.id, tokens counted once (on the OpenAI client span), no text with capture off."""

from __future__ import annotations

import warnings

import pytest

from instrumentors import _semconv as sc
from instrumentors.langchain import LangChainInstrumentor
from instrumentors.openai import OpenAIInstrumentor

from lg_helpers import QUESTION, FakeOpenAI, search_web

pytest.importorskip("openinference.semconv.trace")


@pytest.fixture
def lc_openinference(tracer_provider, set_config):
    set_config(causal_links=True, semconv="openinference")
    lc = LangChainInstrumentor()
    lc.instrument(tracer_provider=tracer_provider)
    oa = OpenAIInstrumentor()
    oa.instrument(tracer_provider=tracer_provider)
    yield
    oa.uninstrument()
    lc.uninstrument()


def test_react_agent_in_phoenix_kinds(lc_openinference, spans):
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(FakeOpenAI().chat_model(), [search_web], name="office_agent",
                                   checkpointer=MemorySaver())
    agent.invoke({"messages": [("user", QUESTION)]}, {"configurable": {"thread_id": "thread-7"}})
    tree = spans()
    root = tree.one("invoke_agent office_agent")
    assert root.attributes["openinference.span.kind"] == "AGENT"
    assert root.attributes["agent.name"] == "office_agent"
    assert root.attributes["session.id"] == "thread-7"
    nodes = tree.kind(sc.KIND_NODE)
    assert [(n.attributes["openinference.span.kind"], n.attributes["graph.node.id"]) for n in nodes] == [
        ("CHAIN", "agent"), ("CHAIN", "tools"), ("CHAIN", "agent")]
    tool = tree.one("execute_tool search_web")
    assert tool.attributes["openinference.span.kind"] == "TOOL"
    assert tool.attributes["tool.name"] == "search_web" and tool.attributes["tool.id"] == "call_1"
    chats = [s for s in tree.spans if s.attributes.get("openinference.span.kind") == "LLM"]
    assert len(chats) == 4  # LangChain's chat span and the OpenAI client span inside it, twice
    with_tokens = [s for s in chats if "llm.token_count.total" in s.attributes]
    assert {s.attributes[sc.LIBRARY] for s in with_tokens} == {"openai"}  # counted once per call
    assert len(with_tokens) == 2
    for span in tree.spans:
        assert not [k for k in span.attributes if k.startswith("gen_ai.")]
        for value in span.attributes.values():  # capture off
            assert "9:00" not in str(value) and QUESTION not in str(value)
    assert tool.links  # causal links unchanged
    assert list(tool.attributes[sc.CAUSAL_LINK_TYPES]) == [sc.LINK_CAUSED_BY_GENERATION]
