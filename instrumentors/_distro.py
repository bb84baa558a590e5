"""Zero-config for ``opentelemetry-instrument python app.py``.

With only this package installed, opentelemetry-instrument finds our distro and
configurator through entry points. The distro sets defaults that the user did not set
(traces to the embedded store, metrics and logs off) and the configurator is the SDK's
own env-driven one, so every standard ``OTEL_*`` variable (``OTEL_TRACES_EXPORTER=otlp``,
endpoints, resource, sampler) keeps working.

If ``opentelemetry-distro`` is installed too, opentelemetry-instrument uses whichever
distro it finds first; ``OTEL_PYTHON_DISTRO=instrumentors`` (or ``=distro``) picks one.
``OTEL_TRACES_EXPORTER=instrumentors,otlp`` sends spans to both the store and a collector.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

DEFAULT_TRACES_EXPORTER = "instrumentors"


class InstrumentorsDistro(BaseDistro):
    """Sets our defaults; never overrides a value the user set."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_TRACES_EXPORTER", DEFAULT_TRACES_EXPORTER)
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")


class InstrumentorsConfigurator(_OTelSDKConfigurator):
    """The SDK configurator, named so opentelemetry-instrument loads it without opentelemetry-distro."""


def default_span_exporter(store_path: Optional[str] = None):
    """The exporter used when the user configured none: the store ``INSTRUMENTORS_STORE_URL``
    names (a ClickHouse table in the Collector's layout), else the embedded SQLite file."""
    from ._config import get_config
    from .store.exporter import SQLiteSpanExporter

    url = get_config().store_url
    if url:
        from .store.clickhouse_exporter import span_exporter_for

        return span_exporter_for(url)
    return SQLiteSpanExporter(store_path) if store_path else SQLiteSpanExporter()


def install_default_tracer_provider(store_path: Optional[str] = None):
    """Install an SDK TracerProvider exporting to the embedded store, unless the app
    already installed one. Returns the provider in force."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip():
        # The user named exporters: let the SDK's own configuration build them (metrics
        # and logs stay off unless the user asked for them too).
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
        _OTelSDKConfigurator().configure()
        return trace.get_tracer_provider()
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(default_span_exporter(store_path)))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()
