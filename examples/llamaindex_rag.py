"""A traced LlamaIndex RAG pipeline: index, query (plain and streamed), and a chat turn.

Runs offline out of the box: documents are embedded with a small deterministic keyword
embedding, the index lives in memory, and the LLM is ``llama_index.llms.openai.OpenAI``
talking to an in-process transport that answers in OpenAI's real wire format (so the
OpenAI client span nests under the LlamaIndex LLM span exactly as it would online).
Without llama-index-llms-openai installed, LlamaIndex's ``MockLLM`` answers instead.
With ``OPENAI_API_KEY`` set, the LLM calls go to the OpenAI API (``OPENAI_MODEL``,
default ``gpt-4o-mini``).

    python examples/llamaindex_rag.py
    INSTRUMENTORS_CAPTURE_CONTENT=true python examples/llamaindex_rag.py
    opentelemetry-instrument python examples/llamaindex_rag.py

Spans go where ``instrumentors.instrument_all()`` sends them (the embedded store unless
you configured an exporter); look at them with ``instrumentors list`` / ``instrumentors
show <trace id>``.

Install: ``pip install -e ".[examples]"`` (README, "Examples").
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, List

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode
from opentelemetry import trace

import instrumentors

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")

CORPUS = [
    ("paris", "Paris is the capital of France. The Eiffel Tower is its best known landmark."),
    ("seine", "The Seine river flows through Paris before reaching the English Channel."),
    ("berlin", "Berlin is the capital of Germany and its largest city."),
    ("rome", "Rome is the capital of Italy and was the centre of the Roman Empire."),
]


VOCAB = ("paris", "france", "capital", "seine", "river", "berlin", "germany", "rome", "italy",
         "eiffel", "tower", "landmark", "city", "empire")


class KeywordEmbedding(BaseEmbedding):
    """Deterministic bag-of-words embedding over a small vocabulary (no model, no network)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_name="keyword-embedding", **kwargs)

    def _vector(self, text: str) -> List[float]:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(w)) for w in VOCAB] + [1.0]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._vector(text)

    async def _aget_text_embedding(self, text: str) -> List[float]:
        return self._vector(text)


# ---------------------------------------------------------------------------------------
# Offline OpenAI: wire-format answers from an in-process transport
# ---------------------------------------------------------------------------------------


def _answer(body: dict) -> str:
    prompt = " ".join(str(m.get("content") or "") for m in body.get("messages", []))
    sentences = re.findall(r"[A-Z][^.]*capital of [A-Z][a-z]+", prompt)
    return (sentences[0] + ".") if sentences else "I could not find that in the documents."


def _offline_openai(request: Any) -> Any:
    import httpx

    body = json.loads(request.content)
    text = _answer(body)
    base = {"id": f"chatcmpl-offline{int(time.time() * 1000) % 10**9}", "created": int(time.time()),
            "model": body["model"] + "-2024-07-18", "system_fingerprint": "fp_offline"}
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
             "total_tokens": prompt_tokens + len(text.split())}
    if not body.get("stream"):
        return httpx.Response(200, json={**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
             "logprobs": None, "finish_reason": "stop"}]})
    chunk = {**base, "object": "chat.completion.chunk", "usage": None}
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]}]
    for i, word in enumerate(text.split(" ")):
        events.append({**chunk, "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                             "finish_reason": None}]})
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    content = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content.encode())


def make_llm() -> Any:
    try:
        from llama_index.llms.openai import OpenAI
    except ImportError:  # llama-index-llms-openai not installed
        from llama_index.core.llms.mock import MockLLM

        return MockLLM(max_tokens=12)
    stream_usage = {"stream_options": {"include_usage": True}}
    if os.environ.get("OPENAI_API_KEY"):
        return OpenAI(model=MODEL, temperature=0, additional_kwargs=stream_usage)
    import httpx

    return OpenAI(model=MODEL, temperature=0, api_key="offline", max_retries=0, additional_kwargs=stream_usage,
                  http_client=httpx.Client(transport=httpx.MockTransport(_offline_openai)),
                  async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(_offline_openai)))


# ---------------------------------------------------------------------------------------


def main() -> None:
    from instrumentors.llama_index import LlamaIndexInstrumentor

    if not LlamaIndexInstrumentor().is_instrumented_by_opentelemetry:  # not under opentelemetry-instrument
        instrumentors.instrument_all()
    tracer = trace.get_tracer("examples.llamaindex_rag")
    llm = make_llm()
    index = VectorStoreIndex(nodes=[TextNode(id_=i, text=t, metadata={"file_name": f"{i}.txt"}) for i, t in CORPUS],
                             embed_model=KeywordEmbedding())

    with tracer.start_as_current_span("llamaindex rag example"):
        engine = index.as_query_engine(llm=llm, similarity_top_k=2)
        print("query:", engine.query("What is the capital of France?"))

        streaming = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True)
        response = streaming.query("What is the capital of Germany?")
        print("stream:", "".join(response.response_gen))

        chat = index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=1)
        print("chat:", chat.chat("And the capital of Italy?"))
        trace_id = instrumentors.current_trace_id()

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    print(f"trace {trace_id}: instrumentors show {trace_id}")


if __name__ == "__main__":
    main()
