"""The web UI's JSON API on the seed demo's store, through Starlette's TestClient (the
ASGI app in process: no socket)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from instrumentors.store import TraceStore  # noqa: E402
from instrumentors.ui import create_app  # noqa: E402
from instrumentors.ui.app import STATIC_DIR  # noqa: E402

from .conftest import SEED_FILTER  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def client(seed_store):
    with TestClient(create_app(seed_store), base_url=BASE) as c:
        yield c


@pytest.fixture
def writable(seed_copy):
    with TestClient(create_app(seed_copy), base_url=BASE) as c:
        yield c, seed_copy


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    assert {"/static/app.js", "/static/app.css"} <= set(re.findall(r'"(/static/[^"]+)"', page.text))


def test_no_asset_reaches_outside_the_server():
    """No CDN, font or script from elsewhere: the only absolute URL is the SVG namespace."""
    for name in os.listdir(STATIC_DIR):
        text = Path(STATIC_DIR, name).read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text and "url(http" not in text


def test_the_assets_ship_in_the_wheel():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["instrumentors.ui"]
    assert {"index.html", "app.js", "app.css"} <= set(os.listdir(STATIC_DIR))


def test_traces_are_paged_on_the_server(client, seed_store):
    with TraceStore(seed_store) as store:
        everything = [t["trace_id"] for t in store.query(limit=None)]
    first = client.get("/api/traces", params={"limit": 20}).json()
    assert first["total"] == len(everything) == 57  # 54 answered questions, 3 indexing calls
    assert [t["trace_id"] for t in first["results"]] == everything[:20]
    seen = []
    for offset in range(0, 60, 20):
        page = client.get("/api/traces", params={"limit": 20, "offset": offset}).json()
        seen += [t["trace_id"] for t in page["results"]]
    assert seen == everything


def test_the_seed_filter_finds_the_bad_answers_with_low_scores(client):
    data = client.get("/api/traces", params={"q": SEED_FILTER, "limit": 50}).json()
    assert data["filters"] == {"retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}}
    assert data["total"] == len(data["results"]) == 20
    for row in data["results"]:
        assert row["retrieval.top_score"] < 0.6 and row["feedback.score"] < 0.5
        assert row["input.query"]


def test_the_filter_line_takes_the_cli_syntax(client):
    assert client.get("/api/traces", params={"q": "feedback.score < 0.5"}).json()["total"] == 22
    assert client.get("/api/traces", params={"q": "name = 'context assembler'"}).json()["total"] == 54
    assert client.get("/api/traces", params={"q": "feedback.score !exists"}).json()["total"] == 3  # indexing
    bad = client.get("/api/traces", params={"q": "retrieval.top_score <"})
    assert bad.status_code == 400 and "missing value" in bad.json()["error"]


def test_a_time_range_narrows_the_list_and_its_total(client, seed_store):
    with TraceStore(seed_store) as store:
        rows = store.query(limit=None)
    middle = rows[27]["start_time"]
    newer = client.get("/api/traces", params={"since": middle, "limit": 100}).json()
    older = client.get("/api/traces", params={"until": middle, "limit": 100}).json()
    assert newer["total"] == len(newer["results"]) == 28
    assert older["total"] == len(older["results"]) == 29
    assert all(r["start_time"] >= middle for r in newer["results"])
    future = client.get("/api/traces", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0 and future["results"] == []
    assert client.get("/api/traces", params={"since": "yesterday"}).status_code == 400


def test_paging_parameters_are_checked(client):
    assert client.get("/api/traces", params={"limit": 0}).status_code == 400
    assert client.get("/api/traces", params={"limit": 100_000}).status_code == 400
    assert client.get("/api/traces", params={"offset": -1}).status_code == 400
    assert client.get("/api/traces", params={"offset": "x"}).status_code == 400


def test_a_list_page_loads_only_its_own_traces(client, monkeypatch):
    """Large stores stay responsive: a page loads its rows' spans, never the store's."""
    from instrumentors.store.sqlite_reader import SQLiteReader

    loaded = []
    original = SQLiteReader.load

    def spy(self, refs, **kwargs):
        loaded.append(len(list(refs)))
        return original(self, refs, **kwargs)

    monkeypatch.setattr(SQLiteReader, "load", spy)
    assert len(client.get("/api/traces", params={"limit": 5, "offset": 10}).json()["results"]) == 5
    assert loaded and max(loaded) <= 5


def _seed_trace(client) -> str:
    return client.get("/api/traces", params={"q": SEED_FILTER, "limit": 1}).json()["results"][0]["trace_id"]


def test_one_trace_has_its_tree_graph_walk_back_and_likely_cause(client):
    trace_id = _seed_trace(client)
    data = client.get(f"/api/traces/{trace_id[:10]}").json()  # a prefix is enough
    assert data["trace"]["trace_id"] == trace_id
    assert len(data["waterfall"]) == data["trace"]["span_count"]
    cause = data["explain"]["likely_cause"]
    assert cause["kind"] == "low_score" and cause["step"].startswith("retrieval")
    graph = data["graph"]
    kinds = {n["kind"] for n in graph["nodes"]}
    assert kinds == {"step", "document", "answer"} and graph["has_links"]
    [cause_node] = [n for n in graph["nodes"] if n["likely_cause"]]
    assert cause_node["span_id"] == cause["span_id"]
    docs = [n for n in graph["nodes"] if n["kind"] == "document"]
    assert any("stale" in " ".join(n["flagged"]) for n in docs)
    types = {e["type"] for e in graph["edges"]}
    assert {"INFORMED_BY", "CAUSED_BY_GENERATION", "CAUSED_BY_STEP", "retrieved", "output"} <= types
    column = {n["id"]: n["column"] for n in graph["nodes"]}
    assert all(column[e["source"]] < column[e["target"]] for e in graph["edges"])
    answer = next(n for n in graph["nodes"] if n["kind"] == "answer")
    assert column["answer"] == max(column.values()) and answer["feedback"][0]["score"] == 0.0


def test_an_unknown_trace_is_a_404_with_the_reason(client):
    missing = client.get("/api/traces/" + "f" * 32)
    assert missing.status_code == 404 and "no trace" in missing.json()["error"]
    assert client.get("/api/traces/xyz").status_code == 400


def test_feedback_from_the_trace_page_is_recorded_in_the_store(writable):
    client, path = writable
    trace_id = client.get("/api/traces", params={"q": "feedback.score >= 0.5", "limit": 1}).json()["results"][0][
        "trace_id"]
    response = client.post(f"/api/traces/{trace_id}/feedback",
                           json={"score": 0, "reason": "quotes an old price", "step_blamed": "retrieval"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["recorded"]["trace_id"] == trace_id and body["recorded"]["parent_source"] == "root"
    assert [f["reason"] for f in body["feedback"]][0] == "quotes an old price"
    with TraceStore(path) as store:
        stored = store.feedback(trace_id)
    assert stored[0]["score"] == 0.0 and stored[0]["step_blamed"] == "retrieval" and stored[0]["key"] == "user"
    # the list now counts it as a negative trace
    assert client.get("/api/traces", params={"q": "feedback.score < 0.5"}).json()["total"] == 23


def test_feedback_that_cannot_be_recorded_writes_nothing(writable):
    client, path = writable
    trace_id = _seed_trace(client)
    url = f"/api/traces/{trace_id}/feedback"
    assert client.post(url, json={"score": "bad"}).status_code == 400
    assert client.post(url, json={"score": None}).status_code == 400
    assert client.post(url, json={"score": 1, "reason": "x" * 5000}).status_code == 400
    assert client.post(url, content=b"score=0", headers={"content-type": "application/x-www-form-urlencoded"}
                       ).status_code == 415  # a cross-site form cannot post feedback
    assert client.post(url, json={"score": 0}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(f"/api/traces/{'e' * 32}/feedback", json={"score": 0}).status_code == 404
    with TraceStore(path) as store:
        assert len(store.feedback(trace_id)) == 1  # only the demo's own
        assert store.count() == 57


def test_feedback_into_a_locked_store_is_a_503_never_recorded(writable, monkeypatch):
    import sqlite3

    from instrumentors import _feedback

    client, path = writable
    trace_id = _seed_trace(client)
    monkeypatch.setattr(_feedback, "DEFAULT_STORE_TIMEOUT_MS", 200)  # the lock wait, shortened for the test
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        response = client.post(f"/api/traces/{trace_id}/feedback", json={"score": 0})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503 and "not stored" in response.json()["error"]
    with TraceStore(path) as store:
        assert len(store.feedback(trace_id)) == 1  # only the demo's own


def test_only_local_host_names_are_answered(seed_store):
    with TestClient(create_app(seed_store), base_url="http://attacker.example") as c:
        assert c.get("/api/info").status_code == 400  # DNS rebinding gets nothing


def test_blame_ranks_the_stale_documents_first_with_rates_and_examples(client):
    report = client.get("/api/blame").json()
    assert report["negative"] == 22 and report["positive"] == 32
    top = report["findings"][0]
    assert "stale" in top["description"] and top["negative_rate"] > 0.9 and top["positive_rate"] == 0.0
    for trace_id in top["example_traces"]:
        assert client.get(f"/api/traces/{trace_id}").status_code == 200
    narrowed = client.get("/api/blame", params={"q": "gen_ai.request.model = 'gpt-4o'", "threshold": 0.5}).json()
    assert narrowed["negative"] == 22
    assert client.get("/api/blame", params={"threshold": "high"}).status_code == 400


def test_prompts_give_each_version_its_feedback_distribution(client):
    data = client.get("/api/prompts").json()
    assert data["rows"]
    for row in data["rows"]:
        distribution = row["score_distribution"]
        assert sum(count for _, count in distribution) == row["traces"]
        negative = sum(count for score, count in distribution if score < 0.5)
        assert negative == row["negative"]


def test_info_names_the_store_and_offers_the_seed_query(client, seed_store):
    data = client.get("/api/info").json()
    assert data["store"] == seed_store and data["stats"]["traces"] == 57
    assert data["seed_filter"] == SEED_FILTER and data["presets"][0]["query"] == SEED_FILTER
    assert data["feedback_enabled"] is True


def test_a_missing_store_fails_when_the_app_is_made(tmp_path):
    from instrumentors.store import StoreNotFound

    with pytest.raises(StoreNotFound):
        create_app(str(tmp_path / "nothing.db"))


def test_feedback_goes_where_the_store_was_given(seed_store):
    from instrumentors.ui.app import feedback_target

    with TraceStore(seed_store) as store:
        assert feedback_target("clickhouse://u:pw@host:8123/otel", store) == "clickhouse://u:pw@host:8123/otel"
        assert feedback_target(Path(seed_store), store) == seed_store
        assert feedback_target(store, store) == seed_store  # an open SQLite store: its own path
