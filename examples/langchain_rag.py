"""A traced LangChain RAG pipeline: an LCEL chain (retriever, prompt, chat model, parser),
invoked and streamed, then a tool-calling round trip.

Runs offline out of the box: documents are embedded with a small deterministic keyword
embedding into LangChain's ``InMemoryVectorStore``, and the model is ``ChatOpenAI``
talking to an in-process transport that answers in OpenAI's real wire format (so the
OpenAI client span nests under the LangChain chat span exactly as it would online).
Without langchain-openai installed, LangChain's ``GenericFakeChatModel`` answers
instead. With ``OPENAI_API_KEY`` set, the chat calls go to the OpenAI API
(``OPENAI_MODEL``, default ``gpt-4o-mini``).

    python examples/langchain_rag.py
    INSTRUMENTORS_CAPTURE_CONTENT=true python examples/langchain_rag.py
    opentelemetry-instrument python examples/langchain_rag.py

Spans go where ``instrumentors.instrument_all()`` sends them (the embedded store unless
you configured an exporter).

Install: ``pip install -e ".[examples]"`` (README, "Examples").
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from opentelemetry import trace

import instrumentors

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")

CORPUS = [
    ("paris", "Paris is the capital of France. The Eiffel Tower is its best known landmark.", "wiki/paris.md"),
    ("seine", "The Seine river flows through Paris before reaching the English Channel.", "wiki/seine.md"),
    ("berlin", "Berlin is the capital of Germany and its largest city.", "wiki/berlin.md"),
    ("rome", "Rome is the capital of Italy, built on seven hills.", "wiki/rome.md"),
]
QUESTION = "What is the capital of France and which river flows through it?"


class KeywordEmbeddings(Embeddings):
    """Deterministic bag-of-words embedding: no model download, meaningful similarity."""

    VOCAB = ("paris", "france", "capital", "seine", "river", "berlin", "germany", "rome", "italy",
             "eiffel", "tower", "city", "flows")

    def _vector(self, text: str) -> list:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(w)) for w in self.VOCAB] + [1.0]

    def embed_documents(self, texts: list) -> list:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list:
        return self._vector(text)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return json.dumps({"city": city, "temp_c": 18, "sky": "sunny"})


# ---------------------------------------------------------------------------------------
# Offline: an in-process OpenAI (wire-format responses, no network)
# ---------------------------------------------------------------------------------------


def _completion(body: dict, message: dict, finish: str, prompt: int, completion: int) -> dict:
    return {
        "id": f"chatcmpl-offline{int(time.time() * 1000) % 10**9}", "object": "chat.completion",
        "created": int(time.time()), "model": body["model"] + "-2024-07-18", "system_fingerprint": "fp_offline",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _sse(body: dict, text: str) -> bytes:
    base = {"id": "chatcmpl-offline-stream", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"] + "-2024-07-18", "system_fingerprint": "fp_offline"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    for word in re.findall(r"\S+\s*", text):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 74, "completion_tokens": 19,
                                                    "total_tokens": 93}})
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


def _offline_openai(request: Any) -> Any:
    import httpx

    body = json.loads(request.content)
    messages = body["messages"]
    answer = "Paris is the capital of France, and the Seine flows through it."
    if body.get("stream"):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_sse(body, answer))
    if body.get("tools") and messages[-1]["role"] != "tool":
        call = {"id": "call_offline1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
        return httpx.Response(200, json=_completion(body, {"content": None, "tool_calls": [call]},
                                                    "tool_calls", 58, 15))
    if messages[-1]["role"] == "tool":
        result = json.loads(messages[-1]["content"])
        text = f"It is {result['temp_c']}°C and {result['sky']} in {result['city']}."
        return httpx.Response(200, json=_completion(body, {"content": text}, "stop", 96, 14))
    return httpx.Response(200, json=_completion(body, {"content": answer}, "stop", 74, 15))


def make_model() -> Any:
    try:
        import httpx
        from langchain_openai import ChatOpenAI
    except ImportError:  # no langchain-openai: a fake chat model answers
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage

        return GenericFakeChatModel(messages=iter([AIMessage("Paris is the capital of France.")] * 10))
    if os.environ.get("OPENAI_API_KEY"):
        return ChatOpenAI(model=MODEL, temperature=0)
    return ChatOpenAI(
        model=MODEL, temperature=0, api_key="offline", stream_usage=True,
        http_client=httpx.Client(transport=httpx.MockTransport(_offline_openai)),
    )


# ---------------------------------------------------------------------------------------


def format_docs(docs: list) -> str:
    return "\n\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)


def main() -> None:
    from instrumentors.langchain import LangChainInstrumentor

    if not LangChainInstrumentor().is_instrumented_by_opentelemetry:  # not under opentelemetry-instrument
        instrumentors.instrument_all()

    store = InMemoryVectorStore(KeywordEmbeddings())
    store.add_documents([Document(id=i, page_content=text, metadata={"source": src}) for i, text, src in CORPUS])
    retriever = store.as_retriever(search_kwargs={"k": 2})
    model = make_model()
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context only. Cite the sources.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ])
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | model | StrOutputParser()

    tracer = trace.get_tracer("examples.langchain_rag")
    with tracer.start_as_current_span("langchain example"):
        print("trace:", instrumentors.current_trace_id())
        print("invoke:", chain.invoke(QUESTION))
        print("stream:", "".join(chain.stream(QUESTION)))
        if hasattr(model, "bind_tools") and type(model).__name__ == "ChatOpenAI":
            messages = [HumanMessage("What's the weather in Paris?")]
            first = model.bind_tools([get_weather]).invoke(messages)
            call = first.tool_calls[0]
            messages += [first, get_weather.invoke(call)]
            final = model.bind_tools([get_weather]).invoke(messages)
            print("tool call:", call["name"], "->", final.content)

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


if __name__ == "__main__":
    main()
