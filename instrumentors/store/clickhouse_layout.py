"""The OpenTelemetry Collector ClickHouse exporter's ``otel_traces`` layout, as we read
and write it.

One row per span: ``Timestamp`` (the span's start, ``DateTime64(9)``), ``TraceId`` /
``SpanId`` / ``ParentSpanId`` (hex, ``''`` for none), ``SpanName``, ``SpanKind``,
``ServiceName``, ``ResourceAttributes`` / ``SpanAttributes`` (``Map(String, String)``),
``ScopeName`` / ``ScopeVersion`` (newer exporter versions; older ones put
``otel.scope.name`` into the span attributes), ``Duration`` (ns), ``StatusCode`` /
``StatusMessage``, and the nested ``Events.*`` (Timestamp, Name, Attributes) and
``Links.*`` (TraceId, SpanId, TraceState, Attributes) columns.

The Collector writes every attribute value as text (pdata's ``AsString``): booleans as
``true``/``false``, numbers in decimal, arrays as JSON. Reading it back we restore the
types the same way for every engine (:func:`typed`): a canonical decimal is a number,
``true``/``false`` a boolean, a JSON array of scalars an array, anything else a string.
So a string attribute that *looks* like a number (``"123"``) reads as a number here; the
query operators already treat a number and its decimal string as equal.

Kind and status were spelled ``SPAN_KIND_CLIENT`` / ``STATUS_CODE_ERROR`` by older
exporter versions and ``Client`` / ``Error`` by newer ones; both read as the SQLite
store's ``CLIENT`` / ``ERROR``.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Optional

#: columns a table must have to be read as traces (with their ClickHouse type prefixes)
REQUIRED_COLUMNS = {
    "Timestamp": "DateTime64", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
    "SpanName": "", "SpanKind": "", "SpanAttributes": "Map", "Duration": "", "StatusCode": "",
    "StatusMessage": "String", "Events.Timestamp": "Array", "Events.Name": "Array",
    "Events.Attributes": "Array", "Links.TraceId": "Array", "Links.SpanId": "Array", "Links.Attributes": "Array",
}
OPTIONAL_COLUMNS = ("ScopeName", "ScopeVersion", "ServiceName", "ResourceAttributes", "TraceState",
                    "Links.TraceState")

#: the table our exporter creates when it is missing: the Collector exporter's layout
#: (column names and types; partitioned by day, sorted for per-service time scans)
COLUMNS = (
    ("Timestamp", "DateTime64(9) CODEC(Delta, ZSTD(1))"),
    ("TraceId", "String CODEC(ZSTD(1))"),
    ("SpanId", "String CODEC(ZSTD(1))"),
    ("ParentSpanId", "String CODEC(ZSTD(1))"),
    ("TraceState", "String CODEC(ZSTD(1))"),
    ("SpanName", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("SpanKind", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("ServiceName", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("ResourceAttributes", "Map(LowCardinality(String), String) CODEC(ZSTD(1))"),
    ("ScopeName", "String CODEC(ZSTD(1))"),
    ("ScopeVersion", "String CODEC(ZSTD(1))"),
    ("SpanAttributes", "Map(LowCardinality(String), String) CODEC(ZSTD(1))"),
    ("Duration", "UInt64 CODEC(ZSTD(1))"),
    ("StatusCode", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("StatusMessage", "String CODEC(ZSTD(1))"),
    ("Events", "Nested (Timestamp DateTime64(9), Name LowCardinality(String),"
               " Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1))"),
    ("Links", "Nested (TraceId String, SpanId String, TraceState String,"
              " Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1))"),
)
INDEXES = (
    "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
    "INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1",
    "INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1",
    "INDEX idx_duration Duration TYPE minmax GRANULARITY 1",
)


def create_table_sql(database: str, table: str) -> str:
    body = ",\n    ".join([f"{name} {kind}" for name, kind in COLUMNS] + list(INDEXES))
    return (f"CREATE TABLE IF NOT EXISTS {database}.{table} (\n    {body}\n) ENGINE = MergeTree()\n"
            "PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, toDateTime(Timestamp))\n"
            "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")


def layout_problem(columns: dict) -> Optional[str]:
    """Why a table's columns (name -> type) are not the traces layout, or None."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        return "missing columns " + ", ".join(missing)
    wrong = [f"{name} is {columns[name]}" for name, prefix in REQUIRED_COLUMNS.items()
             if prefix and not columns[name].replace("LowCardinality(", "").startswith(prefix)]
    if wrong:
        return "unexpected column types: " + ", ".join(wrong)
    return None


# -- attribute values ------------------------------------------------------------------------

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?\Z|-?[0-9]+[eE][-+]?[0-9]+\Z")
#: the same test in ClickHouse SQL (see :func:`typed`): is this text a number?
SQL_NUMBER_PATTERN = r"^-?(0|[1-9][0-9]*)$|^-?[0-9]+\\.[0-9]+([eE][-+]?[0-9]+)?$|^-?[0-9]+[eE][-+]?[0-9]+$"


def _scalar(text: str) -> Any:
    if text == "true":
        return True
    if text == "false":
        return False
    if _INTEGER.match(text):
        return int(text)
    if _FLOAT.match(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


#: text -> typed value of recently met attribute texts (models, kinds, finish reasons and
#: scores repeat across spans; reading 1M spans decodes each distinct text once). Bounded.
_TYPED: dict = {}
_TYPED_MAX = 1 << 16


def typed(text: str) -> Any:
    """An attribute value as the Collector wrote it (text) back as a typed value."""
    value = _TYPED.get(text, _TYPED)
    if value is _TYPED:
        value = _typed(text)
        if len(text) <= 256:
            if len(_TYPED) >= _TYPED_MAX:
                _TYPED.clear()
            _TYPED[text] = value
    return list(value) if type(value) is list else value


def _typed(text: str) -> Any:
    if not text:
        return text
    first = text[0]
    if first == "[" and text[-1] == "]":
        try:
            items = json.loads(text)
        except ValueError:
            return text
        # "[]" stays text: an empty retrieval's documents JSON is far more common than an
        # empty array attribute, and the two cannot be told apart in the layout
        if isinstance(items, list) and items and all(isinstance(i, (str, int, float, bool)) for i in items):
            return items
        return text
    if first in "-0123456789tf":
        return _scalar(text)
    return text


def typed_map(values: dict) -> dict:
    return {k: typed(v) for k, v in values.items()} if values else {}


def _number_text(value: float) -> str:
    """A float as pdata's AsString writes it: shortest round-trip digits, no exponent."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def attribute_text(value: Any) -> str:
    """An attribute value as the Collector writes it into the string maps."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([v if not isinstance(v, float) or math.isfinite(v) else None for v in value],
                          ensure_ascii=False, separators=(",", ":"))
    return str(value)


def text_map(attributes: Any) -> dict:
    """Attributes as the Collector's string map (a None value has no OTLP form: left out)."""
    return {str(k): attribute_text(v) for k, v in dict(attributes or {}).items() if v is not None}


# -- kind and status -----------------------------------------------------------------------

def kind_name(text: str) -> str:
    """``Client`` / ``SPAN_KIND_CLIENT`` -> ``CLIENT`` (the SQLite store's spelling)."""
    name = (text or "").upper()
    if name.startswith("SPAN_KIND_"):
        name = name[len("SPAN_KIND_"):]
    return "INTERNAL" if name in ("", "UNSPECIFIED") else name


def status_name(text: str) -> str:
    """``Error`` / ``STATUS_CODE_ERROR`` -> ``ERROR``."""
    name = (text or "").upper()
    if name.startswith("STATUS_CODE_"):
        name = name[len("STATUS_CODE_"):]
    return name or "UNSET"


#: the same normalisation in SQL (for the ``kind`` / ``status`` filters)
SQL_KIND = "lower(replaceOne(toString(SpanKind), 'SPAN_KIND_', ''))"
SQL_STATUS = "lower(replaceOne(toString(StatusCode), 'STATUS_CODE_', ''))"
