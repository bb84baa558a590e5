"""Everything the LangChain instrumentor changes in LangChain, and how it undoes it.

* The callback handler is added to every callback manager through LangChain's own
  configure-hook list (``langchain_core.tracers.context._configure_hooks``): LangChain
  adds a hook's handler to a manager only if that very object is not there yet, so
  copied, merged and child managers never hold it twice.
* ``set_config_context`` (every LCEL step and tool), ``BaseChatModel._generate_with_cache``,
  ``BaseLLM._generate_helper``, ``stream``/``astream`` and ``BaseRetriever.invoke`` make
  the run's span current while the run's own code runs (see ``_context``).
* Vector stores and embeddings are not runs (no callbacks): their query/embed methods
  are wrapped on every subclass that defines them, existing ones at instrument time
  and new ones through ``__init_subclass__`` on the base class.

Every wrapper fails open and is a pass-through while the handler is inactive.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
import threading
import weakref
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import _semconv as sc
from .._metrics import GenAIMetrics
from .._spans import (
    context_with_llm_frame,
    current_llm_frame,
    end_span,
    fail_open,
    report_internal_error,
)
from . import _readers as readers
from . import _retrieval as retrieval
from ._context import (
    KIND_LLM,
    KIND_RETRIEVER,
    TOOL_CALL_ID_KEY,
    PendingAsyncStream,
    PendingStream,
    SpanInConfigContext,
    pending_context,
)
from ._handler import HANDLER, LLMRun, context_for_config

EMBEDDING_KEY = otel_context.create_key("instrumentors.langchain.embedding")

_attach = otel_context.attach
_detach = otel_context.detach


def _method(original: Callable, wrapper: Callable) -> Callable:
    """``original`` (a plain function defined on a class) wrapped by ``wrapper(wrapped,
    instance, args, kwargs)``, as a plain function: it binds like the original (a wrapt
    FunctionWrapper subclass cost four times as much per call, and these methods run on
    every retrieval and model call). ``__wrapped__`` is the original; async stays async."""
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def async_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(original.__get__(self), self, args, kwargs)

        async_method._instrumentors_wrapper = True  # type: ignore[attr-defined]
        return async_method

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original.__get__(self), self, args, kwargs)

    method._instrumentors_wrapper = True  # type: ignore[attr-defined]
    return method


def _is_ours(attr: Any) -> bool:
    """Ours, so never wrapped twice and the only thing we ever unwrap."""
    return getattr(attr, "_instrumentors_wrapper", False) is True


# ---------------------------------------------------------------------------------------
# Callback handler injection
# ---------------------------------------------------------------------------------------


#: The "context variable" of LangChain's configure hook (``get()`` -> handler to add).
#: Never set: its *default* is our handler, so ``get()`` returns it in every thread and
#: context (a value set with ``set()`` would not be visible in threads started without a
#: copied context), and it is a C call (LangChain calls it on every manager configure).
#: The hook is only in LangChain's list while instrumented; a manager configured in the
#: instant between ``deactivate()`` and the hook's removal holds an inactive no-op handler.
_HANDLER_VAR: contextvars.ContextVar = contextvars.ContextVar("instrumentors_langchain_handler", default=HANDLER)


def _install_hook() -> None:
    from langchain_core.tracers.context import _configure_hooks

    if not any(hook[0] is _HANDLER_VAR for hook in _configure_hooks):
        _configure_hooks.append((_HANDLER_VAR, True, None, None))


def _remove_hook() -> None:
    from langchain_core.tracers.context import _configure_hooks

    _configure_hooks[:] = [hook for hook in _configure_hooks if hook[0] is not _HANDLER_VAR]


# ---------------------------------------------------------------------------------------
# Wrappers that make a run's span current
# ---------------------------------------------------------------------------------------


def _wrap_set_config_context(original: Callable) -> Callable:
    """``set_config_context`` runs around every LCEL step: a plain function (no wrapt
    layer, no args/kwargs re-pack) whose result makes the parent run's span current."""

    @functools.wraps(original)
    def set_config_context(*args: Any, **kwargs: Any) -> Any:
        cm = original(*args, **kwargs)
        if not HANDLER.active:
            return cm
        try:
            run_ctx = context_for_config(args[0] if args else kwargs.get("config"))
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.set_config_context", exc)
            return cm
        return cm if run_ctx is None else SpanInConfigContext(cm, run_ctx)

    set_config_context._instrumentors_wrapper = True  # type: ignore[attr-defined]
    return set_config_context




def _llm_context(run_manager: Any) -> Optional[otel_context.Context]:
    """The context to run a model call in: its LLM span current, with an LLM frame."""
    try:
        run = HANDLER.get_run(getattr(run_manager, "run_id", None)) if HANDLER.active else None
        if not isinstance(run, LLMRun):
            return None
        ctx = context_with_llm_frame(run.span)
        frame = current_llm_frame(ctx)
        if frame is not None:
            run.frames.append(frame)
        return ctx
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.llm_context", exc)
        return None


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _first(managers: Any) -> Any:
    return managers[0] if isinstance(managers, (list, tuple)) and managers else None


def _run_manager(args: tuple, kwargs: dict) -> Any:
    """``_generate_with_cache(messages, stop, run_manager, ...)``."""
    return _arg(args, kwargs, 2, "run_manager")


def _first_run_manager(args: tuple, kwargs: dict) -> Any:
    """``_generate_helper(prompts, stop, run_managers, ...)``: one manager per prompt."""
    return _first(_arg(args, kwargs, 2, "run_managers"))


def _current(make_context: Callable) -> Callable:
    """A wrapper running the wrapped call with ``make_context(instance, args, kwargs)``
    attached (the run's span current), or untouched when that is None. Attach and detach
    happen in this one frame (``attached``, inlined: hot path)."""

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        ctx = make_context(instance, args, kwargs)
        if ctx is None:
            return wrapped(*args, **kwargs)
        token = _attach(ctx)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _detach(token)

    return wrapper


def _acurrent(make_context: Callable) -> Callable:
    """The async twin of :func:`_current`."""

    async def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        ctx = make_context(instance, args, kwargs)
        if ctx is None:
            return await wrapped(*args, **kwargs)
        token = _attach(ctx)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _detach(token)

    return wrapper


def _generation_context(instance: Any, args: tuple, kwargs: dict) -> Optional[otel_context.Context]:
    return _llm_context(_run_manager(args, kwargs))


def _helper_context(instance: Any, args: tuple, kwargs: dict) -> Optional[otel_context.Context]:
    return _llm_context(_first_run_manager(args, kwargs))


_generate_with_cache = _current(_generation_context)
_agenerate_with_cache = _acurrent(_generation_context)
_generate_helper = _current(_helper_context)
_agenerate_helper = _acurrent(_helper_context)


def _stream(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    if not HANDLER.active:
        return result
    return PendingStream(result, KIND_LLM, stream=True)


def _astream(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    if not HANDLER.active:
        return result
    return PendingAsyncStream(result, KIND_LLM, stream=True)


def _top_k(retriever: Any, call_kwargs: dict) -> Optional[int]:
    search_kwargs = getattr(retriever, "search_kwargs", None)
    if isinstance(search_kwargs, dict):
        if "k" in call_kwargs:
            k = call_kwargs["k"]
        elif "k" in search_kwargs:
            k = search_kwargs["k"]
        else:
            k = 4 if hasattr(retriever, "vectorstore") else None
    else:
        k = call_kwargs.get("k", getattr(retriever, "k", getattr(retriever, "top_k", None)))
    return k if isinstance(k, int) and not isinstance(k, bool) else None


def _retriever_context(retriever: Any, args: tuple, kwargs: dict) -> Optional[otel_context.Context]:
    if not HANDLER.active:
        return None
    try:
        store = getattr(retriever, "vectorstore", None)
        if store is not None:
            VECTOR_STORES.ensure(type(store))
        collector = retrieval.Collector()
        _, ctx = pending_context(
            KIND_RETRIEVER,
            data_source=type(store).__name__ if store is not None else type(retriever).__name__,
            source_id=retrieval.data_source_id(store) if store is not None else None,
            top_k=_top_k(retriever, kwargs),
            collector=collector,
            context_values=((retrieval.COLLECTOR_KEY, collector),),
        )
        return ctx
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.retriever_context", exc)
        return None


_retriever_invoke = _current(_retriever_context)
_retriever_ainvoke = _acurrent(_retriever_context)


def _tool_context(tool: Any, args: tuple, kwargs: dict) -> Optional[otel_context.Context]:
    if not HANDLER.active:
        return None
    return otel_context.set_value(TOOL_CALL_ID_KEY, kwargs.get("tool_call_id"))


_tool_run = _current(_tool_context)
_tool_arun = _acurrent(_tool_context)


# ---------------------------------------------------------------------------------------
# Vector stores used directly
# ---------------------------------------------------------------------------------------

RAW = "raw"
RELEVANCE = "relevance"

# method -> (returns scores?, starts a span when called directly?)
_VECTOR_STORE_METHODS = {
    "similarity_search": (None, True),
    "similarity_search_with_score": (RAW, True),
    "similarity_search_with_relevance_scores": (RELEVANCE, True),
    "max_marginal_relevance_search": (None, True),
    "asimilarity_search": (None, True),
    "asimilarity_search_with_score": (RAW, True),
    "asimilarity_search_with_relevance_scores": (RELEVANCE, True),
    "amax_marginal_relevance_search": (None, True),
    # internal methods where scores are computed and then dropped (capture only);
    # InMemoryVectorStore's MMR goes through the private one
    "_similarity_search_with_score_by_vector": (RAW, False),
    "_similarity_search_with_relevance_scores": (RELEVANCE, False),
    "_asimilarity_search_with_relevance_scores": (RELEVANCE, False),
}


def _score_order(scored: Optional[str], store: Any) -> Optional[str]:
    if scored == RELEVANCE:
        return retrieval.HIGHER
    return retrieval.raw_score_order(store)


def _start_vector_search(store: Any, args: tuple, kwargs: dict) -> tuple:
    try:
        query = _arg(args, kwargs, 0, "query")
        k = _arg(args, kwargs, 1, "k")
        if k is None:
            k = 4  # every VectorStore search method's default
        name = type(store).__name__
        span = retrieval.start_retrieval(HANDLER.tracer, name, name, query, k,
                                         source_id=retrieval.data_source_id(store))
        collector = retrieval.Collector()
        ctx = otel_context.set_value(retrieval.COLLECTOR_KEY, collector, trace.set_span_in_context(span))
        return span, ctx, collector
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.vector_store.start", exc)
        return None, None, None


def _finish_vector_search(span: Any, result: Any, scored: Optional[str], store: Any, collector: Any) -> None:
    try:
        if scored:
            docs, scores = retrieval.split_scored(result)
            order = _score_order(scored, store)
        else:
            docs = list(result or ())
            scores, order = retrieval.scores_for(docs, collector)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.vector_store.finish", exc)
        end_span(span)
        return
    try:
        retrieval.finish_retrieval(span, docs, scores, order)
    except Exception as exc:  # noqa: BLE001 - the caller's result is returned whatever happens here
        report_internal_error("langchain.vector_store.finish", exc)
        end_span(span)


def _capture(result: Any, scored: Optional[str], store: Any, collector: Any) -> None:
    if collector is not None and scored:
        try:
            collector.add(result, _score_order(scored, store))
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langchain.vector_store.capture", exc)


def _vector_store_wrapper(scored: Optional[str], makes_span: bool, is_async: bool) -> Callable:
    if is_async:
        async def async_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
            if not HANDLER.active:
                return await wrapped(*args, **kwargs)
            collector = otel_context.get_value(retrieval.COLLECTOR_KEY)
            if collector is not None or not makes_span:
                result = await wrapped(*args, **kwargs)
                _capture(result, scored, instance, collector)
                return result
            span, ctx, collector = _start_vector_search(instance, args, kwargs)
            if span is None:
                return await wrapped(*args, **kwargs)
            token = _attach(ctx)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                end_span(span, exc)
                raise
            finally:
                _detach(token)
            _finish_vector_search(span, result, scored, instance, collector)
            return result

        return async_wrapper

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not HANDLER.active:
            return wrapped(*args, **kwargs)
        collector = otel_context.get_value(retrieval.COLLECTOR_KEY)
        if collector is not None or not makes_span:
            result = wrapped(*args, **kwargs)
            _capture(result, scored, instance, collector)
            return result
        span, ctx, collector = _start_vector_search(instance, args, kwargs)
        if span is None:
            return wrapped(*args, **kwargs)
        token = _attach(ctx)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            end_span(span, exc)
            raise
        finally:
            _detach(token)
        _finish_vector_search(span, result, scored, instance, collector)
        return result

    return wrapper


# ---------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------

_EMBEDDING_MODEL_ATTRS = ("model", "model_name", "model_id", "deployment", "deployment_name")


def _embedding_model(embeddings: Any) -> Optional[str]:
    for attr in _EMBEDDING_MODEL_ATTRS:
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


#: (embeddings class, model) -> (span name, start attributes): the class's provider and
#: name are worked out once (an MRO walk), not per call. Bounded: cleared when full.
_EMBEDDING_SPANS: dict = {}
_EMBEDDING_SPANS_MAX = 256


def _embedding_span_info(cls: type, model: Optional[str]) -> tuple:
    info = _EMBEDDING_SPANS.get((cls, model))
    if info is None:
        attrs = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_EMBEDDINGS,
            sc.GEN_AI_PROVIDER_NAME: readers.provider_name(cls.__name__, None, [k.__name__ for k in cls.__mro__]),
            sc.SPAN_KIND: sc.KIND_EMBEDDING,
            sc.LIBRARY: "langchain",
            sc.COMPONENT: cls.__name__,
        }
        if model:
            attrs[sc.GEN_AI_REQUEST_MODEL] = model
        if len(_EMBEDDING_SPANS) >= _EMBEDDING_SPANS_MAX:
            _EMBEDDING_SPANS.clear()
        info = _EMBEDDING_SPANS[(cls, model)] = (f"{sc.OP_EMBEDDINGS} {model}" if model else sc.OP_EMBEDDINGS, attrs)
    return info


def _start_embedding(embeddings: Any) -> tuple:
    try:
        name, attrs = _embedding_span_info(type(embeddings), _embedding_model(embeddings))
        # attrs: shared, never mutated, no None value (the SDK copies it)
        span = HANDLER.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        ctx = otel_context.set_value(EMBEDDING_KEY, True, trace.set_span_in_context(span))
        return span, ctx
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.embeddings.start", exc)
        return None, None


def _finish_embedding(span: Any, result: Any, single: bool) -> None:
    try:
        vector = result if single else (result[0] if result else None)
        if isinstance(vector, (list, tuple)):
            span.set_attribute(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, len(vector))
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.embeddings.finish", exc)
    end_span(span)


def _embedding_wrapper(single: bool, is_async: bool) -> Callable:
    if is_async:
        async def async_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
            if not HANDLER.active or otel_context.get_value(EMBEDDING_KEY):
                return await wrapped(*args, **kwargs)
            span, ctx = _start_embedding(instance)
            if span is None:
                return await wrapped(*args, **kwargs)
            token = _attach(ctx)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                end_span(span, exc)
                raise
            finally:
                _detach(token)
            _finish_embedding(span, result, single)
            return result

        return async_wrapper

    def wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not HANDLER.active or otel_context.get_value(EMBEDDING_KEY):
            return wrapped(*args, **kwargs)
        span, ctx = _start_embedding(instance)
        if span is None:
            return wrapped(*args, **kwargs)
        token = _attach(ctx)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            end_span(span, exc)
            raise
        finally:
            _detach(token)
        _finish_embedding(span, result, single)
        return result

    return wrapper


# ---------------------------------------------------------------------------------------
# Patch bookkeeping
# ---------------------------------------------------------------------------------------


class ClassPatcher:
    """Wraps named methods on a base class and every subclass that defines them.

    Existing subclasses are wrapped at install; later ones from ``__init_subclass__``
    on the base (and lazily through :meth:`ensure`). Classes are held weakly, so
    classes created and dropped at run time are not kept alive by us.
    """

    #: records kept before dead classes' records are pruned (then twice the live ones)
    PRUNE_AT = 1024

    def __init__(self, wrappers: dict) -> None:
        self.wrappers = wrappers
        self.records: list = []  # (weakref to class, name, original)
        self._prune_at = self.PRUNE_AT
        self.ensured: "weakref.WeakSet" = weakref.WeakSet()
        self.base: Any = None
        self._saved_hook: Any = None
        self._lock = threading.RLock()

    def patch_class(self, cls: type) -> None:
        with self._lock:
            for name, wrapper in self.wrappers.items():
                original = cls.__dict__.get(name)
                if original is None or _is_ours(original):
                    continue
                if not inspect.isfunction(original) or getattr(original, "__isabstractmethod__", False):
                    continue
                setattr(cls, name, _method(original, wrapper))
                self.records.append((weakref.ref(cls), name, original))
            if len(self.records) > self._prune_at:
                self._prune()

    def _prune(self) -> None:
        """Drop the records of classes that no longer exist (an app that creates store
        classes at run time), so ``records`` is bounded by the live classes."""
        self.records[:] = [record for record in self.records if record[0]() is not None]
        self._prune_at = max(self.PRUNE_AT, 2 * len(self.records))

    def ensure(self, cls: type) -> None:
        """Wrap ``cls`` and its bases below the base class if not done yet."""
        if self.base is None or cls in self.ensured:
            return
        for klass in cls.__mro__:
            if klass is self.base or not issubclass(klass, self.base):
                continue
            self.patch_class(klass)
        self.ensured.add(cls)

    def install(self, base: type) -> None:
        self.base = base
        seen, stack = set(), [base]
        while stack:
            klass = stack.pop()
            if klass in seen:
                continue
            seen.add(klass)
            self.patch_class(klass)
            stack.extend(klass.__subclasses__())
        self._saved_hook = base.__dict__.get("__init_subclass__")
        patcher = self
        saved = self._saved_hook

        def __init_subclass__(cls: type, **kw: Any) -> None:  # noqa: N807
            if saved is not None:
                saved.__get__(None, cls)(**kw)
            else:
                super(base, cls).__init_subclass__(**kw)
            try:
                patcher.patch_class(cls)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("langchain.init_subclass", exc)

        __init_subclass__._instrumentors = True  # type: ignore[attr-defined]
        base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]

    def uninstall(self) -> None:
        with self._lock:
            for ref, name, original in reversed(self.records):
                cls = ref()
                if cls is not None and _is_ours(cls.__dict__.get(name)):
                    setattr(cls, name, original)
            self.records.clear()
            self._prune_at = self.PRUNE_AT
            self.ensured = weakref.WeakSet()
            base = self.base
            if base is not None:
                current = base.__dict__.get("__init_subclass__")
                if current is not None and getattr(getattr(current, "__func__", None), "_instrumentors", False):
                    if self._saved_hook is None:
                        delattr(base, "__init_subclass__")
                    else:
                        base.__init_subclass__ = self._saved_hook  # type: ignore[assignment]
            self.base = None
            self._saved_hook = None


VECTOR_STORES = ClassPatcher({
    name: _vector_store_wrapper(scored, span, name.startswith(("a", "_a")))
    for name, (scored, span) in _VECTOR_STORE_METHODS.items()
})

EMBEDDINGS = ClassPatcher({
    "embed_query": _embedding_wrapper(single=True, is_async=False),
    "embed_documents": _embedding_wrapper(single=False, is_async=False),
    "aembed_query": _embedding_wrapper(single=True, is_async=True),
    "aembed_documents": _embedding_wrapper(single=False, is_async=True),
})

_method_records: list = []  # (owner, name, original)
_module_records: list = []  # (module, original set_config_context)


def _wrap_method(owner: type, name: str, wrapper: Callable) -> None:
    original = owner.__dict__.get(name)
    if original is None or _is_ours(original) or not inspect.isfunction(original):
        return
    setattr(owner, name, _method(original, wrapper))
    _method_records.append((owner, name, original))


def _patch_set_config_context() -> None:
    from langchain_core.runnables import config as config_module

    original = config_module.__dict__.get("set_config_context")
    if original is None:
        return
    if _is_ours(original):
        original = original.__wrapped__
    wrapper = _wrap_set_config_context(original)
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("langchain", "langgraph")):
            continue
        try:
            if module.__dict__.get("set_config_context") is original:
                setattr(module, "set_config_context", wrapper)
                _module_records.append((module, original))
        except Exception:  # noqa: BLE001 - odd module objects: skip
            continue


# ---------------------------------------------------------------------------------------
# LangGraph: graph runs and node bodies (see ``_graph``)
# ---------------------------------------------------------------------------------------


def _pregel_loop_init(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """After LangGraph built a run's Pregel loop, the handler marks that run a graph run."""
    result = wrapped(*args, **kwargs)
    if HANDLER.active:
        try:
            HANDLER.start_graph(kwargs.get("manager"), kwargs.get("nodes"), kwargs.get("config"),
                                args[0] if args else kwargs.get("input"), instance)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("langgraph.loop_init", exc)
    return result


_langgraph_hook_registered = False


def _patch_langgraph() -> None:
    """LangGraph, if the app uses it: now if it is imported, else when it is.

    Patched: ``PregelLoop.__init__`` (names graph runs) and LangGraph's own
    ``set_config_context`` (a node's function runs with the node run's span current, so a
    raw client call or your own span inside a node nests under it)."""
    global _langgraph_hook_registered
    if "langgraph.pregel._loop" in sys.modules:
        _patch_langgraph_now()
        return
    if not _langgraph_hook_registered:
        _langgraph_hook_registered = True
        import wrapt

        wrapt.register_post_import_hook(_on_langgraph_import, "langgraph.pregel._loop")


def _on_langgraph_import(module: Any) -> None:
    if HANDLER.active:
        with fail_open("langgraph.instrument"):
            _patch_langgraph_now()


def _patch_langgraph_now() -> None:
    from langgraph.pregel._loop import PregelLoop

    with fail_open("langgraph.instrument.PregelLoop"):
        _wrap_method(PregelLoop, "__init__", _pregel_loop_init)
    with fail_open("langgraph.instrument.set_config_context"):
        from langgraph._internal import _runnable

        original = _runnable.__dict__.get("set_config_context")
        if original is not None and not _is_ours(original):
            setattr(_runnable, "set_config_context", _wrap_set_config_context(original))
            _module_records.append((_runnable, original))


def instrument(tracer: trace.Tracer, metrics: GenAIMetrics) -> None:
    """Each step fails open on its own: a LangChain version that moved one target loses
    that piece of tracing, never the app and never the other pieces."""
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.language_models.llms import BaseLLM
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import BaseTool
    from langchain_core.vectorstores import VectorStore

    HANDLER.activate(tracer, metrics)
    with fail_open("langchain.instrument.hook"):
        _install_hook()
    with fail_open("langchain.instrument.set_config_context"):
        _patch_set_config_context()
    for owner, name, wrapper in (
        (BaseChatModel, "_generate_with_cache", _generate_with_cache),
        (BaseChatModel, "_agenerate_with_cache", _agenerate_with_cache),
        (BaseChatModel, "stream", _stream),
        (BaseChatModel, "astream", _astream),
        (BaseLLM, "_generate_helper", _generate_helper),
        (BaseLLM, "_agenerate_helper", _agenerate_helper),
        (BaseLLM, "stream", _stream),
        (BaseLLM, "astream", _astream),
        (BaseRetriever, "invoke", _retriever_invoke),
        (BaseRetriever, "ainvoke", _retriever_ainvoke),
        (BaseTool, "run", _tool_run),
        (BaseTool, "arun", _tool_arun),
    ):
        with fail_open(f"langchain.instrument.{owner.__name__}.{name}"):
            _wrap_method(owner, name, wrapper)
    with fail_open("langchain.instrument.vector_stores"):
        VECTOR_STORES.install(VectorStore)
    with fail_open("langchain.instrument.embeddings"):
        EMBEDDINGS.install(Embeddings)
    with fail_open("langchain.instrument.langgraph"):
        _patch_langgraph()


def uninstrument() -> None:
    HANDLER.deactivate()
    with fail_open("langchain.uninstrument.hook"):
        _remove_hook()
    for owner, name, original in reversed(_method_records):
        if _is_ours(owner.__dict__.get(name)):
            setattr(owner, name, original)
    _method_records.clear()
    for module, original in reversed(_module_records):
        if _is_ours(module.__dict__.get("set_config_context")):
            setattr(module, "set_config_context", original)
    _module_records.clear()
    VECTOR_STORES.uninstall()
    EMBEDDINGS.uninstall()
