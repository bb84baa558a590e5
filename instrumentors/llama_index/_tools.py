"""Tool spans current while the tool's own body runs.

The dispatcher handler creates ``execute_tool {name}`` spans in ``span_enter`` and
children find them by dispatcher id (``_tree``), but nothing made them the *current*
OTel span: a raw OpenAI client call, a user's ``start_as_current_span`` or
``instrumentors.step`` inside a ``FunctionTool`` body started under whatever was current
before the tool (mis-parented, or in a separate trace when nothing was).

So ``BaseTool.__call__`` / ``call`` / ``acall`` of every tool class (present and future,
through :class:`~._patches.ClassPatcher`, outermost around the dispatcher's decorator)
are wrapped. The wrapper **starts the tool span itself**, before the dispatcher call,
with the very start path the handler uses (``DispatcherLogic.start_span``: same name,
attributes, parent resolution and causal consume), attaches a context where it is
current, and detaches in the same frame when the call returns or raises. The handler's
``span_enter`` for that call finds the started span in the current context
(:data:`PRESTART_KEY`) and *adopts* it instead of starting a second one; from then on
the dispatcher drives it exactly as before (``span_exit``/``span_drop`` finish and end
it, the tree resolves children to it). A call nobody adopted (an undecorated method, an
argument error raised before ``span_enter``, the handler removed mid-call) is finished
and ended by the wrapper.

Why not LangChain's ``Pending`` placeholder (attach a proxy span, fill it when the
handler starts the real one): here everything the span needs (instance, arguments,
dispatcher parent) is known at the call site, so the span can simply exist before the
body; the current span is then always the real SDK span (user code that inspects it
sees a normal span) and no proxy forwards calls.

Agents: 0.12's ``AgentRunner`` chat/query bodies already run inside
``callback_manager.as_trace`` (``_scopes`` makes their span current); 0.13+ workflow
agents run their steps in tasks the ``workflows`` runtime creates around its own
``span_enter``, with no call site to wrap, so their spans stay parents by id only.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

from llama_index.core.instrumentation.span import active_span_id
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .._spans import end_span, report_internal_error
from ._common import Telemetry

try:
    from llama_index.core.instrumentation.dispatcher import DISPATCHER_SPAN_DECORATED_ATTR
except Exception:  # noqa: BLE001 - pragma: no cover
    DISPATCHER_SPAN_DECORATED_ATTR = "__dispatcher_span_decorated__"

#: The tool call started by our wrapper, in the context it makes current.
PRESTART_KEY = otel_context.create_key("instrumentors.llama_index.prestarted")

TOOL_METHODS = ("__call__", "call", "acall")


class Prestarted:
    """A span started at the call site, waiting for the dispatcher's ``span_enter``."""

    __slots__ = ("owner", "kind", "span", "data", "ctx", "adopted")

    def __init__(self, owner: Any, kind: str, span: Any, data: Any) -> None:
        self.owner = owner
        self.kind = kind
        self.span = span
        self.data = data
        self.ctx: Any = None
        self.adopted = False


def adopt(current: otel_context.Context, instance: Any, kind: str) -> Optional[Prestarted]:
    """For ``span_enter``: the span our wrapper started for this very call, once."""
    pre = otel_context.get_value(PRESTART_KEY, current)
    if pre is None or pre.adopted or pre.owner is not instance or pre.kind != kind:
        return None
    pre.adopted = True
    return pre


class ToolCalls:
    """Starts, attaches and (when the dispatcher did not) finishes tool spans."""

    def __init__(self, tel: Telemetry, logic: Any) -> None:
        self.tel = tel
        self.logic = logic

    def start(self, wrapped: Callable, instance: Any, method: str, args: tuple, kwargs: dict) -> Optional[Prestarted]:
        current = otel_context.get_current()
        pre = otel_context.get_value(PRESTART_KEY, current)
        if pre is not None and pre.owner is instance:
            return None  # the tool calling itself (FunctionTool.__call__ -> call): one span
        if not is_instrumentation_enabled() or not getattr(wrapped, DISPATCHER_SPAN_DECORATED_ATTR, False):
            return None  # no dispatcher span would adopt it: the handler's view is unchanged
        kind = self.logic.kind_for(instance, method)
        if kind is None:
            return None
        try:
            bound = inspect.signature(wrapped).bind(*args, **kwargs)
        except TypeError:
            return None  # the call itself will raise, as without us
        parent, _node, _current = self.tel.tree.resolve(active_span_id.get())
        span, data = self.logic.start_span(kind, instance, bound, parent)
        pre = Prestarted(instance, kind, span, data)
        pre.ctx = otel_context.set_value(PRESTART_KEY, pre, trace.set_span_in_context(span, current))
        return pre

    def settle(self, pre: Prestarted, result: Any, exc: Optional[BaseException]) -> None:
        """After the call: end the span if no ``span_enter`` adopted it."""
        if pre.adopted:
            return
        pre.adopted = True  # a very late span_enter must not adopt an ended span
        try:
            if exc is not None:
                end_span(pre.span, exc)
            else:
                self.logic.finish_orphan(pre, result)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("llama_index.tool.settle", inner)


def tool_wrapper(calls: ToolCalls, method: str) -> Callable:
    """A wrapt wrapper for ``method``; a coroutine method gets a coroutine back, whose
    span starts when it is first awaited (a coroutine never awaited costs no span)."""
    start = calls.start
    settle = calls.settle

    def _start(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Optional[Prestarted]:
        try:
            return start(wrapped, instance, method, args, kwargs)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("llama_index.tool.start", exc)
            return None

    async def traced_async(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        pre = _start(wrapped, instance, args, kwargs)
        if pre is None:
            return await wrapped(*args, **kwargs)
        token = otel_context.attach(pre.ctx)  # attach and detach in this one frame
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            settle(pre, None, exc)
            raise
        otel_context.detach(token)
        settle(pre, result, None)
        return result

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        if instance is None:
            return wrapped(*args, **kwargs)  # called on the class: not a tool call we can read
        if method == "acall" and inspect.iscoroutinefunction(wrapped):
            return traced_async(wrapped, instance, args, kwargs)
        pre = _start(wrapped, instance, args, kwargs)
        if pre is None:
            return wrapped(*args, **kwargs)
        token = otel_context.attach(pre.ctx)  # attach and detach in this one frame
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            settle(pre, None, exc)
            raise
        otel_context.detach(token)
        settle(pre, result, None)
        return result

    return wrapper


__all__ = ["PRESTART_KEY", "TOOL_METHODS", "Prestarted", "ToolCalls", "adopt", "tool_wrapper"]
