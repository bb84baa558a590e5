"""End to end, capture off: raw OpenAI calls with two different system prompts, exported
to a SQLite store, are told apart by ``compare_prompts`` through the system-prompt hash
the OpenAI instrumentor writes, and no system prompt text reaches the store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from instrumentors import _content, record_feedback
from instrumentors.openai import OpenAIInstrumentor
from instrumentors.store import TraceStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "openai"))
import openai_scenarios as S  # noqa: E402

SYSTEM_V1 = "You are a support agent. Quote the refund policy verbatim."
SYSTEM_V2 = "You are a support agent. Paraphrase the refund policy in your own words."


@pytest.fixture
def openai_to_store(store_provider):
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=store_provider)
    yield store_provider
    instrumentor.uninstrument()


def test_compare_prompts_groups_raw_openai_calls_by_system_prompt(openai_to_store, store_path):
    assert _content.capture_enabled() is False
    provider = openai_to_store
    tracer = provider.get_tracer("app")
    client = S.mock_client(S.reply("chat_basic"), False)
    for i in range(6):
        system = SYSTEM_V2 if i % 2 else SYSTEM_V1
        with tracer.start_as_current_span("handle question") as root:
            client.chat.completions.create(model=S.CHAT_MODEL, messages=[
                {"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}])
        record_feedback(root.get_span_context(), 0.0 if system == SYSTEM_V2 else 1.0, tracer_provider=provider,
                        store_path=store_path)
    provider.force_flush()
    with TraceStore(store_path) as store:
        rows = store.compare_prompts()
    assert [(r["step"], r["basis"], r["fingerprint"], r["generations"], r["traces"], r["mean_score"],
             r["best_in_step"]) for r in rows] == [
        ("chat gpt-4o-mini", "system", _content.content_hash(SYSTEM_V1), 3, 3, 1.0, True),
        ("chat gpt-4o-mini", "system", _content.content_hash(SYSTEM_V2), 3, 3, 0.0, False),
    ]
    assert [r["preview"] for r in rows] == [None, None]
    if store_path.startswith("chdb:"):  # every column of every row, as text
        with TraceStore(store_path) as store:
            stored = repr(store.reader._rows(f"SELECT * FROM {store.reader._table}")).encode()
        assert b"chat gpt-4o-mini" in stored
    else:
        stored = b"".join(p.read_bytes() for p in Path(store_path).parent.iterdir() if p.is_file())
    for text in (SYSTEM_V1, SYSTEM_V2, "Quote the refund", "Paraphrase"):
        assert text.encode() not in stored
