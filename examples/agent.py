"""An agent's bad answer, traced back to a stale tool result -- offline, in a few seconds.

What runs: an office-assistant agent built with LangGraph's ``create_react_agent`` on
``ChatOpenAI``. Its one tool, ``lookup_policy``, searches the company handbook through a
LangChain retriever. The model (an in-process fake answering in OpenAI's wire format, so
no key and no network) calls the tool, reads its result and answers from it. One handbook
page, the Paris office hours, was last updated long ago: the office now opens at 9:00,
the page still says 10:00.

``instrumentors.instrument_all()`` traces it all (content capture off: spans carry ids,
scores, dates and fingerprints, never the text). Users judge the answers; then
``explain`` walks back from a bad answer through the agent's turns (final model call ->
the tool result it read -> the retrieval inside the tool) to the stale page, and
``blame`` ranks the stale page first across all answers.

    pip install -e ".[agent-demo]" && python examples/agent.py

Spans go to a fresh ``.instrumentors/agent.db`` (``--store``); explore it afterwards with
``instrumentors --store .instrumentors/agent.db explain TRACE``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

NOW = datetime.now(timezone.utc)

# id, text, last updated (days ago)
HANDBOOK = [
    ("hours-paris", "Paris office hours: the Paris office opens at 10:00 and closes at 18:00 on weekdays.", 700),
    ("hours-berlin", "Berlin office hours: the Berlin office opens at 8:00 and closes at 17:00 on weekdays.", 12),
    ("parking", "Parking policy: staff park in level two of the garage; visitors register at reception.", 20),
    ("expenses", "Expenses policy: submit receipts within thirty days through the expenses portal.", 5),
    ("wifi", "Guest wifi policy: the guest network password is printed on the badge at reception.", 9),
]
QUESTIONS = [
    "When does the Paris office open?",
    "When does the Berlin office open?",
    "Where do staff park at the garage?",
    "How do I submit expenses receipts?",
    "What is the guest wifi password policy?",
    "What time does the Paris office open on weekdays?",
    "When does the Berlin office close?",
    "Paris office hours please",
]
TRUTH = {"hours-paris": "9:00"}  # what changed since the page was written


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------
# The handbook retriever (keyword overlap; scores in [0, 1]) and the agent's tool
# ---------------------------------------------------------------------------------------


def _words(text: str) -> set:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - {"the", "a", "do", "i", "is", "what", "when", "does"}


def make_tool() -> Any:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import tool

    class HandbookRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list:
            q = _words(query)
            scored = sorted(((len(q & _words(text)) / max(1, len(q)), doc_id, text, age)
                             for doc_id, text, age in HANDBOOK), reverse=True)
            return [Document(id=doc_id, page_content=text,
                             metadata={"source": f"handbook/{doc_id}.md", "score": round(score, 3),
                                       "updated_at": (NOW - timedelta(days=age)).date().isoformat()})
                    for score, doc_id, text, age in scored[:1]]

    retriever = HandbookRetriever()

    @tool
    def lookup_policy(query: str) -> str:
        """Look a question up in the company handbook."""
        return "\n".join(d.page_content for d in retriever.invoke(query))

    return lookup_policy


# ---------------------------------------------------------------------------------------
# Offline: an in-process OpenAI (wire-format responses, no network)
# ---------------------------------------------------------------------------------------


def _offline_openai(request: Any) -> Any:
    import httpx

    body = json.loads(request.content)
    messages = body["messages"]
    last = messages[-1]
    if last["role"] == "user":  # turn 1: look it up
        call = {"id": f"call_{abs(hash(last['content'])) % 10**8}", "type": "function",
                "function": {"name": "lookup_policy", "arguments": json.dumps({"query": last["content"]})}}
        message, finish = {"content": None, "tool_calls": [call]}, "tool_calls"
    else:  # turn 2: answer from the tool result
        message, finish = {"content": f"According to the handbook: {last['content']}"}, "stop"
    return httpx.Response(200, json={
        "id": "chatcmpl-agent", "object": "chat.completion", "created": int(NOW.timestamp()),
        "model": body["model"] + "-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 40 + 5 * len(messages), "completion_tokens": 18, "total_tokens": 58 + 5 * len(messages)},
    })


def make_model() -> Any:
    import httpx
    from langchain_openai import ChatOpenAI

    if os.environ.get("OPENAI_API_KEY") and os.environ.get("AGENT_EXAMPLE_ONLINE"):
        return ChatOpenAI(model="gpt-4o-mini", temperature=0)
    return ChatOpenAI(model="gpt-4o-mini", temperature=0, api_key="offline", max_retries=0,
                      http_client=httpx.Client(transport=httpx.MockTransport(_offline_openai)))


# ---------------------------------------------------------------------------------------


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="An agent's bad answer traced back to a stale tool result.")
    parser.add_argument("--store", default=os.path.join(".instrumentors", "agent.db"),
                        help="store file to (re)create (default .instrumentors/agent.db)")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked (3)")
    args = parser.parse_args(argv)
    try:
        import langchain_openai  # noqa: F401
        import langgraph  # noqa: F401
    except ImportError as exc:
        say(f"This example needs langgraph and langchain-openai: pip install -e '.[agent-demo]' ({exc})")
        return 1

    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    import instrumentors
    from instrumentors.store import SQLiteSpanExporter, TraceStore, render

    path = args.store
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    provider = TracerProvider(resource=Resource.create({"service.name": "office-assistant"}))
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    instrumentors.instrument_all(tracer_provider=provider)  # content capture off (the default)
    tracer = provider.get_tracer("office-assistant")

    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent moved to langchain.agents in 1.x
        agent = create_react_agent(make_model(), [make_tool()], name="office_assistant")

    say("An office assistant agent answers staff questions; spans -> " + path)
    say("=" * 78)
    seen: set = set()
    for question in QUESTIONS * args.rounds:
        with tracer.start_as_current_span("request") as request:
            out = agent.invoke({"messages": [("user", question)]})
        answer = out["messages"][-1].content
        wrong = "Paris office opens at 10:00" in answer  # the office opens at 9:00 now
        instrumentors.record_feedback(request.get_span_context(), 0.0 if wrong else 1.0,
                                      reason="wrong opening time" if wrong else None, tracer_provider=provider)
        if question not in seen:  # each question once; the later rounds answer the same
            seen.add(question)
            say(f"{'👎' if wrong else '👍'} {question}\n     {answer}")
    provider.force_flush()

    store = TraceStore(path)
    bad = store.query(filters={"feedback.score": {"lt": 0.5}}, limit=10)
    say("")
    say(f"{len(QUESTIONS) * args.rounds} answers, {store.count(filters={'feedback.score': {'lt': 0.5}})} judged wrong."
        " explain one:")
    say("-" * 78)
    result = store.explain(bad[0]["trace_id"])
    say(render.explain_text(result))
    say("")
    say("blame across all judged answers:")
    say("-" * 78)
    say(render.blame_text(store.blame(min_support=2)))
    cause = result.get("likely_cause") or {}
    instrumentors.uninstrument_all()
    provider.shutdown()
    return 0 if cause.get("kind") == "stale_documents" else 1


if __name__ == "__main__":
    sys.exit(main())
