"""Load: 10,000 instrumented calls over 8 threads and 200 asyncio tasks, mixing OpenAI,
LangChain and LlamaIndex in the same process at once.

Each request is one trace (a root span), of one of three shapes:

* ``lc->openai``: a LangChain retriever, then a raw OpenAI chat whose prompt holds the
  retrieved documents (a causal link inside the trace);
* ``lc->llama``: the same retriever, then a LlamaIndex LLM completing that prompt;
* ``openai-only``: an OpenAI chat whose prompt holds the same documents, retrieved in
  *other* traces only -- with the default trace scope it must link to nothing.

Checked: 0 lost (every request's trace holds exactly its spans: root, retrieval, LLM,
nothing missing, nothing extra, none parented outside the trace), 0 open (every started
span ended), 0 cross-trace links (every link points into its own trace, and the
openai-only requests have none), and the registry within its bounds afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict
from typing import Any

import pytest

import openai_scenarios as S
from instrumentors.causal.registry import REGISTRY

THREADS, PER_THREAD = 8, 750  # 6,000 thread requests + 2,400 task requests: 10,000+ library calls
TASKS, PER_TASK = 200, 12
DOCS = [("kb/paris", "Paris is the capital of France and sits on the river Seine in the north of the country."),
        ("kb/rome", "Rome is the capital of Italy and was the centre of the Roman empire for centuries."),
        ("kb/berlin", "Berlin is the capital of Germany and is known for its museums and its long history.")]
SHAPES = ("lc->openai", "lc->llama", "openai-only")


def _retriever():
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class KB(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list:
            return [Document(page_content=text, id=doc_id, metadata={"source": doc_id}) for doc_id, text in DOCS]

    return KB()


def _prompt(docs: list, i: int) -> str:
    return "Answer from the context.\n\n" + "\n\n".join(d.page_content for d in docs) + f"\n\nQuestion {i}?"


ALL_TEXT = "\n\n".join(text for _, text in DOCS)


class App:
    def __init__(self, tracer) -> None:
        from llama_index.core.llms.mock import MockLLM

        self.tracer = tracer
        self.retriever = _retriever()
        self.client = S.mock_client(S.reply("chat_basic"), False)
        self.aclient = S.mock_client(S.reply("chat_basic"), True)
        self.llm = MockLLM(max_tokens=3)
        self.roots: dict = {}
        self.lock = threading.Lock()

    def _root(self, shape: str):
        span = self.tracer.start_span("request", attributes={"load.shape": shape})
        with self.lock:
            self.roots[span.get_span_context().trace_id] = shape
        return span

    def request(self, i: int) -> None:
        from opentelemetry import trace

        shape = SHAPES[i % 3]
        root = self._root(shape)
        with trace.use_span(root, end_on_exit=True):
            if shape == "openai-only":
                self.client.chat.completions.create(model="gpt-4o-mini", messages=[
                    {"role": "user", "content": f"Answer from the context.\n\n{ALL_TEXT}\n\nQuestion {i}?"}])
                return
            docs = self.retriever.invoke(f"question {i}")
            if shape == "lc->openai":
                self.client.chat.completions.create(model="gpt-4o-mini",
                                                    messages=[{"role": "user", "content": _prompt(docs, i)}])
            else:
                self.llm.complete(_prompt(docs, i))

    async def arequest(self, i: int) -> None:
        from opentelemetry import trace

        shape = SHAPES[i % 3]
        root = self._root(shape)
        with trace.use_span(root, end_on_exit=True):
            if shape == "openai-only":
                await self.aclient.chat.completions.create(model="gpt-4o-mini", messages=[
                    {"role": "user", "content": f"Answer from the context.\n\n{ALL_TEXT}\n\nQuestion {i}?"}])
                return
            docs = await self.retriever.ainvoke(f"question {i}")
            if shape == "lc->openai":
                await self.aclient.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": _prompt(docs, i)}])
            else:
                await self.llm.acomplete(_prompt(docs, i))


EXPECTED = {  # instrumentors.span.kind -> count, per trace of each shape (plus the root)
    "lc->openai": {"retriever": 1, "llm": 1},
    "lc->llama": {"retriever": 1, "llm": 1},
    "openai-only": {"llm": 1},
}
CALLS = {"lc->openai": 2, "lc->llama": 2, "openai-only": 1}


@pytest.mark.timeout(600)
def test_10k_calls_threads_and_tasks_nothing_lost_open_or_crossed(traced, instrument_all_with):
    assert sorted(instrument_all_with(traced, causal_links=True, causal_scope="trace")) == [
        "langchain", "llama_index", "openai"]
    app = App(traced.provider.get_tracer("load"))
    errors: list = []

    def worker(t: int) -> None:
        try:
            for j in range(PER_THREAD):
                app.request(t * PER_THREAD + j)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    async def tasks() -> None:
        base = THREADS * PER_THREAD

        async def task(t: int) -> None:
            for j in range(PER_TASK):
                await app.arequest(base + t * PER_TASK + j)

        await asyncio.gather(*(task(t) for t in range(TASKS)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    asyncio.run(tasks())  # the tasks run while the threads do
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]

    requests = THREADS * PER_THREAD + TASKS * PER_TASK
    calls = sum(CALLS[SHAPES[i % 3]] for i in range(requests))
    assert calls >= 10_000
    assert len(app.roots) == requests
    assert traced.counter.still_open() == []  # 0 open
    spans = traced.spans()
    assert traced.counter.started == traced.counter.ended == len(spans)

    by_trace = defaultdict(list)
    for span in spans:
        by_trace[span.context.trace_id].append(span)
    assert set(by_trace) == set(app.roots)  # no trace lost, none made up
    lost, extra, crossed, linked_only = [], [], [], Counter()
    for trace_id, members in by_trace.items():
        shape = app.roots[trace_id]
        ids = {s.context.span_id for s in members}
        kinds = Counter(s.attributes.get("instrumentors.span.kind") for s in members if s.name != "request")
        llm_client = Counter(s.attributes.get("instrumentors.library") for s in members
                             if s.attributes.get("instrumentors.span.kind") == "llm")
        want = EXPECTED[shape]
        if any(kinds.get(k, 0) < n for k, n in want.items()):
            lost.append((shape, dict(kinds)))
        if set(kinds) - set(want) - {None} or sum(kinds.values()) > sum(want.values()) + llm_client.get("openai", 0):
            extra.append((shape, dict(kinds)))
        for span in members:
            if span.parent is not None and span.parent.span_id not in ids:
                crossed.append(("parent", shape, span.name))
            for link in span.links:
                if link.context.trace_id != trace_id:
                    crossed.append(("link", shape, span.name))
                elif shape == "openai-only":
                    crossed.append(("link-without-producer", shape, span.name))
                else:
                    linked_only[shape] += 1
    assert not lost, lost[:5]  # 0 lost
    assert not extra, extra[:5]
    assert not crossed, crossed[:5]  # 0 cross-trace links (and no span parented elsewhere)
    # the in-trace links were made: every lc-> request links its LLM call to its retrieval
    assert linked_only["lc->openai"] >= requests // 3 - 1 and linked_only["lc->llama"] >= requests // 3 - 1
    stats = REGISTRY.stats()
    assert stats["sources"] <= 10_000
