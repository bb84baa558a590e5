"""Zero-config for ``instrument_all()`` and ``opentelemetry-instrument python app.py``.

With only this package installed, opentelemetry-instrument finds our distro and
configurator through entry points. The distro sets defaults that the user did not set
(traces to the embedded store, metrics and logs off) and the configurator is the SDK's
own env-driven one, so every standard ``OTEL_*`` variable (``OTEL_TRACES_EXPORTER=otlp``,
endpoints, resource, sampler) keeps working.

If ``opentelemetry-distro`` is installed too, opentelemetry-instrument uses whichever
distro it finds first; ``OTEL_PYTHON_DISTRO=instrumentors`` (or ``=distro``) picks one.
``OTEL_TRACES_EXPORTER=instrumentors,otlp`` sends spans to both the store and a collector.

Two rules keep an app from ever running silently untraced:

* ``otlp`` means what the user wrote. The Python SDK resolves a bare ``otlp`` to gRPC
  unless ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` says otherwise (the OTel spec's default
  is ``http/protobuf``); our ``otlp`` extra installs the HTTP exporter only. So when the
  protocol is unset and only the HTTP exporter is installed, the protocol defaults to
  ``http/protobuf`` (one INFO line says so).
* An exporter that cannot be built (not installed, unknown name, bad protocol, its
  constructor raising) is replaced by the embedded store, and one warning says what
  failed and where the spans go instead.

The provider ``instrument_all()`` installs when the app has none follows the app: if the
app later calls ``trace.set_tracer_provider(its own)``, that call succeeds and every
tracer handed out before (ours and the app's) sends its spans to the app's provider.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata
from typing import Any, Callable, List, Optional, Tuple

from opentelemetry import trace as _trace_api
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import TracerProvider

_log = logging.getLogger("instrumentors")

DEFAULT_TRACES_EXPORTER = "instrumentors"
HTTP_PROTOBUF = "http/protobuf"

# signal -> (exporter names variable, protocol variable, entry-point group)
_SIGNALS = {
    "traces": ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "opentelemetry_traces_exporter"),
    "metrics": ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "opentelemetry_metrics_exporter"),
    "logs": ("OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "opentelemetry_logs_exporter"),
}
_PROTOCOL_VAR = "OTEL_EXPORTER_OTLP_PROTOCOL"
_GRPC, _HTTP = "otlp_proto_grpc", "otlp_proto_http"


class InstrumentorsDistro(BaseDistro):
    """Sets our defaults; never overrides a value the user set."""

    def _configure(self, **kwargs: Any) -> None:
        from ._export import otlp_endpoint, otlp_protocol

        exporters = DEFAULT_TRACES_EXPORTER
        if otlp_endpoint():  # the user pointed us at a backend: the store and that backend
            exporters += ",otlp_proto_grpc" if otlp_protocol() == "grpc" else ",otlp_proto_http"
        os.environ.setdefault("OTEL_TRACES_EXPORTER", exporters)
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")


class InstrumentorsConfigurator(_OTelSDKConfigurator):
    """The SDK configurator, named so opentelemetry-instrument loads it without
    opentelemetry-distro, with the two rules of this module applied."""

    def _configure(self, **kwargs: Any) -> None:
        configure_from_env(lambda: super(InstrumentorsConfigurator, self)._configure(**kwargs))


# ---------------------------------------------------------------------------------------
# OTEL_*_EXPORTER as the user wrote it
# ---------------------------------------------------------------------------------------


def _names(variable: str) -> List[str]:
    raw = os.environ.get(variable, "")
    if raw.strip().lower() == "none":
        return []
    return [name.strip() for name in raw.split(",") if name.strip()]


def _entry_point(group: str, name: str):
    found = metadata.entry_points(group=group, name=name)
    return next(iter(found), None)


def default_otlp_protocol() -> None:
    """``otlp`` with no protocol set and only the HTTP exporter installed: say
    ``http/protobuf`` for that signal (the SDK would look for the gRPC one and fail)."""
    for signal, (names_var, protocol_var, group) in _SIGNALS.items():
        if "otlp" not in _names(names_var):
            continue
        if os.environ.get(protocol_var, "").strip() or os.environ.get(_PROTOCOL_VAR, "").strip():
            continue  # the user chose; a wrong choice is reported by check_trace_exporters
        if _entry_point(group, _GRPC) is not None or _entry_point(group, _HTTP) is None:
            continue
        os.environ[protocol_var] = HTTP_PROTOBUF
        _log.info("instrumentors: %s=otlp with no OTLP protocol set and only the HTTP exporter installed: "
                  "using %s=%s (install opentelemetry-exporter-otlp-proto-grpc and set it to grpc for gRPC)",
                  names_var, protocol_var, HTTP_PROTOBUF)


def check_trace_exporters() -> Tuple[List[str], List[str]]:
    """(names that will load, one line per name that will not) for OTEL_TRACES_EXPORTER,
    resolved exactly as the SDK's configurator resolves them."""
    from opentelemetry.sdk._configuration import _get_exporter_entry_point
    from opentelemetry.sdk.trace.export import SpanExporter

    good: List[str] = []
    bad: List[str] = []
    group = _SIGNALS["traces"][2]
    for name in _names("OTEL_TRACES_EXPORTER"):
        try:
            resolved = _get_exporter_entry_point(name, "traces")
            entry = _entry_point(group, resolved)
            if entry is None:
                hint = ""
                if resolved in (_GRPC, _HTTP):
                    package = "grpc" if resolved == _GRPC else "http"
                    hint = (f" (install opentelemetry-exporter-otlp-proto-{package}"
                            + (f", or set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL={HTTP_PROTOBUF}" if package == "grpc"
                               else "") + ")")
                raise LookupError(f"no traces exporter {resolved!r} is installed{hint}")
            loaded = entry.load()
            if not (isinstance(loaded, type) and issubclass(loaded, SpanExporter)):
                raise TypeError(f"{entry.value} is not a SpanExporter")
            good.append(name)
        except Exception as exc:  # noqa: BLE001 - every way of failing is reported the same
            bad.append(f"{name!r}: {exc}")
    return good, bad


def configure_from_env(configure: Optional[Callable[[], None]] = None, store_path: Optional[str] = None):
    """Run the SDK's env-driven configuration so that it never leaves the app untraced.

    Exporters that cannot be loaded are replaced by the embedded store before the SDK
    sees the list; if the configuration still fails, the store is added to whatever
    provider it installed (or installed alone). One warning names what failed."""
    if configure is None:
        configure = _OTelSDKConfigurator().configure
    default_otlp_protocol()
    original = os.environ.get("OTEL_TRACES_EXPORTER")
    good, bad = check_trace_exporters()
    replaced = bool(bad)
    if replaced:
        os.environ["OTEL_TRACES_EXPORTER"] = ",".join(good + ([] if DEFAULT_TRACES_EXPORTER in good
                                                              else [DEFAULT_TRACES_EXPORTER]))
    failure: Optional[BaseException] = None
    try:
        configure()
    except Exception as exc:  # noqa: BLE001 - never leave the app untraced over configuration
        failure = exc
    finally:
        if replaced:
            if original is None:
                os.environ.pop("OTEL_TRACES_EXPORTER", None)
            else:
                os.environ["OTEL_TRACES_EXPORTER"] = original
    provider = _trace_api.get_tracer_provider()
    if failure is None and not bad:
        return provider
    path = os.path.abspath(store_path or _store_path())
    if failure is not None:
        if isinstance(provider, TracerProvider):
            if DEFAULT_TRACES_EXPORTER not in good:
                _add_store(provider, store_path)
        else:
            provider = install_default_tracer_provider(store_path, from_env=False)
        bad.append(f"the OpenTelemetry SDK configuration failed: {type(failure).__name__}: {failure}")
    _log.warning("instrumentors: cannot build the traces exporter(s) of OTEL_TRACES_EXPORTER=%r: %s; "
                 "spans %sgo to the embedded store %s instead of being lost", original, "; ".join(bad),
                 "also " if good else "", path)
    return provider


def _store_path() -> str:
    from ._config import get_config

    return get_config().store_path


# ---------------------------------------------------------------------------------------
# the default provider: the embedded store, until the app installs its own
# ---------------------------------------------------------------------------------------


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


def _add_store(provider: TracerProvider, store_path: Optional[str]) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(default_span_exporter(store_path)))


class _FollowingTracer(_trace_api.Tracer):
    """A tracer of :class:`StoreTracerProvider`: its own SDK tracer while that provider
    is the global one, the app's provider's tracer once the app installed its own."""

    __slots__ = ("_owner", "_own", "_args", "_followed")

    def __init__(self, owner: "StoreTracerProvider", own: _trace_api.Tracer, args: tuple) -> None:
        self._owner = owner
        self._own = own
        self._args = args
        self._followed: Optional[tuple] = None  # (provider, its tracer)

    def _target(self) -> _trace_api.Tracer:
        current = getattr(_trace_api, "_TRACER_PROVIDER", None)
        if current is None or current is self._owner:
            return self._own
        followed = self._followed
        if followed is not None and followed[0] is current:
            return followed[1]
        tracer = current.get_tracer(*self._args)
        self._followed = (current, tracer)
        self._owner._noticed(current)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> _trace_api.Span:
        return self._target().start_span(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # resource, sampler, instrumentation_scope...
        return getattr(self._target(), name)

    def start_as_current_span(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        return self._target().start_as_current_span(*args, **kwargs)


class StoreTracerProvider(TracerProvider):
    """The SDK provider ``instrument_all()`` installs when the app has none.

    It is made the global provider without taking OpenTelemetry's set-once slot, so an
    app that calls ``trace.set_tracer_provider(its own)`` afterwards is not refused; from
    then on every tracer this provider handed out delegates to the app's provider."""

    store_path: Optional[str] = None
    _told = False

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: Optional[str] = None,
                   schema_url: Optional[str] = None, attributes: Any = None) -> _trace_api.Tracer:
        args = (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        return _FollowingTracer(self, super().get_tracer(*args), args)

    def _noticed(self, provider: Any) -> None:
        if not self._told:
            self._told = True
            _log.info("instrumentors: the app installed its own tracer provider (%s) after instrument_all(); "
                      "spans now go to it (those started before went to the embedded store %s)",
                      type(provider).__name__, self.store_path)


def _install_provisionally(provider: _trace_api.TracerProvider) -> bool:
    """Make ``provider`` the global one, leaving OpenTelemetry's set-once slot free for
    the app. False (and a normal, final install) when the API has changed shape."""
    once = getattr(_trace_api, "_TRACER_PROVIDER_SET_ONCE", None)
    if once is None or not hasattr(_trace_api, "_TRACER_PROVIDER") or getattr(once, "_done", True):
        _trace_api.set_tracer_provider(provider)
        return False
    with once._lock:
        if once._done or _trace_api._TRACER_PROVIDER is not None:
            return False
        _trace_api._TRACER_PROVIDER = provider
    return True


def install_default_tracer_provider(store_path: Optional[str] = None, from_env: bool = True):
    """Install an SDK TracerProvider exporting to the embedded store, unless the app
    already installed one (or OTEL_TRACES_EXPORTER names exporters: then the SDK's own
    configuration builds them). Returns the provider in force."""
    from opentelemetry.sdk.resources import Resource

    current = _trace_api.get_tracer_provider()
    if isinstance(current, TracerProvider) or getattr(_trace_api, "_TRACER_PROVIDER", None) is not None:
        return current  # the app's (an SDK one, or its own API implementation)
    if from_env and os.environ.get("OTEL_TRACES_EXPORTER", "").strip():
        # The user named exporters: let the SDK's own configuration build them (metrics
        # and logs stay off unless the user asked for them too).
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
        if DEFAULT_TRACES_EXPORTER in _names("OTEL_TRACES_EXPORTER"):
            _warn_if_store_loses_names()
        return configure_from_env(store_path=store_path)
    provider = StoreTracerProvider(resource=Resource.create())
    exporter = default_span_exporter(store_path)
    provider.store_path = getattr(exporter, "path", None) or getattr(exporter, "url", None)
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(exporter))
    _add_otlp_if_asked(provider)
    _warn_if_store_loses_names()
    _install_provisionally(provider)
    return _trace_api.get_tracer_provider()


def _add_otlp_if_asked(provider: Any) -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` set (and no ``OTEL_TRACES_EXPORTER``): spans also go
    there, through the processor that never blocks the app and reports what it dropped."""
    from ._export import ReportingSpanProcessor, otlp_endpoint, otlp_exporter

    endpoint = otlp_endpoint()
    if not endpoint:
        return
    try:
        provider.add_span_processor(ReportingSpanProcessor(otlp_exporter()))
    except Exception as exc:  # noqa: BLE001 - e.g. the exporter package is not installed
        _log.warning("instrumentors: spans cannot be sent to %s (%s); pip install 'instrumentors[phoenix]' "
                     "(or [otlp]). They go to the embedded store only.", endpoint, exc)


def _warn_if_store_loses_names() -> None:
    """The embedded store gets these spans: with INSTRUMENTORS_SEMCONV=openinference they
    carry no gen_ai.* names, which explain/blame/prompts read. Say so once, never silently."""
    from . import _config

    if _config.get_config().semconv == "openinference":
        _log.warning("instrumentors: INSTRUMENTORS_SEMCONV=openinference removes the gen_ai.* names that the "
                     "embedded store's explain, blame and prompts read; spans also go to the store here, so use "
                     "INSTRUMENTORS_SEMCONV=both to keep both conventions")
