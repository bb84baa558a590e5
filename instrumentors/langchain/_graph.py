"""What LangGraph adds to LangChain runs: which run is a graph, which is a node execution.

Why this lives in the LangChain instrumentor (and not a ``langgraph/`` subpackage): a
LangGraph run *is* a tree of LangChain runs reported through the same callbacks. The
graph's own run (``Pregel.stream``/``astream``, which ``invoke``/``ainvoke`` call) and
every node execution arrive at the one callback handler; LangGraph only adds metadata
(``langgraph_node``, ``langgraph_step``, ``langgraph_triggers``) and the ``graph:step:N``
tag to node runs. So the handler's spans stay the spans, and this module only decides
their names and extra attributes:

* a **graph run** is recognised when LangGraph builds its Pregel loop with the run's
  manager (``PregelLoop.__init__(..., manager=run_manager, nodes=...)``, patched in
  ``_patches``): the span is renamed ``invoke_agent {name}`` for agents (a graph with a
  ``ToolNode``, or built by ``create_react_agent`` / ``langchain.agents.create_agent``)
  or ``invoke_workflow {name}`` otherwise; its loop's final status and step count are read
  when the run ends.
* a **node run** is the direct child of a graph run whose name is its ``langgraph_node``
  and whose tags hold ``graph:step:N``; runs inside the node inherit the metadata but are
  not tagged, so they stay ordinary runs.
* LangGraph's control flow exceptions (``GraphBubbleUp``: an ``interrupt()``, a
  ``Command(graph=PARENT)``) pass through node runs' error callbacks; they are not
  errors, and the spans they end say "interrupted" instead.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import _semconv as sc

#: Modules whose graphs are agents by construction (the node functions are defined there).
AGENT_FACTORY_MODULES = ("langgraph.prebuilt.chat_agent_executor", "langchain.agents")

_STEP_TAG = "graph:step:"


def _class_names(obj: Any) -> tuple:
    return tuple(c.__name__ for c in type(obj).__mro__)


def _runnables(bound: Any) -> list:
    """A node's runnable and, for a RunnableSeq/RunnableSequence, its steps."""
    steps = getattr(bound, "steps", None)
    found = [bound]
    if isinstance(steps, (list, tuple)):
        found.extend(steps)
    return found


def is_agent(nodes: Any) -> bool:
    """A graph is an agent when a node executes tools (``ToolNode``) or the graph comes
    from one of LangChain's agent factories."""
    try:
        values = nodes.values() if hasattr(nodes, "values") else ()
        for node in values:
            for runnable in _runnables(getattr(node, "bound", None)):
                if runnable is None:
                    continue
                if "ToolNode" in _class_names(runnable):
                    return True
                func = getattr(runnable, "func", None) or getattr(runnable, "afunc", None)
                module = getattr(func, "__module__", None) or ""
                if module.startswith(AGENT_FACTORY_MODULES):
                    return True
    except Exception:  # noqa: BLE001 - an odd node: not an agent, the span is still right
        return False
    return False


def is_command_resume(value: Any) -> bool:
    return type(value).__name__ == "Command" and getattr(value, "resume", None) is not None


def graph_attributes(name: str, agent: bool, config: Any, graph_input: Any) -> tuple:
    """(span name, attributes) of a graph run."""
    op = sc.OP_INVOKE_AGENT if agent else sc.OP_INVOKE_WORKFLOW
    attrs: dict = {
        sc.GEN_AI_OPERATION_NAME: op,
        sc.SPAN_KIND: sc.KIND_AGENT if agent else sc.KIND_WORKFLOW,
        sc.GRAPH_NAME: name,
    }
    if agent:
        attrs[sc.GEN_AI_AGENT_NAME] = name
    configurable = config.get("configurable") if isinstance(config, dict) else None
    thread_id = configurable.get("thread_id") if isinstance(configurable, dict) else None
    if isinstance(thread_id, (str, int)) and not isinstance(thread_id, bool):
        attrs[sc.GEN_AI_CONVERSATION_ID] = str(thread_id)
    limit = config.get("recursion_limit") if isinstance(config, dict) else None
    if isinstance(limit, int) and not isinstance(limit, bool):
        attrs[sc.GRAPH_RECURSION_LIMIT] = limit
    if is_command_resume(graph_input):
        attrs[sc.GRAPH_RESUMED] = True
    return f"{op} {name}", attrs


def node_attributes(name: str, tags: Any, metadata: dict) -> Optional[dict]:
    """The attributes of a node run, or None if the run is not a node execution itself
    (a run *inside* a node inherits the node's metadata but not its step tag)."""
    if metadata.get("langgraph_node") != name or not tags:
        return None
    if not any(type(t) is str and t.startswith(_STEP_TAG) for t in tags):
        return None
    attrs: dict = {sc.SPAN_KIND: sc.KIND_NODE, sc.GRAPH_NODE: name}
    step = metadata.get("langgraph_step")
    if isinstance(step, int) and not isinstance(step, bool):
        attrs[sc.GRAPH_STEP] = step
    triggers = metadata.get("langgraph_triggers")
    if isinstance(triggers, (list, tuple)):
        attrs[sc.GRAPH_TRIGGERS] = [str(t) for t in triggers]
    return attrs


def control_flow(error: BaseException) -> Optional[str]:
    """"interrupt" for ``GraphInterrupt``, "bubble_up" for LangGraph's other control flow
    exceptions (``Command(graph=PARENT)``), None for real errors."""
    names = _class_names(error)
    if "GraphBubbleUp" not in names:
        return None
    return "interrupt" if "GraphInterrupt" in names else "bubble_up"


def loop_end_attributes(loop: Any, interrupted: bool) -> dict:
    """What the graph's Pregel loop says when the run ends: status, last step."""
    attrs: dict = {}
    status = getattr(loop, "status", None) if loop is not None else None
    step = getattr(loop, "step", None) if loop is not None else None
    if isinstance(status, str):
        attrs[sc.GRAPH_STATUS] = status
        if status.startswith("interrupt"):
            interrupted = True
    if isinstance(step, int) and not isinstance(step, bool):
        attrs[sc.GRAPH_STEPS] = step
    if interrupted:
        attrs[sc.GRAPH_INTERRUPTED] = True
    return attrs
