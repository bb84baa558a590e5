"""TraceStore paging (``offset``) and counting in a time range: what the web UI's traces
list pages through without loading the store."""

from __future__ import annotations

import pytest

from instrumentors.store import TraceStore
from instrumentors.store.query import FilterError, filters_from_text, split_and


def _ids(rows):
    return [r["trace_id"] for r in rows]


def test_offset_pages_are_disjoint_and_cover_the_result_in_order(rag, store_path):
    for i in range(23):
        rag.run(query=f"q{i}", docs=(("kb/a", 0.9 if i % 3 else 0.4, "2026-11-01"),))
    with TraceStore(store_path) as store:
        everything = _ids(store.query(limit=None))
        pages = [_ids(store.query(limit=5, offset=o)) for o in range(0, 25, 5)]
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        assert sum(pages, []) == everything
        assert store.query(limit=5, offset=23) == []
        low = {"retrieval.top_score": {"lt": 0.5}}
        low_all = _ids(store.query(low, limit=None))
        assert len(low_all) == store.count(low) == 8
        assert _ids(store.query(low, limit=3, offset=3)) == low_all[3:6]
        spans = store.query(level="span", limit=None)
        assert [s["span_id"] for s in store.query(level="span", limit=4, offset=4)] == \
            [s["span_id"] for s in spans[4:8]]


def test_offset_reaches_feedback_only_traces_after_the_timed_ones(rag, store_path):
    from instrumentors import record_feedback

    for i in range(3):
        rag.run(query=f"q{i}")
    orphan = "ab" * 16  # feedback for a trace whose spans went elsewhere
    record_feedback(orphan, 0.0, tracer_provider=rag.provider, store_path=store_path)
    with TraceStore(store_path) as store:
        everything = _ids(store.query(limit=None))
        assert everything[-1] == orphan and len(everything) == 4
        assert _ids(store.query(limit=2, offset=2)) == everything[2:]
        assert _ids(store.query(limit=2, offset=3)) == [orphan]  # the page starts past the timed traces
        assert store.count() == 4
        assert store.count(since=0) == 3  # a time range: only traces with a start time


def test_count_in_a_time_range_matches_the_query(rag, store_path):
    for i in range(6):
        rag.run(query=f"q{i}")
    with TraceStore(store_path) as store:
        rows = store.query(limit=None)
        middle = rows[2]["start_ns"] / 1e9
        assert store.count(since=middle) == len(store.query(since=middle, limit=None)) == 3
        assert store.count(until=middle) == len(store.query(until=middle, limit=None)) == 3
        assert store.count(since=middle, until=middle) == 0
        assert store.count({"input.query": "q0"}, since=middle) == 0
        assert store.count({"input.query": "q0"}, until=middle) == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_offset_must_be_a_non_negative_integer(store_path, rag, bad):
    rag.run()
    with TraceStore(store_path) as store, pytest.raises(ValueError, match="offset"):
        store.query(offset=bad)


def test_filter_text_splits_on_and_outside_quotes():
    assert split_and("a<1 and b = 'x and y' AND c exists") == ["a<1", "b = 'x and y'", "c exists"]
    assert filters_from_text("retrieval.top_score < 0.6 and feedback.score < 0.5") == {
        "retrieval.top_score": {"lt": 0.6}, "feedback.score": {"lt": 0.5}}
    assert filters_from_text("  ") == {}
    assert filters_from_text("x >= 0.2 and x < 0.6") == {"x": {"gte": 0.2, "lt": 0.6}}
    with pytest.raises(FilterError):
        filters_from_text("retrieval.top_score <")
    with pytest.raises(FilterError):
        filters_from_text("a < 1 and")  # not the string '1 and'
    with pytest.raises(FilterError):
        filters_from_text("and a < 1")
    assert filters_from_text("name = 'and'") == {"name": {"eq": "and"}}


def test_a_time_bound_far_in_the_future_or_past_is_just_empty(rag, store_path):
    from datetime import datetime, timezone

    rag.run()
    with TraceStore(store_path) as store:
        far = datetime(2999, 1, 1, tzinfo=timezone.utc)
        assert store.query(since=far) == [] and store.count(since=far) == 0
        assert len(store.query(until=far)) == 1
        assert store.query(until=datetime(1000, 1, 1, tzinfo=timezone.utc)) == []
        with pytest.raises(ValueError):
            store.query(since=float("nan"))
