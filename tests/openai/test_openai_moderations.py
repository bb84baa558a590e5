"""moderations.create: a guardrail span with flags and category names, never the checked
text, causally linked to the generation it checked."""

from __future__ import annotations

import json

import openai
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import openai_scenarios as S
from instrumentors import _semconv as sc

pytestmark = pytest.mark.usefixtures("instrument")

CHECKED = "The capital of France is Paris, a city on the Seine with many museums."
MODERATION = {
    "id": "modr-5Qm3", "model": "omni-moderation-2024-09-26",
    "results": [
        {"flagged": False, "categories": {"violence": False, "hate": False, "self-harm/intent": False},
         "category_scores": {"violence": 0.001, "hate": 0.0, "self-harm/intent": 0.0},
         "category_applied_input_types": {"violence": ["text"], "hate": ["text"], "self-harm/intent": ["text"]}},
        {"flagged": True, "categories": {"violence": True, "hate": False, "self-harm/intent": True},
         "category_scores": {"violence": 0.91, "hate": 0.02, "self-harm/intent": 0.77},
         "category_applied_input_types": {"violence": ["text"], "hate": ["text"], "self-harm/intent": ["text"]}},
    ],
}


def _handler(seen: list):
    httpx = S.http_module()

    def handler(request):
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        if request.url.path.endswith("/moderations"):
            return httpx.Response(200, json=MODERATION)
        return httpx.Response(200, json=S.chat_completion(
            "chatcmpl-mod", "gpt-4o-mini-2024-07-18", [S.choice(0, CHECKED, "stop")], S.chat_usage(20, 16)))

    return handler


async def test_moderation_span(span_exporter, is_async):
    seen: list = []
    client = S.mock_client(_handler(seen), is_async)
    result = await S.call(client, "moderations.create", model="omni-moderation-latest",
                          input=[CHECKED, "something violent"])
    assert result.results[1].flagged is True  # the caller's object, untouched
    span = S.only_span(span_exporter)
    assert span.name == "moderation omni-moderation-latest"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert S.attrs(span) == {
        sc.GEN_AI_OPERATION_NAME: "moderation",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.SERVER_ADDRESS: "api.openai.com",
        sc.SERVER_PORT: 443,
        sc.GEN_AI_REQUEST_MODEL: "omni-moderation-latest",
        sc.SPAN_KIND: "guardrail",
        sc.LIBRARY: "openai",
        sc.GEN_AI_RESPONSE_ID: "modr-5Qm3",
        sc.GEN_AI_RESPONSE_MODEL: "omni-moderation-2024-09-26",
        sc.MODERATION_FLAGGED: True,
        sc.MODERATION_FLAGGED_CATEGORIES: ("self-harm/intent", "violence"),
        sc.MODERATION_RESULT_COUNT: 2,
    }
    written = S.everything_written(span)
    assert CHECKED not in written and "something violent" not in written


async def test_moderation_of_nothing_flagged_and_multimodal_input(span_exporter, is_async):
    httpx = S.http_module()
    clean = {**MODERATION, "results": MODERATION["results"][:1]}
    client = S.mock_client(lambda request: httpx.Response(200, json=clean), is_async)
    await S.call(client, "moderations.create", model="omni-moderation-latest",
                 input=[{"type": "text", "text": CHECKED},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])
    span = S.only_span(span_exporter)
    assert span.attributes[sc.MODERATION_FLAGGED] is False
    assert span.attributes[sc.MODERATION_FLAGGED_CATEGORIES] == ()
    assert span.attributes[sc.MODERATION_RESULT_COUNT] == 1


async def test_moderation_links_to_the_generation_it_checked(span_exporter, set_config, tracer_provider, is_async):
    """The seed's output validator: the check links to the answer it judged."""
    set_config(causal_links=True)
    seen: list = []
    client = S.mock_client(_handler(seen), is_async)
    with tracer_provider.get_tracer("app").start_as_current_span("request"):
        answer = await S.call(client, "chat.completions.create", model="gpt-4o-mini",
                              messages=[{"role": "user", "content": "Tell me about Paris."}])
        await S.call(client, "moderations.create", model="omni-moderation-latest",
                     input=answer.choices[0].message.content)
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    chat, moderation = spans["chat gpt-4o-mini"], spans["moderation omni-moderation-latest"]
    assert [link.context.span_id for link in moderation.links] == [chat.context.span_id]
    assert moderation.links[0].attributes[sc.GEN_AI_ATTRIBUTION_LINK_TYPE] == sc.LINK_CAUSED_BY_GENERATION
    assert moderation.attributes[sc.CAUSAL_SOURCE_COUNT] == 1
    assert CHECKED not in S.everything_written(moderation)


async def test_moderation_error_keeps_the_exception(span_exporter, is_async):
    httpx = S.http_module()
    client = S.mock_client(lambda request: httpx.Response(
        400, json={"error": {"message": "bad input", "type": "invalid_request_error"}}), is_async)
    with pytest.raises(openai.BadRequestError) as excinfo:
        await S.call(client, "moderations.create", model="omni-moderation-latest", input="x")
    span = S.only_span(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "BadRequestError"
    assert excinfo.value.status_code == 400
    assert trace.get_current_span() is trace.INVALID_SPAN
