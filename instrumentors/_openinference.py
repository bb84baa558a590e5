"""Our canonical span attributes rendered in the OpenInference convention (what Arize
Phoenix reads): ``openinference.span.kind``, ``llm.*``, ``retrieval.documents.N.*``...

Why a renderer and not a second extraction: every instrumentor (OpenAI, LangChain,
LlamaIndex, user steps, feedback) already writes one canonical set of attributes
(``gen_ai.*`` plus ours, names in ``_semconv``). This module maps that set, once per span
as it ends, to OpenInference names, so no library has a second code path per convention.
It only *moves* values the canonical attributes hold: text appears here only if the
content gate (``_content``) let it onto the span, so content capture off still means no
text in any convention.

New span kinds plug in with :func:`register_kind` (an OpenInference kind and, if the kind
has attributes of its own, a function adding them).

Names come from the ``openinference-semantic-conventions`` package (the ``phoenix`` and
``all`` extras); :func:`available` says whether it is installed.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Mapping, Optional

from . import _semconv as sc

try:  # the package is an optional extra; _render.py falls back to gen_ai without it
    from openinference.semconv.trace import (
        DocumentAttributes as _Doc,
        MessageAttributes as _Msg,
        OpenInferenceMimeTypeValues as _Mime,
        OpenInferenceSpanKindValues as _Kind,
        RerankerAttributes as _Rerank,
        SpanAttributes as _Span,
        ToolAttributes as _Tool,
        ToolCallAttributes as _Call,
    )
except ImportError:  # pragma: no cover - exercised by the fallback test through a monkeypatch
    _Span = None  # type: ignore[assignment]


def available() -> bool:
    """Whether the OpenInference names can be imported (``pip install 'instrumentors[phoenix]'``)."""
    return _Span is not None


# Every one of these is a (prefix, value) pair on the wire; kept as module constants so the
# per-span work is dictionary lookups, not attribute chains.
if _Span is not None:
    SPAN_KIND = _Span.OPENINFERENCE_SPAN_KIND
    INPUT_VALUE, INPUT_MIME = _Span.INPUT_VALUE, _Span.INPUT_MIME_TYPE
    OUTPUT_VALUE, OUTPUT_MIME = _Span.OUTPUT_VALUE, _Span.OUTPUT_MIME_TYPE
    JSON_MIME, TEXT_MIME = _Mime.JSON.value, _Mime.TEXT.value
    LLM_MODEL, LLM_PROVIDER, LLM_SYSTEM = _Span.LLM_MODEL_NAME, _Span.LLM_PROVIDER, _Span.LLM_SYSTEM
    LLM_PARAMS = _Span.LLM_INVOCATION_PARAMETERS
    TOKENS_PROMPT = _Span.LLM_TOKEN_COUNT_PROMPT
    TOKENS_COMPLETION = _Span.LLM_TOKEN_COUNT_COMPLETION
    TOKENS_TOTAL = _Span.LLM_TOKEN_COUNT_TOTAL
    TOKENS_CACHE_READ = _Span.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ
    TOKENS_REASONING = _Span.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING
    LLM_INPUT_MESSAGES, LLM_OUTPUT_MESSAGES = _Span.LLM_INPUT_MESSAGES, _Span.LLM_OUTPUT_MESSAGES
    LLM_TOOLS = _Span.LLM_TOOLS
    LLM_FINISH_REASON = getattr(_Span, "LLM_FINISH_REASON", "llm.finish_reason")
    EMBEDDING_MODEL = _Span.EMBEDDING_MODEL_NAME
    RETRIEVAL_DOCUMENTS = _Span.RETRIEVAL_DOCUMENTS
    RERANK_INPUT, RERANK_OUTPUT = _Rerank.RERANKER_INPUT_DOCUMENTS, _Rerank.RERANKER_OUTPUT_DOCUMENTS
    RERANK_MODEL, RERANK_TOP_K = _Rerank.RERANKER_MODEL_NAME, _Rerank.RERANKER_TOP_K
    TOOL_NAME, TOOL_DESCRIPTION, TOOL_ID = _Span.TOOL_NAME, _Span.TOOL_DESCRIPTION, _Span.TOOL_ID
    TOOL_JSON_SCHEMA = _Tool.TOOL_JSON_SCHEMA
    AGENT_NAME = _Span.AGENT_NAME
    GRAPH_NODE_ID, GRAPH_NODE_NAME = _Span.GRAPH_NODE_ID, _Span.GRAPH_NODE_NAME
    SESSION_ID, USER_ID = _Span.SESSION_ID, _Span.USER_ID
    MESSAGE_ROLE, MESSAGE_CONTENT = _Msg.MESSAGE_ROLE, _Msg.MESSAGE_CONTENT
    MESSAGE_TOOL_CALLS, MESSAGE_TOOL_CALL_ID = _Msg.MESSAGE_TOOL_CALLS, _Msg.MESSAGE_TOOL_CALL_ID
    CALL_ID, CALL_NAME = _Call.TOOL_CALL_ID, _Call.TOOL_CALL_FUNCTION_NAME
    CALL_ARGUMENTS = _Call.TOOL_CALL_FUNCTION_ARGUMENTS_JSON
    DOC_ID, DOC_SCORE = _Doc.DOCUMENT_ID, _Doc.DOCUMENT_SCORE
    DOC_CONTENT, DOC_METADATA = _Doc.DOCUMENT_CONTENT, _Doc.DOCUMENT_METADATA
    KIND_LLM, KIND_CHAIN = _Kind.LLM.value, _Kind.CHAIN.value

    #: instrumentors.span.kind -> openinference.span.kind
    KINDS: Dict[str, str] = {
        sc.KIND_LLM: _Kind.LLM.value,
        sc.KIND_EMBEDDING: _Kind.EMBEDDING.value,
        sc.KIND_RETRIEVER: _Kind.RETRIEVER.value,
        sc.KIND_RERANKER: _Kind.RERANKER.value,
        sc.KIND_TOOL: _Kind.TOOL.value,
        sc.KIND_AGENT: _Kind.AGENT.value,
        sc.KIND_GUARDRAIL: _Kind.GUARDRAIL.value,
        sc.KIND_WORKFLOW: _Kind.CHAIN.value,
        sc.KIND_PROMPT: _Kind.CHAIN.value,  # a template fill is a step of the chain in Phoenix's tree
        sc.KIND_PARSER: _Kind.CHAIN.value,
        sc.KIND_STEP: _Kind.CHAIN.value,
        sc.KIND_FEEDBACK: _Kind.EVALUATOR.value,  # a judgment of the trace (see _phoenix.py)
        sc.KIND_NODE: _Kind.CHAIN.value,  # one LangGraph node execution
    }
else:  # pragma: no cover
    KINDS = {}

# gen_ai.provider.name -> llm.provider (OpenInference's provider values) and llm.system
_PROVIDERS = {
    "openai": ("openai", "openai"),
    "azure.ai.openai": ("azure", "openai"),
    "azure.ai.inference": ("azure", None),
    "anthropic": ("anthropic", "anthropic"),
    "aws.bedrock": ("aws", None),
    "gcp.vertex_ai": ("google", "vertexai"),
    "gcp.gemini": ("google", "vertexai"),
    "gcp.gen_ai": ("google", "vertexai"),
    "cohere": ("cohere", "cohere"),
    "mistral_ai": ("mistralai", "mistralai"),
    "x_ai": ("xai", None),
    "deepseek": ("deepseek", None),
    "groq": ("groq", None),
    "perplexity": ("perplexity", None),
    "ollama": ("ollama", None),
}

# gen_ai.request.* -> the request parameter name llm.invocation_parameters uses
_PARAMETERS = (
    (sc.GEN_AI_REQUEST_TEMPERATURE, "temperature"),
    (sc.GEN_AI_REQUEST_TOP_P, "top_p"),
    (sc.GEN_AI_REQUEST_TOP_K, "top_k"),
    (sc.GEN_AI_REQUEST_MAX_TOKENS, "max_tokens"),
    (sc.GEN_AI_REQUEST_SEED, "seed"),
    (sc.GEN_AI_REQUEST_STOP_SEQUENCES, "stop"),
    (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
    (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, "presence_penalty"),
    (sc.GEN_AI_REQUEST_CHOICE_COUNT, "n"),
    (sc.GEN_AI_REQUEST_STREAM, "stream"),
    (sc.OPENAI_REQUEST_SERVICE_TIER, "service_tier"),
    (sc.GEN_AI_OUTPUT_TYPE, "response_format"),
)


class Rendered(dict):
    """The OpenInference attributes of one span, filled in priority order within a bound:
    the span's remaining attribute capacity (OTel evicts the *oldest* attribute when a span
    is full, which would silently lose our span kind). Lists (documents, messages) stop at
    a whole item when the room runs out, and their prefix is reported in ``truncated``."""

    def __init__(self, room: Optional[int]) -> None:
        super().__init__()
        self.room = room
        self.truncated: list = []

    def put(self, key: str, value: Any) -> None:
        if value is None:
            return
        if key not in self:
            if self.room is not None:
                if self.room <= 0:
                    if key not in self.truncated:
                        self.truncated.append(key)
                    return
                self.room -= 1
        self[key] = value

    def items_under(self, prefix: str, items: list) -> None:
        """``prefix.N.suffix = value`` for each item (a dict of suffix -> value)."""
        for index, item in enumerate(items):
            fields = [(k, v) for k, v in item.items() if v is not None]
            if self.room is not None and len(fields) > self.room:
                self.truncated.append(prefix)
                return
            for suffix, value in fields:
                self.put(f"{prefix}.{index}.{suffix}", value)


def _loads(value: Any) -> Any:
    """A canonical JSON attribute as data, or None when absent or cut by the length limit."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def _value(out: Rendered, key: str, mime_key: str, value: Any) -> None:
    """``input.value``/``output.value`` with the mime type Phoenix uses to pretty-print it."""
    if not isinstance(value, str):
        return
    head = value[:1]
    mime = JSON_MIME if head in ("{", "[") and _loads(value) is not None else TEXT_MIME
    out.put(key, value)
    out.put(mime_key, mime)


# ---------------------------------------------------------------------------------------
# Messages (gen_ai.input.messages / output.messages JSON -> llm.*_messages.N.message.*)
# ---------------------------------------------------------------------------------------


def _message(role: Any, parts: Any) -> dict:
    fields: dict = {MESSAGE_ROLE: role if isinstance(role, str) else None}
    texts: list = []
    calls = 0
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        ptype = part.get("type")
        if ptype == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif ptype == "tool_call":
            prefix = f"{MESSAGE_TOOL_CALLS}.{calls}."
            calls += 1
            fields[prefix + CALL_ID] = part.get("id") if isinstance(part.get("id"), str) else None
            fields[prefix + CALL_NAME] = part.get("name") if isinstance(part.get("name"), str) else None
            if "arguments" in part:
                arguments = part["arguments"]
                fields[prefix + CALL_ARGUMENTS] = arguments if isinstance(arguments, str) else _dumps(arguments)
        elif ptype == "tool_call_response":
            if isinstance(part.get("id"), str):
                fields[MESSAGE_TOOL_CALL_ID] = part["id"]
            response = part.get("response")
            if isinstance(response, str):
                texts.append(response)
            elif response is not None:
                texts.append(_dumps(response))
    if texts:
        fields[MESSAGE_CONTENT] = "\n".join(texts)
    return fields


def _messages(attrs: Mapping[str, Any], key: str, system_key: Optional[str] = None) -> list:
    out = []
    if system_key is not None:
        system = _loads(attrs.get(system_key))
        if isinstance(system, list) and system:
            out.append(_message("system", system))
    for message in _loads(attrs.get(key)) or ():
        if isinstance(message, dict):
            out.append(_message(message.get("role"), message.get("parts")))
    return out


def _output_text(messages: list) -> Optional[str]:
    """The plain answer when the output is text only (what Phoenix shows as the output)."""
    texts = [m.get(MESSAGE_CONTENT) for m in messages]
    if messages and all(isinstance(t, str) for t in texts) and not any(
            k.startswith(MESSAGE_TOOL_CALLS) for m in messages for k in m):
        return "\n".join(texts)
    return None


# ---------------------------------------------------------------------------------------
# Documents (gen_ai.retrieval.documents / instrumentors.rerank.* JSON -> *.N.document.*)
# ---------------------------------------------------------------------------------------


def _documents(value: Any) -> list:
    out = []
    for entry in _loads(value) or ():
        if not isinstance(entry, dict):
            continue
        score = entry.get("score")
        metadata = entry.get("metadata")
        out.append({
            DOC_ID: None if entry.get("id") is None else str(entry["id"]),
            DOC_SCORE: float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            DOC_CONTENT: entry.get("content") if isinstance(entry.get("content"), str) else None,
            DOC_METADATA: _dumps(metadata) if metadata else None,
        })
    return out


# ---------------------------------------------------------------------------------------
# Per-kind renderers
# ---------------------------------------------------------------------------------------


def _model_and_usage(attrs: Mapping[str, Any], out: Rendered, model_key: str) -> None:
    model = attrs.get(sc.GEN_AI_RESPONSE_MODEL) or attrs.get(sc.GEN_AI_REQUEST_MODEL)
    out.put(model_key, model)
    provider = attrs.get(sc.GEN_AI_PROVIDER_NAME)
    if isinstance(provider, str):
        known = _PROVIDERS.get(provider)
        out.put(LLM_PROVIDER, known[0] if known else provider.split(".", 1)[0])
        if known and known[1]:
            out.put(LLM_SYSTEM, known[1])
    # Only gen_ai.usage.*: a framework span whose client child reported the same tokens keeps
    # them under instrumentors.usage.*, so Phoenix's per-trace sums count every token once.
    prompt = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
    completion = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
    out.put(TOKENS_PROMPT, prompt)
    out.put(TOKENS_COMPLETION, completion)
    if isinstance(prompt, int) or isinstance(completion, int):
        out.put(TOKENS_TOTAL, (prompt if isinstance(prompt, int) else 0)
                + (completion if isinstance(completion, int) else 0))
    out.put(TOKENS_CACHE_READ, attrs.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
    out.put(TOKENS_REASONING, attrs.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))


def _llm(attrs: Mapping[str, Any], out: Rendered) -> None:
    _model_and_usage(attrs, out, LLM_MODEL)
    params = {name: attrs[key] for key, name in _PARAMETERS if attrs.get(key) is not None}
    if params:
        out.put(LLM_PARAMS, _dumps({k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}))
    reasons = attrs.get(sc.GEN_AI_RESPONSE_FINISH_REASONS)
    if reasons:
        out.put(LLM_FINISH_REASON, reasons[0])
    inputs = _messages(attrs, sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS)
    outputs = _messages(attrs, sc.GEN_AI_OUTPUT_MESSAGES)
    if INPUT_VALUE not in out:
        _value(out, INPUT_VALUE, INPUT_MIME, attrs.get(sc.GEN_AI_INPUT_MESSAGES))
    if OUTPUT_VALUE not in out:
        text = _output_text(outputs)
        _value(out, OUTPUT_VALUE, OUTPUT_MIME, text if text is not None else attrs.get(sc.GEN_AI_OUTPUT_MESSAGES))
    tools = _loads(attrs.get(sc.GEN_AI_TOOL_DEFINITIONS))
    if isinstance(tools, list):
        out.items_under(LLM_TOOLS, [{TOOL_JSON_SCHEMA: _dumps(t)} for t in tools])
    out.items_under(LLM_INPUT_MESSAGES, inputs)
    out.items_under(LLM_OUTPUT_MESSAGES, outputs)


def _embedding(attrs: Mapping[str, Any], out: Rendered) -> None:
    _model_and_usage(attrs, out, EMBEDDING_MODEL)


def _retriever(attrs: Mapping[str, Any], out: Rendered) -> None:
    if INPUT_VALUE not in out:
        _value(out, INPUT_VALUE, INPUT_MIME, attrs.get(sc.GEN_AI_RETRIEVAL_QUERY_TEXT))
    out.items_under(RETRIEVAL_DOCUMENTS, _documents(attrs.get(sc.GEN_AI_RETRIEVAL_DOCUMENTS)))


def _reranker(attrs: Mapping[str, Any], out: Rendered) -> None:
    out.put(RERANK_MODEL, attrs.get(sc.GEN_AI_REQUEST_MODEL))
    out.put(RERANK_TOP_K, attrs.get(sc.GEN_AI_REQUEST_TOP_K))
    out.items_under(RERANK_OUTPUT, _documents(attrs.get(sc.RERANK_OUTPUT_DOCUMENTS)))
    out.items_under(RERANK_INPUT, _documents(attrs.get(sc.RERANK_INPUT_DOCUMENTS)))


def _tool(attrs: Mapping[str, Any], out: Rendered) -> None:
    out.put(TOOL_NAME, attrs.get(sc.GEN_AI_TOOL_NAME))
    out.put(TOOL_DESCRIPTION, attrs.get(sc.GEN_AI_TOOL_DESCRIPTION))
    out.put(TOOL_ID, attrs.get(sc.GEN_AI_TOOL_CALL_ID))
    if INPUT_VALUE not in out:
        _value(out, INPUT_VALUE, INPUT_MIME, attrs.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS))
    if OUTPUT_VALUE not in out:
        _value(out, OUTPUT_VALUE, OUTPUT_MIME, attrs.get(sc.GEN_AI_TOOL_CALL_RESULT))


def _agent(attrs: Mapping[str, Any], out: Rendered) -> None:
    out.put(AGENT_NAME, attrs.get(sc.GEN_AI_AGENT_NAME) or attrs.get(sc.GRAPH_NAME))


def _node(attrs: Mapping[str, Any], out: Rendered) -> None:
    node = attrs.get(sc.GRAPH_NODE)
    out.put(GRAPH_NODE_ID, node)
    out.put(GRAPH_NODE_NAME, node)


Renderer = Callable[[Mapping[str, Any], Rendered], None]

_RENDERERS: Dict[str, Renderer] = {
    sc.KIND_LLM: _llm,
    sc.KIND_EMBEDDING: _embedding,
    sc.KIND_RETRIEVER: _retriever,
    sc.KIND_RERANKER: _reranker,
    sc.KIND_TOOL: _tool,
    sc.KIND_AGENT: _agent,
    sc.KIND_NODE: _node,
}


def register_kind(kind: str, openinference_kind: str, renderer: Optional[Renderer] = None) -> None:
    """Plug a span kind in: ``instrumentors.span.kind`` value -> OpenInference kind, plus an
    optional function adding the kind's own attributes (it receives the span's canonical
    attributes and a :class:`Rendered` to ``put`` into)."""
    KINDS[kind] = openinference_kind
    if renderer is not None:
        _RENDERERS[kind] = renderer
    else:
        _RENDERERS.pop(kind, None)


def render(attrs: Mapping[str, Any], room: Optional[int] = None) -> Rendered:
    """The OpenInference attributes for a span whose canonical attributes are ``attrs``.

    ``room``: how many attributes may still be added (None: no bound). The span kind, the
    generic input/output and the kind's scalar attributes come first, lists last."""
    out = Rendered(room)
    kind = attrs.get(sc.SPAN_KIND)
    out.put(SPAN_KIND, KINDS.get(kind, KIND_CHAIN) if isinstance(kind, str) else KIND_CHAIN)
    _value(out, INPUT_VALUE, INPUT_MIME, attrs.get(sc.INPUT_VALUE))
    _value(out, OUTPUT_VALUE, OUTPUT_MIME, attrs.get(sc.OUTPUT_VALUE))
    out.put(SESSION_ID, attrs.get(sc.GEN_AI_CONVERSATION_ID))
    renderer = _RENDERERS.get(kind) if isinstance(kind, str) else None
    if renderer is not None:
        renderer(attrs, out)
    return out
