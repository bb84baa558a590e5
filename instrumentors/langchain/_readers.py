"""Readers of LangChain objects: turn callback payloads (serialized dicts, messages,
``LLMResult``, documents, runnable inputs) into span attributes.

Why a module of pure functions: the callback handler, the vector-store wrappers and the
embeddings wrappers all describe the same objects; each rule (which key holds the
model, how a message becomes the convention's JSON, where usage lives) exists once
here and is unit-testable without spans. Nothing here imports langchain at module
level, so the package imports without it.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from .. import _content
from .. import _semconv as sc

# ---------------------------------------------------------------------------------------
# Provider names (gen_ai.provider.name) derived from the model class
# ---------------------------------------------------------------------------------------

#: LangChain class name -> gen_ai.provider.name (the convention's well-known values).
PROVIDER_BY_CLASS = {
    "ChatOpenAI": "openai",
    "OpenAI": "openai",
    "OpenAIEmbeddings": "openai",
    "AzureChatOpenAI": "azure.ai.openai",
    "AzureOpenAI": "azure.ai.openai",
    "AzureOpenAIEmbeddings": "azure.ai.openai",
    "AzureAIChatCompletionsModel": "azure.ai.inference",
    "AzureAIEmbeddingsModel": "azure.ai.inference",
    "ChatAnthropic": "anthropic",
    "ChatAnthropicMessages": "anthropic",
    "AnthropicLLM": "anthropic",
    "ChatAnthropicVertex": "gcp.vertex_ai",
    "ChatVertexAI": "gcp.vertex_ai",
    "VertexAI": "gcp.vertex_ai",
    "VertexAIEmbeddings": "gcp.vertex_ai",
    "ChatGoogleGenerativeAI": "gcp.gen_ai",
    "GoogleGenerativeAI": "gcp.gen_ai",
    "GoogleGenerativeAIEmbeddings": "gcp.gen_ai",
    "ChatBedrock": "aws.bedrock",
    "ChatBedrockConverse": "aws.bedrock",
    "BedrockLLM": "aws.bedrock",
    "BedrockEmbeddings": "aws.bedrock",
    "ChatMistralAI": "mistral_ai",
    "MistralAIEmbeddings": "mistral_ai",
    "ChatCohere": "cohere",
    "CohereEmbeddings": "cohere",
    "ChatGroq": "groq",
    "ChatDeepSeek": "deepseek",
    "ChatXAI": "x_ai",
    "ChatPerplexity": "perplexity",
    "ChatWatsonx": "ibm.watsonx.ai",
    "WatsonxLLM": "ibm.watsonx.ai",
    "WatsonxEmbeddings": "ibm.watsonx.ai",
    "ChatOllama": "ollama",
    "OllamaLLM": "ollama",
    "OllamaEmbeddings": "ollama",
}

#: LangChain's own ``ls_provider`` metadata -> convention value, where they differ.
_PROVIDER_BY_LS = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}


def set_span_attributes(span: Any, attributes: dict) -> None:
    """All non-None attributes in one SDK call (one lock, one validation pass)."""
    values = {k: v for k, v in attributes.items() if v is not None}
    if values:
        span.set_attributes(values)


def class_name(serialized: Any) -> Optional[str]:
    """The class name LangChain put in a callback's ``serialized`` dict (``id[-1]``)."""
    if isinstance(serialized, dict):
        ident = serialized.get("id")
        if isinstance(ident, (list, tuple)) and ident:
            return str(ident[-1])
        name = serialized.get("name")
        if isinstance(name, str):
            return name
    return None


def _fallback_provider(name: str) -> str:
    """LangChain's own rule for ``ls_provider``: the class name without Chat/Embeddings."""
    lowered = name
    for affix in ("Chat", "Embeddings", "Embedding", "LLM"):
        if lowered.startswith(affix) and len(lowered) > len(affix):
            lowered = lowered[len(affix):]
        elif lowered.endswith(affix) and len(lowered) > len(affix):
            lowered = lowered[: -len(affix)]
    return lowered.lower() or "langchain"


def provider_name(cls_name: Optional[str], metadata: Optional[dict] = None, mro_names: Iterable[str] = ()) -> str:
    """gen_ai.provider.name: the class table first (also walking base classes), then
    LangChain's ``ls_provider`` metadata, then the class name."""
    for name in (cls_name, *mro_names):
        if name and name in PROVIDER_BY_CLASS:
            return PROVIDER_BY_CLASS[name]
    ls = (metadata or {}).get("ls_provider")
    if isinstance(ls, str) and ls:
        return _PROVIDER_BY_LS.get(ls.lower(), ls.lower())
    if cls_name:
        return _fallback_provider(cls_name)
    return "langchain"


# ---------------------------------------------------------------------------------------
# Request parameters
# ---------------------------------------------------------------------------------------

_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")

_PARAM_KEYS = {
    "temperature": sc.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": sc.GEN_AI_REQUEST_TOP_P,
    "top_k": sc.GEN_AI_REQUEST_TOP_K,
    "max_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "max_new_tokens": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "num_predict": sc.GEN_AI_REQUEST_MAX_TOKENS,
    "seed": sc.GEN_AI_REQUEST_SEED,
    "frequency_penalty": sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "service_tier": sc.OPENAI_REQUEST_SERVICE_TIER,
}


def model_name(params: Optional[dict], metadata: Optional[dict] = None) -> Optional[str]:
    for key in _MODEL_KEYS:
        value = (params or {}).get(key)
        if isinstance(value, str) and value:
            return value
    value = (metadata or {}).get("ls_model_name")
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    return value if isinstance(value, (int, float)) else None


def request_attributes(params: Optional[dict], options: Optional[dict], metadata: Optional[dict]) -> dict:
    """gen_ai.request.* from invocation params (with ``ls_*`` metadata as a fallback)."""
    params = params or {}
    attrs: dict = {}
    model = model_name(params, metadata)
    if model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    for key, value in params.items():
        attr = _PARAM_KEYS.get(key)
        if attr is None or value is None:
            continue
        if attr == sc.OPENAI_REQUEST_SERVICE_TIER:
            if isinstance(value, str) and value != "auto":  # the convention: not "auto"
                attrs[attr] = value
            continue
        value = _number(value)
        if value is not None and attr not in attrs:
            attrs[attr] = value
    meta = metadata or {}
    if sc.GEN_AI_REQUEST_TEMPERATURE not in attrs and _number(meta.get("ls_temperature")) is not None:
        attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = meta["ls_temperature"]
    if sc.GEN_AI_REQUEST_MAX_TOKENS not in attrs and _number(meta.get("ls_max_tokens")) is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = meta["ls_max_tokens"]
    choices = _number(params.get("n", params.get("candidate_count")))
    if choices is not None and choices != 1:
        attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    stop = params.get("stop") or params.get("stop_sequences") or (options or {}).get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, (list, tuple)) and stop and all(isinstance(s, str) for s in stop):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    if params.get("stream") is True:  # the convention: set only when the request streams
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    definitions = _content.tool_definitions(params.get("tools") or params.get("functions"))
    if definitions is not None:
        attrs[sc.GEN_AI_TOOL_DEFINITIONS] = definitions
    fmt = (options or {}).get("ls_structured_output_format") or params.get("response_format")
    if fmt:
        attrs[sc.GEN_AI_OUTPUT_TYPE] = "json"
    return attrs


# ---------------------------------------------------------------------------------------
# Messages -> the convention's JSON (gen_ai.input.messages / gen_ai.output.messages)
# ---------------------------------------------------------------------------------------

_ROLE_BY_TYPE = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "tool",
    "FunctionMessageChunk": "tool",
}


def message_role(message: Any) -> str:
    mtype = getattr(message, "type", None)
    if mtype in ("chat", "ChatMessageChunk"):
        return str(getattr(message, "role", "user"))
    return _ROLE_BY_TYPE.get(mtype, str(mtype or "user"))


def _content_parts(content: Any) -> list:
    """Convention parts for a message's ``content`` (a string or a list of blocks)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "content": block})
            elif isinstance(block, dict):
                btype = block.get("type")
                if btype == "text" or (btype is None and "text" in block):
                    parts.append({"type": "text", "content": block.get("text", "")})
                elif btype in ("reasoning", "thinking"):
                    parts.append({"type": "reasoning", "content": block.get("reasoning") or block.get("thinking") or ""})
                elif btype in ("tool_call", "tool_use", "function_call"):
                    continue  # reported from message.tool_calls
                else:
                    parts.append({"type": str(btype or "unknown")})
    return parts


def content_text(content: Any) -> str:
    """The plain text inside a message content (what the causal registry fingerprints)."""
    if isinstance(content, str):
        return content
    texts = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return "\n".join(texts)


def _tool_call_parts(message: Any) -> list:
    parts = []
    for call in getattr(message, "tool_calls", None) or ():
        if isinstance(call, dict):
            parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                          "arguments": call.get("args")})
    return parts


def message_json(message: Any) -> dict:
    """One LangChain message as the convention's ``{"role", "parts"}`` object."""
    role = message_role(message)
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response",
                                            "id": getattr(message, "tool_call_id", None),
                                            "response": content_text(getattr(message, "content", ""))}]}
    parts = _content_parts(getattr(message, "content", None)) + _tool_call_parts(message)
    out: dict = {"role": role, "parts": parts}
    name = getattr(message, "name", None)
    if isinstance(name, str) and name:
        out["name"] = name
    return out


def message_texts(messages: Iterable[Any]) -> list:
    """Raw texts of every message (prompt side of the causal registry)."""
    texts = []
    for message in messages:
        text = content_text(getattr(message, "content", ""))
        if text:
            texts.append(text)
        for call in getattr(message, "tool_calls", None) or ():
            if isinstance(call, dict) and call.get("args") is not None:
                texts.append(_content.dumps(call.get("args")))
    return texts


# ---------------------------------------------------------------------------------------
# LLMResult -> response attributes, usage, output messages, produced texts
# ---------------------------------------------------------------------------------------


_MESSAGE_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call", "tool_use": "tool_call",
                   "end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}


def message_finish_reason(reason: Optional[str]) -> str:
    """An output message's ``finish_reason`` in the convention's vocabulary. LangChain
    returned normally, so a model that reports none finished with "stop"."""
    if not reason:
        return "stop"
    return _MESSAGE_FINISH.get(reason, reason)


class LLMOutcome:
    """What one run's ``LLMResult`` says, ready to be written on the span."""

    __slots__ = ("attributes", "input_tokens", "output_tokens", "extra_usage", "output_messages",
                 "generations", "tool_calls")

    def __init__(self) -> None:
        self.attributes: dict = {}
        self.input_tokens: Optional[int] = None
        self.output_tokens: Optional[int] = None
        self.extra_usage: dict = {}
        self.output_messages: list = []
        self.generations: list = []  # raw completion texts
        self.tool_calls: list = []  # raw tool-call argument JSON texts


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_from_metadata(usage: dict, outcome: LLMOutcome) -> None:
    outcome.input_tokens = _int(usage.get("input_tokens"))
    outcome.output_tokens = _int(usage.get("output_tokens"))
    details = usage.get("input_token_details") or {}
    if _int(details.get("cache_read")) is not None:
        outcome.extra_usage[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = details["cache_read"]
    if _int(details.get("cache_creation")) is not None:
        outcome.extra_usage[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = details["cache_creation"]
    out_details = usage.get("output_token_details") or {}
    if _int(out_details.get("reasoning")) is not None:
        outcome.extra_usage[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = out_details["reasoning"]


def _usage_from_llm_output(usage: dict, outcome: LLMOutcome) -> None:
    outcome.input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    outcome.output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if _int(cached) is not None:
        outcome.extra_usage[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if _int(reasoning) is not None:
        outcome.extra_usage[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning


def _is_langchain_run_id(value: str) -> bool:
    return value.startswith("run-") or value.startswith("lc_run-") or value.startswith("lc_")


def read_llm_result(response: Any, keep_messages: bool = True, keep_texts: bool = True) -> LLMOutcome:
    """Response model/id/finish reasons, usage, output messages (``keep_messages``: for
    content capture) and raw texts (``keep_texts``: for the causal registry) of one run."""
    outcome = LLMOutcome()
    llm_output = getattr(response, "llm_output", None) or {}
    generations = getattr(response, "generations", None) or []
    gens = [g for batch in generations for g in (batch or [])]
    finish_reasons = []
    call_summaries: list = []
    response_id = llm_output.get("id") if isinstance(llm_output.get("id"), str) else None
    response_model = llm_output.get("model_name") or llm_output.get("model")
    fingerprint = llm_output.get("system_fingerprint")
    service_tier = None
    for gen in gens:
        message = getattr(gen, "message", None)
        info = getattr(gen, "generation_info", None) or {}
        meta = getattr(message, "response_metadata", None) or {}
        finish = info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
        if finish is not None:
            finish_reasons.append(str(finish))
        response_model = response_model or meta.get("model_name") or meta.get("model")
        fingerprint = fingerprint or meta.get("system_fingerprint")
        service_tier = service_tier or meta.get("service_tier")
        if response_id is None:
            rid = meta.get("id") or info.get("id")
            if not rid:
                mid = getattr(message, "id", None)
                rid = mid if isinstance(mid, str) and not _is_langchain_run_id(mid) else None
            response_id = rid if isinstance(rid, str) else None
        if message is not None:
            usage = getattr(message, "usage_metadata", None)
            if usage and outcome.input_tokens is None and outcome.output_tokens is None:
                _usage_from_metadata(dict(usage), outcome)
            if keep_messages:
                msg = message_json(message)
                msg["role"] = "assistant"
                msg["finish_reason"] = message_finish_reason(finish)
                outcome.output_messages.append(msg)
            text = content_text(getattr(message, "content", "")) if keep_texts else ""
            for call in getattr(message, "tool_calls", None) or ():
                if isinstance(call, dict):
                    if keep_texts:
                        outcome.tool_calls.append(_content.dumps(call.get("args")))
                    call_summaries.append({"id": call.get("id"), "name": call.get("name"), "type": "function"})
        else:
            text = getattr(gen, "text", "") or ""
            if keep_messages:
                outcome.output_messages.append({
                    "role": "assistant", "parts": [{"type": "text", "content": text}] if text else [],
                    "finish_reason": message_finish_reason(finish)})
        if text and keep_texts:
            outcome.generations.append(text)
    if outcome.input_tokens is None and outcome.output_tokens is None:
        usage = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(usage, dict) and usage:
            _usage_from_llm_output(usage, outcome)
    attrs = outcome.attributes
    if finish_reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = finish_reasons
    if isinstance(response_model, str):
        attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
    if response_id:
        attrs[sc.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(fingerprint, str):
        attrs[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
    if isinstance(service_tier, str):
        attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] = service_tier
    if call_summaries:
        attrs[sc.RESPONSE_TOOL_CALLS] = _content.bounded_json(call_summaries)
    return outcome


# ---------------------------------------------------------------------------------------
# Prompt templates (compare_prompts groups spans by these hashes)
# ---------------------------------------------------------------------------------------

_ROLE_BY_PROMPT_CLASS = {
    "SystemMessagePromptTemplate": "system",
    "HumanMessagePromptTemplate": "user",
    "AIMessagePromptTemplate": "assistant",
    "ChatMessagePromptTemplate": "chat",
    "MessagesPlaceholder": "placeholder",
}


def _collect_templates(node: Any, role: Optional[str], out: list, depth: int = 0) -> None:
    if depth > 12:
        return
    if isinstance(node, dict):
        ident = node.get("id")
        if isinstance(ident, list) and ident:
            role = _ROLE_BY_PROMPT_CLASS.get(str(ident[-1]), role)
            if ident[-1] == "MessagesPlaceholder":
                var = (node.get("kwargs") or {}).get("variable_name")
                out.append(("placeholder", "{" + str(var) + "}"))
                return
        for key, value in node.items():
            if key == "template" and isinstance(value, str):
                out.append((role, value))
            else:
                _collect_templates(value, role, out, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _collect_templates(item, role, out, depth + 1)


_TEMPLATE_CACHE: dict = {}  # id(serialized) -> (serialized, text, attributes)
_TEMPLATE_CACHE_MAX = 256


def _template_info(serialized: Any) -> tuple:
    """(template text, hash attributes) of a prompt's serialized form. LangChain caches
    ``_serialized`` per prompt object, so the same dict comes back on every call: the
    walk runs once per prompt (bounded cache, entries checked by identity)."""
    key = id(serialized)
    hit = _TEMPLATE_CACHE.get(key)
    if hit is not None and hit[0] is serialized:
        return hit[1], hit[2]
    templates: list = []
    _collect_templates(serialized, None, templates)
    if not templates:
        text, attrs = None, {}
    else:
        text = "\n".join(f"{role}: {tpl}" if role else tpl for role, tpl in templates)
        attrs = {sc.PROMPT_TEMPLATE_HASH: _content.content_hash(text)}
        system = "\n".join(tpl for role, tpl in templates if role == "system")
        if system:
            attrs[sc.SYSTEM_PROMPT_HASH] = _content.content_hash(system)
    if len(_TEMPLATE_CACHE) >= _TEMPLATE_CACHE_MAX:
        _TEMPLATE_CACHE.clear()
    _TEMPLATE_CACHE[key] = (serialized, text, attrs)
    return text, attrs


def prompt_template_attributes(serialized: Any) -> dict:
    """Template hash (always; a fingerprint, not text), system-prompt hash, and the
    template text itself only with content capture on."""
    text, attrs = _template_info(serialized)
    if text is None:
        return {}
    out = dict(attrs)
    captured = _content.text(text)
    if captured is not None:
        out[sc.PROMPT_TEMPLATE] = captured
    return out


# ---------------------------------------------------------------------------------------
# Runnable inputs/outputs (content capture only) and tool results
# ---------------------------------------------------------------------------------------

_MAX_ITEMS = 64
_MAX_DEPTH = 6


def to_jsonable(obj: Any, depth: int = 0) -> Any:
    """A JSON-able view of a runnable's input or output; bounded in breadth and depth
    (the final string is cut to the attribute limit by ``_content.json_value``)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if depth >= _MAX_DEPTH:
        return str(obj)[:256]
    if isinstance(obj, dict):
        out = {}
        for i, (key, value) in enumerate(obj.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"{len(obj) - _MAX_ITEMS} more"
                break
            out[str(key)] = to_jsonable(value, depth + 1)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
        out_list = [to_jsonable(v, depth + 1) for v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            out_list.append(f"… {len(items) - _MAX_ITEMS} more")
        return out_list
    if hasattr(obj, "page_content") and hasattr(obj, "metadata"):  # Document
        return {"id": getattr(obj, "id", None), "page_content": obj.page_content,
                "metadata": to_jsonable(obj.metadata, depth + 1)}
    if hasattr(obj, "content") and hasattr(obj, "type") and hasattr(obj, "additional_kwargs"):  # message
        return message_json(obj)
    to_messages = getattr(obj, "to_messages", None)
    if callable(to_messages) and hasattr(obj, "to_string"):  # PromptValue
        try:
            return {"messages": [message_json(m) for m in to_messages()]}
        except Exception:  # noqa: BLE001 - a reader never fails the call
            return str(obj)[:1024]
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return to_jsonable(dump(), depth + 1)
        except Exception:  # noqa: BLE001
            return str(obj)[:1024]
    return str(obj)[:4096]


def result_text(output: Any) -> str:
    """A tool's result as text (a ToolMessage's content, else ``str``)."""
    content = getattr(output, "content", None)
    if content is not None and hasattr(output, "tool_call_id"):
        return content_text(content) if not isinstance(content, str) else content
    if isinstance(output, str):
        return output
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001
        return str(output)
