"""Readers of LlamaIndex objects: queries, nodes, chat messages, LLM responses.

One place knows the shapes of ``QueryBundle``, ``NodeWithScore``, ``ChatMessage`` /
``ChatResponse`` / ``CompletionResponse`` and the response objects of query and chat
engines, across llama-index-core 0.12 and 0.14. Everything here is duck-typed and
side-effect free; nothing touches a span, so the handler and the LLM wrappers (sync,
async, streamed) share exactly one extraction path.

Functions returning *text* return the raw text: callers pass it through
``instrumentors._content`` before any of it reaches a span.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Optional

from .. import _content
from .. import _semconv as sc
from ..causal import Produced
from .._readers import field, integer, number  # noqa: F401 - integer re-exported

SCORE_ORDER = "higher_is_better"  # LlamaIndex scores are similarities (and reranker relevance)

# Vector stores whose NodeWithScore.score is whatever the index returns, so its direction
# depends on how the index was built (FAISS: L2 distances for IndexFlatL2, inner products
# for IndexFlatIP). For those we do not claim a score order.
UNKNOWN_ORDER_STORES = frozenset({"FaissVectorStore", "FaissMapVectorStore"})


# Shared readers (instrumentors/_readers.py), under the short names this package uses.
g = field
num = number


# ---------------------------------------------------------------------------------------
# Queries and nodes
# ---------------------------------------------------------------------------------------


def query_text(query: Any) -> Optional[str]:
    """The query string of a ``str`` or ``QueryBundle`` (None for anything else)."""
    if query is None:
        return None
    if isinstance(query, str):
        return query
    text = getattr(query, "query_str", None)
    return text if isinstance(text, str) else None


def node_id(nws: Any) -> Optional[str]:
    node = getattr(nws, "node", nws)
    value = getattr(node, "node_id", None) or getattr(node, "id_", None)
    return str(value) if value is not None else None


def node_score(nws: Any) -> Optional[float]:
    score = getattr(nws, "score", None)
    if num(score) is None or not math.isfinite(score):
        return None
    return float(score)


def node_text(nws: Any) -> str:
    """The node's own text (no metadata), what the registry fingerprints."""
    node = getattr(nws, "node", nws)
    try:
        from llama_index.core.schema import MetadataMode

        text = node.get_content(metadata_mode=MetadataMode.NONE)
    except Exception:  # noqa: BLE001 - image nodes, custom nodes
        text = getattr(node, "text", None)
    return text if isinstance(text, str) else ""


def node_metadata(nws: Any) -> Optional[dict]:
    node = getattr(nws, "node", nws)
    metadata = getattr(node, "metadata", None)
    return dict(metadata) if isinstance(metadata, dict) and metadata else None


def is_node_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(hasattr(v, "node") and hasattr(v, "score") for v in value)


# Metadata keys that locate a document or date it without quoting it (identifiers and
# dates, never text): kept with capture off, so explain/blame can flag stale documents.
SOURCE_METADATA_KEYS = ("file_path", "file_name", "file_type", "page_label", "page", "page_number",
                        "source", "url", "doc_id", "document_id", "ref_doc_id",
                        "indexed_at", "updated_at", "last_modified", "created_at", "version")


def _scalar(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def documents(nodes: Iterable[Any], limit: int, capture: bool) -> list:
    """``gen_ai.retrieval.documents`` / ``instrumentors.rerank.*_documents`` entries.

    Id and score always, plus the source-locating metadata keys; full metadata and the
    text only with content capture on, because LlamaIndex metadata routinely holds
    document text (sentence windows, excerpts). The caller serialises: ``bounded_json``
    without capture, ``json_value`` with it (which also applies the redaction hook).
    """
    out = []
    for i, nws in enumerate(nodes):
        if i >= limit:
            break
        entry: dict = {"id": node_id(nws)}
        score = node_score(nws)
        if score is not None:
            entry["score"] = score
        metadata = node_metadata(nws) or {}
        if capture:
            if metadata:
                entry["metadata"] = {str(k): _scalar(v) for k, v in metadata.items()}
            entry["content"] = node_text(nws)
        else:
            source = {k: metadata[k] for k in SOURCE_METADATA_KEYS
                      if k in metadata and isinstance(metadata[k], (str, int, float, bool))}
            if source:
                entry["metadata"] = source
        out.append(entry)
    return out


# json.dumps(obj, <options>) builds a JSONEncoder per call; the same encoder, built once,
# gives the very text ``_content.dumps`` gives.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def documents_json(nodes: Iterable[Any], cfg: Any) -> Optional[str]:
    """:func:`documents` serialised for a span: ``json_value`` with content capture on
    (redaction hook, length limit), else the bounded JSON of ids, scores and source keys."""
    entries = documents(nodes, cfg.max_documents, cfg.capture_content)
    if cfg.capture_content:
        return _content.json_value(entries)
    return _content._bounded(_ENCODER.encode(entries), cfg.max_attribute_length)


def score_summary(nodes: list, source: Optional[str] = None) -> dict:
    """``retrieval.*`` summary keys over every node (not only the listed ones).

    ``retrieval.score_order`` is ``higher_is_better`` (LlamaIndex turns distances into
    similarities for its vector stores) except for stores in :data:`UNKNOWN_ORDER_STORES`,
    where it is left out and top/lowest are simply the max/min score."""
    scores = [s for s in (node_score(n) for n in nodes) if s is not None]
    attrs: dict = {sc.RETRIEVAL_DOCUMENT_COUNT: len(nodes)}
    if scores:
        attrs[sc.RETRIEVAL_TOP_SCORE] = max(scores)
        attrs[sc.RETRIEVAL_LOWEST_SCORE] = min(scores)
        if source not in UNKNOWN_ORDER_STORES:
            attrs[sc.RETRIEVAL_SCORE_ORDER] = SCORE_ORDER
    return attrs


def produced_documents(nodes: list) -> list:
    return [
        Produced(text=node_text(n), kind="document", document_id=node_id(n), rank=i, score=node_score(n))
        for i, n in enumerate(nodes)
    ]


# ---------------------------------------------------------------------------------------
# Chat messages
# ---------------------------------------------------------------------------------------


def _role(message: Any) -> str:
    role = getattr(message, "role", None)
    role = getattr(role, "value", role)
    return str(role) if role else "user"


def message_text(message: Any) -> Optional[str]:
    try:
        content = message.content
    except Exception:  # noqa: BLE001 - content getter raises on exotic block mixes
        content = None
    return content if isinstance(content, str) else None


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tool_calls(message: Any) -> list:
    """``[(id, name, arguments)]`` of an assistant message, from ``ToolCallBlock`` s
    (0.14) or the OpenAI-style ``additional_kwargs["tool_calls"]`` (0.12 and others)."""
    if message is None:
        return []
    calls = []
    for block in getattr(message, "blocks", None) or ():
        if getattr(block, "block_type", None) == "tool_call":
            calls.append((getattr(block, "tool_call_id", None), getattr(block, "tool_name", None),
                          getattr(block, "tool_kwargs", None)))
    if calls:
        return calls
    extra = getattr(message, "additional_kwargs", None) or {}
    for call in extra.get("tool_calls") or ():
        fn = g(call, "function")
        calls.append((g(call, "id"), g(fn, "name"), g(fn, "arguments")))
    return calls


def _arguments_text(arguments: Any) -> Optional[str]:
    if arguments is None:
        return None
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001
        return str(arguments)


def input_messages(messages: Iterable[Any]) -> list:
    """Chat messages in the GenAI convention's ``gen_ai.input.messages`` shape."""
    out = []
    for message in messages or ():
        role = _role(message)
        text = message_text(message)
        extra = getattr(message, "additional_kwargs", None) or {}
        if role in ("tool", "function"):
            parts: list = [{"type": "tool_call_response", "id": extra.get("tool_call_id") or extra.get("name"),
                            "response": text}]
        else:
            parts = [{"type": "text", "content": text}] if text else []
        for call_id, name, arguments in tool_calls(message) if role == "assistant" else ():
            parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": _maybe_json(arguments)})
        out.append({"role": role, "parts": parts})
    return out


def message_texts(messages: Iterable[Any]) -> list:
    """Every text a model reads from these messages (for causal ``consume``)."""
    out = []
    for message in messages or ():
        text = message_text(message)
        if text:
            out.append(text)
        for _id, _name, arguments in tool_calls(message):
            args = _arguments_text(arguments)
            if args:
                out.append(args)
    return out


# ---------------------------------------------------------------------------------------
# LLM responses (ChatResponse / CompletionResponse, complete or last stream chunk)
# ---------------------------------------------------------------------------------------

_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call"}


class LLMResult:
    """What one LLM response told us; built once, for sync, async and streamed calls."""

    __slots__ = ("text", "role", "calls", "response_id", "response_model", "finish_reasons",
                 "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")

    def __init__(self) -> None:
        self.text: Optional[str] = None
        self.role = "assistant"
        self.calls: list = []
        self.response_id: Optional[str] = None
        self.response_model: Optional[str] = None
        self.finish_reasons: list = []
        self.input_tokens: Optional[int] = None
        self.output_tokens: Optional[int] = None
        self.cache_read_tokens: Optional[int] = None
        self.reasoning_tokens: Optional[int] = None

    def read_raw(self, raw: Any) -> None:
        """Fields of the provider's raw response (an OpenAI object, a dict...), merged so
        a stream's chunks can be read one after the other."""
        if raw is None:
            return
        self.response_id = g(raw, "id") if isinstance(g(raw, "id"), str) else self.response_id
        model = g(raw, "model")
        if isinstance(model, str):
            self.response_model = model
        for choice in g(raw, "choices") or ():
            reason = g(choice, "finish_reason")
            if isinstance(reason, str):
                self.finish_reasons.append(reason)
        usage = g(raw, "usage")
        if usage is not None:
            self.input_tokens = integer(g(usage, "prompt_tokens")) if integer(g(usage, "prompt_tokens")) is not None \
                else integer(g(usage, "input_tokens"))
            self.output_tokens = integer(g(usage, "completion_tokens")) \
                if integer(g(usage, "completion_tokens")) is not None else integer(g(usage, "output_tokens"))
            cached = g(g(usage, "prompt_tokens_details"), "cached_tokens")
            self.cache_read_tokens = integer(cached) if integer(cached) is not None else self.cache_read_tokens
            reasoning = g(g(usage, "completion_tokens_details"), "reasoning_tokens")
            self.reasoning_tokens = integer(reasoning) if integer(reasoning) is not None else self.reasoning_tokens

    def read_response(self, response: Any) -> None:
        """A complete ``ChatResponse`` / ``CompletionResponse``."""
        if response is None:
            return
        self.read_message(response)
        self.read_raw(getattr(response, "raw", None))
        self.read_counts(response)

    def read_message(self, response: Any) -> None:
        """Text, role and tool calls of a response (for a stream: of its last chunk,
        LlamaIndex accumulates the text and tool calls into every chunk)."""
        message = getattr(response, "message", None)
        if message is not None:
            self.role = _role(message) or "assistant"
            self.text = message_text(message)
            self.calls = tool_calls(message)
        else:
            text = getattr(response, "text", None)
            self.text = text if isinstance(text, str) else self.text

    def read_counts(self, response: Any) -> None:
        """Token counts integrations copy into ``additional_kwargs`` (llama-index-llms-openai
        does), used when the raw response did not carry usage."""
        extra = getattr(response, "additional_kwargs", None) or {}
        if self.input_tokens is None and integer(extra.get("prompt_tokens")):
            self.input_tokens = integer(extra.get("prompt_tokens"))
        if self.output_tokens is None and integer(extra.get("completion_tokens")):
            self.output_tokens = integer(extra.get("completion_tokens"))

    def response_attributes(self) -> dict:
        attrs: dict = {
            sc.GEN_AI_RESPONSE_ID: self.response_id,
            sc.GEN_AI_RESPONSE_MODEL: self.response_model,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: self.cache_read_tokens,
            sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: self.reasoning_tokens,
        }
        if self.finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        return attrs

    def output_messages(self) -> list:
        parts: list = []
        if self.text:
            parts.append({"type": "text", "content": self.text})
        for call_id, name, arguments in self.calls:
            parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": _maybe_json(arguments)})
        reason = self.finish_reasons[-1] if self.finish_reasons else ("tool_call" if self.calls else "stop")
        return [{"role": self.role, "parts": parts, "finish_reason": _FINISH.get(reason, reason)}]

    def produced(self) -> list:
        out = []
        if self.text:
            out.append(Produced(text=self.text, kind="generation"))
        for call_id, _name, arguments in self.calls:
            args = _arguments_text(arguments)
            if args:
                out.append(Produced(text=args, kind="tool_call", document_id=call_id))
        if not self.calls and self.text:
            args = react_action_arguments(self.text)
            if args:
                out.append(Produced(text=args, kind="tool_call"))
        return out


_REACT_ACTION_INPUT = "Action Input:"


def react_action_arguments(text: str) -> Optional[str]:
    """The tool arguments a ReAct-format completion asks for (``Action: tool`` /
    ``Action Input: {...}``), as the JSON text a tool span consumes, or None.

    A ReAct agent (``ReActAgent``) parses its tool call out of the completion's text, so
    the model's response carries no structured tool call; the arguments are a small part
    of a long generation, too small to link the tool span by coverage. Registering them
    as the response's ``tool_call`` output (parsed with LlamaIndex's own ReAct parser,
    keys sorted like the tool side) links the tool span ``CAUSED_BY_GENERATION``, as for
    a function-calling model.
    """
    if _REACT_ACTION_INPUT not in text:
        return None
    try:
        from llama_index.core.agent.react.output_parser import parse_action_reasoning_step

        step = parse_action_reasoning_step(text)
    except Exception:  # noqa: BLE001 - not a ReAct action (or a parser we cannot read)
        return None
    arguments = getattr(step, "action_input", None)
    if not isinstance(arguments, dict) or not arguments:
        return None
    return _arguments_text(arguments)


# ---------------------------------------------------------------------------------------
# Engine responses
# ---------------------------------------------------------------------------------------


def response_text(response: Any) -> Optional[str]:
    """Final text of a query/chat engine or agent response, if already available
    (never consumes a stream)."""
    if response is None:
        return None
    if isinstance(response, str):
        return response
    for attr in ("response", "response_txt"):
        value = getattr(response, attr, None)
        if isinstance(value, str) and value:
            return value
    return None
