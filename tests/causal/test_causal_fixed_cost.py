"""The per-call shortcuts of consume/produce change nothing but cost: the input-keys
cache returns what a fresh computation returns and stays bounded; produce finds the
consumption token of the header we wrote without parsing it, and still parses any other."""

from __future__ import annotations

import pytest

from instrumentors.causal import Produced, consume, digests, fingerprint, produce
from instrumentors.causal._api import PENDING


def _fresh(texts, k, lengths=()):
    """input_keys with an empty cache for every text (a reference computation)."""
    out = []
    for text in texts:
        fingerprint._text_cache_for(None, -1)  # forget everything
        out.append(fingerprint.input_keys([text], k, lengths))
    fingerprint._text_cache_for(None, -1)
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_cached_input_keys_equal_fresh_ones(k):
    texts = ["You are a terse assistant.", "What is the capital of France, and which river?",
             "", "!!", "one two", " ".join(f"w{i}" for i in range(80)), "Ünïcode café naïve 1. [2] \\n x"]
    fresh = _fresh(texts, k, (3, 4))
    for _ in range(3):  # the second and third rounds are cache hits
        for text, ref in zip(texts, fresh):
            got = fingerprint.input_keys([text], k, (3, 4))
            assert (got.shingles, got.wholes, got.all, got.small) == (ref.shingles, ref.wholes, ref.all, ref.small)
    both = fingerprint.input_keys(texts[:2], k, (3, 4))
    assert both.small == fresh[0].small | fresh[1].small
    assert both.all == fresh[0].all | fresh[1].all
    assert both.wholes == fresh[0].wholes + fresh[1].wholes


def test_input_keys_cache_is_bounded():
    fingerprint.input_keys(["warm up"], 5)
    for i in range(fingerprint.TEXT_CACHE_MAX + 50):
        fingerprint.input_keys([f"text number {i} with a few more words"], 5)
        entries, held = fingerprint.text_cache_size()
        assert entries <= fingerprint.TEXT_CACHE_MAX and held <= fingerprint.TEXT_CACHE_MAX_KEYS
    long_text = " ".join(f"w{i}" for i in range(fingerprint.TEXT_CACHE_MAX_CHARS))  # too long to keep
    before = fingerprint.text_cache_size()
    assert fingerprint.input_keys([long_text], 5).shingles
    assert fingerprint.text_cache_size() == before
    for i in range(40):  # texts of ~3,000 keys each: the key budget empties the cache
        fingerprint.input_keys([" ".join(f"x{i}y{j}" for j in range(700))], 5)
        assert fingerprint.text_cache_size()[1] <= fingerprint.TEXT_CACHE_MAX_KEYS
    fingerprint.clear_text_cache()
    assert fingerprint.text_cache_size() == (0, 0)


def test_input_keys_cache_follows_digest_key(set_config):
    keyed = fingerprint.input_keys(["alpha beta gamma delta epsilon zeta"], 5).shingles
    set_config(digest_key="off")
    unkeyed = fingerprint.input_keys(["alpha beta gamma delta epsilon zeta"], 5).shingles
    assert unkeyed != keyed
    assert unkeyed == {fingerprint.tuple_key(ids) for ids in [fingerprint.word_ids("alpha beta gamma delta epsilon")[0:5],
                                                              fingerprint.word_ids("beta gamma delta epsilon zeta")]}


def test_produce_finds_the_token_without_parsing(tracer, monkeypatch):
    question = "what is the refund window for opened electronics"
    with tracer.start_as_current_span("root"):
        consumption = consume([question])
        span = tracer.start_span("llm", attributes=consumption.attributes)
        header = consumption.attributes["instrumentors.causal.consumed"][0]
        assert " c=" in header and PENDING._headers[header]
        monkeypatch.setattr(digests, "consumption_token", lambda value: pytest.fail("parsed"))
        produce(span, [Produced("the refund window for opened electronics is 14 days", "generation")])
        span.end()
    assert not PENDING._items and not PENDING._headers


def test_take_consumed_parses_headers_it_did_not_write():
    token = PENDING.put({1, 2}, {3})
    value = (f"fp1 k=5 n=2 c={token}", "00")
    assert PENDING.take_consumed(value) == ({1, 2}, {3})
    assert PENDING.take_consumed(value) is None
    assert PENDING.take_consumed(("fp1 k=5 n=2",)) is None and PENDING.take_consumed("fp1 c=1") is None
    assert PENDING.take_consumed(None) is None and PENDING.take_consumed(()) is None


def test_pending_header_map_is_bounded_with_its_items():
    for i in range(PENDING.MAX_ENTRIES + 20):
        token = PENDING.new_token()
        PENDING.put({i}, set(), token, f"fp1 k=5 n=1 c={token}")
    assert len(PENDING._items) == PENDING.MAX_ENTRIES
    assert set(PENDING._headers.values()) == set(PENDING._items)


def test_combining_inputs_never_changes_cached_sets():
    cached = "the refund window for opened electronics is fourteen days from delivery"
    long_text = " ".join(f"w{i}" for i in range(fingerprint.TEXT_CACHE_MAX_CHARS // 3))  # never cached
    (ref,) = _fresh([cached], 5)
    fingerprint.input_keys([cached], 5)  # now cached
    both = fingerprint.input_keys([cached, long_text, "another short input of six words"], 5)
    assert ref.shingles < both.shingles
    again = fingerprint.input_keys([cached], 5)
    assert (again.shingles, again.all, again.small) == (ref.shingles, ref.all, ref.small)
