"""The two GenAI client metrics, created once per meter provider and shared by every
instrumentor: ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``."""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry import metrics

from . import _semconv as sc
from ._version import __version__

# Bucket boundaries recommended by the GenAI metrics convention.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]

# Only low-cardinality attributes go on metrics.
_METRIC_KEYS = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_RESPONSE_MODEL,
    sc.SERVER_ADDRESS,
    sc.SERVER_PORT,
    sc.ERROR_TYPE,
)


class GenAIMetrics:
    """Records one operation's duration and token usage. A no-op without a meter provider."""

    def __init__(self, meter_provider: Optional[metrics.MeterProvider] = None) -> None:
        self.enabled = meter_provider is not None
        if not self.enabled:
            return
        meter = metrics.get_meter("instrumentors", __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )

    def record(
        self,
        duration_s: float,
        attributes: dict,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> None:
        if not self.enabled:
            return
        attrs: dict[str, Any] = {k: attributes[k] for k in _METRIC_KEYS if attributes.get(k) is not None}
        self._duration.record(duration_s, attrs)
        if input_tokens is not None:
            self._tokens.record(input_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "input"})
        if output_tokens is not None:
            self._tokens.record(output_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "output"})
