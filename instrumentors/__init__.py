"""instrumentors: causal tracing for AI pipelines.

One line instruments every supported library that is importable::

    import instrumentors
    instrumentors.instrument_all()

Spans follow the OpenTelemetry GenAI conventions, carry causal links between the steps
whose outputs fed each other, and go to the embedded trace store unless you configured
another exporter.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Optional

from opentelemetry import trace

from . import _config
from ._export import otlp_span_processor
from ._feedback import FeedbackNotStored, record_feedback
from ._phoenix import send_feedback_to_phoenix
from ._version import __version__
from .causal.steps import step

_log = logging.getLogger("instrumentors")

# library name -> (module holding the instrumentor, class name, module that must import)
_INSTRUMENTORS = {
    "openai": ("instrumentors.openai", "OpenAIInstrumentor", "openai"),
    "langchain": ("instrumentors.langchain", "LangChainInstrumentor", "langchain_core"),
    "llama_index": ("instrumentors.llama_index", "LlamaIndexInstrumentor", "llama_index.core"),
}

_active: dict = {}
_lock = threading.Lock()


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - missing or broken library: not instrumentable
        return False


def instrument_all(
    tracer_provider: Optional[trace.TracerProvider] = None,
    meter_provider: Any = None,
    **options: Any,
) -> list:
    """Instrument every enabled, importable library; returns the names instrumented.

    ``options`` override the environment (see README's table), e.g.
    ``capture_content=True``, ``causal_links=False``, ``enabled_libraries={"openai"}``.
    With no ``tracer_provider`` and no SDK provider installed, spans go to the embedded
    store (``INSTRUMENTORS_STORE_PATH``), or to the exporters ``OTEL_TRACES_EXPORTER`` names.
    """
    cfg = _config.configure(**options)
    if tracer_provider is None:
        from ._distro import install_default_tracer_provider

        tracer_provider = install_default_tracer_provider(cfg.store_path)
    done = []
    with _lock:
        for name, (module, cls_name, library) in _INSTRUMENTORS.items():
            if not cfg.library_enabled(name) or not _importable(library):
                continue
            try:
                instrumentor = _active.get(name) or getattr(importlib.import_module(module), cls_name)()
                instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
                _active[name] = instrumentor
                done.append(name)
            except Exception as exc:  # noqa: BLE001 - one library failing never stops the others
                _log.warning("instrumentors: could not instrument %s: %s", name, exc, exc_info=True)
    return done


def uninstrument_all() -> None:
    """Undo :func:`instrument_all`: every patched attribute gets its original back."""
    with _lock:
        for name, instrumentor in list(_active.items()):
            try:
                instrumentor.uninstrument()
            except Exception as exc:  # noqa: BLE001
                _log.warning("instrumentors: could not uninstrument %s: %s", name, exc, exc_info=True)
            _active.pop(name, None)


def current_trace_id() -> Optional[str]:
    """The current trace id as 32 hex digits (what a web client sends back with feedback),
    or None outside a recording span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_span_id() -> Optional[str]:
    """The current span id as 16 hex digits, or None outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.span_id, "016x") if ctx.is_valid else None


__all__ = [
    "FeedbackNotStored",
    "__version__",
    "current_span_id",
    "current_trace_id",
    "instrument_all",
    "otlp_span_processor",
    "record_feedback",
    "send_feedback_to_phoenix",
    "step",
    "uninstrument_all",
]
