"""The library this instrumentor needs (what ``instrumentation_dependencies`` reports)."""

_instruments = ("openai >= 1.0",)
