"""OpenTelemetry instrumentation for LangChain (langchain-core 0.3.x and 1.x).

Usage::

    from instrumentors.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)

Spans: one per LangChain run (chains and LCEL runnables, prompt templates, output
parsers, chat models and LLMs, retrievers, tools), parented like LangChain's run tree,
plus vector-store searches and embeddings called directly. Chat/LLM spans follow the
GenAI conventions like the OpenAI spans; the OpenAI client span under ``ChatOpenAI``
nests under the chat span (see README, "Double spans").
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _config
from .._metrics import GenAIMetrics
from .._render import instrumented_tracer
from .._version import __version__
from .package import _instruments

__all__ = ["LangChainInstrumentor"]

_CONFIG_OPTIONS = set(_config.Config.__dataclass_fields__)


class LangChainInstrumentor(BaseInstrumentor):
    """Instruments langchain-core; ``uninstrument()`` restores every original."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        options = {k: v for k, v in kwargs.items() if k in _CONFIG_OPTIONS}
        if options:
            _config.configure(**options)
        if not _config.get_config().library_enabled("langchain"):
            return
        from . import _patches  # imports langchain_core: only when instrumenting

        tracer = instrumented_tracer(
            trace.get_tracer(__name__, __version__, tracer_provider=kwargs.get("tracer_provider")))
        _patches.instrument(tracer, GenAIMetrics(kwargs.get("meter_provider")))

    def _uninstrument(self, **kwargs: Any) -> None:
        import sys

        patches = sys.modules.get(__name__ + "._patches")
        if patches is not None:
            patches.uninstrument()
