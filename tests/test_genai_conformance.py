"""Every recorded cassette replayed, every GenAI span checked against the convention's
requirement levels.

The tables below are the GenAI semantic conventions as data: ``gen-ai-spans.md``
(Inference, Embeddings) and its OpenAI refinement ``openai.md`` in
open-telemetry/semantic-conventions-genai (read December 2026). Each attribute has its
requirement level, its value type and *when* it applies, a fact about the call read from
the cassette (the request as sent on the wire, the response as received) and the
caller's arguments:

* Required: on every span.
* Conditionally Required: present exactly when its condition holds (``gen_ai.request.stream``
  iff streaming, ``error.type`` iff the call failed, ``openai.request.service_tier`` iff
  requested and not ``auto``...).
* Recommended: present exactly when the information exists (a sampling parameter iff the
  request set it, response id/model/finish reasons/usage iff a response arrived...).
* Opt-In: absent with content capture off, present with it on. One documented exception:
  ``gen_ai.tool.definitions`` keeps its structure (names, parameter names and types, no
  description) with capture off, see README "Tool definitions and privacy".

Any ``gen_ai.*`` / ``openai.*`` attribute not in the table fails (a misspelt or
deprecated name), as does a value of the wrong type. When the convention changes, change
the table: every span that no longer conforms fails here. OpenAI (every scenario, sync
and async), LangChain (``ChatOpenAI``) and LlamaIndex (``OpenAI``) chat/text-completion
spans are checked with the same tables; LangChain and LlamaIndex share the readers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import vcr
import yaml
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _semconv as sc

TESTS = Path(__file__).resolve().parent
for _folder in ("openai", "langchain", "llama_index"):
    if str(TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(TESTS / _folder))

import langchain_scenarios as LC  # noqa: E402
import li_scenarios as LI  # noqa: E402
import openai_scenarios as OA  # noqa: E402

CASSETTES = TESTS.parent / "cassettes"

# ---------------------------------------------------------------------------------------
# The convention as data
# ---------------------------------------------------------------------------------------

REQUIRED, CONDITIONAL, RECOMMENDED, OPT_IN = "Required", "Conditionally Required", "Recommended", "Opt-In"


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _strs(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) > 0 and all(isinstance(x, str) for x in v)


def _json(v: Any) -> bool:  # "any" on spans: a JSON string (structured attributes are not in the SDK)
    return isinstance(v, str) and isinstance(json.loads(v), (list, dict))


@dataclass(frozen=True)
class Rule:
    level: str
    valid: Callable[[Any], bool]
    when: Optional[str] = None  # a fact name; None: Required, or "when the provider reports it"


INFERENCE = {  # gen-ai-spans.md, Inference
    "gen_ai.operation.name": Rule(REQUIRED, _str),
    "gen_ai.provider.name": Rule(REQUIRED, _str),
    "error.type": Rule(CONDITIONAL, _str, "error"),
    "gen_ai.conversation.id": Rule(CONDITIONAL, _str, "conversation"),
    "gen_ai.output.type": Rule(CONDITIONAL, _str, "output_format"),
    "gen_ai.request.choice.count": Rule(CONDITIONAL, _int, "n_not_1"),
    "gen_ai.request.model": Rule(CONDITIONAL, _str, "model"),
    "gen_ai.request.seed": Rule(CONDITIONAL, _int, "seed"),
    "gen_ai.request.stream": Rule(CONDITIONAL, lambda v: v is True, "stream"),  # iff streaming
    "gen_ai.request.top_k": Rule(CONDITIONAL, _num, "top_k"),
    "server.port": Rule(CONDITIONAL, _int, "server_address"),
    "gen_ai.request.frequency_penalty": Rule(RECOMMENDED, _num, "frequency_penalty"),
    "gen_ai.request.max_tokens": Rule(RECOMMENDED, _int, "max_tokens"),
    "gen_ai.request.presence_penalty": Rule(RECOMMENDED, _num, "presence_penalty"),
    "gen_ai.request.stop_sequences": Rule(RECOMMENDED, _strs, "stop"),
    "gen_ai.request.temperature": Rule(RECOMMENDED, _num, "temperature"),
    "gen_ai.request.top_p": Rule(RECOMMENDED, _num, "top_p"),
    "gen_ai.response.finish_reasons": Rule(RECOMMENDED, _strs, "finished"),
    "gen_ai.response.id": Rule(RECOMMENDED, _str, "response_id"),
    "gen_ai.response.model": Rule(RECOMMENDED, _str, "response_model"),
    "gen_ai.response.time_to_first_chunk": Rule(RECOMMENDED, _num, "streamed_ok"),
    "gen_ai.usage.input_tokens": Rule(RECOMMENDED, _int, "usage"),
    "gen_ai.usage.output_tokens": Rule(RECOMMENDED, _int, "output_usage"),
    # "when the provider reports it" / "when applicable": type only
    "gen_ai.usage.cache_creation.input_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.cache_read.input_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.reasoning.output_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.audio.input_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.audio.output_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.image.input_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.text.input_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.text.output_tokens": Rule(RECOMMENDED, _int),
    "gen_ai.usage.video.input_tokens": Rule(RECOMMENDED, _int),
    "server.address": Rule(RECOMMENDED, _str, "server_address"),
    "gen_ai.input.messages": Rule(OPT_IN, _json, "input"),
    "gen_ai.output.messages": Rule(OPT_IN, _json, "ok"),
    "gen_ai.system_instructions": Rule(OPT_IN, _json, "system"),
    "gen_ai.tool.definitions": Rule(OPT_IN, _json, "tools"),
}
OPENAI_INFERENCE = {  # openai.md, Inference: refines the above
    **INFERENCE,
    "gen_ai.request.model": Rule(REQUIRED, _str),
    "openai.request.service_tier": Rule(CONDITIONAL, _str, "service_tier_requested"),
    "openai.response.service_tier": Rule(CONDITIONAL, _str, "service_tier_returned"),
    "openai.api.type": Rule(RECOMMENDED, lambda v: v in ("chat_completions", "responses"), "api_type"),
    "openai.response.system_fingerprint": Rule(RECOMMENDED, _str, "system_fingerprint"),
}
EMBEDDINGS = {  # gen-ai-spans.md, Embeddings (openai.md adds nothing)
    "gen_ai.operation.name": Rule(REQUIRED, _str),
    "gen_ai.provider.name": Rule(REQUIRED, _str),
    "error.type": Rule(CONDITIONAL, _str, "error"),
    "gen_ai.request.model": Rule(CONDITIONAL, _str, "model"),
    "server.port": Rule(CONDITIONAL, _int, "server_address"),
    "gen_ai.embeddings.dimension.count": Rule(RECOMMENDED, _int, "ok"),
    "gen_ai.request.encoding_formats": Rule(RECOMMENDED, _strs, "encoding_format"),
    "gen_ai.response.model": Rule(RECOMMENDED, _str, "response_model"),
    "gen_ai.usage.input_tokens": Rule(RECOMMENDED, _int, "usage"),
    "server.address": Rule(RECOMMENDED, _str, "server_address"),
}
# Names the convention retired: never written.
DEPRECATED = {
    "gen_ai.system", "gen_ai.openai.request.service_tier", "gen_ai.openai.response.service_tier",
    "gen_ai.openai.response.system_fingerprint", "gen_ai.openai.request.seed", "gen_ai.openai.request.response_format",
    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.prompt", "gen_ai.completion",
    "gen_ai.request.available_tools",
}
# Attributes of ours or of other conventions that live under a checked prefix.
OURS = {sc.GEN_AI_ATTRIBUTION_LINK_TYPE}


# A LangChain/LlamaIndex span with provider openai describes the framework's call: the
# openai.* details of the wire exchange are the nested OpenAI client span's (checked with
# OPENAI_INFERENCE); on the framework span they are allowed, type-checked, not demanded.
FRAMEWORK_OPENAI_INFERENCE = {
    **INFERENCE,
    **{key: Rule(rule.level, rule.valid) for key, rule in OPENAI_INFERENCE.items() if key.startswith("openai.")},
}


def table(span: Any) -> dict:
    op = span.attributes.get(sc.GEN_AI_OPERATION_NAME)
    if op == sc.OP_EMBEDDINGS:
        return EMBEDDINGS
    if span.attributes.get(sc.LIBRARY) != "openai":
        return FRAMEWORK_OPENAI_INFERENCE
    # Azure OpenAI serves the same OpenAI API through the same SDK: the openai.* refinement
    # (service tier, fingerprint, API type) describes its responses too.
    if span.attributes.get(sc.GEN_AI_PROVIDER_NAME) in ("openai", "azure.ai.openai"):
        return OPENAI_INFERENCE
    return INFERENCE


# ---------------------------------------------------------------------------------------
# Facts about one recorded call
# ---------------------------------------------------------------------------------------


def exchanges(module: str, cassette: str) -> list:
    """(request JSON, response body text, HTTP status) of each recorded interaction."""
    data = yaml.safe_load((CASSETTES / module / cassette).read_text())
    out = []
    for item in data["interactions"]:
        body = item["request"]["body"]
        out.append((json.loads(body) if body else {}, item["response"]["body"]["string"],
                    item["response"]["status"]["code"]))
    return out


def facts(span: Any, request: dict, caller: dict, response: str, status: int, capture: bool) -> dict:
    """What the convention's conditions depend on, for one span. ``request`` is the body as
    sent, ``caller`` what the caller passed (differs for OpenAI embeddings: the SDK adds
    ``encoding_format``), ``response`` the recorded answer."""
    error = status >= 400
    ok = not error
    stream = request.get("stream") is True
    op = span.attributes.get(sc.GEN_AI_OPERATION_NAME)
    fmt = request.get("response_format") or (request.get("text") or {}).get("format")
    return {
        "error": error, "ok": ok, "stream": stream, "streamed_ok": stream and ok,
        "model": "model" in request, "seed": "seed" in request, "top_k": "top_k" in request,
        "n_not_1": request.get("n", 1) != 1, "conversation": "conversation" in request,
        "output_format": bool(fmt) and (fmt or {}).get("type") != "text",
        "frequency_penalty": "frequency_penalty" in request, "presence_penalty": "presence_penalty" in request,
        "temperature": "temperature" in request, "top_p": "top_p" in request, "stop": bool(request.get("stop")),
        "max_tokens": any(k in request for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")),
        "server_address": sc.SERVER_ADDRESS in span.attributes,
        "finished": ok and op != sc.OP_EMBEDDINGS,
        "response_id": ok and '"id"' in response,
        "response_model": ok and '"model"' in response,
        "usage": ok and ('"prompt_tokens"' in response or '"input_tokens"' in response),
        "output_usage": ok and ('"completion_tokens"' in response or '"output_tokens"' in response),
        "service_tier_requested": caller.get("service_tier") not in (None, "auto"),
        "service_tier_returned": ok and '"service_tier"' in response,
        "system_fingerprint": ok and any(f'"system_fingerprint"{sep}"' in response for sep in (":", ": ")),
        "api_type": op == sc.OP_CHAT,
        "encoding_format": "encoding_format" in caller,
        "input": capture and op != sc.OP_EMBEDDINGS,
        # system messages inside the chat history belong in gen_ai.input.messages (the
        # convention); only a separate instruction field is gen_ai.system_instructions
        "system": capture and isinstance(request.get("instructions"), str),
        "tools": bool(request.get("tools") or request.get("functions")),
    }


def check(span: Any, fact: dict, capture: bool) -> list:
    """Every way ``span`` is off the convention (an empty list: it conforms)."""
    rules = table(span)
    attrs = dict(span.attributes)
    problems = []
    for key, value in attrs.items():
        if key in DEPRECATED:
            problems.append(f"{key}: deprecated name")
        elif key.startswith(("gen_ai.", "openai.", "server.", "error.")) and key not in rules and key not in OURS:
            problems.append(f"{key}: not in the convention for this span")
    for key, rule in rules.items():
        present = key in attrs
        if present and not rule.valid(attrs[key]):
            problems.append(f"{key}={attrs[key]!r}: wrong type or value ({rule.level})")
        if rule.level == REQUIRED:
            expected: Optional[bool] = True
        elif rule.level == OPT_IN:
            if not capture:
                expected = fact["tools"] if key == sc.GEN_AI_TOOL_DEFINITIONS else False
            else:
                expected = fact[rule.when]
        else:
            expected = None if rule.when is None else fact[rule.when]
        if expected is True and not present:
            problems.append(f"{key}: missing ({rule.level}, {rule.when or 'always'})")
        elif expected is False and present:
            problems.append(f"{key}={attrs[key]!r}: written although {rule.when or 'capture off'} does not hold "
                            f"({rule.level})")
    if not capture and sc.GEN_AI_TOOL_DEFINITIONS in attrs and "description" in attrs[sc.GEN_AI_TOOL_DEFINITIONS]:
        problems.append("gen_ai.tool.definitions: a description with capture off")
    finish = attrs.get(sc.GEN_AI_RESPONSE_FINISH_REASONS) or ()
    if "tool_call" in finish:
        problems.append("gen_ai.response.finish_reasons: 'tool_call' (spans say 'tool_calls')")
    model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
    name = f"{attrs.get(sc.GEN_AI_OPERATION_NAME)} {model}" if model else attrs.get(sc.GEN_AI_OPERATION_NAME)
    if span.name != name:
        problems.append(f"span name {span.name!r}, expected {name!r}")
    if span.kind is not SpanKind.CLIENT:
        problems.append(f"span kind {span.kind}")
    if (span.status.status_code is StatusCode.ERROR) != fact["error"]:
        problems.append(f"status {span.status.status_code} for error={fact['error']}")
    return problems


def genai_spans(exporter: Any) -> list:
    return [s for s in exporter.get_finished_spans()
            if s.attributes.get(sc.GEN_AI_OPERATION_NAME) in (sc.OP_CHAT, sc.OP_TEXT_COMPLETION, sc.OP_EMBEDDINGS)]


def replay(module: str, cassette: str):
    recorder = vcr.VCR(decode_compressed_response=True,
                       match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    return recorder.use_cassette(str(CASSETTES / module / cassette), record_mode="none")


def _assert_conforms(spans: list, exchange: list, caller: Optional[dict], capture: bool, expected_count=None) -> None:
    assert spans, "no GenAI span"
    if expected_count is not None:
        assert len(spans) == expected_count, [s.name for s in spans]
    request, response, status = exchange[0]
    report = {}
    for span in spans:
        fact = facts(span, request, request if caller is None else caller, response, status, capture)
        if span.attributes.get(sc.GEN_AI_OPERATION_NAME) == sc.OP_EMBEDDINGS and "input" not in request:
            # a framework's local embedding model (the RAG scenarios): no wire exchange to
            # know the facts from, so conditional attributes are type-checked only
            fact = {**{key: None for key in fact}, "error": False}
        if span.attributes.get(sc.LIBRARY) == "langchain" and fact["stream"]:
            # langchain-openai's streamed chunks carry LangChain's run id, not the
            # completion id: unknown to the LangChain span (the client span has it)
            fact = {**fact, "response_id": None}
        if span.attributes.get(sc.USAGE_REPORTED_BY_CHILD):
            # the nested client span reports the usage (no double count in sums): README
            fact = {**fact, "usage": False, "output_usage": False}
        problems = check(span, fact, capture)
        if problems:
            report[f"{span.name} ({span.attributes.get(sc.LIBRARY)})"] = problems
    assert not report, json.dumps(report, indent=1)


# ---------------------------------------------------------------------------------------
# OpenAI: every recorded scenario, sync and async, capture off and on
# ---------------------------------------------------------------------------------------

COVERED = {"chat_basic", "chat_stream", "chat_tools", "chat_stream_tools", "chat_n2", "chat_404",
           "embeddings_single", "embeddings_batch", "embeddings_base64", "responses_basic",
           "responses_function_call", "responses_stream"}


def test_the_replay_covers_the_cases_the_issue_names():
    assert COVERED <= set(OA.SCENARIOS)
    for name in COVERED:
        assert (CASSETTES / OA.SCENARIOS[name].module / OA.SCENARIOS[name].cassette).exists(), name


@pytest.mark.parametrize("capture", [False, True], ids=["capture_off", "capture_on"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", sorted(OA.SCENARIOS))
def test_openai_spans_conform(everything, span_exporter, set_config, name, is_async, capture):
    import openai

    set_config(capture_content=capture)
    scenario = OA.SCENARIOS[name]
    with replay(scenario.module, scenario.cassette):
        try:
            result = asyncio.run(OA.run(scenario, is_async))
            if scenario.kwargs.get("stream"):
                asyncio.run(OA.drain(result))
        except openai.APIStatusError as exc:
            assert exc.status_code == scenario.status >= 400
    _assert_conforms(genai_spans(span_exporter), exchanges(scenario.module, scenario.cassette),
                     scenario.kwargs, capture, expected_count=1)


def test_the_checker_catches_what_the_issue_found(everything, span_exporter):
    """The checker is not vacuous: last version's deviations each fail it."""
    scenario = OA.SCENARIOS["chat_basic"]
    with replay(scenario.module, scenario.cassette):
        asyncio.run(OA.run(scenario, False))
    (span,) = genai_spans(span_exporter)
    request, response, status = exchanges(scenario.module, scenario.cassette)[0]
    fact = facts(span, request, scenario.kwargs, response, status, False)
    assert check(span, fact, False) == []

    class Edited:
        def __init__(self, changes: dict) -> None:
            self.name, self.kind, self.status = span.name, span.kind, span.status
            self.attributes = {**span.attributes, **changes}

    for changes, complaint in [
        ({sc.GEN_AI_REQUEST_STREAM: False}, "gen_ai.request.stream=False"),
        ({"gen_ai.openai.response.system_fingerprint": "fp"}, "deprecated name"),
        ({sc.GEN_AI_REQUEST_ENCODING_FORMATS: ("base64",)}, "not in the convention"),
        ({sc.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_call",)}, "'tool_call'"),
        ({sc.GEN_AI_TOOL_DEFINITIONS: '[{"type":"function","name":"f","description":"secret"}]'}, "tools does not hold"),
        ({sc.GEN_AI_INPUT_MESSAGES: "[]"}, "gen_ai.input.messages"),
        ({sc.ERROR_TYPE: "500"}, "error.type"),
        ({sc.GEN_AI_REQUEST_TEMPERATURE: "0.2"}, "wrong type"),
    ]:
        problems = check(Edited(changes), fact, False)
        assert any(complaint in p for p in problems), (changes, problems)
    assert any("missing" in p for p in check(Edited({}), {**fact, "seed": True, "n_not_1": True}, False) if
               "choice.count" in p)


# ---------------------------------------------------------------------------------------
# LangChain (ChatOpenAI) and LlamaIndex (OpenAI): their chat spans, same tables
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("capture", [False, True], ids=["capture_off", "capture_on"])
@pytest.mark.parametrize("name", sorted(LC.SCENARIOS))
def test_langchain_spans_conform(everything, span_exporter, set_config, name, capture):
    set_config(capture_content=capture)
    scenario = LC.SCENARIOS[name]
    with replay("test_langchain_openai", scenario.cassette):
        scenario.run(LC.chat_model())
    spans = genai_spans(span_exporter)
    assert {s.attributes[sc.LIBRARY] for s in spans} >= {"langchain", "openai"}
    _assert_conforms(spans, exchanges("test_langchain_openai", scenario.cassette), None, capture)


@pytest.mark.parametrize("capture", [False, True], ids=["capture_off", "capture_on"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", sorted(LI.SCENARIOS))
def test_llama_index_spans_conform(everything, span_exporter, set_config, name, is_async, capture):
    set_config(capture_content=capture)
    scenario = LI.SCENARIOS[name]
    with replay("test_llama_index_openai", scenario.cassette):
        asyncio.run(LI.run(name, LI.make_llm(scenario), is_async))
    spans = [s for s in genai_spans(span_exporter) if s.attributes.get(sc.GEN_AI_PROVIDER_NAME) == "openai"]
    assert {s.attributes[sc.LIBRARY] for s in spans} >= {"llama_index", "openai"}
    _assert_conforms(spans, exchanges("test_llama_index_openai", scenario.cassette), None, capture)


def test_langchain_openai_embeddings_spans_conform(everything, span_exporter):
    """langchain-openai's ``OpenAIEmbeddings`` over the real openai SDK, answered in-process
    in OpenAI's wire format (the request is recorded as sent). The LangChain span is a
    framework span: what only the HTTP response holds (response model, usage) is the
    nested client span's, so it is type-checked there, demanded on the client span."""
    from langchain_openai import OpenAIEmbeddings

    httpx = OA.http_module()
    sent: list = []
    reply = OA.reply("embeddings_batch")

    def handler(request):
        sent.append(json.loads(request.content))
        return reply(request)

    model = OpenAIEmbeddings(model="text-embedding-3-small", dimensions=8, api_key="placeholder", max_retries=0,
                             check_embedding_ctx_length=False, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    vectors = model.embed_documents(OA.EMBED_BATCH)
    assert [len(v) for v in vectors] == [8, 8, 8]
    spans = genai_spans(span_exporter)
    assert sorted(s.attributes[sc.LIBRARY] for s in spans) == ["langchain", "openai"]
    response = json.dumps(OA.embeddings_body(sent[0], 12))
    report = {}
    for span in spans:
        caller = {k: v for k, v in sent[0].items() if k != "encoding_format"}  # langchain passed none
        fact = facts(span, sent[0], caller, response, 200, False)
        if span.attributes[sc.LIBRARY] == "langchain":
            fact = {**fact, "response_model": None, "usage": None, "ok": None}
        problems = check(span, fact, False)
        if problems:
            report[span.attributes[sc.LIBRARY]] = problems
    assert not report, json.dumps(report, indent=1)
