"""State shared by the dispatcher handler and the call-site wrappers of one instrumentor."""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import _semconv as sc
from .._metrics import GenAIMetrics
from .._render import instrumented_tracer
from .._version import __version__
from ._prompts import PromptTemplates
from ._streams import PendingChats
from ._tree import SpanTree

LIBRARY = "llama_index"

# Set in the context our wrappers make current: the LlamaIndex object whose call it is,
# so a model calling itself (CustomLLM.chat -> self.complete) gets one span, not two.
OWNER_KEY = otel_context.create_key("instrumentors.llama_index.owner")

# Integration package -> gen_ai.provider.name (OTel well-known values where they exist).
_PROVIDERS = {
    "openai": "openai",
    "openai_like": "openai",
    "azure_openai": "azure.ai.openai",
    "azure_inference": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "vertex": "gcp.vertex_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "ollama": "ollama",
    "huggingface": "huggingface",
}


_MAX_CACHED = 1024
_provider_cache: dict = {}
_server_cache: dict = {}


def fields(obj: Any) -> dict:
    """An object's own attribute values without ``getattr`` (pydantic keeps field values
    in ``__dict__``; a missed ``getattr`` on a pydantic model costs an exception)."""
    try:
        return obj.__dict__
    except AttributeError:
        return {}


def provider_name(obj: Any) -> str:
    """``gen_ai.provider.name`` from the integration package the class comes from
    (``llama_index.llms.<pkg>`` / ``llama_index.embeddings.<pkg>``); ``llama_index`` for
    core and user-defined models (MockLLM, CustomLLM subclasses)."""
    cls = type(obj)
    name = _provider_cache.get(cls)
    if name is None:
        parts = (cls.__module__ or "").split(".")
        if len(parts) >= 3 and parts[0] == "llama_index" and parts[1] in ("llms", "embeddings", "postprocessor"):
            name = _PROVIDERS.get(parts[2], parts[2])
        else:
            name = LIBRARY
        if len(_provider_cache) >= _MAX_CACHED:
            _provider_cache.clear()
        _provider_cache[cls] = name
    return name


def _parse_server(url: str) -> dict:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {}
    attrs: dict = {sc.SERVER_ADDRESS: parts.hostname}
    if port is not None:
        attrs[sc.SERVER_PORT] = port
    elif parts.scheme == "https":
        attrs[sc.SERVER_PORT] = 443
    return attrs


def server_attributes(obj: Any) -> dict:
    """``server.address``/``server.port`` from the model's configured endpoint, if any."""
    values = fields(obj)
    for attr in ("api_base", "base_url", "azure_endpoint", "endpoint"):
        url = values.get(attr)
        if isinstance(url, str) and "://" in url:
            attrs = _server_cache.get(url)
            if attrs is None:
                attrs = _parse_server(url)
                if len(_server_cache) >= _MAX_CACHED:
                    _server_cache.clear()
                _server_cache[url] = attrs
            return dict(attrs)
    return {}


class Telemetry:
    """Tracer, metrics and the span-id tree of one instrumentation session."""

    def __init__(self, tracer_provider: Optional[trace.TracerProvider], meter_provider: Any) -> None:
        self.tracer = instrumented_tracer(
            trace.get_tracer("instrumentors.llama_index", __version__, tracer_provider=tracer_provider))
        self.metrics = GenAIMetrics(meter_provider)
        self.tree = SpanTree()
        self.pending_chats = PendingChats()
        self.templates = PromptTemplates()  # prompt templates announced by predict-like calls

    def close(self) -> None:
        """End whatever is still open (uninstrument): no span may be left unended."""
        self.tree.clear()
        self.pending_chats.clear()
        self.templates.clear()
