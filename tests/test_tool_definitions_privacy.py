"""Tool definitions pass the content gate in every library (issue 10 item 4).

A canary sits in every user-written field of a tool: its description, a parameter's
description, title, enum value, default and example, and a nested object's description.
The tool is offered through OpenAI chat, OpenAI Responses, LangChain ``bind_tools`` and
LlamaIndex ``chat_with_tools`` (real clients, HTTP answered in-process in OpenAI's wire
format) and executed as a LangChain and a LlamaIndex tool. With capture off the canary
appears in no span and not in the store, and ``gen_ai.tool.definitions`` holds exactly
the structure (type, name, parameter names and types); with capture on it is redacted
by the hook like every captured text and cut to the length limit.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from instrumentors import _semconv as sc
from instrumentors.store.exporter import SQLiteSpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent / "openai"))
import openai_scenarios as S  # noqa: E402

CANARY = "zqcanary7731"
REDACTED = "[REDACTED]"


class Address(BaseModel):
    """Where to deliver. zqcanary7731 nested model docstring."""

    city: str = Field(description="The city zqcanary7731")


class LookupArgs(BaseModel):
    """Arguments zqcanary7731 model docstring."""

    order_id: str = Field(description="The order number zqcanary7731", title="Order zqcanary7731",
                          examples=["zqcanary7731-example"])
    unit: Literal["zqcanary7731-enum", "plain"] = Field(default="zqcanary7731-enum")
    address: Address


TOOL_DESCRIPTION = "Look up an order. zqcanary7731 tool description."
PARAMETERS = LookupArgs.model_json_schema()
CHAT_TOOL = {"type": "function", "function": {"name": "lookup_order", "description": TOOL_DESCRIPTION,
                                              "parameters": PARAMETERS}}
RESPONSES_TOOL = {"type": "function", "name": "lookup_order", "description": TOOL_DESCRIPTION,
                  "parameters": PARAMETERS}
# pydantic puts Address under $defs and refers to it: both are structure and stay.
SHAPE = {"type": "function", "name": "lookup_order", "parameters": {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "unit": {"type": "string"}, "address": {"$ref": "#/$defs/Address"}},
    "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    "required": ["order_id", "address"],
}}
# langchain-openai inlines $refs before sending (convert_to_openai_tool).
INLINED_SHAPE = {"type": "function", "name": "lookup_order", "parameters": {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "unit": {"type": "string"}, "address": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    "required": ["order_id", "address"],
}}
# llama-index-llms-openai closes the object (strict function calling).
CLOSED_SHAPE = {**SHAPE, "parameters": {**SHAPE["parameters"], "additionalProperties": False}}


def lookup_order(order_id: str, unit: str = "plain", address: dict = None) -> str:
    return f"order {order_id}: shipped"


def _http_client(scenario: str):
    httpx = S.http_module()
    return httpx.Client(transport=httpx.MockTransport(S.reply(scenario)))


def _openai_chat() -> None:
    client = S.mock_client(S.reply("chat_tools"), is_async=False)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   tools=[CHAT_TOOL])


def _openai_responses() -> None:
    client = S.mock_client(S.reply("responses_function_call"), is_async=False)
    client.responses.create(model="gpt-4o-mini", input="hi", tools=[RESPONSES_TOOL])


def _langchain_bind_tools() -> None:
    from langchain_core.tools import StructuredTool
    from langchain_openai import ChatOpenAI

    tool = StructuredTool.from_function(lookup_order, description=TOOL_DESCRIPTION, args_schema=LookupArgs)
    model = ChatOpenAI(model="gpt-4o-mini", api_key="placeholder", max_retries=0,
                       http_client=_http_client("chat_tools"))
    model.bind_tools([tool]).invoke("hi")


def _langchain_tool() -> None:
    from langchain_core.tools import StructuredTool

    tool = StructuredTool.from_function(lookup_order, description=TOOL_DESCRIPTION, args_schema=LookupArgs)
    tool.invoke({"order_id": "A1", "address": {"city": "Paris"}})


def _llama_index_chat_with_tools() -> None:
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    tool = FunctionTool.from_defaults(fn=lookup_order, name="lookup_order", description=TOOL_DESCRIPTION,
                                      fn_schema=LookupArgs)
    llm = OpenAI(model="gpt-4o-mini", api_key="sk-placeholder", max_retries=0, http_client=_http_client("chat_tools"))
    llm.chat_with_tools([tool], user_msg="hi")


def _llama_index_tool() -> None:
    from llama_index.core.tools import FunctionTool

    tool = FunctionTool.from_defaults(fn=lookup_order, name="lookup_order", description=TOOL_DESCRIPTION,
                                      fn_schema=LookupArgs)
    tool.call(order_id="A1", address={"city": "Paris"})


OFFERED = {  # calls that offer the tool to a model: (call, libraries whose spans carry definitions, shape)
    "openai_chat": (_openai_chat, {"openai"}, SHAPE),
    "openai_responses": (_openai_responses, {"openai"}, SHAPE),
    "langchain_bind_tools": (_langchain_bind_tools, {"langchain", "openai"}, INLINED_SHAPE),
    "llama_index_chat_with_tools": (_llama_index_chat_with_tools, {"llama_index", "openai"}, CLOSED_SHAPE),
}
EXECUTED = {"langchain_tool": _langchain_tool, "llama_index_tool": _llama_index_tool}


def _definition_spans(span_exporter) -> dict:
    return {s.attributes[sc.LIBRARY]: s for s in span_exporter.get_finished_spans()
            if sc.GEN_AI_TOOL_DEFINITIONS in s.attributes}


def _written(span_exporter) -> str:
    return "\n".join(S.everything_written(s) for s in span_exporter.get_finished_spans())


def _store_bytes(span_exporter, tmp_path) -> bytes:
    exporter = SQLiteSpanExporter(str(tmp_path / "traces.db"))
    exporter.export(span_exporter.get_finished_spans())
    exporter.shutdown()
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_capture_off_definitions_carry_only_structure(everything, span_exporter, tmp_path, name):
    call, libraries, shape = OFFERED[name]
    call()
    spans = _definition_spans(span_exporter)
    assert set(spans) == libraries
    for span in spans.values():
        assert json.loads(span.attributes[sc.GEN_AI_TOOL_DEFINITIONS]) == [shape]
    assert CANARY not in _written(span_exporter)
    store = _store_bytes(span_exporter, tmp_path)
    assert b"lookup_order" in store  # the store did receive the spans
    assert CANARY.encode() not in store


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_capture_on_definitions_are_redacted(everything, span_exporter, set_config, tmp_path, name):
    set_config(capture_content=True, redact=lambda text: text.replace(CANARY, REDACTED))
    call, libraries, _shape = OFFERED[name]
    call()
    spans = _definition_spans(span_exporter)
    assert set(spans) == libraries
    for span in spans.values():
        (definition,) = json.loads(span.attributes[sc.GEN_AI_TOOL_DEFINITIONS])
        assert definition["name"] == "lookup_order"
        assert definition["description"] == TOOL_DESCRIPTION.replace(CANARY, REDACTED)
        props = definition["parameters"]["properties"]
        assert props["order_id"]["description"] == f"The order number {REDACTED}"
        assert props["unit"]["enum"] == [f"{REDACTED}-enum", "plain"]
    assert CANARY not in _written(span_exporter)
    assert CANARY.encode() not in _store_bytes(span_exporter, tmp_path)


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_capture_on_definitions_are_bounded(everything, span_exporter, set_config, name):
    set_config(capture_content=True, max_attribute_length=80)
    OFFERED[name][0]()
    for span in _definition_spans(span_exporter).values():
        value = span.attributes[sc.GEN_AI_TOOL_DEFINITIONS]
        assert len(value) == 80 and value.endswith("…[truncated]")


@pytest.mark.parametrize("name", sorted(EXECUTED))
def test_tool_description_on_execute_tool_spans(everything, span_exporter, set_config, name):
    EXECUTED[name]()
    (span,) = [s for s in span_exporter.get_finished_spans() if s.name == "execute_tool lookup_order"]
    assert sc.GEN_AI_TOOL_DESCRIPTION not in span.attributes
    assert CANARY not in _written(span_exporter)

    span_exporter.clear()
    set_config(capture_content=True, redact=lambda text: text.replace(CANARY, REDACTED))
    EXECUTED[name]()
    (span,) = [s for s in span_exporter.get_finished_spans() if s.name == "execute_tool lookup_order"]
    assert span.attributes[sc.GEN_AI_TOOL_DESCRIPTION].startswith("Look up an order. [REDACTED]")
    assert CANARY not in _written(span_exporter)


def test_schema_shape_keeps_structure_only():
    from instrumentors._readers import schema_shape

    schema = {
        "type": ["object", "null"], "title": "T", "description": "d",
        "properties": {"a": {"type": "array", "items": {"type": "integer", "minimum": 1, "description": "x"}},
                       "b": {"anyOf": [{"type": "string", "pattern": "p.*"}, {"const": "c"}]},
                       "c": {"additionalProperties": {"type": "number", "default": 3}}},
        "required": ["a"], "additionalProperties": False, "examples": [{"a": [1]}],
    }
    assert schema_shape(schema) == {
        "type": ["object", "null"],
        "properties": {"a": {"type": "array", "items": {"type": "integer"}},
                       "b": {"anyOf": [{"type": "string"}, {}]},
                       "c": {"additionalProperties": {"type": "number"}}},
        "required": ["a"], "additionalProperties": False,
    }
    deep: dict = {"type": "object"}
    for _ in range(500):
        deep = {"type": "object", "properties": {"x": deep}}
    assert schema_shape(deep)["type"] == "object"  # cut, no RecursionError
    assert schema_shape("not a schema") is None


def test_builtin_tools_keep_type_and_name_only(set_config):
    from instrumentors._content import tool_definitions

    tools = [{"type": "web_search_preview", "search_context_size": "low"},
             {"type": "custom", "name": "grammar_tool", "description": "zqcanary7731"},
             {"type": "file_search", "vector_store_ids": ["vs_zqcanary7731"]}]
    assert json.loads(tool_definitions(tools)) == [
        {"type": "web_search_preview"}, {"type": "custom", "name": "grammar_tool"}, {"type": "file_search"}]
    set_config(capture_content=True)
    assert json.loads(tool_definitions(tools))[1] == {"type": "custom", "name": "grammar_tool",
                                                      "description": "zqcanary7731"}
    assert tool_definitions([]) is None and tool_definitions(None) is None
