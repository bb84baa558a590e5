"""The UI's answer cache on its own: bounded, dropped when the store changes, bypassed
when the store cannot tell whether it changed."""

from __future__ import annotations

from instrumentors.ui.answers import AnswerCache


def test_kept_answers_are_bounded_and_least_recently_used_go_first():
    cache = AnswerCache(lambda: 1, size=3)
    computed = []
    for key in range(10):
        cache.get(key, lambda key=key: computed.append(key) or key)
    assert len(cache) == 3 and len(computed) == 10
    assert cache.get(9, lambda: "again") == 9  # kept
    assert cache.get(0, lambda: "again") == "again"  # evicted long ago


def test_a_new_version_drops_every_kept_answer():
    version = [1]
    cache = AnswerCache(lambda: version[0])
    assert cache.get("blame", lambda: "old") == "old"
    assert cache.get("blame", lambda: "unused") == "old"
    version[0] = 2
    assert cache.get("blame", lambda: "new") == "new" and len(cache) == 1


def test_a_store_that_cannot_tell_is_asked_every_time():
    cache = AnswerCache(lambda: None)
    answers = iter(["a", "b"])
    assert cache.get("k", lambda: next(answers)) == "a"
    assert cache.get("k", lambda: next(answers)) == "b" and len(cache) == 0
