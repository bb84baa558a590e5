"""Tool spans are the *current* span while the tool body runs: a raw OpenAI client call,
a user's own span and an ``instrumentors.step`` inside a ``FunctionTool`` nest under
``execute_tool``, called directly, asynchronously, through another tool or by an agent."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.types import AsyncBaseTool, BaseTool
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import instrumentors
from instrumentors import _semconv as sc
from instrumentors.llama_index import _tools
from instrumentors.llama_index._patches import ModelMethodWrapper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "openai"))
import openai_scenarios as S  # noqa: E402
from li_helpers import ScriptedLLM  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hi."}]


@pytest.fixture
def tracer(tracer_provider):
    return tracer_provider.get_tracer("test")


def _chat_tool(client: Any) -> FunctionTool:
    def ask(question: str) -> str:
        """Ask the model."""
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content

    async def aask(question: str) -> str:
        """Ask the model."""
        response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return response.choices[0].message.content

    return FunctionTool.from_defaults(fn=ask, async_fn=aask, name="ask")


def _assert_nested(tree: Any, child_name: str, tool_name: str = "execute_tool ask", root: Any = None) -> Any:
    tool = tree.one(tool_name)
    child = tree.one(child_name)
    assert tree.parent(child) is tool
    assert child.context.trace_id == tool.context.trace_id
    assert child.start_time >= tool.start_time and child.end_time <= tool.end_time
    assert tree.parent(tool) is root
    return tool, child


@pytest.mark.parametrize("how", ["call", "__call__", "acall"])
def test_raw_openai_call_in_a_tool_nests_under_execute_tool(li, openai_on, spans, tracer, how):
    client = S.mock_client(S.reply("chat_basic"), is_async=how == "acall")
    tool = _chat_tool(client)
    with tracer.start_as_current_span("request"):
        if how == "acall":
            output = asyncio.run(tool.acall(question="hi"))
        elif how == "call":
            output = tool.call(question="hi")
        else:
            output = tool(question="hi")
    assert output.content == S.ANSWER
    tree = spans()
    assert tree.outline() == ["request", "  execute_tool ask", "    chat gpt-4o-mini"]
    tool_span, chat = _assert_nested(tree, "chat gpt-4o-mini", root=tree.one("request"))
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes[sc.LIBRARY] == "openai"
    assert tool_span.attributes[sc.GEN_AI_TOOL_NAME] == "ask"
    assert tool_span.status.status_code is StatusCode.UNSET


def test_raw_openai_call_in_a_tool_without_a_parent_is_one_trace(li, openai_on, spans):
    tool = _chat_tool(S.mock_client(S.reply("chat_basic"), is_async=False))
    tool.call(question="hi")
    tree = spans()
    assert tree.outline() == ["execute_tool ask", "  chat gpt-4o-mini"]
    _assert_nested(tree, "chat gpt-4o-mini")


def _user_span_tool(tracer: Any) -> FunctionTool:
    def lookup(key: str) -> str:
        """Look a key up."""
        with tracer.start_as_current_span("user lookup"):
            return key.upper()

    async def alookup(key: str) -> str:
        """Look a key up."""
        await asyncio.sleep(0)
        with tracer.start_as_current_span("user lookup"):
            return key.upper()

    return FunctionTool.from_defaults(fn=lookup, async_fn=alookup, name="lookup")


@pytest.mark.parametrize("is_async", [False, True])
def test_user_span_in_a_tool_nests_under_execute_tool(li, spans, tracer, is_async):
    tool = _user_span_tool(tracer)
    before = trace.get_current_span()
    output = asyncio.run(tool.acall(key="abc")) if is_async else tool.call(key="abc")
    assert output.content == "ABC"
    assert trace.get_current_span() is before
    tree = spans()
    assert tree.outline() == ["execute_tool lookup", "  user lookup"]
    _assert_nested(tree, "user lookup", "execute_tool lookup")


def test_instrumentors_step_in_a_tool_nests_under_execute_tool(li, spans, tracer_provider):
    def validate(text: str) -> str:
        """Validate a text."""
        with instrumentors.step("validator", inputs=text, tracer_provider=tracer_provider):
            return "ok"

    FunctionTool.from_defaults(fn=validate).call(text="some text")
    tree = spans()
    assert tree.outline() == ["execute_tool validate", "  validator"]
    _assert_nested(tree, "validator", "execute_tool validate")


def test_tool_calling_a_tool_nests(li, spans, tracer):
    inner = _user_span_tool(tracer)

    def outer(key: str) -> str:
        """Calls the lookup tool."""
        return inner.call(key=key).content

    FunctionTool.from_defaults(fn=outer).call(key="x")
    tree = spans()
    assert tree.outline() == ["execute_tool outer", "  execute_tool lookup", "    user lookup"]


def test_tool_exception_keeps_object_and_ends_span(li, spans, tracer):
    error = RuntimeError("boom")

    class Exploding(AsyncBaseTool):
        @property
        def metadata(self):
            from llama_index.core.tools.types import ToolMetadata

            return ToolMetadata(name="exploding", description="Explodes.")

        def call(self, input: Any) -> Any:
            with tracer.start_as_current_span("inside"):
                raise error

        async def acall(self, input: Any) -> Any:
            return self.call(input)

    tool = Exploding()
    with pytest.raises(RuntimeError) as caught:
        tool.call("x")
    assert caught.value is error
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(tool.acall("x"))
    assert caught.value is error
    tree = spans()
    assert tree.outline() == ["execute_tool exploding", "  inside", "execute_tool exploding", "  inside"]
    for span in tree.named("execute_tool exploding"):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[sc.ERROR_TYPE] == "RuntimeError"


def test_agent_tool_body_openai_call_and_user_span_nest(li, openai_on, spans, tracer):
    from llama_index.core.agent.workflow import ReActAgent
    from llama_index.core.memory import ChatMemoryBuffer

    client = S.mock_client(S.reply("chat_basic"), is_async=True)

    async def ask(question: str) -> str:
        """Ask the model."""
        with tracer.start_as_current_span("user lookup"):
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return response.choices[0].message.content

    llm = ScriptedLLM(script=[
        'Thought: I need to ask.\nAction: ask\nAction Input: {"question": "hi"}',
        "Thought: I can answer without using any more tools.\nAnswer: done",
    ])
    agent = ReActAgent(name="asker", tools=[FunctionTool.from_defaults(async_fn=ask, name="ask")], llm=llm)

    async def main():
        with tracer.start_as_current_span("request"):
            return await agent.run(user_msg="Ask it.", memory=ChatMemoryBuffer.from_defaults())

    assert "done" in str(asyncio.run(main()))
    tree = spans()
    agent_span = tree.one("invoke_agent asker")
    assert tree.parent(agent_span) is tree.one("request")
    tool = tree.one("execute_tool ask")
    assert tree.parent(tool) is agent_span
    user = tree.one("user lookup")
    assert tree.parent(user) is tool
    chat = tree.one("chat gpt-4o-mini")
    assert tree.parent(chat) is user
    assert {s.context.trace_id for s in tree.spans} == {agent_span.context.trace_id}


def test_not_instrumented_passes_through(tracer_provider, span_exporter, tracer):
    from instrumentors.llama_index import LlamaIndexInstrumentor

    originals = {name: FunctionTool.__dict__[name] for name in _tools.TOOL_METHODS}
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    wrapped = {name: FunctionTool.__dict__[name] for name in _tools.TOOL_METHODS}
    assert all(wrapped[name] is not originals[name] for name in _tools.TOOL_METHODS)
    patched = {(cls, name) for cls, name, _ in instrumentor.session.patcher.patched}
    assert (FunctionTool, "call") in patched and (AsyncBaseTool, "__call__") in patched
    instrumentor.uninstrument()
    assert all(FunctionTool.__dict__[name] is originals[name] for name in _tools.TOOL_METHODS)
    for cls in (BaseTool, AsyncBaseTool, FunctionTool):
        for name in _tools.TOOL_METHODS:
            assert not isinstance(cls.__dict__.get(name), ModelMethodWrapper)

    tool = _user_span_tool(tracer)
    with tracer.start_as_current_span("request"):
        assert tool.call(key="a").content == "A"
    names = [s.name for s in span_exporter.get_finished_spans()]
    assert names == ["user lookup", "request"]


def test_start_failure_fails_open(li, spans, tracer, monkeypatch):
    def broken(*args: Any) -> Any:
        raise ValueError("instrumentation bug")

    monkeypatch.setattr(li.session.logic, "start_span", broken)
    tool = _user_span_tool(tracer)
    output = tool.call(key="a")
    assert output.content == "A"
    assert [s.name for s in spans().spans] == ["user lookup"]


def test_call_no_dispatcher_span_adopted_is_finished_by_the_wrapper(li, spans, tracer, capture):
    """Handler gone mid-session (another ``Dispatcher`` reset): the wrapper ends its span."""
    dispatcher = get_dispatcher()
    handlers = list(dispatcher.span_handlers)
    dispatcher.span_handlers = [h for h in handlers if h is not li.session.span_handler]
    try:
        output = _user_span_tool(tracer).call(key="b")
    finally:
        dispatcher.span_handlers = handlers
    assert output.content == "B"
    tree = spans()
    assert tree.outline() == ["execute_tool lookup", "  user lookup"]
    tool = tree.one("execute_tool lookup")
    assert tool.attributes[sc.GEN_AI_TOOL_CALL_RESULT] == "B"
    assert tool.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"key": "b"}'

