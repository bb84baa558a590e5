"""The causal-registry calls of the LangChain spans, guarded and skipped outright when
causal links are off (so no input text is even collected on the hot path)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from opentelemetry import context as otel_context

from .. import _config, causal
from .._spans import report_internal_error


def enabled() -> bool:
    return _config.get_config().causal_links


def consume(texts: list, parent: Optional[otel_context.Context], attrs: dict) -> Optional[list]:
    """Links for a span about to start; adds the summary attributes to ``attrs``."""
    if not texts:
        return None
    try:
        consumption = causal.consume(texts, parent)
    except Exception as exc:  # noqa: BLE001 - the registry never breaks the traced call
        report_internal_error("langchain.causal.consume", exc)
        return None
    if consumption is None:
        return None
    attrs.update(consumption.attributes)
    return consumption.links


def produce(span: Any, build: Callable[[], list]) -> None:
    """Register a span's outputs; ``build`` makes the ``Produced`` list only when needed."""
    if not enabled():
        return
    try:
        produced = build()
        if produced:
            causal.produce(span, produced)
    except Exception as exc:  # noqa: BLE001
        report_internal_error("langchain.causal.produce", exc)


Produced = causal.Produced
