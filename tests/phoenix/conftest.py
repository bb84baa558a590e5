"""Fixtures for the OpenInference / Phoenix tests: the seed pipeline instrumented into a
fresh provider, uninstrumented afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

pytest.importorskip("openai")
pytest.importorskip("langchain_core")
pytest.importorskip("numpy")
pytest.importorskip("openinference.semconv.trace")


@pytest.fixture
def seed_provider():
    """``seed_provider(*processors)``: a TracerProvider with the given span processors (and
    the root recorder), everything instrumented into it by the test; all undone at the end."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    import instrumentors
    from seed_pipeline import RootRecorder

    providers = []

    def make(*processors, resource=None):
        provider = TracerProvider(resource=Resource.create(resource or {"service.name": "acme-helpcenter"}))
        provider.add_span_processor(RootRecorder())
        for processor in processors:
            provider.add_span_processor(processor)
        providers.append(provider)
        return provider

    yield make
    instrumentors.uninstrument_all()
    for provider in providers:
        provider.shutdown()
