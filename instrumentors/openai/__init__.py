"""OpenTelemetry instrumentation for the openai Python SDK (1.x, 2.x and 3.x).

Usage::

    from instrumentors.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)

Every chat/legacy-completion/embeddings/responses call, sync or async, streamed or not,
through ``create``, ``parse``, ``stream``, ``.with_raw_response`` or
``.with_streaming_response``, gets one CLIENT span following the GenAI semantic
conventions. See patch.py for why the SDK's ``request`` method is the patch point.
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

__all__ = ["OpenAIInstrumentor"]

_CONFIG_OPTIONS = {f for f in _config.Config.__dataclass_fields__}


class OpenAIInstrumentor(BaseInstrumentor):
    """Instruments the openai SDK. ``instrument(tracer_provider=..., meter_provider=...)``;
    any other keyword that names a setting (e.g. ``capture_content=True``) overrides it."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        options = {k: v for k, v in kwargs.items() if k in _CONFIG_OPTIONS}
        if options:
            _config.configure(**options)
        if not _config.get_config().library_enabled("openai"):
            return
        from . import patch  # imports openai lazily: this module imports without it

        tracer = instrumented_tracer(trace.get_tracer(
            "instrumentors.openai", __version__, tracer_provider=kwargs.get("tracer_provider")
        ))
        patch.install(patch.Telemetry(tracer, GenAIMetrics(kwargs.get("meter_provider"))))

    def _uninstrument(self, **kwargs: Any) -> None:
        import sys

        patch = sys.modules.get(__name__ + ".patch")
        if patch is not None:
            patch.uninstall()
