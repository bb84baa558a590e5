"""Making a LangChain run's span *current* while the run's own code executes, without
ever attaching a context in one callback and detaching it in another.

The callback handler creates spans with explicit parents (mirroring LangChain's run
tree), but callbacks cannot make a span current: ``on_*_start`` and ``on_*_end`` may
run in different threads or contexts. Three small mechanisms fill that gap, each
attaching and detaching in the same frame and the same ``contextvars.Context``:

* ``set_config_context`` (used by every LCEL step and tool) gets the span of the run
  whose child config it sets, attached inside the copied Context LangChain runs the
  step in, and detached in that same Context on exit.
* ``_generate_with_cache`` / ``_generate_helper`` receive the run manager, so the LLM
  span is looked up by run id and attached (with an LLM frame) around the model call.
* ``stream``/``astream`` and ``BaseRetriever.invoke`` start their run inside the call
  (the span does not exist yet when we are entered). They attach a :class:`Pending`
  placeholder span once, around each step; the handler fills it with the real span
  when the run starts, and from then on everything that asks for the current span
  (the OpenAI instrumentor, user code) sees the real one.
"""

from __future__ import annotations

from typing import Any, Optional

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .._spans import context_with_llm_frame, current_llm_frame

PENDING_KEY = otel_context.create_key("instrumentors.langchain.pending_run")
#: The tool call id a ``BaseTool.run`` was given (langchain-core 0.3 does not pass it to
#: ``on_tool_start``; 1.x does).
TOOL_CALL_ID_KEY = otel_context.create_key("instrumentors.langchain.tool_call_id")

_attach = otel_context.attach
_detach = otel_context.detach

KIND_LLM = "llm"
KIND_RETRIEVER = "retriever"


class Pending(Span):
    """A placeholder current span for a run that has not started yet.

    Until the handler fills it, every call is forwarded to the span that was current
    when the wrapper was entered (so parenting is exactly as without us); afterwards
    to the run's span. It is only ever reachable through contexts attached by our
    wrappers, and dies with them.
    """

    def __init__(self, kind: str, fallback: Span, **info: Any) -> None:
        self.kind = kind
        self.fallback = fallback
        self.span: Optional[Span] = None
        self.frame: Any = None
        self.info = info

    def _target(self) -> Span:
        span = self.span
        return span if span is not None else self.fallback

    # trace.Span interface ---------------------------------------------------------------
    def get_span_context(self):  # type: ignore[override]
        return self._target().get_span_context()

    def is_recording(self) -> bool:
        return self._target().is_recording()

    def set_attributes(self, attributes) -> None:  # type: ignore[override]
        self._target().set_attributes(attributes)

    def set_attribute(self, key, value) -> None:  # type: ignore[override]
        self._target().set_attribute(key, value)

    def add_event(self, name, attributes=None, timestamp=None) -> None:  # type: ignore[override]
        self._target().add_event(name, attributes, timestamp)

    def add_link(self, context, attributes=None) -> None:  # type: ignore[override]
        self._target().add_link(context, attributes)

    def update_name(self, name) -> None:  # type: ignore[override]
        self._target().update_name(name)

    def set_status(self, status, description=None) -> None:  # type: ignore[override]
        self._target().set_status(status, description)

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False) -> None:  # type: ignore[override]
        self._target().record_exception(exception, attributes, timestamp, escaped)

    def end(self, end_time=None) -> None:  # type: ignore[override]
        # Never end a span through the placeholder: the run's span ends with its run,
        # the fallback belongs to the user.
        return None


def pending_context(kind: str, **info: Any) -> tuple:
    """A Pending for a run about to start and the context that makes it current."""
    pending = Pending(kind, trace.get_current_span(), **info)
    if kind == KIND_LLM:
        ctx = context_with_llm_frame(pending)  # type: ignore[arg-type]
        pending.frame = current_llm_frame(ctx)
    else:
        ctx = trace.set_span_in_context(pending)
    extra = info.get("context_values") or ()
    for key, value in extra:
        ctx = otel_context.set_value(key, value, ctx)
    return pending, otel_context.set_value(PENDING_KEY, pending, ctx)


def claim_pending(kind: str) -> Optional[Pending]:
    """The unfilled placeholder of ``kind`` in the current context, if any: the run
    starting now is the one its wrapper is waiting for."""
    pending = otel_context.get_value(PENDING_KEY)
    if isinstance(pending, Pending) and pending.kind == kind and pending.span is None:
        return pending
    return None


class _PendingSteps(wrapt.ObjectProxy):
    """What both stream proxies share: the placeholder context their steps run in, made
    at the first step (the run starts there)."""

    def __init__(self, wrapped: Any, kind: str, **info: Any) -> None:
        super().__init__(wrapped)
        self._self_kind = kind
        self._self_info = info
        self._self_ctx: Optional[otel_context.Context] = None

    def _self_context(self) -> otel_context.Context:
        ctx = self._self_ctx
        if ctx is None:
            _, ctx = pending_context(self._self_kind, **self._self_info)
            self._self_ctx = ctx
        return ctx

    def __reduce_ex__(self, protocol: int) -> Any:
        raise TypeError("cannot pickle a stream")


class PendingStream(_PendingSteps):
    """A model's ``stream()`` generator, each step run with the run's span current.

    The first step starts the run (the handler fills the placeholder); the model's own
    ``_stream`` and the client call inside it run in that same step, so the client
    span nests under the LLM span. Closing and garbage collection pass straight to the
    generator, whose own ``except BaseException`` ends the run.
    """

    def __iter__(self) -> "PendingStream":
        return self

    # attach and detach in one frame (``attached``, inlined: once per chunk)
    def __next__(self) -> Any:
        token = _attach(self._self_ctx or self._self_context())
        try:
            return next(self.__wrapped__)
        finally:
            _detach(token)

    def send(self, value: Any) -> Any:
        token = _attach(self._self_ctx or self._self_context())
        try:
            return self.__wrapped__.send(value)
        finally:
            _detach(token)


class PendingAsyncStream(_PendingSteps):
    """The async twin of :class:`PendingStream` for ``astream()``."""

    def __aiter__(self) -> "PendingAsyncStream":
        return self

    async def __anext__(self) -> Any:
        token = _attach(self._self_ctx or self._self_context())
        try:
            return await self.__wrapped__.__anext__()
        finally:
            _detach(token)

    async def asend(self, value: Any) -> Any:
        token = _attach(self._self_ctx or self._self_context())
        try:
            return await self.__wrapped__.asend(value)
        finally:
            _detach(token)


class SpanInConfigContext:
    """Wraps LangChain's ``set_config_context(config)`` context manager: inside the
    copied Context it yields, the run's context (its span current) is attached; attach
    and detach both run in that very Context (``ctx.run``), so they cannot be
    mismatched."""

    __slots__ = ("_cm", "_run_ctx", "_ctx", "_token")

    def __init__(self, cm: Any, run_ctx: otel_context.Context) -> None:
        self._cm = cm
        self._run_ctx = run_ctx
        self._ctx: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        ctx = self._cm.__enter__()
        try:
            self._token = ctx.run(otel_context.attach, self._run_ctx)
            self._ctx = ctx
        except Exception as exc:  # noqa: BLE001 - fail open: the step runs, just not under the span
            from .._spans import report_internal_error

            report_internal_error("langchain.set_config_context.enter", exc)
        return ctx

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if self._token is not None:
            try:
                self._ctx.run(otel_context.detach, self._token)
            except Exception as inner:  # noqa: BLE001 - e.g. the Context is still entered
                from .._spans import report_internal_error

                report_internal_error("langchain.set_config_context.exit", inner)
            self._token = None
        return self._cm.__exit__(exc_type, exc, tb)
