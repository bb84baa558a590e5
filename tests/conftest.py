"""Fixtures every test module shares.

One SDK TracerProvider with an in-memory exporter is installed globally once (OTel
allows setting the global provider only once per process); ``span_exporter`` is cleared
before each test. Instrumentors are always given this provider explicitly.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from instrumentors import _config

# Tests must never reach a network or need a key.
os.environ.setdefault("OPENAI_API_KEY", "sk-test-not-a-real-key")
for _var in ("INSTRUMENTORS_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
             "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "INSTRUMENTORS_DISABLED", "INSTRUMENTORS_ENABLED"):
    os.environ.pop(_var, None)
# A fixed, known digest key: tests never write a key file into the working directory, and
# the digests they see are reproducible (tests/causal/test_causal_keyed.py covers the rest).
os.environ["INSTRUMENTORS_DIGEST_KEY"] = "instrumentors-test-suite-key"

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


@pytest.fixture(scope="session")
def tracer_provider() -> TracerProvider:
    return _PROVIDER


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def metric_reader():
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader):
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def set_config():
    """``set_config(capture_content=True, ...)`` for one test; restored afterwards."""
    saved = _config.get_config()

    def apply(**changes):
        _config.set_config(dataclasses.replace(_config.get_config(), **changes))
        return _config.get_config()

    yield apply
    _config.set_config(saved)


@pytest.fixture(autouse=True)
def _default_config():
    """Every test starts from the environment's defaults and no leaked context."""
    saved = _config.get_config()
    _config.set_config(_config.from_env())
    before = otel_context.get_current()
    yield
    _config.set_config(saved)
    assert otel_context.get_current() == before, "a context was left attached"


class _DetachErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Failed to detach context" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def _no_detach_errors():
    """Fail any test during which OTel logged "Failed to detach context"."""
    handler = _DetachErrors()
    logger = logging.getLogger("opentelemetry.context")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    assert not handler.records, "OpenTelemetry logged 'Failed to detach context'"


# ---------------------------------------------------------------------------------------
# VCR / pytest-recording: cassettes live in the top-level cassettes/<test module>/ folder
# and never keep credentials, org/project ids or cookies.
# ---------------------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"

SCRUBBED_REQUEST_HEADERS = [
    "authorization", "api-key", "openai-organization", "openai-project", "cookie", "x-api-key",
]
SCRUBBED_RESPONSE_HEADERS = {
    "set-cookie", "openai-organization", "openai-project", "cookie", "cf-ray", "x-request-id",
    "authorization", "api-key", "x-api-key",
    "openai-processing-ms", "strict-transport-security", "alt-svc",
}


@pytest.fixture
def everything(tracer_provider, meter_provider, set_config):
    """OpenAI, LangChain and LlamaIndex instrumentors on (causal links off: their digests
    are tested elsewhere and hold no text)."""
    from instrumentors.langchain import LangChainInstrumentor
    from instrumentors.llama_index import LlamaIndexInstrumentor
    from instrumentors.openai import OpenAIInstrumentor

    set_config(causal_links=False)
    instrumentors = [OpenAIInstrumentor(), LangChainInstrumentor(), LlamaIndexInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


def scrub_response(response: dict) -> dict:
    headers = response.get("headers") or {}
    for name in list(headers):
        if name.lower() in SCRUBBED_RESPONSE_HEADERS:
            del headers[name]
    return response


@pytest.fixture(scope="module")
def vcr_cassette_dir(request) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def vcr_config() -> dict:
    return {
        "filter_headers": SCRUBBED_REQUEST_HEADERS,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
    }
