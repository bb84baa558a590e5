"""An in-process OpenAI for tests: chat completions in the wire format (tool calls,
answers from tool results, SSE streams) behind an httpx MockTransport, and clients bound to
it (the openai SDK, LangChain's ChatOpenAI, LlamaIndex's OpenAI). Shared by the LangGraph
and LlamaIndex agent tests."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any, Callable, List, Optional

MODEL = "gpt-4o-mini"


def httpx_module() -> Any:
    """The HTTP library the installed openai SDK uses (openai 3.x moved to httpx2)."""
    import openai

    return importlib.import_module("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")


# ---------------------------------------------------------------------------------------
# The in-process OpenAI
# ---------------------------------------------------------------------------------------


def _completion(body: dict, message: dict, finish: str) -> dict:
    return {
        "id": "chatcmpl-lg", "object": "chat.completion", "created": 1764230400,
        "model": body["model"] + "-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }


def _sse(body: dict, message: dict, finish: str) -> bytes:
    base = {"id": "chatcmpl-lg-stream", "object": "chat.completion.chunk", "created": 1764230400,
            "model": body["model"] + "-2024-07-18"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    for i, call in enumerate(message.get("tool_calls") or ()):
        events.append({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
            {"index": i, "id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]}}]})
    for word in re.findall(r"\S+\s*", message.get("content") or ""):
        events.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 10,
                                                    "total_tokens": 60}})
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


def react_policy(tool_name: str = "search_web", calls: int = 1) -> Callable[[dict], tuple]:
    """A model that calls ``tool_name`` ``calls`` times (one call per turn, arguments from
    the question), then answers from the last tool result."""

    def reply(body: dict) -> tuple:
        messages = body["messages"]
        tool_turns = sum(1 for m in messages if m["role"] == "tool")
        if body.get("tools") and tool_turns < calls:
            question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            call = {"id": f"call_{tool_turns + 1}", "type": "function",
                    "function": {"name": tool_name, "arguments": json.dumps({"query": question})}}
            return {"content": None, "tool_calls": [call]}, "tool_calls"
        last_tool = next((m for m in reversed(messages) if m["role"] == "tool"), None)
        if last_tool is None:
            return {"content": "I do not know."}, "stop"
        result = last_tool["content"] or "nothing"
        return {"content": f"According to the knowledge base: {result}"}, "stop"

    return reply


def always_call(tool_name: str = "search_web") -> Callable[[dict], tuple]:
    """A model that never stops calling the tool (a loop that hits the recursion limit)."""
    return react_policy(tool_name, calls=10**6)


class FakeOpenAI:
    """Records every request body; answers with ``policy(body) -> (message, finish)``."""

    def __init__(self, policy: Optional[Callable[[dict], tuple]] = None) -> None:
        self.policy = policy or react_policy()
        self.requests: List[dict] = []

    def handler(self, request: Any) -> Any:
        httpx = httpx_module()
        body = json.loads(request.content)
        self.requests.append(body)
        message, finish = self.policy(body)
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=_sse(body, message, finish))
        return httpx.Response(200, json=_completion(body, message, finish))

    def transport(self) -> Any:
        return httpx_module().MockTransport(self.handler)

    def chat_model(self, **kwargs: Any) -> Any:
        from langchain_openai import ChatOpenAI

        httpx = httpx_module()
        return ChatOpenAI(model=MODEL, api_key="sk-test", max_retries=0,
                          http_client=httpx.Client(transport=self.transport()),
                          http_async_client=httpx.AsyncClient(transport=self.transport()), **kwargs)

    def llama_index_llm(self, **kwargs: Any) -> Any:
        from llama_index.llms.openai import OpenAI

        httpx = httpx_module()
        return OpenAI(model=MODEL, api_key="sk-test", max_retries=0,
                      http_client=httpx.Client(transport=self.transport()),
                      async_http_client=httpx.AsyncClient(transport=self.transport()), **kwargs)

    def client(self) -> Any:
        import openai

        return openai.OpenAI(api_key="sk-test", max_retries=0,
                             http_client=httpx_module().Client(transport=self.transport()))

    def async_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key="sk-test", max_retries=0,
                                  http_client=httpx_module().AsyncClient(transport=self.transport()))


