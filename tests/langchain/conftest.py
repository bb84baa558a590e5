"""Fixtures for the LangChain instrumentor tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# langchain_helpers.py / langchain_scenarios.py are shared with make_cassettes.py;
# pytest runs with --import-mode=importlib, so make the folder importable explicitly.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from instrumentors.langchain import LangChainInstrumentor  # noqa: E402


@pytest.fixture
def lc(tracer_provider, meter_provider, span_exporter, set_config):
    """The LangChain instrumentor, on for one test. Causal links are off so attribute
    assertions are exact; the causal tests switch them back on."""
    set_config(causal_links=False)
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def capture(set_config):
    """Content capture on for one test."""
    set_config(capture_content=True)
