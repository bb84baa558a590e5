"""Fixtures for the LangGraph tests (graphs traced by the LangChain instrumentor)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

_HERE = str(Path(__file__).resolve().parent)
for _path in (_HERE, str(Path(_HERE).parent)):  # tests/: openai_wire.py (the in-process OpenAI)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from instrumentors.langchain import LangChainInstrumentor  # noqa: E402
from instrumentors.langchain._handler import HANDLER  # noqa: E402
from instrumentors.openai import OpenAIInstrumentor  # noqa: E402


@pytest.fixture
def lc(tracer_provider, meter_provider, span_exporter, set_config):
    """LangChain (and so LangGraph) plus the OpenAI instrumentor, causal links on. At the
    end no run may be left open."""
    set_config(causal_links=True)
    lc = LangChainInstrumentor()
    lc.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    oa = OpenAIInstrumentor()
    oa.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield lc
    open_runs = HANDLER.open_runs
    oa.uninstrument()
    lc.uninstrument()
    assert open_runs == 0, f"{open_runs} LangChain/LangGraph run(s) left open"


@pytest.fixture
def spans(span_exporter):
    """``spans()`` -> a SpanTree of everything finished so far."""
    from lg_helpers import SpanTree

    return lambda: SpanTree(span_exporter.get_finished_spans())
