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
    """Tool definitions in the shape ``gen_ai.tool.definitions`` takes.

    Accepts OpenAI Chat (``{"type": "function", "function": {...}}``), OpenAI Responses
    (``{"type": "function", "name": ...}``, built-in tools such as ``web_search``) and
    Anthropic (``{"name", "description", "input_schema"}``) formats, so every instrumentor
    writes the same shape whatever the provider.
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
            out.append(entry)
    return out or None
