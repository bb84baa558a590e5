"""The seed article's debugging story, end to end, offline, in one command:

    python examples/seed_demo.py

"Your AI assistant is giving outdated answers. You filter traces by low user feedback
scores. You see that the retrieval score for those queries was always below 0.6. You
click into one trace and see the retrieved chunks are from documents indexed 8 months
ago. You fix your indexing schedule."

What runs: a help-center RAG app instrumented by ``instrumentors.instrument_all()`` --
a query rewriter and an answer generator on the raw ``openai`` client (answered by an
in-process transport in OpenAI's wire format: no key, no network), a LangChain
``InMemoryVectorStore`` retriever with a small deterministic embedding, and two user
steps (``instrumentors.step``): the context assembler and the output validator. The
causal registry links every step to what fed it. Some help-center articles were last
indexed ~8 months ago, before the plans were renamed, so questions about the new plans
match them poorly and get outdated answers. Simulated users judge the answers with
``instrumentors.record_feedback``. Then the store answers the seed's questions:
``query``, ``explain``, ``blame`` -- and after re-indexing the stale articles the same
questions get good answers.

Spans go to a fresh store file (``--store``, default ``.instrumentors/demo.db``), so the
demo is repeatable; explore it afterwards with the ``instrumentors`` CLI.
Needs the ``demo`` extra: ``pip install 'instrumentors[demo]'`` (openai, langchain-core).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------
# The help center: 9 articles; 3 were last indexed before the plans were renamed
# ---------------------------------------------------------------------------------------

FRESH_ARTICLES = {
    "kb/refunds": "Refunds: request a refund within 30 days from the Billing page.",
    "kb/password-reset": "Password reset: click Forgot password on the sign-in page; the reset link is valid for 1 hour.",
    "kb/sso": "SSO: single sign-on with SAML or OIDC is part of the Enterprise plan.",
    "kb/data-export": "Data export: export workspace data as CSV or JSON from Settings.",
    "kb/api-limits": "API rate limits: 600 requests per minute for each workspace token.",
    "kb/support-hours": "Support hours: chat support is available 24/7 on every paid plan.",
}
# What the index holds for three articles the indexer stopped refreshing: old plan names,
# old facts.
STALE_ARTICLES = {
    "kb/pricing": "Plans and prices: the Starter plan costs $15 per seat monthly and the Premium plan costs "
                  "$30 per seat monthly.",
    "kb/storage": "Storage quotas: the Starter plan gets 50 GB; extra space is sold in 10 GB packs.",
    "kb/mobile": "iPhone app: the app runs on iPhone and iPad only.",
}
# The same articles as they read today (what a working indexer would have stored).
CURRENT_ARTICLES = {
    "kb/pricing": "Plans and prices: the Team plan costs $19 per user per month and the Enterprise plan costs "
                  "$45 per user per month.",
    "kb/storage": "Storage limits: the Team plan includes 200 GB of file storage per workspace.",
    "kb/mobile": "Mobile apps: the mobile app is available for iOS and Android.",
}

# (question, article that answers it, a fact the correct answer contains)
QUESTIONS = [
    ("How much does the Team plan cost per user?", "kb/pricing", "$19"),
    ("What is the price of the Team plan?", "kb/pricing", "$19"),
    ("How much is the Team plan per month?", "kb/pricing", "$19"),
    ("What does the Team plan cost?", "kb/pricing", "$19"),
    ("What is the storage limit on the Team plan?", "kb/storage", "200 GB"),
    ("How much file storage comes with the Team plan?", "kb/storage", "200 GB"),
    ("What is the storage quota for the Team plan?", "kb/storage", "200 GB"),
    ("Is there an Android mobile app?", "kb/mobile", "Android"),
    ("Can I use the mobile app on Android?", "kb/mobile", "Android"),
    ("Which phones does the mobile app support?", "kb/mobile", "Android"),
    ("How do I request a refund?", "kb/refunds", "30 days"),
    ("Can I get my money back within 30 days?", "kb/refunds", "30 days"),
    ("How long is the password reset link valid?", "kb/password-reset", "1 hour"),
    ("I forgot my password, how do I reset it?", "kb/password-reset", "Forgot password"),
    ("Does the Enterprise plan include SSO?", "kb/sso", "SAML"),
    ("Can we use SAML single sign-on?", "kb/sso", "SAML"),
    ("How do I export my data as CSV?", "kb/data-export", "CSV"),
    ("Can I export workspace data to JSON?", "kb/data-export", "JSON"),
    ("What is the API rate limit per minute?", "kb/api-limits", "600"),
    ("How many API requests can a token make?", "kb/api-limits", "600"),
    ("When is chat support available?", "kb/support-hours", "24/7"),
    ("Is support available 24/7?", "kb/support-hours", "24/7"),
]

# ---------------------------------------------------------------------------------------
# A deterministic embedding: bags of normalised concepts plus a shared bias component
# ---------------------------------------------------------------------------------------

_STOP = set("a an the is are was were be to of and or in on for with by from at as it its this that what which how "
            "do does can i my we our you your me there any per much many when where who why will would should "
            "could about into than then them they their have has had not no yes if so up out get use long".split())
_SYNONYMS = {
    "price": "cost", "prices": "cost", "costs": "cost", "pricing": "cost", "plans": "plan", "users": "user",
    "seats": "seat", "refunds": "refund", "money": "refund", "iphone": "ios", "ipad": "ios", "phones": "mobile",
    "phone": "mobile", "apps": "app", "space": "storage", "quota": "storage", "quotas": "storage", "gb": "storage",
    "limits": "limit", "rate": "limit", "sign": "login", "signin": "login", "sso": "sso", "saml": "sso", "oidc": "sso",
    "csv": "export", "json": "export", "chat": "support", "available": "hours", "24/7": "hours", "monthly": "month",
    "days": "day", "requests": "request",
}
_DIM = 4096
_BIAS = 2.0 ** 0.5


def concepts(text: str) -> set:
    out = set()
    for word in re.findall(r"[a-z0-9$/]+", text.lower()):
        if word not in _STOP:
            out.add(_SYNONYMS.get(word, word))
    return out


def embed(text: str) -> List[float]:
    """Unit-less bag of concepts (hashed into 4096 slots) + a bias slot: cosine similarity
    is then (shared concepts + 2) / sqrt((|a| + 2) * (|b| + 2))."""
    import zlib

    vector = [0.0] * (_DIM + 1)
    for concept in concepts(text):
        vector[zlib.crc32(concept.encode()) % _DIM] = 1.0
    vector[_DIM] = _BIAS
    return vector


# ---------------------------------------------------------------------------------------
# Offline OpenAI: an in-process transport speaking the wire format
# ---------------------------------------------------------------------------------------

REWRITER_PROMPT = "Rewrite the user's question as a short search query. Reply with the query only."
ANSWER_PROMPT = ("You are the Acme help-center assistant. Answer the question using only the context. "
                 "Quote the article you used.")


def _completion(body: dict, content: str) -> dict:
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    return {
        "id": f"chatcmpl-demo{random.getrandbits(32):08x}", "object": "chat.completion", "created": 1764230400,
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                  "total_tokens": prompt_tokens + len(content.split())},
        "system_fingerprint": "fp_demo",
    }


def fake_openai(body: dict) -> dict:
    messages = body.get("messages", [])
    system = str(messages[0].get("content")) if messages else ""
    user = str(messages[-1].get("content")) if messages else ""
    if system == REWRITER_PROMPT:
        query = re.sub(r"[?!.]", "", user).strip()
        query = re.sub(r"^(please |hi,? )", "", query, flags=re.IGNORECASE)
        return _completion(body, query)
    # answer: the context sentence sharing most concepts with the question
    question = user.rsplit("Question:", 1)[-1]
    context = user.split("Question:", 1)[0]
    sentences = [s.strip() for s in re.split(r"\n+", context) if s.strip() and not s.startswith("Context")]
    best = max(sentences, key=lambda s: len(concepts(s) & concepts(question)), default="")
    if not best or not concepts(best) & concepts(question):
        return _completion(body, "I could not find that in the help center.")
    article, _, text = best.partition(": ")
    return _completion(body, f"According to the help center ({article.strip('[]')}): {text.strip()}")


def openai_client():
    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=fake_openai(json.loads(request.content)))

    return openai.OpenAI(api_key="sk-demo-offline", base_url="https://api.openai.com/v1",
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)), max_retries=0)


# ---------------------------------------------------------------------------------------
# The app (what a user of the library writes)
# ---------------------------------------------------------------------------------------


class HelpCenter:
    """Query rewriter -> vector search -> context assembler -> answer generator -> validator."""

    def __init__(self, tracer_provider: Any) -> None:
        from langchain_core.documents import Document
        from langchain_core.embeddings import Embeddings
        from langchain_core.vectorstores import InMemoryVectorStore

        import instrumentors

        class ConceptEmbeddings(Embeddings):
            def embed_documents(self, texts: List[str]) -> List[List[float]]:
                return [embed(t) for t in texts]

            def embed_query(self, text: str) -> List[float]:
                return embed(text)

        self._Document = Document
        self.instrumentors = instrumentors
        self.store = InMemoryVectorStore(embedding=ConceptEmbeddings())
        self.retriever = self.store.as_retriever(search_kwargs={"k": 2})
        self.client = openai_client()
        self.provider = tracer_provider
        from opentelemetry import trace

        self.tracer = trace.get_tracer("acme.helpcenter", tracer_provider=tracer_provider)

    def index(self, articles: dict, indexed_at: datetime) -> None:
        docs = [self._Document(id=doc_id, page_content=text,
                               metadata={"source": doc_id, "indexed_at": indexed_at.date().isoformat()})
                for doc_id, text in articles.items()]
        self.store.add_documents(docs, ids=[d.id for d in docs])

    def answer(self, question: str) -> tuple:
        step = self.instrumentors.step
        with self.tracer.start_as_current_span("rag_pipeline", attributes={"input.query": question}) as root:
            trace_id = self.instrumentors.current_trace_id()
            rewritten = self.client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "system", "content": REWRITER_PROMPT},
                                               {"role": "user", "content": question}],
            ).choices[0].message.content
            docs = self.retriever.invoke(rewritten)
            with step("context assembler", inputs=docs, tracer_provider=self.provider) as assembler:
                kept = docs[:1]  # the prompt budget holds one article
                context = "\n".join(f"[{d.id}]: {d.page_content}" for d in kept)
                assembler.produce(context)
            answer = self.client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "system", "content": ANSWER_PROMPT},
                                          {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"}],
            ).choices[0].message.content
            with step("output validator", inputs=[answer], tracer_provider=self.provider) as validator:
                validator.set_status("fail" if answer.startswith("I could not find") else "pass")
            root.set_attribute("output.answer", answer)
        return trace_id, answer


# ---------------------------------------------------------------------------------------
# The walkthrough
# ---------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(text)
    say("-" * min(len(text), 100))


def indent(text: str, prefix: str = "  ") -> str:
    return textwrap.indent(text, prefix)


def simulate_users(app: HelpCenter, questions: list, rounds: int, rnd: random.Random, store_path: str) -> dict:
    import instrumentors

    results = []
    for _ in range(rounds):
        for question, article, fact in questions:
            trace_id, answer = app.answer(question)
            good = fact.lower() in answer.lower()
            if good and rnd.random() < 0.06:  # a few users dislike even a right answer
                score, reason, blamed = 0.0, "too terse", None
            elif good:
                score, reason, blamed = 1.0, None, None
            else:
                score, reason = 0.0, f"outdated: the answer should mention {fact}"
                blamed = "retrieval" if rnd.random() < 0.3 else None
            instrumentors.record_feedback(trace_id, score, reason=reason, step_blamed=blamed,
                                          tracer_provider=app.provider, store_path=store_path)
            results.append({"trace_id": trace_id, "question": question, "article": article, "good": good,
                            "score": score})
    return {"results": results}


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="The seed article's debugging story, offline.")
    parser.add_argument("--store", default=os.path.join(".instrumentors", "demo.db"),
                        help="store file to (re)create (default .instrumentors/demo.db)")
    parser.add_argument("--rounds", type=int, default=2, help="times each of the 22 questions is asked (2)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    try:
        import langchain_core  # noqa: F401
        import openai  # noqa: F401
    except ImportError as exc:
        say(f"The demo needs openai and langchain-core: pip install 'instrumentors[demo]' ({exc})")
        return 1

    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import instrumentors
    from instrumentors.store import SQLiteSpanExporter, TraceStore
    from instrumentors.store import render

    import shutil

    # the reports below are indented by two spaces: render them to fit the terminal
    columns = shutil.get_terminal_size((100, 24)).columns
    os.environ["COLUMNS"] = str(max(76, min(columns, 124)) - 4)
    path = args.store
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    provider = TracerProvider(resource=Resource.create({"service.name": "acme-helpcenter"}))
    provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(path)))
    trace.set_tracer_provider(provider)
    # content capture on: it is a demo with synthetic data, and it shows the questions
    # and the documents' indexed_at metadata (with capture off only ids/scores are kept)
    libraries = instrumentors.instrument_all(tracer_provider=provider, capture_content=True)
    rnd = random.Random(args.seed)
    random.seed(args.seed)

    now = datetime.now(timezone.utc)
    stale_date, fresh_date = now - timedelta(days=245), now - timedelta(days=2)
    app = HelpCenter(provider)
    app.index(FRESH_ARTICLES, fresh_date)
    app.index(STALE_ARTICLES, stale_date)

    say("instrumentors demo: why is the help-center assistant giving outdated answers?")
    say("=" * 78)
    say(f"Instrumented: {', '.join(libraries)} + user steps; spans -> {path}")
    say(f"Indexed {len(FRESH_ARTICLES) + len(STALE_ARTICLES)} help-center articles "
        f"({len(STALE_ARTICLES)} of them last indexed {stale_date.date().isoformat()}, ~8 months ago).")
    run = simulate_users(app, QUESTIONS, args.rounds, rnd, path)
    provider.force_flush()
    bad_count = sum(1 for r in run["results"] if r["score"] < 0.5)
    say(f"Answered {len(run['results'])} questions; users gave {bad_count} thumbs down.")

    store = TraceStore(path)
    # Step 1 ------------------------------------------------------------------------------
    heading('Step 1. Filter traces by low user feedback:  store.query({"user_feedback.score": {"lt": 0.5}})')
    negative = store.query({"user_feedback.score": {"lt": 0.5}}, limit=None)
    positive = store.query({"user_feedback.score": {"gte": 0.5}}, limit=None)
    say(indent(render.trace_table(negative[:6])))
    low_neg = sum(1 for t in negative if (t["retrieval.top_score"] or 1) < 0.6)
    low_pos = sum(1 for t in positive if (t["retrieval.top_score"] or 1) < 0.6)
    say(f"  ... {len(negative)} negative traces. retrieval.top_score < 0.6 in {low_neg} of them "
        f"(and in {low_pos} of {len(positive)} positive ones).")

    # Step 2 ------------------------------------------------------------------------------
    heading("Step 2. The seed's query: low feedback AND retrieval score below 0.6")
    say('  bad_traces = trace_store.query(filters={"user_feedback.score": {"lt": 0.5},')
    say('                                          "retrieval.top_score": {"lt": 0.6}}, limit=50)')
    bad_traces = store.query(filters={"user_feedback.score": {"lt": 0.5}, "retrieval.top_score": {"lt": 0.6}},
                             limit=50)
    say('  for trace in bad_traces: print(trace["retrieval.top_score"], trace["input.query"])')
    seen = set()
    for t in bad_traces:
        if t["input.query"] in seen:
            continue
        seen.add(t["input.query"])
        say(f"    {t['retrieval.top_score']:.2f} {t['input.query']}")
    say(f"  ({len(bad_traces)} traces, {len(seen)} distinct questions. The same from a shell:")
    say("   instrumentors query -w 'feedback.score<0.5' -w 'retrieval.top_score<0.6')")

    # Step 3 ------------------------------------------------------------------------------
    example = bad_traces[0]["trace_id"] if bad_traces else (negative[0]["trace_id"] if negative else None)
    if example:
        heading(f"Step 3. Open one trace:  instrumentors explain {example[:12]}")
        result = store.explain(example)
        say(indent(render.explain_text(result)))
        stale_docs = sorted({d for a in result["anomalies"] if a["kind"] == "stale_documents"
                             for d in a.get("documents", [])})
        if stale_docs:
            say(f"  -> the retrieved chunks come from documents indexed ~8 months ago: {', '.join(stale_docs)}")

    # Step 4 ------------------------------------------------------------------------------
    heading("Step 4. Across every judged trace:  instrumentors blame")
    report = store.blame(top=4)
    say(indent(render.blame_text(report)))

    # Step 5 ------------------------------------------------------------------------------
    stale_questions = [q for q in QUESTIONS if q[1] in STALE_ARTICLES]
    heading(f"Step 5. Fix the indexer: re-index {len(STALE_ARTICLES)} stale articles, ask those "
            f"{len(stale_questions)} questions again")
    before = [r for r in run["results"] if r["article"] in STALE_ARTICLES]
    app.index(CURRENT_ARTICLES, now)
    after_run = simulate_users(app, stale_questions, 1, random.Random(args.seed + 1), path)
    provider.force_flush()
    store.close()
    store = TraceStore(path)
    after_ids = {r["trace_id"] for r in after_run["results"]}
    after = [t for t in store.query(None, limit=len(after_ids) + 5) if t["trace_id"] in after_ids]
    before_ids = {r["trace_id"] for r in before}
    before_sum = [t for t in store.query({"retrieval.top_score": {"exists": True}}, limit=None)
                  if t["trace_id"] in before_ids]

    def mean(values: list) -> float:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else float("nan")

    say(f"  before: {sum(1 for r in before if r['score'] < 0.5)} of {len(before)} answers judged bad, "
        f"mean retrieval.top_score {mean([t['retrieval.top_score'] for t in before_sum]):.2f}")
    say(f"  after:  {sum(1 for r in after_run['results'] if r['score'] < 0.5)} of {len(after_run['results'])} "
        f"answers judged bad, mean retrieval.top_score {mean([t['retrieval.top_score'] for t in after]):.2f}")
    say("  Problem solved, and the store keeps the record of exactly what caused it.")

    heading("Explore the traces yourself")
    say(f"  instrumentors --store {path} list")
    if example:
        say(f"  instrumentors --store {path} show {example[:12]}")
        say(f"  instrumentors --store {path} graph {example[:12]} -o trace.html  # offline HTML")
    say(f"  instrumentors --store {path} blame --json")
    store.close()
    instrumentors.uninstrument_all()
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
