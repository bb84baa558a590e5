"""``explain`` and ``blame`` on real LangGraph agent traces (in-process OpenAI, capture off,
exported into a temporary store): explain walks back through the turns to the tool result
or retrieved document the answer came from and flags a stale document a tool retrieved, a
tool that returned nothing or failed, and a loop that ran into the recursion limit; blame
ranks tools by name across traces."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from instrumentors import _semconv as sc
from instrumentors import record_feedback
from instrumentors.langchain import LangChainInstrumentor
from instrumentors.openai import OpenAIInstrumentor
from instrumentors.store import TraceStore
from instrumentors.store.exporter import SQLiteSpanExporter

from lg_helpers import QUESTION, FakeOpenAI, always_call, react_policy, search_web

NOW = datetime.now(timezone.utc)
STALE = (NOW - timedelta(days=400)).date().isoformat()
FRESH = (NOW - timedelta(days=3)).date().isoformat()
OLD_HOURS = "Paris office hours: the office opens at 10:00 on weekdays, doors close at 16:00 sharp."


class PolicyRetriever(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager=None):
        return [Document(id="policy-2019", page_content=OLD_HOURS,
                         metadata={"source": "policies/hours.md", "updated_at": STALE})]


@tool
def lookup_policy(query: str) -> str:
    """Look up a company policy."""
    return "\n".join(d.page_content for d in PolicyRetriever().invoke(query))


@tool
def search_kb(query: str) -> str:
    """Search the knowledge base (finds nothing for unknown topics)."""
    return "" if "unknown" in query else "The Paris office opens at 9:00 on weekdays."


@pytest.fixture
def traced(tmp_path, set_config):
    """LangChain + OpenAI instrumented into a fresh store; capture off, causal links on."""
    set_config(capture_content=False, causal_links=True)
    path = str(tmp_path / "traces.db")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    instrumentors = [LangChainInstrumentor(), OpenAIInstrumentor()]
    for inst in instrumentors:
        inst.instrument(tracer_provider=provider)
    request_tracer = provider.get_tracer("app")
    yield path, provider, request_tracer
    for inst in reversed(instrumentors):
        inst.uninstrument()
    provider.shutdown()


def _agent(policy, tools, **kwargs):
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(FakeOpenAI(policy).chat_model(), tools, name="office_agent", **kwargs)


def _run(provider, agent, question=QUESTION, config=None, expect=None):
    del provider
    try:
        out = agent.invoke({"messages": [("user", question)]}, config)
    except Exception as exc:  # noqa: BLE001
        if expect is None or not isinstance(exc, expect):
            raise
        out = None
    return out


def _trace_id(path) -> str:
    return TraceStore(path).query(limit=1)[0]["trace_id"]


def test_explain_traces_a_bad_answer_to_a_stale_document_a_tool_returned(traced):
    path, provider, _ = traced
    out = _run(provider, _agent(react_policy("lookup_policy"), [lookup_policy]))
    assert "10:00" in out["messages"][-1].content
    result = TraceStore(path).explain(_trace_id(path))
    agent = result["agent"]
    assert agent["name"] == "office_agent" and agent["role"] == "agent" and agent["status"] == "done"
    assert [(t["step"], t["node"], [x["tool"] for x in t["tools"]]) for t in agent["turns"]] == [
        (1, "agent", []), (2, "tools", ["lookup_policy"]), (3, "agent", [])]
    sources = [(a["kind"], a.get("tool"), a.get("document_id")) for a in agent["answer_from"]]
    assert ("tool_result", "lookup_policy", None) in sources
    assert ("document", "lookup_policy", "policy-2019") in sources
    cause = result["likely_cause"]
    assert cause["kind"] == "stale_documents"
    assert cause["tool"] == "lookup_policy"
    assert "policy-2019" in cause["message"] and "lookup_policy" in cause["message"]


def test_explain_flags_an_empty_tool_result_on_the_answers_path(traced):
    path, provider, _ = traced
    _run(provider, _agent(react_policy("search_kb"), [search_kb]), question="unknown topic?")
    result = TraceStore(path).explain(_trace_id(path))
    [source] = result["agent"]["answer_from"]
    assert source["kind"] == "tool_result" and source["tool"] == "search_kb" and source["empty"] is True
    cause = result["likely_cause"]
    assert cause["kind"] == "empty_tool_result" and cause["tool"] == "search_kb"
    assert cause["on_causal_path"] is True


def test_explain_flags_a_loop_that_ran_into_the_recursion_limit(traced):
    path, provider, _ = traced
    _run(provider, _agent(always_call("search_kb"), [search_kb]), config={"recursion_limit": 8})
    result = TraceStore(path).explain(_trace_id(path))
    kinds = {a["kind"]: a for a in result["anomalies"]}
    assert kinds["recursion_limit"]["severity"] == "warning"
    assert "recursion limit (8)" in kinds["recursion_limit"]["message"]
    assert result["agent"]["recursion_limit"] == 8
    assert len([t for t in result["agent"]["turns"] if t["node"] == "tools"]) == 3


def test_explain_recursion_error_of_a_workflow(traced):
    from langgraph.errors import GraphRecursionError
    from langgraph.graph import START, StateGraph
    from typing import TypedDict

    class S(TypedDict):
        n: int

    builder = StateGraph(S)
    builder.add_node("spin", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "spin")
    builder.add_edge("spin", "spin")
    path, provider, _ = traced
    with pytest.raises(GraphRecursionError):
        builder.compile(name="spinner").invoke({"n": 0}, {"recursion_limit": 4})
    result = TraceStore(path).explain(_trace_id(path))
    limit = next(a for a in result["anomalies"] if a["kind"] == "recursion_limit")
    assert limit["severity"] == "error" and "hit the recursion limit (4 steps)" in limit["message"]
    assert result["agent"]["role"] == "workflow" and result["agent"]["status"] == "out_of_steps"


def test_explain_flags_a_failed_tool(traced):
    from langgraph.prebuilt import ToolNode

    from lg_helpers import broken_search

    path, provider, _ = traced
    _run(provider, _agent(react_policy("broken_search"), ToolNode([broken_search], handle_tool_errors=True)))
    result = TraceStore(path).explain(_trace_id(path))
    cause = result["likely_cause"]
    assert cause["kind"] == "error" and cause["step"] == "execute_tool broken_search"
    assert result["agent"]["turns"][1]["tools"][0]["status"] == "ERROR"


def test_explain_text_shows_the_turns(traced):
    from instrumentors.store.render import explain_text

    path, provider, _ = traced
    _run(provider, _agent(react_policy("search_kb"), [search_kb]), question="unknown topic?")
    text = explain_text(TraceStore(path).explain(_trace_id(path)))
    assert "Agent office_agent: 4 steps, done" in text
    assert "turns: 1 agent (model) → 2 tools: search_kb [empty] → 3 agent (model)" in text
    assert "final answer from: tool search_kb (step 2, empty)" in text
    assert "Likely cause: execute_tool search_kb: tool 'search_kb' returned nothing" in text


def test_blame_ranks_a_tool_that_returned_empty(traced):
    """Eight questions the knowledge base knows (good answers) and six it does not: the
    tool returned nothing in every negative trace and no positive one."""
    path, provider, tracer = traced
    agent = _agent(react_policy("search_kb"), [search_kb, search_web])
    for i in range(14):
        bad = i % 7 in (1, 3, 5)
        with tracer.start_as_current_span("request") as request:
            _run(provider, agent, question=("unknown " if bad else "") + f"question {i}")
        record_feedback(request.get_span_context(), 0.0 if bad else 1.0, tracer_provider=provider)
    report = TraceStore(path).blame()
    assert (report["negative"], report["positive"]) == (6, 8)
    top = report["findings"][0]
    assert top["kind"] == "tool" and top["tool"] == "search_kb" and top["relation"] == "empty"
    assert top["description"] == "tool 'search_kb' returned empty in 100% of negative traces vs 0% of positive"


def _approval_agent():
    """A graph whose tool-less 'approve' node waits for a human (``interrupt``)."""
    from typing import TypedDict

    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    class S(TypedDict, total=False):
        draft: str
        approved: bool

    builder = StateGraph(S)
    builder.add_node("draft", lambda s: {"draft": "d"})
    builder.add_node("approve", lambda s: {"approved": bool(interrupt("ship it?"))})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "approve")
    builder.add_edge("approve", END)
    return builder.compile(name="approval", checkpointer=MemorySaver())


def test_explain_says_a_run_resumed_an_interrupted_trace(traced):
    from langgraph.types import Command

    from instrumentors.store.render import explain_text

    path, _provider, _ = traced
    graph = _approval_agent()
    config = {"configurable": {"thread_id": "review-1"}}
    graph.invoke({"draft": ""}, config)
    graph.invoke(Command(resume=True), config)
    store = TraceStore(path)
    first, second = sorted(store.query(limit=10), key=lambda t: t["start_time"])
    interrupted = store.explain(first["trace_id"])
    assert "resumed" not in {a["kind"] for a in interrupted["anomalies"]}
    assert interrupted["agent"]["resumed_from"] is None and interrupted["agent"]["interrupted"] is True
    result = store.explain(second["trace_id"])
    [resumed] = [a for a in result["anomalies"] if a["kind"] == "resumed"]
    assert resumed["resumed_trace_id"] == first["trace_id"] and resumed["severity"] == "info"
    assert first["trace_id"] in resumed["message"]
    assert result["agent"]["resumed_from"]["trace_id"] == first["trace_id"]
    assert result["likely_cause"] is None or result["likely_cause"]["kind"] != "resumed"
    assert f"resumed from trace {first['trace_id']}" in explain_text(result)
