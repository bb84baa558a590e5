"""Reading OpenAI requests, responses and stream chunks: the ONE extraction path.

Every way of calling the SDK ends up here: sync or async, streamed or not, parsed
objects (``ChatCompletion``, ``ChatCompletionChunk``, ``Response``...) or the raw JSON
dicts that ``.with_raw_response`` / ``.with_streaming_response`` bodies decode to.
:func:`_g` reads a field from either, so each API is described once:

* the request is always the JSON body the SDK is about to send (``options.json_data``),
  so what we record is exactly what went over the wire, whatever helper built it;
* a complete response and an accumulated stream both become a :class:`Result`, and one
  function turns a Result into span attributes and output messages.

Nothing here touches a span, the config or the network: patch.py decides what to keep.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from .. import _semconv as sc
from .. import _content
from .._readers import field, integer, number, str_list

__all__ = ["OPERATIONS", "Operation", "Result", "operation_for"]


# Shared readers (instrumentors/_readers.py), under the short names this module uses.
_g = field
_num = number
_int = integer
_str_list = str_list

_dict_get = dict.get


def _maybe_json(value: Any) -> Any:
    """Tool-call arguments as the object they encode, or as sent if not valid JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ---------------------------------------------------------------------------------------
# Result: what a response (complete or streamed) told us
# ---------------------------------------------------------------------------------------


class Output:
    """One generated message (a chat choice, a completion choice, a Responses output)."""

    __slots__ = ("role", "text", "tool_calls", "finish_reason")

    def __init__(self, role: str, text: Optional[str], tool_calls: list, finish_reason: Optional[str]) -> None:
        self.role = role
        self.text = text
        self.tool_calls = tool_calls  # [(id, name, arguments or None, type)]
        self.finish_reason = finish_reason


class Result:
    """The response side of one call, independent of how it was delivered."""

    __slots__ = (
        "response_id", "response_model", "outputs", "input_tokens", "output_tokens",
        "cache_read_tokens", "reasoning_tokens", "service_tier", "system_fingerprint",
        "dimension_count", "error_type", "extra",
    )

    def __init__(self) -> None:
        self.response_id: Optional[str] = None
        self.response_model: Optional[str] = None
        self.outputs: list = []
        self.input_tokens: Optional[int] = None
        self.output_tokens: Optional[int] = None
        self.cache_read_tokens: Optional[int] = None
        self.reasoning_tokens: Optional[int] = None
        self.service_tier: Optional[str] = None
        self.system_fingerprint: Optional[str] = None
        self.dimension_count: Optional[int] = None
        self.error_type: Optional[str] = None  # an error reported inside a stream
        self.extra: Optional[dict] = None  # operation-specific attributes (no content)

    # -- span attributes (no content) -----------------------------------------------------
    def attributes(self) -> dict:
        attrs: dict = {}
        if self.response_id is not None:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.response_model is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.outputs:
            reasons = [o.finish_reason for o in self.outputs if o.finish_reason]
            if reasons:
                attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
            calls = [
                {"id": c[0], "name": c[1], "type": c[3]} for o in self.outputs for c in o.tool_calls
            ]
            if calls:
                attrs[sc.RESPONSE_TOOL_CALLS] = json.dumps(calls, separators=(",", ":"))
        if self.input_tokens is not None:
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cache_read_tokens is not None:
            attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
        if self.reasoning_tokens is not None:
            attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
        if self.service_tier is not None:
            attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        if self.system_fingerprint is not None:
            attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = self.system_fingerprint
        if self.dimension_count is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = self.dimension_count
        if self.extra:
            attrs.update(self.extra)
        return attrs

    # -- content (only called with capture on) -------------------------------------------
    def output_messages(self) -> list:
        """``gen_ai.output.messages`` in the convention's JSON shape."""
        messages = []
        for o in self.outputs:
            parts: list = []
            if o.text:
                parts.append({"type": "text", "content": o.text})
            for call_id, name, arguments, _type in o.tool_calls:
                part = {"type": "tool_call", "id": call_id, "name": name}
                if arguments is not None:
                    part["arguments"] = _maybe_json(arguments)
                parts.append(part)
            messages.append({"role": o.role, "parts": parts, "finish_reason": _message_finish(o.finish_reason)})
        return messages

    def produced(self) -> list:
        """(text, kind) pairs for the causal registry: completions, then tool-call arguments."""
        out = []
        for o in self.outputs:
            if o.text:
                out.append((o.text, "generation"))
            for _id, _name, arguments, _type in o.tool_calls:
                if arguments:
                    out.append((arguments, "tool_call"))
        return out


_MESSAGE_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call"}


def _message_finish(reason: Optional[str]) -> str:
    if not reason:
        return "error"
    return _MESSAGE_FINISH.get(reason, reason)


def _chat_usage(result: Result, usage: Any) -> None:
    if usage is None:
        return
    result.input_tokens = _int(_g(usage, "prompt_tokens"))
    result.output_tokens = _int(_g(usage, "completion_tokens"))
    result.cache_read_tokens = _int(_g(_g(usage, "prompt_tokens_details"), "cached_tokens"))
    result.reasoning_tokens = _int(_g(_g(usage, "completion_tokens_details"), "reasoning_tokens"))


def _responses_usage(result: Result, usage: Any) -> None:
    if usage is None:
        return
    result.input_tokens = _int(_g(usage, "input_tokens"))
    result.output_tokens = _int(_g(usage, "output_tokens"))
    result.cache_read_tokens = _int(_g(_g(usage, "input_tokens_details"), "cached_tokens"))
    result.reasoning_tokens = _int(_g(_g(usage, "output_tokens_details"), "reasoning_tokens"))


# ---------------------------------------------------------------------------------------
# Input content helpers (message texts for causal links; messages JSON when captured)
# ---------------------------------------------------------------------------------------

_TEXT_PARTS = {"text", "input_text", "output_text"}


def _part(part: Any) -> Optional[dict]:
    """One user/assistant content part in the convention's shape."""
    ptype = _g(part, "type")
    if ptype in _TEXT_PARTS:
        return {"type": "text", "content": _g(part, "text")}
    if ptype == "refusal":
        return {"type": "text", "content": _g(part, "refusal")}
    if ptype in ("image_url", "input_image"):
        url = _g(part, "image_url")
        url = _g(url, "url") if not isinstance(url, str) else url
        if isinstance(url, str) and not url.startswith("data:"):
            return {"type": "uri", "modality": "image", "uri": url}
        return {"type": "blob", "modality": "image"}  # inline bytes are never copied
    if ptype == "input_audio":
        return {"type": "blob", "modality": "audio"}
    if ptype is None:
        return None
    return {"type": str(ptype)}


def _parts(content: Any) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        return [p for p in (_part(c) for c in content) if p is not None]
    return []


def _texts_of(content: Any, out: list) -> None:
    """Append every text inside a message content (a string or a list of parts)."""
    if isinstance(content, str):
        if content:
            out.append(content)
    elif isinstance(content, (list, tuple)):
        for part in content:
            if _g(part, "type") in _TEXT_PARTS:
                text = _g(part, "text")
                if isinstance(text, str) and text:
                    out.append(text)


_SYSTEM_ROLES = ("system", "developer")


def _system_hash(texts: list, messages: Any, attrs: dict) -> None:
    """``instrumentors.prompt.system_hash``: a fingerprint of the system prompt (the
    system and developer messages' texts, plus any ``texts`` already found, joined with
    "\n" in order), written whether or not content capture is on so the store can
    group generations by prompt version. Only the hash is kept, never the text."""
    for message in messages or ():
        if _g(message, "role") in _SYSTEM_ROLES:
            _texts_of(_g(message, "content"), texts)
    if texts:
        attrs[sc.SYSTEM_PROMPT_HASH] = _content.content_hash(texts[0] if len(texts) == 1 else "\n".join(texts))


def _output_type(fmt: Any) -> Optional[str]:
    ftype = _g(fmt, "type")
    if ftype in ("json_schema", "json_object"):
        return "json"
    if ftype == "text":
        return "text"
    return None


# (request key, attribute, reader) for the plain numeric sampling parameters.
_SAMPLING_PARAMETERS = (
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE, number),
    ("top_p", sc.GEN_AI_REQUEST_TOP_P, number),
    ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, number),
    ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY, number),
    ("seed", sc.GEN_AI_REQUEST_SEED, integer),
)


def _sampling(body: dict, attrs: dict) -> None:
    """Request parameters shared by chat, completions and responses."""
    for key, attribute, read in _SAMPLING_PARAMETERS:
        value = read(body.get(key))
        if value is not None:
            attrs[attribute] = value
    stop = body.get("stop")
    if stop is not None:
        stop = _str_list(stop)
        if stop:
            attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    n = _int(body.get("n"))
    if n is not None and n != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = n
    tier = body.get("service_tier")
    if isinstance(tier, str) and tier != "auto":  # the convention: only a tier other than auto
        attrs[sc.OPENAI_REQUEST_SERVICE_TIER] = tier


# ---------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------


class Operation:
    """How one endpoint's requests and responses are read."""

    name = ""
    span_kind = sc.KIND_LLM
    streams = True

    def caller_body(self, body: dict, options: Any) -> dict:
        """The request as the caller made it: ``body`` less what the SDK filled in on its
        own (never mutated; the SDK sends it)."""
        return body

    def request_attributes(self, body: dict, attrs: dict) -> None:
        """Add the request's non-content attributes to ``attrs``."""

    def input_texts(self, body: dict) -> list:
        """Every input text (raw) for the causal registry."""
        return []

    def input_messages(self, body: dict) -> Optional[list]:
        """``gen_ai.input.messages`` (capture on only)."""
        return None

    def system_instructions(self, body: dict) -> Optional[list]:
        return None

    def tools(self, body: dict) -> Any:
        """The tools the request offers, as sent (``_content.tool_definitions`` decides
        what of them a span may carry)."""
        return None

    def result(self, response: Any, keep_text: bool) -> Result:
        """A complete response (parsed object or raw dict) as a Result."""
        return Result()

    def accumulator(self, keep_text: bool) -> "Accumulator":
        return Accumulator()


class Accumulator:
    """Folds stream chunks (objects or dicts) into a Result."""

    def add(self, chunk: Any) -> None:
        pass

    def result(self) -> Result:
        return Result()


# -- chat.completions -------------------------------------------------------------------


class _Chat(Operation):
    name = sc.OP_CHAT

    def request_attributes(self, body: dict, attrs: dict) -> None:
        attrs[sc.OPENAI_API_TYPE] = sc.OPENAI_API_CHAT_COMPLETIONS
        _sampling(body, attrs)
        max_tokens = _int(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = _int(body.get("max_tokens"))
        if max_tokens is not None:
            attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        fmt = body.get("response_format")
        if fmt is not None:
            out = _output_type(fmt)
            if out is not None:
                attrs[sc.GEN_AI_OUTPUT_TYPE] = out
        _system_hash([], body.get("messages"), attrs)

    def tools(self, body: dict) -> Any:
        return body.get("tools") or body.get("functions")

    def input_texts(self, body: dict) -> list:
        out: list = []
        for message in body.get("messages") or ():
            _texts_of(_g(message, "content"), out)
        return out

    def input_messages(self, body: dict) -> Optional[list]:
        messages = []
        for message in body.get("messages") or ():
            role = _g(message, "role") or "user"
            content = _g(message, "content")
            if role in ("tool", "function"):
                parts = [{
                    "type": "tool_call_response",
                    "id": _g(message, "tool_call_id") or _g(message, "name"),
                    "response": content if isinstance(content, str) else [
                        p for p in _parts(content)
                    ],
                }]
            else:
                parts = _parts(content)
            for call in _g(message, "tool_calls") or ():
                fn = _g(call, "function")
                parts.append({
                    "type": "tool_call", "id": _g(call, "id"), "name": _g(fn, "name"),
                    "arguments": _maybe_json(_g(fn, "arguments")),
                })
            legacy = _g(message, "function_call")
            if legacy is not None:
                parts.append({"type": "tool_call", "id": None, "name": _g(legacy, "name"),
                              "arguments": _maybe_json(_g(legacy, "arguments"))})
            messages.append({"role": role, "parts": parts})
        return messages

    def result(self, response: Any, keep_text: bool) -> Result:
        result = Result()
        result.response_id = _g(response, "id")
        result.response_model = _g(response, "model")
        result.service_tier = _g(response, "service_tier")
        result.system_fingerprint = _g(response, "system_fingerprint")
        for choice in _g(response, "choices") or ():
            message = _g(choice, "message")
            calls = []
            for call in _g(message, "tool_calls") or ():
                fn = _g(call, "function")
                calls.append((_g(call, "id"), _g(fn, "name"),
                              _g(fn, "arguments") if keep_text else None, _g(call, "type") or "function"))
            legacy = _g(message, "function_call")
            if legacy is not None:
                calls.append((None, _g(legacy, "name"), _g(legacy, "arguments") if keep_text else None, "function"))
            text = None
            if keep_text:
                text = _g(message, "content") or _g(message, "refusal")
            result.outputs.append(Output(_g(message, "role") or "assistant", text, calls, _g(choice, "finish_reason")))
        _chat_usage(result, _g(response, "usage"))
        return result

    def accumulator(self, keep_text: bool) -> "Accumulator":
        return _ChoicesAccumulator(keep_text, chat=True)


class _ChoiceState:
    __slots__ = ("role", "text", "tools", "finish")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list = []
        self.tools: dict = {}  # index -> [id, name, [argument pieces], type]
        self.finish: Optional[str] = None


class _ChoicesAccumulator(Accumulator):
    """Chat chunks (``choices[].delta``) and legacy completion chunks (``choices[].text``):
    content and tool-call argument pieces are joined per choice and per tool-call index,
    so parallel tool calls streamed interleaved come out whole."""

    __slots__ = ("keep_text", "chat", "id", "model", "usage", "fingerprint", "tier", "choices")

    def __init__(self, keep_text: bool, chat: bool) -> None:
        self.keep_text = keep_text
        self.chat = chat
        self.id = None
        self.model = None
        self.usage = None
        self.fingerprint = None
        self.tier = None
        self.choices: dict = {}

    def add(self, chunk: Any) -> None:
        # Hot path (once per chunk): one C-level getter for the whole chunk tree, chosen by
        # whether it is a parsed object or a raw JSON dict; header fields read once.
        g = _dict_get if type(chunk) is dict else getattr
        if self.id is None:
            self.id = g(chunk, "id", None)
            self.model = g(chunk, "model", None)
            self.fingerprint = g(chunk, "system_fingerprint", None)
            self.tier = g(chunk, "service_tier", None)
        usage = g(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        choices = g(chunk, "choices", None)
        if not choices:
            return
        keep = self.keep_text
        for choice in choices:
            index = g(choice, "index", None) or 0
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = _ChoiceState()
                first = g(choice, "delta", None) if self.chat else None
                if first is not None:  # the role comes with a choice's first delta
                    state.role = g(first, "role", None) or state.role
            if self.chat:
                delta = g(choice, "delta", None)
                if delta is not None:
                    if keep:
                        piece = g(delta, "content", None) or g(delta, "refusal", None)
                        if piece:
                            state.text.append(piece)
                    calls = g(delta, "tool_calls", None)
                    if calls:
                        for call in calls:
                            position = g(call, "index", None) or 0
                            slot = state.tools.get(position)
                            if slot is None:
                                slot = state.tools[position] = [None, None, [], "function"]
                            call_id = g(call, "id", None)
                            if call_id:
                                slot[0] = call_id
                            ctype = g(call, "type", None)
                            if ctype:
                                slot[3] = ctype
                            fn = g(call, "function", None)
                            if fn is not None:
                                name = g(fn, "name", None)
                                if name:
                                    slot[1] = name
                                if keep:
                                    piece = g(fn, "arguments", None)
                                    if piece:
                                        slot[2].append(piece)
                    legacy = g(delta, "function_call", None)
                    if legacy is not None:
                        slot = state.tools.get(-1)
                        if slot is None:
                            slot = state.tools[-1] = [None, None, [], "function"]
                        name = g(legacy, "name", None)
                        if name:
                            slot[1] = name
                        if keep:
                            piece = g(legacy, "arguments", None)
                            if piece:
                                slot[2].append(piece)
            elif keep:
                piece = g(choice, "text", None)
                if piece:
                    state.text.append(piece)
            reason = g(choice, "finish_reason", None)
            if reason:
                state.finish = reason

    def result(self) -> Result:
        result = Result()
        result.response_id = self.id
        result.response_model = self.model
        result.system_fingerprint = self.fingerprint
        result.service_tier = self.tier
        keep = self.keep_text
        for index in sorted(self.choices):
            state = self.choices[index]
            calls = [
                (slot[0], slot[1], "".join(slot[2]) if keep else None, slot[3])
                for _i, slot in sorted(state.tools.items())
            ]
            text = "".join(state.text) if keep and state.text else None
            result.outputs.append(Output(state.role, text, calls, state.finish))
        _chat_usage(result, self.usage)
        return result


# -- legacy completions -----------------------------------------------------------------


class _Completions(Operation):
    name = sc.OP_TEXT_COMPLETION

    def request_attributes(self, body: dict, attrs: dict) -> None:
        _sampling(body, attrs)
        max_tokens = _int(body.get("max_tokens"))
        if max_tokens is not None:
            attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens

    def input_texts(self, body: dict) -> list:
        return [p for p in (_str_list(body.get("prompt")) or ()) if p]

    def input_messages(self, body: dict) -> Optional[list]:
        prompts = _str_list(body.get("prompt")) or []
        return [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompts]

    def result(self, response: Any, keep_text: bool) -> Result:
        result = Result()
        result.response_id = _g(response, "id")
        result.response_model = _g(response, "model")
        result.system_fingerprint = _g(response, "system_fingerprint")
        for choice in _g(response, "choices") or ():
            text = _g(choice, "text") if keep_text else None
            result.outputs.append(Output("assistant", text, [], _g(choice, "finish_reason")))
        _chat_usage(result, _g(response, "usage"))
        return result

    def accumulator(self, keep_text: bool) -> Accumulator:
        return _ChoicesAccumulator(keep_text, chat=False)


# -- embeddings -------------------------------------------------------------------------


class _Embeddings(Operation):
    name = sc.OP_EMBEDDINGS
    span_kind = sc.KIND_EMBEDDING
    streams = False

    def caller_body(self, body: dict, options: Any) -> dict:
        """Without ``encoding_format`` when the caller passed none: ``embeddings.create``
        then sends ``base64`` itself and decodes the answer to floats, so reporting
        ``encoding_formats=["base64"]`` would describe the SDK, not the request."""
        if "encoding_format" in body and _caller_encoding_format(getattr(options, "post_parser", None)) is False:
            return {k: v for k, v in body.items() if k != "encoding_format"}
        return body

    def request_attributes(self, body: dict, attrs: dict) -> None:
        fmt = body.get("encoding_format")
        if isinstance(fmt, str):
            attrs[sc.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt]
        dims = _int(body.get("dimensions"))
        if dims is not None:
            attrs[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dims

    def input_texts(self, body: dict) -> list:
        return [t for t in (_str_list(body.get("input")) or ()) if t]

    def result(self, response: Any, keep_text: bool) -> Result:
        result = Result()
        result.response_model = _g(response, "model")
        usage = _g(response, "usage")
        result.input_tokens = _int(_g(usage, "prompt_tokens"))
        data = _g(response, "data")
        if data:
            vector = _g(data[0], "embedding")
            if isinstance(vector, str):  # base64 float32, as sent on the wire
                pad = 2 if vector.endswith("==") else 1 if vector.endswith("=") else 0
                result.dimension_count = (len(vector) * 3 // 4 - pad) // 4
            elif vector is not None:
                try:
                    result.dimension_count = len(vector)
                except TypeError:
                    pass
        return result


# -- moderations ------------------------------------------------------------------------


class _Moderations(Operation):
    """``moderations.create``: an output validator's check. The checked texts are inputs
    (so the span links to the generation it checked); only flags and category names are
    recorded, never the text."""

    name = sc.OP_MODERATION
    span_kind = sc.KIND_GUARDRAIL
    streams = False

    def input_texts(self, body: dict) -> list:
        value = body.get("input")
        if isinstance(value, str):
            return [value] if value else []
        texts: list = []
        for item in value if isinstance(value, list) else ():
            if isinstance(item, str):
                if item:
                    texts.append(item)
            elif _g(item, "type") == "text":
                text = _g(item, "text")
                if isinstance(text, str) and text:
                    texts.append(text)
        return texts

    def result(self, response: Any, keep_text: bool) -> Result:
        result = Result()
        result.response_id = _g(response, "id")
        result.response_model = _g(response, "model")
        results = _g(response, "results")
        if isinstance(results, list):
            flagged = False
            categories: set = set()
            for item in results:
                if _g(item, "flagged") is True:
                    flagged = True
                found = _g(item, "categories")
                if found is not None and not isinstance(found, dict):
                    found = found.model_dump(by_alias=True) if hasattr(found, "model_dump") else {}
                for name, value in (found or {}).items():
                    if value is True:
                        categories.add(str(name))
            result.extra = {
                sc.MODERATION_FLAGGED: flagged,
                sc.MODERATION_FLAGGED_CATEGORIES: sorted(categories),
                sc.MODERATION_RESULT_COUNT: len(results),
            }
        return result


# -- responses --------------------------------------------------------------------------

_RESPONSES_FINAL = {"response.completed", "response.incomplete", "response.failed"}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


class _Responses(Operation):
    name = sc.OP_CHAT

    def request_attributes(self, body: dict, attrs: dict) -> None:
        attrs[sc.OPENAI_API_TYPE] = sc.OPENAI_API_RESPONSES
        _sampling(body, attrs)
        max_tokens = _int(body.get("max_output_tokens"))
        if max_tokens is not None:
            attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        text = body.get("text")
        if text is not None:
            out = _output_type(_g(text, "format"))
            if out is not None:
                attrs[sc.GEN_AI_OUTPUT_TYPE] = out
        conversation = body.get("conversation")
        conversation = conversation if isinstance(conversation, str) else _g(conversation, "id")
        if isinstance(conversation, str):
            attrs[sc.GEN_AI_CONVERSATION_ID] = conversation
        instructions = body.get("instructions")
        items = body.get("input")
        _system_hash([instructions] if isinstance(instructions, str) and instructions else [],
                     items if isinstance(items, (list, tuple)) else None, attrs)

    def tools(self, body: dict) -> Any:
        return body.get("tools")

    def input_texts(self, body: dict) -> list:
        out: list = []
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            out.append(instructions)
        items = body.get("input")
        if isinstance(items, str):
            if items:
                out.append(items)
            return out
        for item in items or ():
            itype = _g(item, "type")
            if itype == "function_call_output":
                _texts_of(_g(item, "output"), out)
            elif itype in (None, "message"):
                _texts_of(_g(item, "content"), out)
        return out

    def system_instructions(self, body: dict) -> Optional[list]:
        instructions = body.get("instructions")
        if isinstance(instructions, str) and instructions:
            return [{"type": "text", "content": instructions}]
        return None

    def input_messages(self, body: dict) -> Optional[list]:
        items = body.get("input")
        if isinstance(items, str):
            return [{"role": "user", "parts": [{"type": "text", "content": items}]}]
        messages = []
        for item in items or ():
            itype = _g(item, "type")
            if itype in (None, "message"):
                messages.append({"role": _g(item, "role") or "user", "parts": _parts(_g(item, "content"))})
            elif itype == "function_call":
                messages.append({"role": "assistant", "parts": [{
                    "type": "tool_call", "id": _g(item, "call_id"), "name": _g(item, "name"),
                    "arguments": _maybe_json(_g(item, "arguments")),
                }]})
            elif itype == "function_call_output":
                output = _g(item, "output")
                messages.append({"role": "tool", "parts": [{
                    "type": "tool_call_response", "id": _g(item, "call_id"),
                    "response": output if isinstance(output, str) else _parts(output),
                }]})
        return messages

    def result(self, response: Any, keep_text: bool) -> Result:
        result = Result()
        result.response_id = _g(response, "id")
        result.response_model = _g(response, "model")
        result.service_tier = _g(response, "service_tier")
        texts: list = []
        calls: list = []
        for item in _g(response, "output") or ():
            _responses_item(item, keep_text, texts, calls)
        status = _g(response, "status")
        result.outputs.append(Output("assistant", "".join(texts) if texts else None, calls,
                                     _responses_finish(status, _g(response, "incomplete_details"), calls)))
        if status == "failed":
            result.error_type = _g(_g(response, "error"), "code") or "failed"
        _responses_usage(result, _g(response, "usage"))
        return result

    def accumulator(self, keep_text: bool) -> Accumulator:
        return _ResponsesAccumulator(self, keep_text)


def _caller_encoding_format(parser: Any) -> Optional[bool]:
    """Whether the caller of ``embeddings.create`` passed ``encoding_format``, read from
    the response parser the SDK attaches to that request: a closure over the argument
    (openai 1.x/2.x) or ``functools.partial(parse_embedding_response,
    encoding_format=...)`` (3.x). None when the request did not come from that method
    (``client.post``, another SDK shape): the body is then what the caller sent."""
    keywords = getattr(parser, "keywords", None)
    if isinstance(keywords, dict) and callable(getattr(parser, "func", None)):
        if "encoding_format" not in keywords:
            return None
        return isinstance(keywords["encoding_format"], str)
    code = getattr(parser, "__code__", None)
    cells = getattr(parser, "__closure__", None)
    names = getattr(code, "co_freevars", ())
    if not cells or "encoding_format" not in names:
        return None
    try:
        value = cells[names.index("encoding_format")].cell_contents
    except (ValueError, IndexError):  # an empty cell
        return None
    return isinstance(value, str)


def _responses_item(item: Any, keep_text: bool, texts: list, calls: list) -> None:
    itype = _g(item, "type")
    if itype == "message":
        if keep_text:
            for part in _g(item, "content") or ():
                ptype = _g(part, "type")
                if ptype == "output_text":
                    texts.append(_g(part, "text") or "")
                elif ptype == "refusal":
                    texts.append(_g(part, "refusal") or "")
    elif itype == "function_call":
        calls.append((_g(item, "call_id"), _g(item, "name"),
                      _g(item, "arguments") if keep_text else None, "function"))
    elif itype == "custom_tool_call":
        calls.append((_g(item, "call_id"), _g(item, "name"), _g(item, "input") if keep_text else None, "custom"))
    elif isinstance(itype, str) and itype.endswith("_call"):
        # built-in tools (web_search_call, file_search_call...): which tool ran, never its payload
        calls.append((_g(item, "id"), itype[:-5], None, itype[:-5]))


def _responses_finish(status: Any, incomplete: Any, calls: list) -> Optional[str]:
    """A Responses status in chat's finish-reason vocabulary, so one meaning has one value
    on every span (``tool_calls``; output messages map it to the schema's ``tool_call``)."""
    if status == "completed":
        return sc.FINISH_TOOL_CALLS if any(c[3] in ("function", "custom") for c in calls) else "stop"
    if status == "incomplete":
        reason = _g(incomplete, "reason")
        return _INCOMPLETE.get(reason, reason or "length")
    if status == "failed":
        return "error"
    return status if isinstance(status, str) else None


class _ResponsesAccumulator(Accumulator):
    """Responses stream events: the final ``response.completed``/``incomplete``/``failed``
    event carries the whole response; until then, deltas and finished items are kept so
    a stream abandoned midway still reports what it produced."""

    __slots__ = ("op", "keep_text", "final", "partial", "texts", "items", "error")

    def __init__(self, op: _Responses, keep_text: bool) -> None:
        self.op = op
        self.keep_text = keep_text
        self.final = None
        self.partial = None
        self.texts: dict = {}
        self.items: dict = {}
        self.error: Optional[str] = None

    def add(self, event: Any) -> None:
        etype = _g(event, "type")
        if etype == "response.output_text.delta":
            if self.keep_text:
                self.texts.setdefault(_g(event, "output_index") or 0, []).append(_g(event, "delta") or "")
        elif etype == "response.output_item.done":
            self.items[_g(event, "output_index") or 0] = _g(event, "item")
        elif etype in _RESPONSES_FINAL:
            self.final = _g(event, "response")
        elif etype in ("response.created", "response.in_progress"):
            self.partial = _g(event, "response")
        elif etype == "error":
            self.error = _g(event, "code") or "error"

    def result(self) -> Result:
        if self.final is not None:
            result = self.op.result(self.final, self.keep_text)
        else:
            result = Result()
            result.response_id = _g(self.partial, "id")
            result.response_model = _g(self.partial, "model")
            texts: list = []
            calls: list = []
            for index in sorted(set(self.items) | set(self.texts)):
                item = self.items.get(index)
                if item is not None:
                    _responses_item(item, self.keep_text, texts, calls)
                elif index in self.texts:
                    texts.append("".join(self.texts[index]))
            if texts or calls:
                result.outputs.append(Output("assistant", "".join(texts) or None, calls, None))
        if self.error is not None:
            result.error_type = self.error
        return result


OPERATIONS: dict = {
    "/chat/completions": _Chat(),
    "/completions": _Completions(),
    "/embeddings": _Embeddings(),
    "/responses": _Responses(),
    "/moderations": _Moderations(),
}


def operation_for(path: Any) -> Optional[Operation]:
    """The operation a request path is for (``/deployments/{name}/...`` on Azure too)."""
    op = OPERATIONS.get(path)
    if op is None and isinstance(path, str) and path.startswith("/deployments/"):
        rest = path.split("/", 3)
        if len(rest) == 4:
            op = OPERATIONS.get("/" + rest[3])
    return op
