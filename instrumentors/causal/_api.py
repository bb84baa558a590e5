"""Interface of the causal registry used by every instrumentor (implementation pending)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry.trace import Link, Span


@dataclass(frozen=True)
class Produced:
    """One output of a step, as the registry needs to know it (text is hashed, never kept)."""

    text: str
    kind: str = "document"  # document | generation | tool_call | tool_result | step
    document_id: Optional[str] = None
    rank: Optional[int] = None
    score: Optional[float] = None


@dataclass
class Consumption:
    """What :func:`consume` found: links to set at span start and summary attributes."""

    links: list = field(default_factory=list)  # list[opentelemetry.trace.Link]
    attributes: dict = field(default_factory=dict)


def consume(inputs: Sequence[str], parent: Optional[otel_context.Context] = None) -> Optional[Consumption]:
    """Look the input texts up; ``parent`` is the context the consumer span will start in."""
    return None


def produce(span: Span, outputs: Sequence[Produced]) -> None:
    """Register fingerprints of a step's outputs together with ``span``'s context."""
    return None
