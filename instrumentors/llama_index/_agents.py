"""Agents taking turns inside another workflow (``AgentWorkflow``): one span per turn.

An ``AgentWorkflow`` runs its agents as steps of one workflow run, so the dispatcher
gives one ``invoke_agent {root agent}`` span for the whole conversation and nothing
says which agent produced which model call. Each agent's turn is its ``take_step``
(the model call that decides what to do next); when an agent takes a step inside a run
that is not its own (the run's owner, made current with the run's span by
``DispatcherLogic.enter``, is another workflow), the turn gets its own ``invoke_agent
{agent}`` span, current while the step runs, so the agent's model calls nest under it.
The first turn after a ``handoff`` tool call links that tool span (``CAUSED_BY_TOOL``,
source kind ``handoff``): the message that handed the conversation over.

An agent run on its own (``FunctionAgent.run``) is its run's owner: no extra span.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link

from .. import _semconv as sc
from .._spans import end_span, report_internal_error

#: OTel context key: the workflow whose run span is current (set where it is attached).
RUN_OWNER_KEY = otel_context.create_key("instrumentors.llama_index.run_owner")
HANDOFF_TOOL = "handoff"
TAKE_STEP_METHODS = ("take_step",)

#: run owner -> span context of its latest handoff tool call (weak: dies with the run's workflow)
_handoffs: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def note_tool_span(tool: Any, span: Any) -> None:
    """Called as a tool span starts: remember a handoff for the run's next turn."""
    try:
        name = getattr(getattr(tool, "metadata", None), "name", None)
        if name != HANDOFF_TOOL:
            return
        owner = otel_context.get_value(RUN_OWNER_KEY)
        if owner is not None:
            _handoffs[owner] = span.get_span_context()
    except Exception as exc:  # noqa: BLE001
        report_internal_error("llama_index.handoff", exc)


def _turn_start(tracer: trace.Tracer, agent: Any) -> Optional[Any]:
    owner = otel_context.get_value(RUN_OWNER_KEY)
    if owner is None or owner is agent:
        return None
    name = str(getattr(agent, "name", None) or type(agent).__name__)
    links = None
    handoff = _handoffs.pop(owner, None) if owner in _handoffs else None
    if handoff is not None:
        links = [Link(handoff, {sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_TOOL,
                                sc.LINK_SOURCE_KIND: HANDOFF_TOOL})]
    attrs = {sc.SPAN_KIND: sc.KIND_AGENT, sc.LIBRARY: "llama_index", sc.COMPONENT: type(agent).__name__,
             sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: name}
    return tracer.start_span(f"{sc.OP_INVOKE_AGENT} {name}", attributes=attrs, links=links)


def take_step_wrapper(tracer: trace.Tracer, method: str) -> Callable:
    """A wrapt wrapper for ``take_step`` (a coroutine method)."""

    async def traced(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        try:
            span = _turn_start(tracer, instance)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.agent_turn", exc)
            span = None
        if span is None:
            return await wrapped(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))  # attach and detach in this frame
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            end_span(span, exc)
            raise
        otel_context.detach(token)
        end_span(span)
        return result

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        if instance is None or not inspect.iscoroutinefunction(wrapped):
            return wrapped(*args, **kwargs)
        return traced(wrapped, instance, args, kwargs)

    return wrapper
