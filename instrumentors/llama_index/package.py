"""The library this instrumentor needs (opentelemetry-instrument checks it before loading us)."""

_instruments = ("llama-index-core >= 0.12",)
