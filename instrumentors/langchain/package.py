"""The library this instrumentor needs (opentelemetry-instrument checks it before loading us)."""

_instruments = ("langchain-core >= 0.3",)
