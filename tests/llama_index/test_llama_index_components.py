"""Node postprocessors and rerankers, chat engines, tools, agents and workflows."""

from __future__ import annotations

import asyncio
import json

import pytest
from llama_index.core.llms.mock import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.tools import FunctionTool, QueryEngineTool
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step
from opentelemetry.trace import SpanKind, StatusCode

from instrumentors import _semconv as sc
from li_helpers import QUESTION, KeywordRerank, ScriptedLLM, build_index


def _docs(nodes):
    return [{"id": n.node.node_id, "score": n.score, "metadata": {"file_name": n.node.metadata["file_name"]}}
            for n in nodes]


def test_postprocessor_and_reranker_in_a_query(li, spans, span_exporter):
    index = build_index()
    retrieved = index.as_retriever(similarity_top_k=4).retrieve(QUESTION)
    span_exporter.clear()
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=4, node_postprocessors=[
        SimilarityPostprocessor(similarity_cutoff=0.3), KeywordRerank(top_n=2)])
    response = engine.query(QUESTION)
    tree = spans()
    assert tree.outline() == [
        "query RetrieverQueryEngine",
        "  retrieval SimpleVectorStore",
        "    embeddings keyword-embedding",
        "  postprocess SimilarityPostprocessor",
        "  rerank KeywordRerank",
        "  synthesize CompactAndRefine",
        "    text_completion",
    ]
    kept = [n for n in retrieved if n.score >= 0.3]
    post = tree.one("postprocess SimilarityPostprocessor")
    assert post.kind is SpanKind.INTERNAL
    assert dict(post.attributes) == {
        sc.SPAN_KIND: sc.KIND_RERANKER, sc.LIBRARY: "llama_index", sc.COMPONENT: "SimilarityPostprocessor",
        sc.RERANK_INPUT_DOCUMENTS: json.dumps(_docs(retrieved), separators=(",", ":")),
        sc.RERANK_OUTPUT_DOCUMENTS: json.dumps(_docs(kept), separators=(",", ":")),
        # the retrieval.* summary of the nodes the step kept (3 of 4, scores >= 0.3)
        sc.RETRIEVAL_DOCUMENT_COUNT: 3,
        sc.RETRIEVAL_TOP_SCORE: pytest.approx(0.83666, abs=1e-6),
        sc.RETRIEVAL_LOWEST_SCORE: pytest.approx(0.338062, abs=1e-6),
        sc.RETRIEVAL_SCORE_ORDER: "higher_is_better",
    }
    assert len(retrieved) == 4 and len(kept) == 3
    rerank = tree.one("rerank KeywordRerank")
    assert [n.node.node_id for n in response.source_nodes] == ["doc-paris", "doc-seine"]
    assert dict(rerank.attributes) == {
        sc.SPAN_KIND: sc.KIND_RERANKER, sc.LIBRARY: "llama_index", sc.COMPONENT: "KeywordRerank",
        sc.GEN_AI_REQUEST_MODEL: "keyword-rerank-v1",
        sc.GEN_AI_REQUEST_TOP_K: 2,
        sc.RERANK_INPUT_DOCUMENTS: json.dumps(_docs(kept), separators=(",", ":")),
        sc.RERANK_OUTPUT_DOCUMENTS: json.dumps(_docs(response.source_nodes), separators=(",", ":")),
        sc.RETRIEVAL_DOCUMENT_COUNT: 2,
        sc.RETRIEVAL_TOP_SCORE: 0.9,  # KeywordRerank's own scores, not the retrieval's
        sc.RETRIEVAL_LOWEST_SCORE: 0.3,
        sc.RETRIEVAL_SCORE_ORDER: "higher_is_better",
    }


def test_reranker_called_directly_with_capture(li, spans, capture):
    index = build_index()
    nodes = index.as_retriever(similarity_top_k=3).retrieve(QUESTION)
    out = KeywordRerank(top_n=1).postprocess_nodes(nodes, query_str=QUESTION)
    rerank = spans().one("rerank KeywordRerank")
    assert json.loads(rerank.attributes[sc.RERANK_OUTPUT_DOCUMENTS]) == [{
        "id": out[0].node.node_id, "score": out[0].score, "metadata": dict(out[0].node.metadata),
        "content": out[0].node.text}]


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.mark.parametrize("how", ["call", "acall", "__call__"])
def test_function_tool(li, spans, capture, how):
    tool = FunctionTool.from_defaults(fn=multiply)
    if how == "acall":
        output = asyncio.run(tool.acall(a=6, b=7))
    elif how == "call":
        output = tool.call(a=6, b=7)
    else:
        output = tool(a=6, b=7)
    assert output.content == "42"
    tree = spans()
    assert tree.names() == ["execute_tool multiply"]
    span = tree.one("execute_tool multiply")
    assert dict(span.attributes) == {
        sc.SPAN_KIND: sc.KIND_TOOL, sc.LIBRARY: "llama_index", sc.COMPONENT: "FunctionTool",
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "multiply",
        sc.GEN_AI_TOOL_TYPE: "function",
        sc.GEN_AI_TOOL_DESCRIPTION: tool.metadata.description,
        sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"a": 6, "b": 7}',
        sc.GEN_AI_TOOL_CALL_RESULT: "42",
    }


def test_tool_error_propagates(li, spans):
    def explode(x: int) -> int:
        """Explodes."""
        raise ValueError("bad input")

    tool = FunctionTool.from_defaults(fn=explode)
    try:
        output = tool.call(x=1)
    except ValueError as exc:  # llama-index 0.12 raises
        assert str(exc) == "bad input"
    else:  # 0.14 returns an error ToolOutput
        assert output.is_error is True
    span = spans().one("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] in ("ValueError", "ToolError")
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in span.attributes


def test_query_engine_tool_nests_the_query(li, spans, span_exporter):
    index = build_index()
    span_exporter.clear()
    tool = QueryEngineTool.from_defaults(index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1),
                                         name="geo", description="Geography facts.")
    tool.call(QUESTION)
    assert spans().outline() == [
        "execute_tool geo",
        "  query RetrieverQueryEngine",
        "    retrieval SimpleVectorStore",
        "      embeddings keyword-embedding",
        "    synthesize CompactAndRefine",
        "      text_completion",
    ]


@pytest.mark.parametrize("mode", ["simple", "context"])
def test_chat_engine(li, spans, span_exporter, capture, mode):
    index = build_index()
    engine = index.as_chat_engine(chat_mode=mode, llm=MockLLM(max_tokens=3), similarity_top_k=1)
    span_exporter.clear()
    response = engine.chat("Tell me about Paris")
    tree = spans()
    name = f"chat {type(engine).__name__}"
    chat = tree.one(name)
    assert tree.parent(chat) is None
    assert chat.attributes[sc.INPUT_VALUE] == "Tell me about Paris"
    assert chat.attributes[sc.OUTPUT_VALUE] == str(response)
    assert chat.attributes[sc.SPAN_KIND] == sc.KIND_WORKFLOW
    llm = [s for s in tree.spans if s.attributes.get(sc.SPAN_KIND) == sc.KIND_LLM]
    assert len(llm) == 1
    if mode == "context":
        assert tree.parent(tree.one("retrieval SimpleVectorStore")) is chat


def test_react_agent_with_a_tool(li, spans, span_exporter, tracer_provider):
    from llama_index.core.agent.workflow import ReActAgent

    llm = ScriptedLLM(script=[
        'Thought: I need to multiply.\nAction: multiply\nAction Input: {"a": 6, "b": 7}',
        "Thought: I can answer without using any more tools.\nAnswer: 42",
    ])
    agent = ReActAgent(name="calculator", tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    tracer = tracer_provider.get_tracer("test")

    async def main():
        from llama_index.core.memory import ChatMemoryBuffer

        with tracer.start_as_current_span("user request"):
            # An in-process memory: the default SQL one leaves an aiosqlite thread behind.
            return await agent.run(user_msg="What is 6 times 7?", memory=ChatMemoryBuffer.from_defaults())

    result = asyncio.run(main())
    assert "42" in str(result)
    tree = spans()
    user = tree.one("user request")
    agent_span = tree.one("invoke_agent calculator")
    assert tree.parent(agent_span) is user
    assert agent_span.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert agent_span.attributes[sc.GEN_AI_AGENT_NAME] == "calculator"
    assert agent_span.attributes[sc.SPAN_KIND] == sc.KIND_AGENT
    tool = tree.one("execute_tool multiply")
    assert tree.parent(tool) is agent_span
    llm_spans = tree.named("chat scripted")
    assert len(llm_spans) == 2
    assert all(tree.parent(s) is agent_span for s in llm_spans)
    assert llm_spans[0].end_time <= tool.start_time
    assert {s.context.trace_id for s in tree.spans} == {user.context.trace_id}


class Greeter(Workflow):
    @step
    async def greet(self, ev: StartEvent) -> StopEvent:
        MockLLM().complete("hello")
        return StopEvent(result="hi there")


def test_plain_workflow(li, spans):
    async def main():
        return await Greeter().run()

    assert asyncio.run(main()) == "hi there"
    tree = spans()
    assert tree.outline() == ["invoke_workflow Greeter", "  text_completion"]
    flow = tree.one("invoke_workflow Greeter")
    assert flow.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert flow.attributes[sc.SPAN_KIND] == sc.KIND_WORKFLOW
