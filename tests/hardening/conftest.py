"""Shared fixtures of the hardening suite: each library's existing offline fakes made
importable (OpenAI wire-format scenarios, LangChain and LlamaIndex fake models), and a
tracer provider per test that counts open spans."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("hardening", "openai", "langchain", "llama_index"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))


class OpenSpans(SpanProcessor):
    """Counts spans started and ended (an open span is a leak)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0
        self.open: dict = {}

    def on_start(self, span, parent_context=None) -> None:
        with self._lock:
            self.started += 1
            self.open[span.context.span_id] = span.name  # on_end gets a ReadableSpan copy: key by id

    def on_end(self, span) -> None:
        with self._lock:
            self.ended += 1
            self.open.pop(span.context.span_id, None)

    def still_open(self) -> list:
        with self._lock:
            return sorted(self.open.values())


class Traced:
    """A provider of its own: finished spans in ``exporter``, open ones in ``counter``."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.counter = OpenSpans()
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.counter)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list:
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def traced():
    t = Traced()
    yield t
    t.provider.shutdown()


@pytest.fixture
def instrument_all_with():
    """``instrument_all_with(traced, **config)``: every instrumentor on ``traced``'s provider
    for one test (uninstrumented afterwards, whatever happens)."""
    import instrumentors

    used = []

    def apply(t: Traced, **config):
        instrumentors.uninstrument_all()
        libs = instrumentors.instrument_all(tracer_provider=t.provider, **config)
        used.append(libs)
        return libs

    yield apply
    instrumentors.uninstrument_all()
    from instrumentors import _config

    _config.configure()  # back to the environment's settings
