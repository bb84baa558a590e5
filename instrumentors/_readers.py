"""Reading values out of library objects, shared by every instrumentor.

SDK objects and the raw JSON they were parsed from (dicts) carry the same fields; a
span attribute must be a number, string or list of them. These few readers exist once
so the OpenAI, LangChain and LlamaIndex code describes *what* to read, not how.
"""

from __future__ import annotations

from typing import Any, Optional


def field(obj: Any, key: str) -> Any:
    """A field of a parsed SDK object or of the same thing as a raw JSON dict."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def number(value: Any) -> Any:
    """A number usable as an attribute (bools and anything else are dropped)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def integer(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def str_list(value: Any) -> Optional[list]:
    """A string or list of strings as a list of strings (None when there are none)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        out = [v for v in value if isinstance(v, str)]
        return out or None
    return None


def tool_definitions(tools: Any) -> Optional[list]:
    """Tool definitions in the shape ``gen_ai.tool.definitions`` takes, in full.

    Accepts OpenAI Chat (``{"type": "function", "function": {...}}``), OpenAI Responses
    (``{"type": "function", "name": ...}``, built-in tools such as ``web_search``) and
    Anthropic (``{"name", "description", "input_schema"}``) formats, so every instrumentor
    writes the same shape whatever the provider. The result holds user-written text
    (descriptions, enum values, defaults): it reaches a span only through
    ``_content.tool_definitions``, which decides what of it may be written.
    """
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    out = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        ttype = tool.get("type", "function")
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if ttype == "function" or "input_schema" in tool:
            entry = {"type": "function", "name": fn.get("name")}
            if fn.get("description") is not None:
                entry["description"] = fn.get("description")
            params = fn.get("parameters", fn.get("input_schema"))
            if params is not None:
                entry["parameters"] = params
            out.append(entry)
        else:
            entry = {"type": ttype}
            if tool.get("name") is not None:
                entry["name"] = tool.get("name")
            if isinstance(tool.get("description"), str):
                entry["description"] = tool["description"]
            out.append(entry)
    return out or None


# JSON Schema keywords that hold structure (parameter names and types), never prose.
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_MAX_DEPTH = 32


def schema_shape(schema: Any, depth: int = 0) -> Optional[dict]:
    """The structure of a JSON Schema without its user-written text.

    Kept: ``type``, property names (``properties``, ``required``), ``items``, ``$ref``,
    ``$defs``, the combinators and boolean ``additionalProperties``. Dropped: every
    ``description``, ``title``, ``enum``, ``const``, ``default``, ``examples``,
    ``pattern`` and anything unknown, since those are where an author writes prose or
    example values. Nesting deeper than a few dozen levels is cut, not followed.
    """
    if not isinstance(schema, dict) or depth > _SCHEMA_MAX_DEPTH:
        return None
    out: dict = {}
    kind = schema.get("type")
    if isinstance(kind, str):
        out["type"] = kind
    elif isinstance(kind, (list, tuple)) and all(isinstance(k, str) for k in kind):
        out["type"] = list(kind)
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            out[key] = {name: schema_shape(sub, depth + 1) or {}
                        for name, sub in value.items() if isinstance(name, str)}
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, (list, tuple)):
            out[key] = [schema_shape(sub, depth + 1) or {} for sub in value]
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"] = schema_shape(items, depth + 1) or {}
    required = str_list(schema.get("required"))
    if required and not isinstance(schema.get("required"), str):
        out["required"] = required
    if isinstance(schema.get("$ref"), str):
        out["$ref"] = schema["$ref"]
    extra = schema.get("additionalProperties")
    if isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif isinstance(extra, dict):
        out["additionalProperties"] = schema_shape(extra, depth + 1) or {}
    return out


def tool_definitions_shape(definitions: list) -> list:
    """What of :func:`tool_definitions` is written with content capture off: each tool's
    ``type`` and ``name`` (the convention's required properties) and the shape of its
    parameters (names and types, :func:`schema_shape`), never a description."""
    out = []
    for definition in definitions:
        entry = {"type": definition.get("type")}
        if definition.get("name") is not None:
            entry["name"] = definition["name"]
        shape = schema_shape(definition.get("parameters"))
        if shape:
            entry["parameters"] = shape
        out.append(entry)
    return out
