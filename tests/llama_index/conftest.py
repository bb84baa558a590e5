"""Fixtures for the LlamaIndex instrumentor tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# li_helpers.py / li_scenarios.py are shared with make_cassettes.py, the example and the
# benchmark; pytest runs with --import-mode=importlib, so make the folder importable.
_HERE = str(Path(__file__).resolve().parent)
for _path in (_HERE, str(Path(_HERE).parent)):  # tests/: openai_wire.py (the in-process OpenAI)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from instrumentors.llama_index import LlamaIndexInstrumentor  # noqa: E402
from instrumentors.openai import OpenAIInstrumentor  # noqa: E402


@pytest.fixture
def li(tracer_provider, meter_provider, span_exporter, set_config):
    """The LlamaIndex instrumentor, on for one test. Causal links are off so attribute
    assertions are exact; the causal tests switch them back on."""
    set_config(causal_links=False)
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def capture(set_config):
    """Content capture on for one test."""
    set_config(capture_content=True)


@pytest.fixture
def spans(span_exporter):
    """``spans()`` -> a SpanTree of everything finished so far."""
    from li_helpers import SpanTree

    return lambda: SpanTree(span_exporter.get_finished_spans())


@pytest.fixture
def openai_on(tracer_provider):
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    instrumentor.uninstrument()
