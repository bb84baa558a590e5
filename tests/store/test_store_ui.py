"""The web UI's API on each store backend (SQLite, then chDB: this module is in
``BOTH_BACKENDS``): the same pages from the same spans, feedback written back into the
store the UI reads. The seed-story and browser tests are in tests/ui/ (SQLite)."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from instrumentors.store import TraceStore  # noqa: E402
from instrumentors.ui import create_app  # noqa: E402

from .conftest import STALE, planted_dataset  # noqa: E402


@pytest.fixture
def ui(rag, store_path):
    counts = planted_dataset(rag, store_path, n=60)
    rag.provider.force_flush()
    with TestClient(create_app(store_path), base_url="http://127.0.0.1") as client:
        yield client, counts


def test_pages_of_the_list_cover_it_once_in_order(ui, store_path):
    client, _ = ui
    with TraceStore(store_path) as store:
        everything = [t["trace_id"] for t in store.query(limit=None)]
    seen = []
    for offset in range(0, 70, 25):
        page = client.get("/api/traces", params={"limit": 25, "offset": offset}).json()
        assert page["total"] == len(everything) == 60
        seen += [t["trace_id"] for t in page["results"]]
    assert seen == everything
    middle = client.get("/api/traces", params={"limit": 1, "offset": 30}).json()["results"][0]["start_time"]
    newer = client.get("/api/traces", params={"since": middle, "limit": 100}).json()
    assert newer["total"] == len(newer["results"]) == 31  # since is inclusive: the 30 newer ones and itself


def test_the_seed_filter_a_trace_page_and_its_cause(ui):
    client, counts = ui
    seed = client.get("/api/traces", params={"q": "retrieval.top_score < 0.6 and feedback.score < 0.5"}).json()
    assert 0 < seed["total"] <= counts["neg"]
    assert all(r["retrieval.top_score"] < 0.6 and r["feedback.score"] < 0.5 for r in seed["results"])
    stale = next(r for r in seed["results"] if r["retrieval.top_score"] < 0.58)
    data = client.get(f"/api/traces/{stale['trace_id']}").json()
    nodes = data["graph"]["nodes"]
    assert data["explain"]["likely_cause"]["step"] == "retrieval kb"
    assert [n for n in nodes if n["likely_cause"]][0]["label"] == "retrieval kb"
    docs = {n["document_id"]: n for n in nodes if n["kind"] == "document"}
    assert docs["kb/pricing-2025"]["date"] == STALE and docs["kb/pricing-2025"]["flagged"]
    assert {e["type"] for e in data["graph"]["edges"]} >= {"INFORMED_BY", "CAUSED_BY_STEP", "retrieved"}


def test_feedback_posted_to_the_ui_lands_in_its_store(ui, store_path):
    client, _ = ui
    trace_id = client.get("/api/traces", params={"q": "feedback.score >= 0.5", "limit": 1}).json()["results"][0][
        "trace_id"]
    response = client.post(f"/api/traces/{trace_id}/feedback", json={"score": 0, "reason": "wrong plan name"})
    assert response.status_code == 201, response.text
    with TraceStore(store_path) as store:
        assert store.feedback(trace_id)[0]["reason"] == "wrong plan name"


def test_blame_and_prompts_pages(ui):
    client, counts = ui
    report = client.get("/api/blame").json()
    assert report["negative"] == counts["neg"] and report["findings"]
    assert "'retrieval kb'" in report["findings"][0]["description"]  # the planted cause: low score / stale doc
    assert report["findings"][0]["negative_rate"] > 0.6 and report["findings"][0]["positive_rate"] < 0.1
    rows = client.get("/api/prompts").json()["rows"]
    assert {r["fingerprint"] for r in rows} >= {"tpl-v1", "tpl-v2"}
    assert all(sum(c for _, c in r["score_distribution"]) == r["traces"] for r in rows)


def test_blame_is_reused_until_the_store_gains_spans_or_feedback(ui, store_path, rag, monkeypatch):
    """The blame page loads every judged trace: asked twice of an unchanged store it is
    computed once; a new trace or feedback, written by anyone, makes it computed again."""
    client, _ = ui
    calls = []
    real_blame = TraceStore.blame

    def counting(self, **kwargs):
        calls.append(kwargs)
        return real_blame(self, **kwargs)

    monkeypatch.setattr(TraceStore, "blame", counting)
    first = client.get("/api/blame").json()
    assert client.get("/api/blame").json() == first and len(calls) == 1
    client.get("/api/blame", params={"threshold": 0.4})  # another question is its own answer
    assert len(calls) == 2

    fresh = rag.run(docs=(("kb/pricing-2025", 0.41, STALE),), used=["kb/pricing-2025"])
    rag.provider.force_flush()
    client.get("/api/blame")
    assert len(calls) == 3  # a new trace: computed again
    client.get("/api/blame")
    assert len(calls) == 3

    from instrumentors import record_feedback

    record_feedback(fresh, 0.0, tracer_provider=rag.provider, store_path=store_path)
    rag.provider.force_flush()
    after = client.get("/api/blame").json()
    assert len(calls) == 4 and after["negative"] == first["negative"] + 1


def test_the_store_version_moves_with_every_write(rag, store_path):
    rag.run()
    rag.provider.force_flush()
    with TraceStore(store_path) as store:
        first = store.version()
    trace_id = rag.run()
    rag.provider.force_flush()
    with TraceStore(store_path) as store:
        one = store.version()
        assert store.version() == one  # reading does not move it
    assert None not in (first, one) and one != first
    from instrumentors import record_feedback

    record_feedback(trace_id, 1.0, tracer_provider=rag.provider, store_path=store_path)
    rag.provider.force_flush()
    with TraceStore(store_path) as store:
        assert store.version() != one
