"""Hand-built ``StateGraph`` workflows: ``invoke_workflow {graph}`` roots, node spans with
step and trigger, a raw OpenAI client call (or your own span) inside a node's function
nesting under the node, ``Send`` fan-out, subgraphs, interrupts resumed from a
``MemorySaver`` checkpoint, exceptions, the recursion limit and cancelled tasks: every
span ends, none is an error where LangGraph only controls flow."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

import pytest
from opentelemetry import trace

from instrumentors import _semconv as sc
from instrumentors.langchain import _graph as lg_graph
from instrumentors.langchain._handler import HANDLER

from lg_helpers import FakeOpenAI, MODEL


class State(TypedDict, total=False):
    question: str
    answer: str
    items: Annotated[list, operator.add]
    approved: bool


def _graph(*nodes, name=None, checkpointer=None, edges=None):
    """A linear graph of ``(name, function)`` nodes."""
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(State)
    names = []
    for node_name, fn in nodes:
        builder.add_node(node_name, fn)
        names.append(node_name)
    for a, b in zip([START] + names, names + [END]):
        builder.add_edge(a, b)
    return builder.compile(name=name, checkpointer=checkpointer) if name else builder.compile(checkpointer=checkpointer)


def test_workflow_invoke_names_nodes_and_nests_a_raw_client_call(lc, spans):
    fake = FakeOpenAI()
    client = fake.client()
    tracer = trace.get_tracer("test")

    def rewrite(state):
        with tracer.start_as_current_span("my own span"):
            return {"question": state["question"].lower()}

    def generate(state):
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": state["question"]}])
        return {"answer": reply.choices[0].message.content}

    graph = _graph(("rewrite", rewrite), ("generate", generate), name="rag")
    assert graph.invoke({"question": "Hello?"})["answer"] == "I do not know."
    tree = spans()
    assert len(tree.trace_ids()) == 1
    root = tree.one("invoke_workflow rag")
    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_WORKFLOW
    assert root.attributes[sc.SPAN_KIND] == sc.KIND_WORKFLOW
    assert root.attributes[sc.GRAPH_NAME] == "rag"
    assert sc.GEN_AI_AGENT_NAME not in root.attributes
    rewrite_node, generate_node = tree.kind(sc.KIND_NODE)
    assert rewrite_node.attributes[sc.GRAPH_TRIGGERS] == ("branch:to:rewrite",)
    assert (rewrite_node.attributes[sc.GRAPH_STEP], generate_node.attributes[sc.GRAPH_STEP]) == (1, 2)
    assert tree.parent(tree.one("my own span")) is rewrite_node
    assert tree.parent(tree.one(f"chat {MODEL}")) is generate_node


async def test_workflow_ainvoke_nests_a_raw_async_client_call(lc, spans):
    client = FakeOpenAI().async_client()

    async def generate(state):
        reply = await client.chat.completions.create(model=MODEL,
                                                     messages=[{"role": "user", "content": state["question"]}])
        return {"answer": reply.choices[0].message.content}

    await _graph(("generate", generate), name="rag").ainvoke({"question": "Hello?"})
    tree = spans()
    node = tree.one("generate")
    assert tree.parent(node) is tree.one("invoke_workflow rag")
    assert tree.parent(tree.one(f"chat {MODEL}")) is node


def _fan_out_graph():
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def plan(state):
        return {}

    def route(state):
        return [Send("work", {"question": q}) for q in ("a", "b", "c")]

    def work(state):
        return {"items": [state["question"]]}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route, ["work"])
    builder.add_edge("work", END)
    return builder.compile(name="fan")


def test_send_fan_out_is_one_node_span_per_task(lc, spans):
    assert sorted(_fan_out_graph().invoke({"question": "q", "items": []})["items"]) == ["a", "b", "c"]
    tree = spans()
    root = tree.one("invoke_workflow fan")
    work = tree.named("work")
    assert len(work) == 3
    for span in work:
        assert tree.parent(span) is root
        assert span.attributes[sc.GRAPH_STEP] == 2
        assert span.attributes[sc.GRAPH_TRIGGERS] == ("__pregel_push",)


async def test_send_fan_out_async(lc, spans):
    await _fan_out_graph().ainvoke({"question": "q", "items": []})
    assert len(spans().named("work")) == 3


def _subgraph_parent():
    inner = _graph(("inner_step", lambda s: {"answer": "inner"}), name="inner")

    def call_inner(state):  # a subgraph invoked inside a node's function
        return {"answer": inner.invoke({"question": state["question"]})["answer"] + "+called"}

    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(State)
    builder.add_node("as_node", inner)  # a compiled subgraph added as a node
    builder.add_node("call_inner", call_inner)
    builder.add_edge(START, "as_node")
    builder.add_edge("as_node", "call_inner")
    builder.add_edge("call_inner", END)
    return builder.compile(name="outer")


@pytest.mark.parametrize("mode", ["invoke", "stream_subgraphs"])
def test_subgraphs_nest_under_the_node_that_ran_them(lc, spans, mode):
    graph = _subgraph_parent()
    if mode == "invoke":
        assert graph.invoke({"question": "q"})["answer"] == "inner+called"
    else:
        assert list(graph.stream({"question": "q"}, subgraphs=True))
    tree = spans()
    assert len(tree.trace_ids()) == 1
    outer = tree.one("invoke_workflow outer")
    inner_runs = tree.named("invoke_workflow inner")
    assert len(inner_runs) == 2
    as_node, call_inner = tree.named("as_node")[0], tree.named("call_inner")[0]
    assert tree.parent(as_node) is outer and tree.parent(call_inner) is outer
    assert {tree.parent(r).name for r in inner_runs} == {"as_node", "call_inner"}
    for run in inner_runs:
        step = tree.children(run)
        assert [s.name for s in step] == ["inner_step"]
        assert step[0].attributes[sc.GRAPH_NODE] == "inner_step"


async def test_subgraphs_async(lc, spans):
    await _subgraph_parent().ainvoke({"question": "q"})
    assert len(spans().named("invoke_workflow inner")) == 2


def _approval_graph():
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.types import interrupt

    def draft(state):
        return {"answer": "draft"}

    def approve(state):
        return {"approved": bool(interrupt({"question": "ship it?"}))}

    return _graph(("draft", draft), ("approve", approve), name="approval", checkpointer=MemorySaver())


def _assert_interrupt_then_resume(tree) -> None:
    first, second = tree.named("invoke_workflow approval")
    assert first.context.trace_id != second.context.trace_id  # two calls, two traces
    for span in (first, second):
        assert span.status.status_code.name == "UNSET"
        assert span.attributes[sc.GEN_AI_CONVERSATION_ID] == "t-1"
    assert first.attributes[sc.GRAPH_INTERRUPTED] is True
    assert sc.GRAPH_RESUMED not in first.attributes
    assert second.attributes[sc.GRAPH_RESUMED] is True
    assert sc.GRAPH_INTERRUPTED not in second.attributes
    assert second.attributes[sc.GRAPH_STATUS] == "done"
    stopped, resumed = tree.named("approve")
    assert stopped.attributes[sc.GRAPH_INTERRUPTED] is True
    assert stopped.status.status_code.name == "UNSET"  # an interrupt is not an error
    assert sc.GRAPH_INTERRUPTED not in resumed.attributes
    assert stopped.attributes[sc.GRAPH_STEP] == resumed.attributes[sc.GRAPH_STEP] == 2


def test_interrupt_and_resume_with_memory_saver(lc, spans):
    from langgraph.types import Command

    graph = _approval_graph()
    config = {"configurable": {"thread_id": "t-1"}}
    out = graph.invoke({"question": "q"}, config)
    assert "__interrupt__" in out
    assert HANDLER.open_runs == 0
    assert graph.invoke(Command(resume=True), config)["approved"] is True
    _assert_interrupt_then_resume(spans())


async def test_interrupt_and_resume_astream(lc, spans):
    from langgraph.types import Command

    graph = _approval_graph()
    config = {"configurable": {"thread_id": "t-1"}}
    assert [c async for c in graph.astream({"question": "q"}, config, stream_mode="updates")]
    assert HANDLER.open_runs == 0
    assert [c async for c in graph.astream(Command(resume=True), config)]
    _assert_interrupt_then_resume(spans())


def _assert_resumed_links_interrupted(tree) -> None:
    """The resumed run's graph span links the interrupted run's graph span (another trace)."""
    first, second = tree.named("invoke_workflow approval")
    assert not first.links
    [link] = second.links
    assert link.context.trace_id == first.context.trace_id != second.context.trace_id
    assert link.context.span_id == first.context.span_id
    assert link.attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE] == sc.LINK_RESUMED_FROM
    assert link.attributes[sc.LINK_SOURCE_KIND] == sc.SOURCE_INTERRUPT
    for node in tree.kind(sc.KIND_NODE):  # the nodes keep their own (no) links
        assert not any(ln.attributes.get(sc.GEN_AI_ATTRIBUTION_LINK_TYPE) == sc.LINK_RESUMED_FROM for ln in node.links)


def test_resumed_run_links_the_interrupted_run(lc, spans):
    from langgraph.types import Command

    graph = _approval_graph()
    config = {"configurable": {"thread_id": "t-1"}}
    graph.invoke({"question": "q"}, config)
    assert graph.invoke(Command(resume=True), config)["approved"] is True
    _assert_resumed_links_interrupted(spans())
    assert lg_graph.INTERRUPTED.get(("t-1", "")) is None  # the thread finished: forgotten


async def test_resumed_run_links_the_interrupted_run_async(lc, spans):
    from langgraph.types import Command

    graph = _approval_graph()
    config = {"configurable": {"thread_id": "t-1"}}
    await graph.ainvoke({"question": "q"}, config)
    assert [c async for c in graph.astream(Command(resume=True), config, stream_mode="updates")]
    _assert_resumed_links_interrupted(spans())


def test_resume_links_only_its_own_thread(lc, spans):
    from langgraph.types import Command

    graph = _approval_graph()
    graph.invoke({"question": "q"}, {"configurable": {"thread_id": "a"}})
    graph.invoke({"question": "q"}, {"configurable": {"thread_id": "b"}})
    graph.invoke(Command(resume=False), {"configurable": {"thread_id": "b"}})
    graph.invoke({"question": "again"}, {"configurable": {"thread_id": "a"}})  # a new input: not a resume
    tree = spans()
    stopped_a, stopped_b, resumed_b, fresh_a = tree.named("invoke_workflow approval")
    assert [ln.context.span_id for ln in resumed_b.links] == [stopped_b.context.span_id]
    assert not fresh_a.links and sc.GRAPH_RESUMED not in fresh_a.attributes


def test_static_interrupt_resumed_with_none_links_it(lc, spans):
    from langgraph.checkpoint.memory import MemorySaver

    graph = _graph(("a", lambda s: {"answer": "a"}), ("b", lambda s: {"answer": "b"}), name="static",
                   checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "x"}}
    graph.invoke({"question": "q"}, config, interrupt_before=["b"])
    assert graph.invoke(None, config)["answer"] == "b"
    stopped, resumed = spans().named("invoke_workflow static")
    assert [ln.context.span_id for ln in resumed.links] == [stopped.context.span_id]
    assert resumed.attributes[sc.GRAPH_RESUMED] is True and resumed.attributes[sc.GRAPH_STATUS] == "done"


def test_interrupted_runs_are_bounded(monkeypatch):
    """Threads stopped at an interrupt and never resumed: at most ``maxsize`` remembered,
    the least recently stopped dropped first."""
    runs = lg_graph.InterruptedRuns(maxsize=3)
    for i in range(10):
        runs.remember((f"t{i}", ""), f"ctx{i}")
    assert len(runs) == 3
    assert [runs.get((f"t{i}", "")) for i in (6, 7, 8, 9)] == [None, "ctx7", "ctx8", "ctx9"]
    runs.remember(("t7", ""), "again")  # stopped again: now the most recent
    runs.remember(("t10", ""), "ctx10")
    assert runs.get(("t7", "")) == "again" and runs.get(("t8", "")) is None
    assert lg_graph.MAX_INTERRUPTED_THREADS == lg_graph.INTERRUPTED.maxsize


def test_interrupted_threads_never_resumed_stay_bounded(lc, spans, monkeypatch):
    monkeypatch.setattr(lg_graph.INTERRUPTED, "maxsize", 5)
    graph = _approval_graph()
    for i in range(12):
        graph.invoke({"question": "q"}, {"configurable": {"thread_id": f"t{i}"}})
    assert len(lg_graph.INTERRUPTED) == 5
    assert lg_graph.INTERRUPTED.get(("t11", "")) is not None and lg_graph.INTERRUPTED.get(("t6", "")) is None


def test_static_interrupt_before(lc, spans):
    from langgraph.checkpoint.memory import MemorySaver

    graph = _graph(("a", lambda s: {"answer": "a"}), ("b", lambda s: {"answer": "b"}), name="static",
                   checkpointer=MemorySaver())
    graph.invoke({"question": "q"}, {"configurable": {"thread_id": "x"}}, interrupt_before=["b"])
    root = spans().one("invoke_workflow static")
    assert root.attributes[sc.GRAPH_INTERRUPTED] is True
    assert root.attributes[sc.GRAPH_STATUS] == "interrupt_before"


def _boom(state):
    raise ValueError("bad state")


def test_exception_in_a_node(lc, spans):
    with pytest.raises(ValueError):
        _graph(("ok", lambda s: {}), ("boom", _boom), name="failing").invoke({"question": "q"})
    tree = spans()
    for span in (tree.one("boom"), tree.one("invoke_workflow failing")):
        assert span.status.status_code.name == "ERROR"
        assert span.attributes[sc.ERROR_TYPE] == "ValueError"
    assert tree.one("ok").status.status_code.name == "UNSET"


async def test_exception_in_a_node_async(lc, spans):
    async def boom(state):
        raise ValueError("bad state")

    with pytest.raises(ValueError):
        await _graph(("boom", boom), name="failing").ainvoke({"question": "q"})
    assert spans().one("boom").status.status_code.name == "ERROR"


def test_recursion_limit_error(lc, spans):
    from langgraph.errors import GraphRecursionError
    from langgraph.graph import START, StateGraph

    builder = StateGraph(State)
    builder.add_node("spin", lambda s: {"items": [1]})
    builder.add_edge(START, "spin")
    builder.add_edge("spin", "spin")
    with pytest.raises(GraphRecursionError):
        builder.compile(name="loop").invoke({"items": []}, {"recursion_limit": 5})
    tree = spans()
    root = tree.one("invoke_workflow loop")
    assert root.status.status_code.name == "ERROR"
    assert root.attributes[sc.ERROR_TYPE] == "GraphRecursionError"
    assert root.attributes[sc.GRAPH_STATUS] == "out_of_steps"
    assert root.attributes[sc.GRAPH_RECURSION_LIMIT] == 5
    assert len(tree.named("spin")) == 5


async def test_cancelled_task_ends_every_span(lc, spans):
    started = asyncio.Event()

    async def slow(state):
        started.set()
        await asyncio.sleep(30)
        return {}

    graph = _graph(("slow", slow), name="slow_graph")
    task = asyncio.ensure_future(graph.ainvoke({"question": "q"}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    tree = spans()
    assert tree.one("slow").end_time is not None
    assert tree.one("invoke_workflow slow_graph").end_time is not None
    assert HANDLER.open_runs == 0


def test_uninstrument_restores_langgraph(tracer_provider, span_exporter):
    from langgraph._internal import _runnable
    from langgraph.pregel._loop import PregelLoop

    from instrumentors.langchain import LangChainInstrumentor

    init, scc = PregelLoop.__init__, _runnable.set_config_context
    inst = LangChainInstrumentor()
    inst.instrument(tracer_provider=tracer_provider)
    assert PregelLoop.__init__ is not init and _runnable.set_config_context is not scc
    inst.uninstrument()
    assert PregelLoop.__init__ is init and _runnable.set_config_context is scc
    _graph(("a", lambda s: {}), name="plain").invoke({"question": "q"})
    assert span_exporter.get_finished_spans() == ()
