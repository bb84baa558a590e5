"""Placeholder until the SQLite exporter lands: writes JSON lines."""

from .._jsonl import JSONLinesSpanExporter as SQLiteSpanExporter  # noqa: F401
