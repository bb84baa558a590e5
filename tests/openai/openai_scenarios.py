"""Every OpenAI call the cassette tests make, with the response OpenAI sends for it.

One source for both sides: ``make_cassettes.py`` records each scenario's exchange with
vcrpy while an in-process transport answers with the wire-format body below, and the
tests replay the same call against the cassette (``--record-mode=none``). Bodies follow
OpenAI's documented wire format: JSON objects, and ``text/event-stream`` for streams
(chat/completions streams end with ``data: [DONE]``; a final usage chunk when
``stream_options={"include_usage": True}``; Responses streams are typed events).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pydantic import BaseModel

CREATED = 1764230400  # 2025-11-27, a plausible "created" timestamp


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


# ---------------------------------------------------------------------------------------
# Request inputs used by several scenarios (tests assert on them)
# ---------------------------------------------------------------------------------------

SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["location"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a timezone.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}
TOOLS_QUESTION = "What's the weather and the time in Paris right now?"
WEATHER_ARGS = '{"location": "Paris, France"}'
TIME_ARGS = '{"timezone": "Europe/Paris"}'
TOOLS_ANSWER = "It is 18°C and sunny in Paris, and the local time is 14:05."

STREAM_PIECES = ["One", ",", " two", ",", " three", "."]
STREAM_TEXT = "".join(STREAM_PIECES)

RESP_INSTRUCTIONS = "You are a concise geography tutor."
RESP_QUESTION = "Which river flows through Paris?"
RESP_ANSWER = "The Seine flows through Paris."
RESP_STREAM_PIECES = ["Bonjour", " le", " monde", " !"]

EMBED_TEXT = "The food was delicious and the waiter was friendly."
EMBED_BATCH = ["first document about cats", "second document about dogs", "third document about birds"]

LEGACY_PROMPT = "Write a tagline for an ice cream shop."
LEGACY_ANSWER = "\n\nScoops of happiness in every cone!"


# ---------------------------------------------------------------------------------------
# Wire-format builders
# ---------------------------------------------------------------------------------------


def chat_usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(cid: str, model: str, choices: list, usage: dict) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": choices, "usage": usage, "service_tier": "default", "system_fingerprint": "fp_b376dfbbd5",
    }


def choice(index: int, content: Optional[str], finish: str, tool_calls: Optional[list] = None) -> dict:
    message: dict = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def tool_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def sse(events: list, done: bool = True, typed: bool = False) -> bytes:
    """``data: {json}\\n\\n`` per event (``event: <type>`` first for Responses streams)."""
    out = []
    for event in events:
        if typed:
            out.append(f"event: {event['type']}\n")
        out.append(f"data: {json.dumps(event, separators=(',', ':'), ensure_ascii=False)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def chat_chunk(cid: str, model: str, choices: list, usage: Any = "omit") -> dict:
    chunk = {
        "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "service_tier": "default", "system_fingerprint": "fp_b376dfbbd5", "choices": choices,
    }
    if usage != "omit":
        chunk["usage"] = usage
    return chunk


def delta_choice(delta: dict, finish: Optional[str] = None, index: int = 0) -> dict:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def chat_stream_body(include_usage: bool) -> bytes:
    cid, model = "chatcmpl-CRc4stream0001", "gpt-4o-mini-2024-07-18"
    usage = None if include_usage else "omit"
    chunks = [chat_chunk(cid, model, [delta_choice({"role": "assistant", "content": "", "refusal": None})], usage)]
    chunks += [chat_chunk(cid, model, [delta_choice({"content": p})], usage) for p in STREAM_PIECES]
    chunks.append(chat_chunk(cid, model, [delta_choice({}, "stop")], usage))
    if include_usage:
        chunks.append(chat_chunk(cid, model, [], chat_usage(13, 6)))
    return sse(chunks)


def chat_stream_tools_body() -> bytes:
    """Two parallel tool calls whose argument pieces arrive interleaved by index."""
    cid, model = "chatcmpl-CRc4stream0002", "gpt-4o-mini-2024-07-18"
    def tc(index: int, **fields: Any) -> dict:
        return delta_choice({"tool_calls": [{"index": index, **fields}]})
    chunks = [
        chat_chunk(cid, model, [delta_choice({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_W7x1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})], None),
        chat_chunk(cid, model, [tc(1, id="call_T9k2", type="function", function={"name": "get_time", "arguments": ""})], None),
        chat_chunk(cid, model, [tc(0, function={"arguments": '{"locat'})], None),
        chat_chunk(cid, model, [tc(1, function={"arguments": '{"timezone": '})], None),
        chat_chunk(cid, model, [tc(0, function={"arguments": 'ion": "Paris, France"}'})], None),
        chat_chunk(cid, model, [tc(1, function={"arguments": '"Europe/Paris"}'})], None),
        chat_chunk(cid, model, [delta_choice({}, "tool_calls")], None),
        chat_chunk(cid, model, [], chat_usage(88, 46)),
    ]
    return sse(chunks)


def responses_usage(inp: int, out: int, cached: int = 0, reasoning: int = 0) -> dict:
    return {
        "input_tokens": inp, "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def response_object(rid: str, model: str, output: list, usage: Optional[dict], status: str = "completed",
                    instructions: Optional[str] = None, tools: Optional[list] = None,
                    text_format: Optional[dict] = None) -> dict:
    return {
        "id": rid, "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": instructions, "max_output_tokens": None,
        "model": model, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": True,
        "temperature": 1.0, "text": {"format": text_format or {"type": "text"}}, "tool_choice": "auto",
        "tools": tools or [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def message_item(mid: str, text: str) -> dict:
    return {"id": mid, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def responses_stream_body() -> bytes:
    rid, model, mid = "resp_68a1c0stream0001", "gpt-4o-mini-2024-07-18", "msg_68a1c0stream0001"
    text = "".join(RESP_STREAM_PIECES)
    start = response_object(rid, model, [], None, status="in_progress")
    events: list = [
        {"type": "response.created", "sequence_number": 0, "response": start},
        {"type": "response.in_progress", "sequence_number": 1, "response": start},
        {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
         "item": {"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
        {"type": "response.content_part.added", "sequence_number": 3, "item_id": mid, "output_index": 0,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}},
    ]
    seq = 4
    for piece in RESP_STREAM_PIECES:
        events.append({"type": "response.output_text.delta", "sequence_number": seq, "item_id": mid,
                       "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []})
        seq += 1
    final_item = message_item(mid, text)
    events += [
        {"type": "response.output_text.done", "sequence_number": seq, "item_id": mid, "output_index": 0,
         "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", "sequence_number": seq + 1, "item_id": mid, "output_index": 0,
         "content_index": 0, "part": final_item["content"][0]},
        {"type": "response.output_item.done", "sequence_number": seq + 2, "output_index": 0, "item": final_item},
        {"type": "response.completed", "sequence_number": seq + 3,
         "response": response_object(rid, model, [final_item], responses_usage(12, 5))},
    ]
    return sse(events, done=False, typed=True)


def embeddings_body(request: dict, prompt_tokens: int, dims: Optional[int] = None) -> dict:
    """Vectors in the format the SDK asked for (it asks for base64 unless told otherwise)."""
    inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
    size = dims or request.get("dimensions") or 1536
    data = []
    for i, _ in enumerate(inputs):
        vector = [round(((i + 1) * (j + 3) % 17 - 8) / 17.0, 6) for j in range(size)]
        if request.get("encoding_format", "float") == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return {"object": "list", "data": data, "model": request["model"],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def legacy_stream_body() -> bytes:
    cid, model = "cmpl-CRc4legacy0002", "gpt-3.5-turbo-instruct:20230824-v2"
    pieces = ["\n\n", "Sco", "ops", " of", " joy", "!"]
    def chunk(text: str, finish: Optional[str]) -> dict:
        return {"id": cid, "object": "text_completion", "created": CREATED, "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}], "usage": None}
    chunks = [chunk(p, None) for p in pieces] + [chunk("", "stop")]
    chunks.append({"id": cid, "object": "text_completion", "created": CREATED, "model": model, "choices": [],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}})
    return sse(chunks)


# ---------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------

JSON = "application/json"
EVENTS = "text/event-stream; charset=utf-8"


@dataclass
class Scenario:
    name: str
    module: str  # the test module (cassettes/<module>/<name>.yaml)
    method: str  # attribute path on the client, e.g. "chat.completions.create"
    kwargs: dict
    respond: Callable[[dict], Any]  # request JSON -> response body (dict or SSE bytes)
    client: dict = field(default_factory=dict)  # client constructor overrides
    azure: bool = False
    status: int = 200  # HTTP status of the answer (an error scenario's body is OpenAI's error JSON)

    @property
    def cassette(self) -> str:
        return f"{self.name}.yaml"

    @property
    def content_type(self) -> str:
        return EVENTS if self.kwargs.get("stream") else JSON


def resolve(client: Any, method: str) -> Any:
    target = client
    for part in method.split("."):
        target = getattr(target, part)
    return target


SCENARIOS: dict = {}


def _add(*items: Scenario) -> None:
    for s in items:
        SCENARIOS[s.name] = s


CHAT_MODEL = "gpt-4o-mini"

_add(
    Scenario(
        "chat_basic", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
             temperature=0.2, top_p=0.9, max_tokens=50, seed=42, stop=["\n\n"],
             frequency_penalty=0.1, presence_penalty=0.2),
        lambda req: chat_completion("chatcmpl-CRc4basic0001", "gpt-4o-mini-2024-07-18",
                                    [choice(0, ANSWER, "stop")], chat_usage(24, 8, cached=16)),
    ),
    Scenario(
        "chat_n2", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "user", "content": "Name a colour."}], n=2, max_tokens=5),
        lambda req: chat_completion("chatcmpl-CRc4n2000001", "gpt-4o-mini-2024-07-18",
                                    [choice(0, "Blue.", "stop"), choice(1, "Crimson red is a", "length")],
                                    chat_usage(11, 7)),
    ),
    Scenario(
        "chat_tools", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "user", "content": TOOLS_QUESTION}], tools=[WEATHER_TOOL, TIME_TOOL]),
        lambda req: chat_completion("chatcmpl-CRc4tools0001", "gpt-4o-mini-2024-07-18", [choice(
            0, None, "tool_calls",
            [tool_call("call_W7x1", "get_weather", WEATHER_ARGS), tool_call("call_T9k2", "get_time", TIME_ARGS)],
        )], chat_usage(88, 46)),
    ),
    Scenario(
        "chat_tool_result", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, tools=[WEATHER_TOOL, TIME_TOOL], messages=[
            {"role": "user", "content": TOOLS_QUESTION},
            {"role": "assistant", "content": None, "tool_calls": [
                tool_call("call_W7x1", "get_weather", WEATHER_ARGS), tool_call("call_T9k2", "get_time", TIME_ARGS)]},
            {"role": "tool", "tool_call_id": "call_W7x1", "content": '{"temp_c": 18, "sky": "sunny"}'},
            {"role": "tool", "tool_call_id": "call_T9k2", "content": '{"time": "14:05"}'},
        ]),
        lambda req: chat_completion("chatcmpl-CRc4tools0002", "gpt-4o-mini-2024-07-18",
                                    [choice(0, TOOLS_ANSWER, "stop")], chat_usage(140, 19)),
    ),
    Scenario(
        "chat_stream", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "user", "content": "Count to three."}], stream=True),
        lambda req: chat_stream_body(include_usage=False),
    ),
    Scenario(
        "chat_stream_usage", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "user", "content": "Count to three."}], stream=True,
             stream_options={"include_usage": True}),
        lambda req: chat_stream_body(include_usage=True),
    ),
    Scenario(
        "chat_stream_tools", "test_openai_chat", "chat.completions.create",
        dict(model=CHAT_MODEL, messages=[{"role": "user", "content": TOOLS_QUESTION}], tools=[WEATHER_TOOL, TIME_TOOL],
             stream=True, stream_options={"include_usage": True}),
        lambda req: chat_stream_tools_body(),
    ),
    Scenario(
        "chat_parse", "test_openai_chat", "chat.completions.parse",
        dict(model="gpt-4o-2024-08-06", messages=[
            {"role": "system", "content": "Extract the event information."},
            {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
            response_format=CalendarEvent),
        lambda req: chat_completion("chatcmpl-CRc4parse0001", "gpt-4o-2024-08-06", [choice(
            0, '{"name":"Science Fair","date":"Friday","participants":["Alice","Bob"]}', "stop")], chat_usage(92, 17)),
    ),
    Scenario(
        "chat_404", "test_openai_chat", "chat.completions.create",
        dict(model="gpt-does-not-exist", messages=[{"role": "user", "content": QUESTION}]),
        lambda req: {"error": {
            "message": "The model `gpt-does-not-exist` does not exist or you do not have access to it.",
            "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
        status=404,
    ),
    Scenario(
        "chat_azure", "test_openai_chat", "chat.completions.create",
        dict(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]),
        lambda req: chat_completion("chatcmpl-CRc4azure0001", "gpt-4o-2024-11-20",
                                    [choice(0, ANSWER, "stop")], chat_usage(14, 8)),
        azure=True,
    ),
    Scenario(
        "responses_basic", "test_openai_responses", "responses.create",
        dict(model="o4-mini", instructions=RESP_INSTRUCTIONS, input=RESP_QUESTION, max_output_tokens=200,
             reasoning={"effort": "low"}),
        lambda req: response_object(
            "resp_68a1c0basic0001", "o4-mini-2025-04-16",
            [{"id": "rs_68a1c0basic0001", "type": "reasoning", "summary": []},
             message_item("msg_68a1c0basic0001", RESP_ANSWER)],
            responses_usage(36, 74, reasoning=64), instructions=RESP_INSTRUCTIONS),
    ),
    Scenario(
        "responses_function_call", "test_openai_responses", "responses.create",
        dict(model=CHAT_MODEL, input=[{"role": "user", "content": "What's the weather in Paris?"}],
             tools=[{"type": "function", "name": "get_weather", "description": "Get the current weather for a city.",
                     "parameters": WEATHER_TOOL["function"]["parameters"]}]),
        lambda req: response_object(
            "resp_68a1c0tools0001", "gpt-4o-mini-2024-07-18",
            [{"id": "fc_68a1c0tools0001", "type": "function_call", "status": "completed", "call_id": "call_R4f8",
              "name": "get_weather", "arguments": WEATHER_ARGS}],
            responses_usage(61, 18)),
    ),
    Scenario(
        "responses_stream", "test_openai_responses", "responses.create",
        dict(model=CHAT_MODEL, input="Say hello world in French.", stream=True),
        lambda req: responses_stream_body(),
    ),
    Scenario(
        "responses_parse", "test_openai_responses", "responses.parse",
        dict(model="gpt-4o-2024-08-06", input=[
            {"role": "system", "content": "Extract the event information."},
            {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
            text_format=CalendarEvent),
        lambda req: response_object(
            "resp_68a1c0parse0001", "gpt-4o-2024-08-06",
            [message_item("msg_68a1c0parse0001", '{"name":"Science Fair","date":"Friday","participants":["Alice","Bob"]}')],
            responses_usage(71, 16), text_format=req.get("text", {}).get("format")),
    ),
    Scenario(
        "embeddings_single", "test_openai_embeddings", "embeddings.create",
        dict(model="text-embedding-3-small", input=EMBED_TEXT, dimensions=16),
        lambda req: embeddings_body(req, 10),
    ),
    Scenario(
        "embeddings_batch", "test_openai_embeddings", "embeddings.create",
        dict(model="text-embedding-3-small", input=EMBED_BATCH, dimensions=8),
        lambda req: embeddings_body(req, 12),
    ),
    Scenario(
        "embeddings_base64", "test_openai_embeddings", "embeddings.create",
        dict(model="text-embedding-3-small", input=EMBED_BATCH[:2], dimensions=8, encoding_format="base64"),
        lambda req: embeddings_body(req, 9),
    ),
    Scenario(
        "embeddings_compatible", "test_openai_embeddings", "embeddings.create",
        dict(model="nomic-embed-text", input=EMBED_BATCH[:2], encoding_format="float"),
        lambda req: embeddings_body(req, 9, dims=4),
        client={"base_url": "http://localhost:11434/v1"},
    ),
    Scenario(
        "completions_legacy", "test_openai_embeddings", "completions.create",
        dict(model="gpt-3.5-turbo-instruct", prompt=LEGACY_PROMPT, max_tokens=16, temperature=0.7),
        lambda req: {"id": "cmpl-CRc4legacy0001", "object": "text_completion", "created": CREATED,
                     "model": "gpt-3.5-turbo-instruct:20230824-v2",
                     "choices": [{"text": LEGACY_ANSWER, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19}},
    ),
    Scenario(
        "completions_stream", "test_openai_embeddings", "completions.create",
        dict(model="gpt-3.5-turbo-instruct", prompt=LEGACY_PROMPT, max_tokens=16, stream=True,
             stream_options={"include_usage": True}),
        lambda req: legacy_stream_body(),
    ),
)


AZURE_ENDPOINT = "https://contoso-eastus.openai.azure.com"
AZURE_API_VERSION = "2024-10-21"


def make_client(scenario: Scenario, is_async: bool, **http_client: Any) -> Any:
    """The client a scenario is recorded and replayed with (a placeholder key: cassettes
    never see it, the scrubber drops auth headers)."""
    import openai

    if scenario.azure:
        cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
        return cls(azure_endpoint=AZURE_ENDPOINT, api_version=AZURE_API_VERSION, api_key="placeholder",
                   max_retries=0, **http_client)
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    kwargs = {"api_key": "placeholder", "max_retries": 0, **scenario.client, **http_client}
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------
# Test helpers (one call path for sync and async clients)
# ---------------------------------------------------------------------------------------


async def call(client: Any, method: str, **kwargs: Any) -> Any:
    """Call ``client.<method>(**kwargs)``, awaiting it for an async client."""
    import inspect

    result = resolve(client, method)(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run(scenario: Scenario, is_async: bool, method: Optional[str] = None, **overrides: Any) -> Any:
    client = make_client(scenario, is_async)
    return await call(client, method or scenario.method, **{**scenario.kwargs, **overrides})


async def drain(stream: Any) -> list:
    """Read a sync or async stream to the end."""
    if hasattr(stream, "__aiter__"):
        return [item async for item in stream]
    return list(stream)


def only_span(exporter: Any) -> Any:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


CAUSAL_PREFIX = "instrumentors.causal."


def attrs(span: Any) -> dict:
    """A span's attributes without the causal registry's digests (tested on their own in
    test_openai_lifecycle.py through the consume/produce contract)."""
    return {k: v for k, v in span.attributes.items() if not k.startswith(CAUSAL_PREFIX)}


def http_module() -> Any:
    """httpx for openai 1.x/2.x, httpx2 for openai 3.x (which no longer depends on httpx)."""
    import importlib

    import openai

    major = int(openai.__version__.split(".")[0])
    return importlib.import_module("httpx2" if major >= 3 else "httpx")


def mock_client(handler: Callable, is_async: bool, **kwargs: Any) -> Any:
    """A client whose HTTP goes to ``handler(request) -> Response`` in-process (edge cases
    a cassette cannot express: errors, failures mid-stream, the context during HTTP)."""
    import openai

    httpx = http_module()
    transport = httpx.MockTransport(handler)
    if is_async:
        return openai.AsyncOpenAI(api_key="placeholder", max_retries=0,
                                  http_client=httpx.AsyncClient(transport=transport), **kwargs)
    return openai.OpenAI(api_key="placeholder", max_retries=0, http_client=httpx.Client(transport=transport), **kwargs)


def reply(scenario_name: str) -> Callable:
    """A MockTransport handler answering like the scenario's cassette."""
    scenario = SCENARIOS[scenario_name]
    httpx = http_module()

    def handler(request: Any) -> Any:
        out = scenario.respond(json.loads(request.content) if request.content else {})
        content = out if isinstance(out, bytes) else json.dumps(out).encode()
        return httpx.Response(scenario.status, headers={"content-type": scenario.content_type}, content=content)

    return handler


def everything_written(span) -> str:
    """Everything a span carries that could hold text (privacy tests search it)."""
    parts = [span.name, repr(dict(span.attributes)), repr(span.status.description)]
    for event in span.events:
        parts.append(event.name + repr(dict(event.attributes)))
    for link in span.links:
        parts.append(repr(dict(link.attributes)))
    return "\n".join(parts)
