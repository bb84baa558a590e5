"""Every setting of the suite, parsed once, in one place.

Why one module: three instrumentors, the causal registry and the store must agree on
what "content capture off" or "the store path" means. Each setting has an env var
(documented in README) and an ``instrument_all(...)`` keyword that overrides it. An
invalid value never crashes the host app: it logs one clear warning and the default
is used.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Optional

_log = logging.getLogger("instrumentors")

LIBRARIES = ("openai", "langchain", "llama_index")

# Entry-point names (pyproject) that OTEL_PYTHON_DISABLED_INSTRUMENTATIONS may list.
_ENTRY_POINT_NAMES = {
    "openai": ("openai", "instrumentors_openai"),
    "langchain": ("langchain", "instrumentors_langchain"),
    "llama_index": ("llama_index", "llama-index", "instrumentors_llama_index"),
}

_TRUE = {"1", "true", "yes", "on", "y", "t"}

#: attribute conventions spans can be written in (INSTRUMENTORS_SEMCONV); see _render.py
SEMCONVS = ("gen_ai", "openinference", "both")
_FALSE = {"0", "false", "no", "off", "n", "f", ""}

# Values the OpenTelemetry GenAI utilities accept for
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT. We write content on spans only,
# so every "capture" mode means on.
_OTEL_CONTENT_MODES = {
    "span_only": True,
    "span_and_event": True,
    "event_only": True,
    "no_content": False,
}


@dataclass(frozen=True)
class Config:
    """The resolved settings. Instances are immutable; ``configure`` swaps the singleton."""

    #: libraries instrument_all() will instrument, if importable.
    enabled_libraries: frozenset = frozenset(LIBRARIES)
    #: prompts, completions, documents and tool arguments on spans.
    capture_content: bool = False
    #: longest string attribute we write (characters); longer ones are cut and marked.
    max_attribute_length: int = 8192
    #: most documents listed on one retrieval span (summary attributes count them all).
    max_documents: int = 50
    #: applied to every captured text before it is written; returns the text to keep.
    redact: Optional[Callable[[str], str]] = None
    #: keep the OpenAI client span under a LangChain/LlamaIndex LLM span (True) or drop it.
    nested_client_spans: bool = True
    #: causal-link registry on/off; off means no registry work on the hot path.
    causal_links: bool = True
    #: "trace" (links only inside one trace) or "process" (across traces).
    causal_scope: str = "trace"
    #: registered fingerprint sources kept at most (oldest evicted first).
    causal_max_entries: int = 10_000
    #: seconds a registered output stays linkable.
    causal_max_age_seconds: float = 900.0
    #: fraction of a document's shingles that must appear in an input to link it.
    causal_min_coverage: float = 0.5
    #: shingle length in normalised words.
    causal_shingle_words: int = 5
    #: embedded store file.
    store_path: str = field(default_factory=lambda: os.path.join(".instrumentors", "traces.db"))
    #: where traces are read (and exported by default) when not the embedded file: a path,
    #: ``sqlite:///…``, ``clickhouse://user:pass@host:8123/db`` or ``chdb:///dir``.
    store_url: Optional[str] = field(default=None, repr=False)  # may hold a password
    #: secret keying the causal fingerprints and content hashes on spans (see _digest_key):
    #: None = a per-installation key file next to the store; "off" = unkeyed (guessable).
    digest_key: Optional[str] = field(default=None, repr=False)  # a secret: never in a repr
    #: attribute convention of our spans: "gen_ai" (OTel GenAI), "openinference" (Phoenix), "both".
    semconv: str = "gen_ai"

    def library_enabled(self, name: str) -> bool:
        return name in self.enabled_libraries


def _warn(name: str, raw: Any, default: Any, why: str) -> None:
    _log.warning("instrumentors: ignoring %s=%r (%s); using %r", name, raw, why, default)


def _parse_bool(name: str, raw: Optional[str], default: bool) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _warn(name, raw, default, "expected true/false")
    return default


def _parse_int(name: str, raw: Optional[str], default: int, minimum: int = 1) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        _warn(name, raw, default, "expected an integer")
        return default
    if value < minimum:
        _warn(name, raw, default, f"must be >= {minimum}")
        return default
    return value


def _parse_float(name: str, raw: Optional[str], default: float, lo: float, hi: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        _warn(name, raw, default, "expected a number")
        return default
    if math.isnan(value) or not lo <= value <= hi:
        _warn(name, raw, default, f"must be between {lo} and {hi}")
        return default
    return value


def _parse_content(env: dict) -> bool:
    ours = env.get("INSTRUMENTORS_CAPTURE_CONTENT")
    if ours is not None and ours.strip():
        return _parse_bool("INSTRUMENTORS_CAPTURE_CONTENT", ours, False)
    otel = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if otel is None or not otel.strip():
        return False
    mode = otel.strip().lower()
    if mode in _OTEL_CONTENT_MODES:
        return _OTEL_CONTENT_MODES[mode]
    return _parse_bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", otel, False)


_VALID_LIBRARIES = ", ".join(LIBRARIES) + " (or all)"
_library_warnings: set = set()  # (source, value) already warned about: import and instrument_all() both parse


def _library_names(source: str, raw: Any, fallback: str) -> Optional[set]:
    """The libraries a comma list (or iterable) names; None for ``all``, or when it names
    none: then one warning names the valid values and what is done instead (``fallback``),
    so a typo such as ``opnai`` is never silent. Entry-point names and ``llama-index`` /
    ``llamaindex`` are accepted."""
    parts = raw.split(",") if isinstance(raw, str) else [str(v) for v in raw]
    wanted, unknown = set(), []
    for part in parts:
        name = part.strip().lower()
        if name == "all":
            return None
        if not name:
            continue
        lib = next((lib for lib, aliases in _ENTRY_POINT_NAMES.items()
                    if name in aliases or name.replace("-", "_") == lib or name == lib.replace("_", "")), None)
        if lib is None:
            unknown.append(part.strip())
        else:
            wanted.add(lib)
    if unknown or not wanted:
        key = (source, raw if isinstance(raw, str) else tuple(parts))
        if key not in _library_warnings:
            if len(_library_warnings) < 64:
                _library_warnings.add(key)
            what = (", ".join(map(repr, unknown)) + (" is not a library" if len(unknown) == 1 else " are not libraries")
                    if unknown else "names no library")
            outcome = f"instrumenting {', '.join(sorted(wanted))} only" if wanted else fallback
            _log.warning("instrumentors: %s=%r: %s; valid values: %s; %s", source, raw, what, _VALID_LIBRARIES,
                         outcome)
    return wanted or None


def _parse_libraries(env: dict) -> frozenset:
    enabled = set(LIBRARIES)
    raw = env.get("INSTRUMENTORS_ENABLED")
    if raw is not None and raw.strip():
        enabled = _library_names("INSTRUMENTORS_ENABLED", raw, "instrumenting all of them (as if unset)") \
            or set(LIBRARIES)
    disabled: set = set()
    for var in ("INSTRUMENTORS_DISABLED", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        for part in (env.get(var) or "").split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "*":
                disabled |= set(LIBRARIES)
            for lib, aliases in _ENTRY_POINT_NAMES.items():
                if name in aliases:
                    disabled.add(lib)
    return frozenset(enabled - disabled)


def _load_callable(name: str, raw: Optional[str]) -> Optional[Callable[[str], str]]:
    if raw is None or not raw.strip():
        return None
    module_name, _, attr = raw.strip().partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # noqa: BLE001 - any import failure means "use the default"
        _warn(name, raw, None, f"cannot import it: {exc}")
        return None
    if not callable(obj):
        _warn(name, raw, None, "not callable")
        return None
    return obj


def _parse_semconv(raw: Optional[str]) -> str:
    if raw is None or not raw.strip():
        return "gen_ai"
    value = raw.strip().lower().replace("-", "_")
    if value not in SEMCONVS:
        _warn("INSTRUMENTORS_SEMCONV", raw, "gen_ai", "expected gen_ai, openinference or both")
        return "gen_ai"
    return value


def from_env(env: Optional[dict] = None) -> Config:
    """Read every setting from the environment (``os.environ`` by default)."""
    env = dict(os.environ if env is None else env)
    scope = (env.get("INSTRUMENTORS_CAUSAL_SCOPE") or "trace").strip().lower()
    if scope not in ("trace", "process"):
        _warn("INSTRUMENTORS_CAUSAL_SCOPE", scope, "trace", "expected trace or process")
        scope = "trace"
    default = Config()
    return Config(
        enabled_libraries=_parse_libraries(env),
        capture_content=_parse_content(env),
        max_attribute_length=_parse_int(
            "INSTRUMENTORS_MAX_ATTRIBUTE_LENGTH", env.get("INSTRUMENTORS_MAX_ATTRIBUTE_LENGTH"),
            default.max_attribute_length, minimum=16),
        max_documents=_parse_int(
            "INSTRUMENTORS_MAX_DOCUMENTS", env.get("INSTRUMENTORS_MAX_DOCUMENTS"), default.max_documents),
        redact=_load_callable("INSTRUMENTORS_REDACT", env.get("INSTRUMENTORS_REDACT")),
        nested_client_spans=_parse_bool(
            "INSTRUMENTORS_NESTED_CLIENT_SPANS", env.get("INSTRUMENTORS_NESTED_CLIENT_SPANS"), True),
        causal_links=_parse_bool("INSTRUMENTORS_CAUSAL_LINKS", env.get("INSTRUMENTORS_CAUSAL_LINKS"), True),
        causal_scope=scope,
        causal_max_entries=_parse_int(
            "INSTRUMENTORS_CAUSAL_MAX_ENTRIES", env.get("INSTRUMENTORS_CAUSAL_MAX_ENTRIES"),
            default.causal_max_entries),
        causal_max_age_seconds=_parse_float(
            "INSTRUMENTORS_CAUSAL_MAX_AGE_SECONDS", env.get("INSTRUMENTORS_CAUSAL_MAX_AGE_SECONDS"),
            default.causal_max_age_seconds, 0.001, 10 ** 9),
        causal_min_coverage=_parse_float(
            "INSTRUMENTORS_CAUSAL_MIN_COVERAGE", env.get("INSTRUMENTORS_CAUSAL_MIN_COVERAGE"),
            default.causal_min_coverage, 0.01, 1.0),
        causal_shingle_words=_parse_int(
            "INSTRUMENTORS_CAUSAL_SHINGLE_WORDS", env.get("INSTRUMENTORS_CAUSAL_SHINGLE_WORDS"),
            default.causal_shingle_words),
        store_path=(env.get("INSTRUMENTORS_STORE_PATH") or "").strip() or default.store_path,
        store_url=(env.get("INSTRUMENTORS_STORE_URL") or "").strip() or None,
        digest_key=(env.get("INSTRUMENTORS_DIGEST_KEY") or "").strip() or None,
        semconv=_parse_semconv(env.get("INSTRUMENTORS_SEMCONV")),
    )


_OPTION_NAMES = {f.name for f in fields(Config)}


def _validated_override(current: Config, key: str, value: Any) -> Any:
    """Check one ``instrument_all`` keyword; a bad value warns and keeps the current one."""
    default = getattr(current, key)
    if key == "enabled_libraries":
        if value is None:
            return frozenset(LIBRARIES)
        if not isinstance(value, str) and not hasattr(value, "__iter__"):
            _warn(key, value, default, f"expected a list of library names: {_VALID_LIBRARIES}")
            return default
        values = value.split(",") if isinstance(value, str) else [str(v) for v in value]
        if not any(v.strip() for v in values):
            return frozenset()  # enabled_libraries=[]: instrument nothing, as asked
        libs = _library_names(key, value, f"keeping {sorted(default)}")
        if libs is None:
            return frozenset(LIBRARIES) if any(v.strip().lower() == "all" for v in values) else default
        return frozenset(libs)
    if key == "redact":
        if value is not None and not callable(value):
            _warn(key, value, default, "not callable")
            return default
        return value
    if key == "causal_scope":
        if value not in ("trace", "process"):
            _warn(key, value, default, "expected 'trace' or 'process'")
            return default
        return value
    if key == "semconv":
        value = str(value).strip().lower().replace("-", "_")
        if value not in SEMCONVS:
            _warn(key, value, default, "expected 'gen_ai', 'openinference' or 'both'")
            return default
        return value
    if key == "store_path":
        return os.fspath(value)
    if key == "store_url":
        return (os.fspath(value) or "").strip() or None if value is not None else None
    if key == "digest_key":
        if value is not None and not isinstance(value, str):
            _warn(key, "<not shown>", "<the environment's setting>", "expected a string or None")
            return default
        return (value or "").strip() or None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            _warn(key, value, default, "expected True or False")
            return default
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _warn(key, value, default, "expected a positive integer")
            return default
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
            _warn(key, value, default, "expected a positive number")
            return default
        if key == "causal_min_coverage" and value > 1:
            _warn(key, value, default, "must be at most 1")
            return default
        return float(value)
    return value


_current: Config = from_env()


def get_config() -> Config:
    """The settings in force. Cheap: read it on every call rather than caching it."""
    return _current


def configure(**overrides: Any) -> Config:
    """Re-read the environment and apply keyword overrides; returns the new settings.

    Unknown keywords warn and are ignored, so a typo never takes the host app down.
    """
    global _current
    base = from_env()
    changes = {}
    for key, value in overrides.items():
        if key not in _OPTION_NAMES:
            _log.warning("instrumentors: unknown option %r ignored", key)
            continue
        changes[key] = _validated_override(base, key, value)
    _current = replace(base, **changes)
    return _current


def set_config(config: Config) -> None:
    """Install a ready Config (tests use this to switch one setting)."""
    global _current
    _current = config
