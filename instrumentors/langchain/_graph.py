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
* a run **resumed** after an interrupt (``Command(resume=...)``, or ``None`` as input, on
  a checkpointed thread) is a new call and so a new trace; its graph span links the
  graph span of the thread's run that stopped at the interrupt (``RESUMED_FROM``), found
  in :data:`INTERRUPTED` by the run's ``thread_id`` and ``checkpoint_ns``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional

from opentelemetry.trace import Link

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


#: threads remembered at most (each entry: a key and a span context, ~200 bytes)
MAX_INTERRUPTED_THREADS = 4096


class InterruptedRuns:
    """Thread key -> span context of the thread's latest graph run that stopped at an
    interrupt: what a resumed run links to. Bounded (least recently stopped dropped
    first); an entry goes when its thread's run finishes (``done``)."""

    def __init__(self, maxsize: int = MAX_INTERRUPTED_THREADS) -> None:
        self.maxsize = maxsize
        self._runs: "OrderedDict[tuple, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def remember(self, key: tuple, span_context: Any) -> None:
        with self._lock:
            self._runs[key] = span_context
            self._runs.move_to_end(key)
            while len(self._runs) > self.maxsize:
                self._runs.popitem(last=False)

    def forget(self, key: tuple) -> None:
        with self._lock:
            self._runs.pop(key, None)

    def get(self, key: tuple) -> Any:
        return self._runs.get(key)

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()


INTERRUPTED = InterruptedRuns()


def thread_key(config: Any) -> Optional[tuple]:
    """(thread_id, checkpoint_ns) of a checkpointed run's config, or None."""
    configurable = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(configurable, dict):
        return None
    thread_id = configurable.get("thread_id")
    if not isinstance(thread_id, (str, int)) or isinstance(thread_id, bool):
        return None
    namespace = configurable.get("checkpoint_ns")
    return str(thread_id), namespace if isinstance(namespace, str) else ""


def resumes(graph_input: Any) -> bool:
    """A run continuing its thread where it stopped: ``Command(resume=...)``, or no input."""
    return graph_input is None or is_command_resume(graph_input)


def resume_link(key: Optional[tuple], graph_input: Any) -> Optional[Link]:
    """The link from a resumed run's graph span to the interrupted run's, if known."""
    if key is None or not resumes(graph_input):
        return None
    interrupted = INTERRUPTED.get(key)
    if interrupted is None:
        return None
    return Link(interrupted, {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_RESUMED_FROM,
                              sc.LINK_SOURCE_KIND: sc.SOURCE_INTERRUPT})


def note_graph_end(key: Optional[tuple], span_context: Any, end_attributes: dict) -> None:
    """Remember a run that stopped at an interrupt; forget its thread once a run finished."""
    if key is None:
        return
    if end_attributes.get(sc.GRAPH_INTERRUPTED) is True:
        INTERRUPTED.remember(key, span_context)
    elif end_attributes.get(sc.GRAPH_STATUS) == "done":
        INTERRUPTED.forget(key)


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
    if is_command_resume(graph_input) or (graph_input is None and INTERRUPTED.get(thread_key(config)) is not None):
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
