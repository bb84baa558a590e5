"""Which attribute convention our spans are written in (``INSTRUMENTORS_SEMCONV``):
``gen_ai`` (default), ``openinference`` (Phoenix), or ``both``.

Why at span end, through the tracer: the three instrumentors, user steps and feedback
write one canonical set of attributes from many places (start attributes, results,
stream ends). Rendering a second convention at each of those places would be a second
code path per library. Instead the tracer an instrumentor is given at ``instrument()``
decides once:

* ``gen_ai``: the plain OpenTelemetry tracer. Nothing here runs per span: zero cost.
* ``openinference`` / ``both``: a :class:`RenderingTracer` whose spans (the SDK's own span
  objects, re-classed to a subclass overriding only ``end``) render their final canonical
  attributes through :func:`instrumentors._openinference.render` just before they end.
  ``openinference`` then removes the ``gen_ai.*`` keys; ``both`` keeps them. Our own
  ``instrumentors.*``, ``retrieval.*`` and ``feedback.*`` keys stay in every mode (the
  store, explain and blame read them).

Span identity is unchanged (the same object is in the context, ``isinstance`` checks hold),
so parent/child, LLM frames and causal links behave exactly as in ``gen_ai`` mode. Spans
of a non-SDK tracer provider cannot be re-classed: they keep the canonical names and one
warning says so.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import Span as _SDKSpan

from . import _config
from . import _semconv as sc
from ._spans import report_internal_error

_log = logging.getLogger("instrumentors")

GEN_AI_PREFIX = "gen_ai."
_warned: set = set()


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message, *args)


def mode() -> str:
    """The convention in force (``gen_ai`` when OpenInference names are asked for but the
    ``openinference-semantic-conventions`` package is missing: one warning says so)."""
    wanted = _config.get_config().semconv
    if wanted != "gen_ai":
        try:
            from . import _openinference
        except Exception as exc:  # noqa: BLE001 - never take instrument() down: keep the canonical names
            report_internal_error("semconv.import", exc)
            return "gen_ai"
        if not _openinference.available():
            _warn_once("missing", "instrumentors: INSTRUMENTORS_SEMCONV=%s needs the "
                       "openinference-semantic-conventions package (pip install 'instrumentors[phoenix]'); "
                       "spans keep the gen_ai names", wanted)
            return "gen_ai"
    return wanted


def instrumented_tracer(tracer: trace.Tracer, semconv: Optional[str] = None) -> trace.Tracer:
    """The tracer an instrumentor should use: ``tracer`` itself in ``gen_ai`` mode, else a
    :class:`RenderingTracer` around it. Called once, at ``instrument()`` time."""
    semconv = semconv or mode()
    if semconv == "gen_ai":
        return tracer
    return RenderingTracer(tracer, drop_gen_ai=semconv == "openinference")


def get_tracer(name: str, version: str, tracer_provider: Optional[trace.TracerProvider] = None) -> trace.Tracer:
    """``trace.get_tracer`` for spans made outside an instrumentor (user steps, feedback)."""
    return instrumented_tracer(trace.get_tracer(name, version, tracer_provider=tracer_provider))


# ---------------------------------------------------------------------------------------
# The span subclass
# ---------------------------------------------------------------------------------------


def _render_into(span: Any, drop_gen_ai: bool) -> None:
    """Add the OpenInference attributes (and, if asked, remove gen_ai.*) on a live SDK span."""
    from . import _openinference

    attributes = span._attributes  # the SDK's BoundedAttributes: still mutable before end()
    if attributes is None:
        return
    canonical = dict(attributes)
    dropped = [key for key in canonical if key.startswith(GEN_AI_PREFIX)] if drop_gen_ai else ()
    maxlen = getattr(attributes, "maxlen", None)
    # the room left once gen_ai.* is gone, one kept for TRUNCATED
    room = None if maxlen is None else max(0, maxlen - (len(canonical) - len(dropped)) - 1)
    rendered = _openinference.render(canonical, room)  # before removing anything: a failure keeps gen_ai
    links = span.links
    if links:
        rendered.put(sc.CAUSAL_LINKED_SPAN_IDS, tuple(format(link.context.span_id, "016x") for link in links))
        rendered.put(sc.CAUSAL_LINK_TYPES, tuple(
            str((link.attributes or {}).get(sc.GEN_AI_ATTRIBUTION_LINK_TYPE) or "") for link in links))
    for key in dropped:
        del attributes[key]
    if rendered.truncated:
        previous = canonical.get(sc.TRUNCATED)
        rendered[sc.TRUNCATED] = tuple(previous or ()) + tuple(rendered.truncated)
    span.set_attributes(rendered)


def _end(self: Any, end_time: Optional[int] = None) -> None:
    if self._end_time is None:  # a second end() stays the SDK's no-op (with its warning)
        try:
            _render_into(self, self._instrumentors_drop_gen_ai)
        except Exception as exc:  # noqa: BLE001 - the span still ends, with canonical names
            report_internal_error("semconv.render", exc)
    super(self._instrumentors_base, self).end(end_time)  # type: ignore[misc]


_classes: dict = {}  # (span class, drop_gen_ai) -> rendering subclass; as many as span classes


def _rendering_class(cls: type, drop_gen_ai: bool) -> Optional[type]:
    key = (cls, drop_gen_ai)
    sub = _classes.get(key)
    if sub is None:
        if getattr(cls, "_instrumentors_base", None) is not None or not issubclass(cls, _SDKSpan):
            return None
        sub = type(("OpenInference" if drop_gen_ai else "Both") + cls.__name__, (cls,), {
            "__slots__": (),  # same layout as cls, so an instance's __class__ can be swapped
            "__module__": __name__,
            "_instrumentors_base": None,  # set below (the subclass itself, for super())
            "_instrumentors_drop_gen_ai": drop_gen_ai,
            "end": _end,
        })
        sub._instrumentors_base = sub
        _classes[key] = sub
    return sub


_SESSION_KEYS = (sc.SESSION_ID, sc.USER_ID)


def _session_and_user(span: Any, ctx: Any) -> None:
    """``session.id`` / ``user.id`` the app set for the request: OpenTelemetry baggage, or the
    context values OpenInference's ``using_session`` / ``using_user`` set (same names)."""
    ctx = ctx if ctx is not None else otel_context.get_current()
    for key in _SESSION_KEYS:
        value = baggage.get_baggage(key, ctx)
        if value is None:
            value = otel_context.get_value(key, ctx)
        if isinstance(value, str) and value:
            span.set_attribute(key, value)


class RenderingTracer(trace.Tracer):
    """A tracer whose SDK spans render the OpenInference convention as they end."""

    def __init__(self, tracer: trace.Tracer, drop_gen_ai: bool) -> None:
        self._tracer = tracer
        self._drop = drop_gen_ai

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        span = self._tracer.start_span(name, *args, **kwargs)
        try:
            cls = type(span)
            if cls is not trace.NonRecordingSpan:  # sampled out: nothing will be exported
                sub = _rendering_class(cls, self._drop)
                if sub is not None:
                    span.__class__ = sub
                    _session_and_user(span, args[0] if args else kwargs.get("context"))
                elif getattr(cls, "_instrumentors_base", None) is None:
                    _warn_once(("foreign", cls), "instrumentors: spans of %s are not OpenTelemetry SDK spans; "
                               "they keep the gen_ai attribute names (INSTRUMENTORS_SEMCONV needs the SDK)",
                               cls.__name__)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("semconv.start", exc)
        return span

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, end_on_exit: bool = True,
                              **kwargs: Any) -> Iterator[trace.Span]:
        record = kwargs.get("record_exception", True)
        set_status = kwargs.get("set_status_on_exception", True)
        span = self.start_span(name, *args, **kwargs)
        with trace.use_span(span, end_on_exit=end_on_exit, record_exception=record,
                            set_status_on_exception=set_status) as current:
            yield current

    def __getattr__(self, name: str) -> Any:  # anything else a tracer offers
        return getattr(self._tracer, name)
