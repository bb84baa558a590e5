"""Filters over the trace store: parsing and validation (each reader compiles them for its engine).

A filter maps an attribute name to conditions::

    {"feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}}

Operators: ``eq ne lt lte gt gte in contains exists``. A bare value means ``eq``.
Several operators on one key (``{"gte": 0.2, "lt": 0.6}``) must hold on the same value.

Semantics (TraceQL's): at trace level a filter holds for a trace when *some* span in it
satisfies it, and the filters are ANDed across possibly different spans -- exactly
``{ .retrieval.top_score < 0.6 } && { .feedback.score < 0.5 }``. At span level every
filter must hold on the same span. ``{"exists": False}`` means *no* span of the trace
has the attribute (trace level) or this span lacks it (span level).

Values are typed: numbers compare with numeric attributes (a number also equals its
string form, so ``user.id=123`` finds ``"123"``), strings with string attributes,
booleans with booleans. Array attributes match when any element matches.
``contains`` is a case-sensitive substring test on strings.

Intrinsic span fields: ``name``, ``status`` (unset/ok/error), ``kind``
(internal/client/server/producer/consumer) and ``duration_ms``.
The seed article's alias ``user_feedback.*`` is accepted for ``feedback.*``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists")
INTRINSICS = {"name": "name", "status": "status", "kind": "kind", "duration_ms": None}
ALIASES = {"user_feedback.": "feedback."}
ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_SQL_OPS = ORDERING
MAX_IN_VALUES = 1000


class FilterError(ValueError):
    """A filter that cannot be evaluated; the message names the key and what is wrong."""


@dataclass(frozen=True)
class Condition:
    """One validated filter: a key and its operator -> value conditions (same value)."""

    key: str
    ops: tuple  # ((op, value), ...)

    @property
    def intrinsic(self) -> bool:
        return self.key in INTRINSICS

    @property
    def exists_false(self) -> bool:
        return ("exists", False) in self.ops


def canonical_key(key: str) -> str:
    for alias, real in ALIASES.items():
        if key.startswith(alias):
            return real + key[len(alias):]
    return key


def _check_value(key: str, op: str, value: Any) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(f"filter {key!r}: 'exists' takes true or false, not {value!r}")
        return value
    if op == "in":
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise FilterError(f"filter {key!r}: 'in' takes a list of values, not {value!r}")
        values = tuple(value)
        if not values:
            raise FilterError(f"filter {key!r}: 'in' needs at least one value")
        if len(values) > MAX_IN_VALUES:
            raise FilterError(f"filter {key!r}: 'in' takes at most {MAX_IN_VALUES} values")
        return tuple(_check_value(key, "eq", v) for v in values)
    if op == "contains":
        if not isinstance(value, str):
            raise FilterError(f"filter {key!r}: 'contains' takes a string, not {value!r}")
        return value
    if isinstance(value, bool):
        if op not in ("eq", "ne"):
            raise FilterError(f"filter {key!r}: {op!r} cannot compare with a boolean")
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(f"filter {key!r}: {op!r} needs a finite number, not {value!r}")
        return value
    if isinstance(value, str):
        return value
    raise FilterError(f"filter {key!r}: {op!r} takes a number, string or boolean, not {type(value).__name__}")


def parse_filters(filters: Optional[Mapping[str, Any]]) -> list:
    """Validate a filter mapping into :class:`Condition` objects (raises FilterError)."""
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        raise FilterError(f"filters must be a mapping of attribute name to conditions, not {type(filters).__name__}")
    out = []
    merged: dict = {}
    for raw_key, spec in filters.items():
        if not isinstance(raw_key, str) or not raw_key.strip():
            raise FilterError(f"filter key must be a non-empty string, not {raw_key!r}")
        key = canonical_key(raw_key.strip())
        if spec is None:
            raise FilterError(f"filter {raw_key!r}: no condition (use {{'exists': False}} for 'absent')")
        if not isinstance(spec, Mapping):
            spec = {"eq": spec}
        if not spec:
            raise FilterError(f"filter {raw_key!r}: empty condition")
        ops = merged.setdefault(key, [])
        for op, value in spec.items():
            if op not in OPERATORS:
                raise FilterError(
                    f"filter {raw_key!r}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
            ops.append((op, _check_value(raw_key, op, value)))
    for key, ops in merged.items():
        if ("exists", False) in ops and len(ops) > 1:
            raise FilterError(f"filter {key!r}: 'exists': false cannot be combined with other conditions")
        if key in INTRINSICS:
            for op, value in ops:
                if op == "exists":
                    raise FilterError(f"filter {key!r}: 'exists' does not apply to the intrinsic field {key!r}")
                if key == "duration_ms" and op in ("contains",):
                    raise FilterError("filter 'duration_ms': 'contains' does not apply to a number")
                if key != "duration_ms" and op in _SQL_OPS:
                    raise FilterError(f"filter {key!r}: {op!r} does not apply to the intrinsic field {key!r}")
        out.append(Condition(key, tuple(ops)))
    return out


# ---------------------------------------------------------------------------------------
# The CLI's textual form: 'retrieval.top_score<0.6', 'name=retrieval', 'x in a,b', 'x exists'
# ---------------------------------------------------------------------------------------

_EXPR = re.compile(
    r"^\s*(?P<key>[A-Za-z_][\w.\-:/]*)\s*"
    r"(?:(?P<op><=|>=|!=|==|=|<|>|~)\s*(?P<value>.*?)"
    r"|\s+(?P<word>in|contains)\s+(?P<wvalue>.*?)"
    r"|\s+(?P<ex>exists|!exists|not\s+exists|missing))\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SYMBOLS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "eq", "==": "eq", "!=": "ne", "~": "contains"}
WHERE_HELP = ("KEY OP VALUE with OP one of = != < <= > >= ~ (contains), or 'KEY in A,B,C', "
              "'KEY exists', 'KEY !exists'; e.g. 'retrieval.top_score<0.6'")


def parse_scalar(text: str) -> Any:
    """A command-line value: quoted -> string; true/false -> bool; number -> number."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):  # nan, inf, 1e999999: the API refuses them too
        raise FilterError(f"{text!r} is not a finite number (quote it to compare it as a string)")
    return number


def parse_where(expression: str) -> tuple:
    """``'retrieval.top_score<0.6'`` -> ``('retrieval.top_score', 'lt', 0.6)``."""
    match = _EXPR.match(expression or "")
    if not match:
        raise FilterError(f"cannot parse filter {expression!r}: expected {WHERE_HELP}")
    key = match.group("key")
    if match.group("op"):
        raw = match.group("value")
        if not raw.strip():
            raise FilterError(f"filter {expression!r}: missing value after {match.group('op')!r}")
        op = _SYMBOLS[match.group("op")]
        if raw.strip()[0] in "<>=!~":
            raise FilterError(f"cannot parse filter {expression!r}: unexpected {raw.strip()[0]!r} after "
                              f"{match.group('op')!r} (quote the value if it really starts with it)")
        value = raw.strip() if op == "contains" else parse_scalar(raw)
        if op == "contains" and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if op in _SQL_OPS and isinstance(value, bool):
            raise FilterError(f"filter {expression!r}: cannot order booleans")
        return key, op, value
    if match.group("word"):
        word = match.group("word").lower()
        raw = match.group("wvalue")
        if word == "contains":
            text = raw.strip()
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1]
            return key, "contains", text
        values = [parse_scalar(part) for part in raw.split(",") if part.strip()]
        if not values:
            raise FilterError(f"filter {expression!r}: 'in' needs values, e.g. 'KEY in a,b'")
        return key, "in", values
    ex = match.group("ex").lower()
    return key, "exists", ex == "exists"


def filters_from_where(expressions: Sequence[str]) -> dict:
    """Several ``--where`` expressions as one filter mapping (same key -> same value)."""
    filters: dict = {}
    for expression in expressions:
        key, op, value = parse_where(expression)
        spec = filters.setdefault(key, {})
        if op in spec:
            raise FilterError(f"filter {expression!r}: {key!r} already has a {op!r} condition")
        spec[op] = value
    parse_filters(filters)  # validate now so the CLI reports it as a usage error
    return filters


_AND = re.compile(r"""("[^"]*"|'[^']*')|(?:^|\s+)and(?:\s+|$)""", re.IGNORECASE)


def split_and(text: str) -> list:
    """``'a<1 and b="x and y"'`` -> ``['a<1', 'b="x and y"']``: one line of expressions
    joined by ``and`` (outside quotes), as the web UI's filter box takes them. An ``and``
    without a filter on both sides is an error, not a value."""
    text = text or ""
    parts, start = [], 0
    for match in _AND.finditer(text):
        if match.group(1):  # a quoted value: skip over it
            continue
        parts.append(text[start:match.start()])
        start = match.end()
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    if len(parts) > 1 and not all(parts):
        raise FilterError(f"cannot parse filter {text.strip()!r}: 'and' needs a filter on both sides")
    return [p for p in parts if p]


def filters_from_text(text: str) -> dict:
    """A filter line (``'retrieval.top_score < 0.6 and feedback.score < 0.5'``) as a filter
    mapping: each part is a ``--where`` expression (:func:`parse_where`)."""
    return filters_from_where(split_and(text))
