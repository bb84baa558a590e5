"""Fixtures for the OpenAI instrumentor tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# openai_scenarios.py is shared with make_cassettes.py; pytest runs with
# --import-mode=importlib, so make the folder importable explicitly.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from instrumentors.openai import OpenAIInstrumentor  # noqa: E402


@pytest.fixture
def instrument(tracer_provider, meter_provider, span_exporter):
    """The OpenAI instrumentor, on for one test (spans to ``span_exporter``)."""
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture(params=["sync", "async"])
def is_async(request) -> bool:
    return request.param == "async"
