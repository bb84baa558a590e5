"""Configuration: env names, defaults, overrides, and invalid values that warn, never crash."""

from __future__ import annotations

import logging

import pytest

from instrumentors import _config


def test_defaults_from_empty_environment():
    cfg = _config.from_env({})
    assert cfg.capture_content is False
    assert cfg.enabled_libraries == frozenset({"openai", "langchain", "llama_index"})
    assert cfg.max_attribute_length == 8192
    assert cfg.causal_links is True
    assert cfg.causal_scope == "trace"
    assert cfg.causal_max_entries == 10_000
    assert cfg.causal_min_coverage == 0.5
    assert cfg.nested_client_spans is True
    assert cfg.store_path.endswith("traces.db")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"INSTRUMENTORS_CAPTURE_CONTENT": "true"}, True),
        ({"INSTRUMENTORS_CAPTURE_CONTENT": "off"}, False),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, True),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, False),
        # ours wins over the OTel variable
        ({"INSTRUMENTORS_CAPTURE_CONTENT": "false",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, False),
    ],
)
def test_content_capture_switches(env, expected):
    assert _config.from_env(env).capture_content is expected


def test_disabled_instrumentations_honoured():
    cfg = _config.from_env({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests, instrumentors_openai,llama-index"})
    assert cfg.enabled_libraries == frozenset({"langchain"})
    cfg = _config.from_env({"INSTRUMENTORS_ENABLED": "openai,langchain", "INSTRUMENTORS_DISABLED": "langchain"})
    assert cfg.enabled_libraries == frozenset({"openai"})
    assert _config.from_env({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}).enabled_libraries == frozenset()


@pytest.mark.parametrize(
    "var, raw, field, default",
    [
        ("INSTRUMENTORS_CAPTURE_CONTENT", "maybe", "capture_content", False),
        ("INSTRUMENTORS_MAX_ATTRIBUTE_LENGTH", "lots", "max_attribute_length", 8192),
        ("INSTRUMENTORS_MAX_ATTRIBUTE_LENGTH", "3", "max_attribute_length", 8192),
        ("INSTRUMENTORS_CAUSAL_MIN_COVERAGE", "1.5", "causal_min_coverage", 0.5),
        ("INSTRUMENTORS_CAUSAL_MIN_COVERAGE", "nan", "causal_min_coverage", 0.5),
        ("INSTRUMENTORS_CAUSAL_SCOPE", "galaxy", "causal_scope", "trace"),
        ("INSTRUMENTORS_CAUSAL_MAX_ENTRIES", "-4", "causal_max_entries", 10_000),
        ("INSTRUMENTORS_REDACT", "no.such.module:fn", "redact", None),
    ],
)
def test_invalid_env_values_warn_and_use_default(var, raw, field, default, caplog):
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        cfg = _config.from_env({var: raw})
    assert getattr(cfg, field) == default
    assert any(var in r.getMessage() for r in caplog.records), caplog.text


def test_redact_hook_loaded_from_env():
    cfg = _config.from_env({"INSTRUMENTORS_REDACT": "string:capwords"})
    assert cfg.redact("hello world") == "Hello World"


def test_arguments_override_env(monkeypatch):
    monkeypatch.setenv("INSTRUMENTORS_CAPTURE_CONTENT", "false")
    try:
        cfg = _config.configure(capture_content=True, causal_scope="process", max_attribute_length=100)
        assert cfg.capture_content is True
        assert cfg.causal_scope == "process"
        assert cfg.max_attribute_length == 100
        assert _config.get_config() is cfg
    finally:
        _config.configure()


def test_bad_arguments_warn_and_keep_env_value(caplog):
    try:
        with caplog.at_level(logging.WARNING, logger="instrumentors"):
            cfg = _config.configure(capture_content="yes please", max_attribute_length=-1,
                                    causal_scope="x", redact=42, no_such_option=1)
        assert cfg.capture_content is False
        assert cfg.max_attribute_length == 8192
        assert cfg.causal_scope == "trace"
        assert cfg.redact is None
        text = caplog.text
        for name in ("capture_content", "max_attribute_length", "causal_scope", "redact", "no_such_option"):
            assert name in text
    finally:
        _config.configure()


@pytest.mark.parametrize("raw, expected, named", [
    ("opnai", {"openai", "langchain", "llama_index"}, "'opnai' is not a library"),
    ("openai,langchian", {"openai"}, "'langchian' is not a library"),
    (" , ", {"openai", "langchain", "llama_index"}, "names no library"),
])
def test_enabled_typo_warns_once_naming_the_valid_values(raw, expected, named, caplog):
    """A typo in INSTRUMENTORS_ENABLED is never silent: one warning names the bad value,
    the valid ones and what is instrumented instead (the documented default for a value
    naming nothing valid: all; the valid names otherwise)."""
    _config._library_warnings.clear()
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        cfg = _config.from_env({"INSTRUMENTORS_ENABLED": raw})
        _config.from_env({"INSTRUMENTORS_ENABLED": raw})  # instrument_all() parses again: no second warning
    assert cfg.enabled_libraries == frozenset(expected)
    [record] = [r for r in caplog.records if "INSTRUMENTORS_ENABLED" in r.getMessage()]
    message = record.getMessage()
    assert named in message and "valid values: openai, langchain, llama_index (or all)" in message
    assert ("instrumenting openai only" if expected == {"openai"} else "instrumenting all of them") in message


def test_enabled_accepts_aliases_and_keyword_strings(caplog):
    _config._library_warnings.clear()
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert _config.from_env({"INSTRUMENTORS_ENABLED": "OpenAI, llama-index"}).enabled_libraries == frozenset(
            {"openai", "llama_index"})
        assert _config.from_env({"INSTRUMENTORS_ENABLED": "llamaindex,instrumentors_langchain"}).enabled_libraries \
            == frozenset({"llama_index", "langchain"})
        try:
            # a plain string is a comma list, not a set of characters
            assert _config.configure(enabled_libraries="openai").enabled_libraries == frozenset({"openai"})
            assert _config.configure(enabled_libraries=["all"]).enabled_libraries == frozenset(_config.LIBRARIES)
        finally:
            _config.configure()
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        try:
            cfg = _config.configure(enabled_libraries=["opnai"])
        finally:
            _config.configure()
    assert cfg.enabled_libraries == frozenset(_config.LIBRARIES)  # the environment's (unset: all), said so
    assert "'opnai' is not a library" in caplog.text and "valid values" in caplog.text
