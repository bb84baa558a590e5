"""Captured text: the single gate every prompt, completion, document and tool argument
passes through before it may touch a span.

Why one gate: "content capture off" must mean *no* text anywhere. If every instrumentor
routes text through :func:`text` / :func:`json_value`, the guarantee is one ``if`` here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Optional

from . import _config, _digest_key, _readers

_TRUNCATION_MARK = "…[truncated]"


# content hashes of recently seen texts: system prompts and templates repeat on every
# call, and a keyed hash costs several microseconds. Bounded by count and text length;
# process memory only; tied to the key it was computed with.
HASH_CACHE_TEXTS = 256
HASH_CACHE_MAX_CHARS = 4096
_hash_cache: tuple = (None, {})


def content_hash(value: str) -> str:
    """16 hex digits identifying a text (a prompt template, a system prompt) without
    revealing it: written whether or not content capture is on, so versions of a prompt
    can be grouped with capture off. The one place every such hash is made.

    Keyed (HMAC-SHA256 with a key derived from the digest key, see ``_digest_key``) so
    that a short system prompt cannot be recovered by hashing candidates; plain
    ``sha256[:16]`` only with ``digest_key="off"``. Equal texts hash equally in every
    process that shares the key."""
    global _hash_cache
    secret = _digest_key.content_key()
    owner, cache = _hash_cache
    if owner is not secret:
        cache = {}
        _hash_cache = (secret, cache)
    hit = cache.get(value)
    if hit is not None:
        return hit
    data = value.encode("utf-8", "replace")
    if secret is None:
        digest = hashlib.sha256(data).hexdigest()[:16]
    else:
        digest = hmac.digest(secret, data, "sha256").hex()[:16]
    if len(value) <= HASH_CACHE_MAX_CHARS:
        if len(cache) >= HASH_CACHE_TEXTS:
            try:  # the oldest entry (dicts keep insertion order)
                del cache[next(iter(cache))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                pass
        cache[value] = digest
    return digest


def capture_enabled() -> bool:
    return _config.get_config().capture_content


def _bounded(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    keep = max(0, limit - len(_TRUNCATION_MARK))
    return value[:keep] + _TRUNCATION_MARK


def text(value: Any) -> Optional[str]:
    """A captured text (redacted, then cut to the limit), or None when capture is off."""
    cfg = _config.get_config()
    if not cfg.capture_content or value is None:
        return None
    value = value if isinstance(value, str) else str(value)
    if cfg.redact is not None:
        try:
            value = cfg.redact(value)
        except Exception:  # noqa: BLE001 - a broken redactor must not leak the text
            return "[redaction failed]"
        if not isinstance(value, str):
            value = str(value)
    return _bounded(value, cfg.max_attribute_length)


def redact_tree(obj: Any) -> Any:
    """Apply the redaction hook to every string inside a JSON-like structure."""
    cfg = _config.get_config()
    if cfg.redact is None:
        return obj
    if isinstance(obj, str):
        try:
            out = cfg.redact(obj)
            return out if isinstance(out, str) else str(out)
        except Exception:  # noqa: BLE001
            return "[redaction failed]"
    if isinstance(obj, dict):
        return {k: redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_tree(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Compact JSON that never fails (unknown objects become their str())."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def json_value(obj: Any) -> Optional[str]:
    """A captured JSON structure (messages, documents...), redacted and bounded, or None
    when capture is off. Redaction runs on every string *before* serialisation so a
    redactor sees texts, not JSON escapes."""
    cfg = _config.get_config()
    if not cfg.capture_content or obj is None:
        return None
    return _bounded(dumps(redact_tree(obj)), cfg.max_attribute_length)


def bounded_json(obj: Any) -> str:
    """JSON for *non-content* structures (ids, scores, tool names): always written,
    only bounded in size."""
    return _bounded(dumps(obj), _config.get_config().max_attribute_length)


def tool_definitions(tools: Any) -> Optional[str]:
    """``gen_ai.tool.definitions`` for the tools a request offers (any provider format
    ``_readers.tool_definitions`` reads), or None when there are none.

    The convention makes the attribute Opt-In and recommends only the required
    properties by default. Tool and parameter descriptions, enum values and defaults are
    user-written text, so with capture off only the structure is written (type, name,
    parameter names and types: ``_readers.tool_definitions_shape``), enough to see which
    tools a model was offered and with which arguments; with capture on the full
    definitions go through the redaction hook and the length limit like every captured
    text."""
    definitions = _readers.tool_definitions(tools)
    if definitions is None:
        return None
    if capture_enabled():
        return json_value(definitions)
    return bounded_json(_readers.tool_definitions_shape(definitions))
