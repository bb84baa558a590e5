"""The calls the hardening tests make, one per library shape, built from each library's
existing offline fakes: the OpenAI scenarios answered in OpenAI's wire format by an
in-process transport (tests/openai/openai_scenarios.py), LangChain's fake chat model
and keyword-embedding vector store (tests/langchain/langchain_helpers.py), LlamaIndex's
keyword-embedding index with MockLLM (tests/llama_index/li_helpers.py).

Each workload returns a plain, comparable picture of what the caller got (JSON of
the SDK objects, strings, ids and scores) or of the exception it raised, so a run with
broken internals can be compared with a run without instrumentation.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict

import openai_scenarios as S  # tests/openai (conftest puts the folders on sys.path)

QUESTION = "What is the capital of France?"


def picture(value: Any) -> Any:
    """What the caller sees, comparable with ``==``."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [picture(v) for v in value]
    if isinstance(value, dict):
        return {k: picture(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def outcome(fn: Callable[[], Any]) -> tuple:
    """("ok", picture) or ("raised", type, message) of one call."""
    try:
        return ("ok", picture(fn()))
    except Exception as exc:  # noqa: BLE001 - the caller's exception is what we compare
        return ("raised", type(exc).__name__, str(exc))


# --- OpenAI ---------------------------------------------------------------------------

OPENAI_SCENARIOS = ("chat_basic", "chat_tools", "chat_stream_tools", "chat_stream_usage", "responses_basic",
                    "responses_stream", "embeddings_batch", "completions_legacy", "completions_stream", "chat_parse")
MODERATION = {
    "id": "modr-hardening", "model": "omni-moderation-2024-09-26",
    "results": [{"flagged": True, "categories": {"violence": True, "hate": False},
                 "category_scores": {"violence": 0.91, "hate": 0.02},
                 "category_applied_input_types": {"violence": ["text"], "hate": ["text"]}}],
}


def openai_call(name: str) -> Any:
    scenario = S.SCENARIOS[name]
    client = S.mock_client(S.reply(name), False, **scenario.client)
    result = S.resolve(client, scenario.method)(**scenario.kwargs)
    if scenario.kwargs.get("stream"):
        return list(result)
    return result


def openai_error() -> Any:
    httpx = S.http_module()
    body = {"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                      "code": "rate_limit_exceeded"}}
    client = S.mock_client(lambda request: httpx.Response(429, json=body), False)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])


def openai_moderation(text: str = QUESTION) -> Any:
    httpx = S.http_module()
    client = S.mock_client(lambda request: httpx.Response(200, json=MODERATION), False)
    return client.moderations.create(model="omni-moderation-latest", input=[text])


def openai_parts(text: str = QUESTION, system: str = "You are terse.") -> Any:
    """Content-part lists (text + image) and a tool-result turn in the request."""
    client = S.mock_client(S.reply("chat_basic"), False)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "text", "text": text},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "' + text + '"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "lookup result " + text}]},
    ])


async def openai_acall(name: str) -> Any:
    scenario = S.SCENARIOS[name]
    client = S.mock_client(S.reply(name), True, **scenario.client)
    result = await S.resolve(client, scenario.method)(**scenario.kwargs)
    if scenario.kwargs.get("stream"):
        return [item async for item in result]
    return result


# --- LangChain ------------------------------------------------------------------------


def langchain_rag() -> Any:
    from langchain_helpers import fake_chat, make_store, rag_chain

    return rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat()).invoke(QUESTION)


def langchain_stream() -> Any:
    from langchain_helpers import fake_chat, make_store, rag_chain

    return list(rag_chain(make_store().as_retriever(search_kwargs={"k": 2}), fake_chat()).stream(QUESTION))


def langchain_scored() -> Any:
    from langchain_helpers import make_store

    return [(d.id, d.page_content, round(s, 6)) for d, s in make_store().similarity_search_with_score(QUESTION, k=3)]


def langchain_tool() -> Any:
    from langchain_core.tools import tool

    @tool
    def lookup(city: str) -> str:
        """Look a city up in the atlas."""
        return f"{city} is a capital."

    return lookup.invoke({"city": "Paris"})


def langchain_chat_openai() -> Any:
    """ChatOpenAI over the OpenAI wire-format fake: the client span nests under the chat span."""
    from langchain_openai import ChatOpenAI

    httpx = S.http_module()
    model = ChatOpenAI(model="gpt-4o-mini", api_key="placeholder", max_retries=0,
                       http_client=httpx.Client(transport=httpx.MockTransport(S.reply("chat_basic"))))
    return model.invoke(QUESTION).content


def langchain_reranked() -> Any:
    """A custom retriever whose documents carry reranker scores in their metadata."""
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class Reranked(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list:
            return [Document(page_content=f"Paris is the capital of France ({query}).", id="kb/paris",
                             metadata={"relevance_score": 0.93, "source": "kb/paris"}),
                    Document(page_content="Berlin is the capital of Germany.", id="kb/berlin",
                             metadata={"relevance_score": 0.41, "source": "kb/berlin"})]

    return [(d.id, d.metadata["relevance_score"]) for d in Reranked().invoke(QUESTION)]


def langchain_legacy_llm(text: str = QUESTION) -> Any:
    """A completion-style LLM reporting usage only in ``llm_output`` and naming no
    ``ls_provider`` (provider read from the class name)."""
    from langchain_core.language_models.llms import BaseLLM
    from langchain_core.outputs import Generation, LLMResult

    class AcmeLLM(BaseLLM):
        @property
        def _llm_type(self) -> str:
            return "acme"

        def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> dict:
            return {"ls_model_type": "llm"}

        def _generate(self, prompts: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> LLMResult:
            return LLMResult(generations=[[Generation(text="Paris.")] for _ in prompts],
                             llm_output={"token_usage": {"prompt_tokens": 5, "completion_tokens": 2,
                                                         "total_tokens": 7}})

    return AcmeLLM().invoke(text)


def langchain_error() -> Any:
    from langchain_core.runnables import RunnableLambda

    from langchain_helpers import fake_chat

    def fail(_: Any) -> Any:
        raise ValueError("the step failed")

    return (fake_chat() | RunnableLambda(fail)).invoke(QUESTION)


# --- LlamaIndex -----------------------------------------------------------------------

_INDEX: Dict[str, Any] = {}


def _index() -> Any:
    from li_helpers import build_index

    if "index" not in _INDEX:
        _INDEX["index"] = build_index()
    return _INDEX["index"]


def llama_query() -> Any:
    from llama_index.core.llms.mock import MockLLM

    response = _index().as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2).query(QUESTION)
    return [str(response), [(n.node.node_id, round(n.score or 0, 6)) for n in response.source_nodes]]


def llama_stream() -> Any:
    from llama_index.core.llms.mock import MockLLM

    response = _index().as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2, streaming=True).query(QUESTION)
    return list(response.response_gen)


def llama_chat() -> Any:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.llms.mock import MockLLM

    return MockLLM(max_tokens=5).chat([ChatMessage(role="user", content=QUESTION)]).message.content


def llama_tool_history() -> Any:
    """A chat whose history holds an assistant tool call and the tool's answer."""
    from llama_index.core.llms import ChatMessage
    from llama_index.core.llms.mock import MockLLM

    history = [
        ChatMessage(role="user", content=QUESTION),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "atlas", "arguments": '{"city": "Paris"}'}}]}),
        ChatMessage(role="tool", content="Paris is the capital.", additional_kwargs={"tool_call_id": "call_1"}),
    ]
    return MockLLM(max_tokens=5).chat(history).message.content


def llama_predict() -> Any:
    from llama_index.core.llms.mock import MockLLM
    from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate
    from llama_index.core.llms import ChatMessage

    llm = MockLLM(max_tokens=5)
    chat = ChatPromptTemplate([ChatMessage(role="system", content="Answer briefly."),
                               ChatMessage(role="user", content="{question}")])
    return [llm.predict(PromptTemplate("Q: {question}\nA:"), question=QUESTION), llm.predict(chat, question=QUESTION)]


def llama_rerank() -> Any:
    from llama_index.core.llms.mock import MockLLM

    from li_helpers import KeywordRerank

    engine = _index().as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=3,
                                      node_postprocessors=[KeywordRerank(top_n=2)])
    response = engine.query(QUESTION)
    return [(n.node.node_id, n.score) for n in response.source_nodes]


def llama_error() -> Any:
    from llama_index.core.llms.mock import MockLLM

    class Broken(MockLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise ConnectionError("model server went away")

    return Broken().complete(QUESTION)


WORKLOADS: Dict[str, Dict[str, Callable[[], Any]]] = {
    "openai": {**{n: (lambda n=n: openai_call(n)) for n in OPENAI_SCENARIOS}, "moderation": openai_moderation,
               "parts": openai_parts, "error": openai_error},
    "langchain": {"rag": langchain_rag, "stream": langchain_stream, "scored": langchain_scored,
                  "tool": langchain_tool, "chat_openai": langchain_chat_openai, "reranked": langchain_reranked,
                  "legacy_llm": langchain_legacy_llm, "error": langchain_error},
    "llama_index": {"query": llama_query, "stream": llama_stream, "chat": llama_chat,
                    "tool_history": llama_tool_history, "predict": llama_predict, "rerank": llama_rerank,
                    "error": llama_error},
}


def run_all(libraries=("openai", "langchain", "llama_index")) -> dict:
    return {(lib, name): outcome(fn) for lib in libraries for name, fn in WORKLOADS[lib].items()}


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)
