"""OpenTelemetry instrumentation for LlamaIndex (llama-index-core 0.12.x to 0.14.x).

Usage::

    from instrumentors.llama_index import LlamaIndexInstrumentor
    LlamaIndexInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)

Two mechanisms, each where it fits (see the module docstrings for why):

* ``_handler``: a span handler and an event handler on llama-index-core's root
  instrumentation dispatcher trace query engines, retrievers, node postprocessors and
  rerankers, response synthesizers, chat engines, tools, agents and workflows, with the
  OTel parentage of LlamaIndex's own span tree (``_tree``).
* ``_patches``/``_models``: LLM and embedding methods are wrapped at the call site so
  their span is current while the provider client runs (and while a stream is read), as
  the double-span rule with the OpenAI instrumentor needs.
* ``_tools``: tool calls (``BaseTool.__call__``/``call``/``acall``) are wrapped the same
  way, so the ``execute_tool`` span is current while the tool body runs (a raw OpenAI
  call or a user's span inside a ``FunctionTool`` nests under it); ``_scopes`` does the
  same for the bodies LlamaIndex runs inside its own callback-manager scopes.
"""

from __future__ import annotations

from typing import Any, Collection, Optional

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import _config
from .package import _instruments

__all__ = ["LlamaIndexInstrumentor"]

_CONFIG_OPTIONS = {f for f in _config.Config.__dataclass_fields__}


class LlamaIndexInstrumentor(BaseInstrumentor):
    """Instruments llama-index-core. ``instrument(tracer_provider=..., meter_provider=...)``;
    any other keyword that names a setting (e.g. ``capture_content=True``) overrides it."""

    _session: Optional[Any] = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        options = {k: v for k, v in kwargs.items() if k in _CONFIG_OPTIONS}
        if options:
            _config.configure(**options)
        if not _config.get_config().library_enabled("llama_index"):
            return
        from ._session import Session  # imports llama_index lazily

        session = Session(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        session.install()
        type(self)._session = session

    def _uninstrument(self, **kwargs: Any) -> None:
        session = type(self)._session
        type(self)._session = None
        if session is not None:
            session.uninstall()

    @property
    def session(self) -> Optional[Any]:
        """The live instrumentation (handlers, patches, span tree); None when off."""
        return type(self)._session
