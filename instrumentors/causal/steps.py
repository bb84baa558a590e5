"""User steps: custom code joins the causal chain.

A RAG pipeline is more than library calls: a context assembler, an output validator, a
post-processor. ``instrumentors.step`` gives such code a span (``INTERNAL``, with
``instrumentors.span.kind=step`` and ``instrumentors.step.name``) that *consumes* its
inputs (causal links to whatever produced them, set at span start) and *produces* its
outputs (registered, so later steps link to it)::

    import instrumentors

    with instrumentors.step("context assembler", inputs=docs) as s:
        context = "\\n\\n".join(d.page_content for d in docs[:3])
        s.produce(context)

    @instrumentors.step("output validator")
    def validate(answer: str) -> str:        # arguments are the inputs,
        if "I don't know" in answer:          # the return value is the output
            instrumentors.step.current().set_status("fail")
        return answer

    @instrumentors.step                      # name = the function's qualified name
    async def rerank(query, candidates): ...

Inputs and outputs may be strings, lists/tuples/sets of them, dicts (their values),
LangChain ``Document`` s and LlamaIndex nodes (ids and scores are kept for ``kind="document"``
steps), nested up to 4 levels, at most 256 texts. Other objects are ignored, so ``self``
and clients passed as arguments do no harm. Sync and async functions are supported;
generator functions are returned unchanged (a span cannot sensibly stay current across
``yield``).

Fail-open: if anything in here fails, the user's code runs exactly as without it (same
return value, same exception), without a span.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import _content, _render
from .. import _semconv as sc
from .._spans import end_span, record_error, report_internal_error, set_attributes, start_span
from .._version import __version__
from . import _api

MAX_TEXTS = 256
_MAX_DEPTH = 4
_MISSING = object()
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("instrumentors_current_step", default=None)

Item = Tuple[str, Optional[str], Optional[float]]  # text, document id, score


def _from_library_object(obj: Any) -> Optional[Item]:
    """Text, id and score of a LangChain Document or a LlamaIndex node (else None).

    Only objects of those libraries are inspected: reading arbitrary attributes of user
    objects could run properties with side effects.
    """
    module = type(obj).__module__ or ""
    if not module.startswith(("langchain", "llama_index")):
        return None
    page_content = getattr(obj, "page_content", None)
    if isinstance(page_content, str):
        metadata = getattr(obj, "metadata", None) or {}
        doc_id = getattr(obj, "id", None) or metadata.get("id")
        score = metadata.get("score") if isinstance(metadata, Mapping) else None
        return page_content, None if doc_id is None else str(doc_id), score
    node = getattr(obj, "node", None)
    score = getattr(obj, "score", None)
    target = node if node is not None else obj
    get_content = getattr(target, "get_content", None)
    if callable(get_content):
        text = get_content()
        if isinstance(text, str):
            node_id = getattr(target, "node_id", None)
            return text, None if node_id is None else str(node_id), score
    return None


def _collect(obj: Any, out: List[Item], depth: int = 0) -> None:
    if len(out) >= MAX_TEXTS or obj is None:
        return
    if isinstance(obj, str):
        out.append((obj, None, None))
        return
    if isinstance(obj, _api.Produced):
        out.append((obj.text, obj.document_id, obj.score))
        return
    if depth >= _MAX_DEPTH or isinstance(obj, (bytes, bytearray, int, float, bool)):
        return
    if isinstance(obj, Mapping):
        for value in list(obj.values())[:MAX_TEXTS]:
            _collect(value, out, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for value in list(obj)[:MAX_TEXTS]:
            _collect(value, out, depth + 1)
        return
    item = _from_library_object(obj)
    if item is not None:
        out.append(item)


def collect_texts(*objects: Any) -> List[Item]:
    """(text, id, score) of every text found in ``objects`` (bounded)."""
    out: List[Item] = []
    for obj in objects:
        _collect(obj, out)
    return out[:MAX_TEXTS]


class StepRun:
    """One execution of a step: its span, and what it consumed and produced.

    Returned by ``with instrumentors.step(...) as s`` and by ``instrumentors.step.current()``.
    Every method is safe to call even when the span could not be made (no-op).
    """

    def __init__(self, name: str, kind: str, attributes: Optional[Mapping[str, Any]],
                 tracer_provider: Any) -> None:
        self.name = name
        self.kind = kind
        self.span: Any = None
        self.consumption: Optional[_api.Consumption] = None
        self._extra = dict(attributes or {})
        self._provider = tracer_provider
        self._tokens: Optional[tuple] = None
        self._produced_texts: List[str] = []
        self._rank = 0

    # -- lifecycle (ours; never raises) ----------------------------------------------
    def _start(self, inputs: Any) -> None:
        try:
            items = collect_texts(inputs)
            texts = [text for text, _, _ in items]
            parent = otel_context.get_current()
            consumption = _api.consume(texts, parent)
            self.consumption = consumption
            tracer = _render.get_tracer("instrumentors.steps", __version__, self._provider)
            attributes = {
                sc.SPAN_KIND: sc.KIND_STEP,
                sc.STEP_NAME: self.name,
                sc.LIBRARY: "user",
                sc.INPUT_VALUE: _content.json_value(texts) if texts else None,
            }
            span = start_span(tracer, self.name, kind=SpanKind.INTERNAL, attributes=attributes,
                              links=consumption.links if consumption else None, parent=parent)
            if consumption is not None:
                set_attributes(span, consumption.attributes)
            if self._extra:
                set_attributes(span, self._extra)
            self.span = span
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            self._tokens = (token, _CURRENT.set(self))
        except Exception as exc:  # noqa: BLE001
            report_internal_error("step.start", exc)

    def _finish(self, exc: Optional[BaseException] = None, result: Any = _MISSING) -> None:
        tokens, self._tokens = self._tokens, None
        try:
            if tokens is not None:
                _CURRENT.reset(tokens[1])
                otel_context.detach(tokens[0])
        except Exception as inner:  # noqa: BLE001
            report_internal_error("step.detach", inner)
        span = self.span
        if span is None:
            return
        try:
            if exc is None and result is not _MISSING:
                self.produce(result)
            if self._produced_texts:
                set_attributes(span, {sc.OUTPUT_VALUE: _content.json_value(self._produced_texts)
                                      if len(self._produced_texts) > 1
                                      else _content.text(self._produced_texts[0])})
            if exc is not None:
                record_error(span, exc)
        except Exception as inner:  # noqa: BLE001
            report_internal_error("step.finish", inner)
        end_span(span)

    # -- user API ----------------------------------------------------------------------
    def produce(self, output: Any, *, kind: Optional[str] = None, document_id: Optional[str] = None,
                rank: Optional[int] = None, score: Optional[float] = None) -> None:
        """Register output(s) of this step now (a string, list, dict, documents...).

        ``document_id``/``rank``/``score`` apply when ``output`` is one string; for lists,
        documents and nodes carry their own ids and scores and ranks count up from 0.
        """
        span = self.span
        if span is None:
            return
        try:
            kind = kind or self.kind
            items = collect_texts(output)
            produced = []
            for text, item_id, item_score in items:
                if len(items) == 1 and document_id is not None:
                    item_id = document_id
                if len(items) == 1 and score is not None:
                    item_score = score
                item_rank = rank if (len(items) == 1 and rank is not None) else self._rank
                self._rank += 1
                produced.append(_api.Produced(text, kind, item_id, item_rank if kind == "document" else None,
                                              item_score))
                if len(self._produced_texts) < MAX_TEXTS:
                    self._produced_texts.append(text)
            _api.produce(span, produced)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("step.produce", exc)

    def consume(self, inputs: Any) -> None:
        """Add inputs found only inside the step (links added after span start)."""
        span = self.span
        if span is None:
            return
        try:
            texts = [text for text, _, _ in collect_texts(inputs)]
            consumption = _api.consume(texts, trace.set_span_in_context(span))
            if consumption is None or not consumption.matches:
                return
            for link in consumption.links:
                if link.context.span_id != span.get_span_context().span_id:
                    span.add_link(link.context, link.attributes)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("step.consume", exc)

    def set_status(self, status: str) -> None:
        """The step's verdict, e.g. a validator's ``"pass"`` / ``"fail"``
        (``instrumentors.step.status``; the span status is left to exceptions)."""
        self.set_attribute(sc.STEP_STATUS, str(status))

    def set_attribute(self, key: str, value: Any) -> None:
        span = self.span
        if span is None or value is None:
            return
        try:
            span.set_attribute(key, value)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("step.set_attribute", exc)


class _NoStep(StepRun):
    """What ``step.current()`` returns outside a step: every method is a no-op."""

    def __init__(self) -> None:
        super().__init__("", "step", None, None)


class Step:
    """A named step: a context manager (sync and async) and a decorator."""

    def __init__(self, name: Optional[str] = None, inputs: Any = None, *, kind: str = "step",
                 attributes: Optional[Mapping[str, Any]] = None, tracer_provider: Any = None) -> None:
        self.name = name
        self.inputs = inputs
        self.kind = kind if kind in _api.KINDS else "step"
        self.attributes = attributes
        self.tracer_provider = tracer_provider
        self._runs: List[StepRun] = []

    def _run(self, name: Optional[str]) -> StepRun:
        return StepRun(name or self.name or "step", self.kind, self.attributes, self.tracer_provider)

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> StepRun:
        run = self._run(None)
        run._start(self.inputs)
        self._runs.append(run)
        return run

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        run = self._runs.pop() if self._runs else None
        if run is not None:
            run._finish(exc)
        return False

    async def __aenter__(self) -> StepRun:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    # -- decorator ---------------------------------------------------------------------
    def __call__(self, fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            return fn
        name = self.name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "step")
        explicit = self.inputs

        def inputs_of(args: tuple, kwargs: dict) -> Any:
            if explicit is None:
                return (args, kwargs)
            if callable(explicit):
                return explicit(*args, **kwargs)
            return explicit

        def begin(args: tuple, kwargs: dict) -> StepRun:
            run = self._run(name)
            try:
                source = inputs_of(args, kwargs)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("step.inputs", exc)
                source = None
            run._start(source)
            return run

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = begin(args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    run._finish(exc)
                    raise
                run._finish(None, result)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = begin(args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                run._finish(exc)
                raise
            run._finish(None, result)
            return result

        return wrapper


def current() -> StepRun:
    """The innermost running step in this context (a no-op stand-in outside any step)."""
    run = _CURRENT.get()
    return run if run is not None else _NoStep()


def step(name: Any = None, inputs: Any = None, *, kind: str = "step",
         attributes: Optional[Mapping[str, Any]] = None, tracer_provider: Any = None) -> Any:
    """A user step: ``with step("name", inputs=...) as s``, ``@step("name")`` or ``@step``.

    ``kind`` is how its outputs are registered: ``"step"`` (links say ``CAUSED_BY_STEP``),
    or ``"document"`` / ``"generation"`` / ``"tool_result"`` for a custom retriever, model
    call or tool. For the decorator, ``inputs`` may be a callable receiving the call's
    arguments; by default all arguments are inputs.
    """
    if callable(name) and not isinstance(name, str) and inputs is None:
        return Step(None, None, kind=kind, attributes=attributes, tracer_provider=tracer_provider)(name)
    return Step(name, inputs, kind=kind, attributes=attributes, tracer_provider=tracer_provider)


step.current = current  # type: ignore[attr-defined]
