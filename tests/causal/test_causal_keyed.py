"""Keyed digests: fingerprints and content hashes on spans cannot be guessed from a
dictionary without the digest key, yet processes sharing the key still rebuild links."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import subprocess
import sys

import pytest

from instrumentors import _config, _content, _digest_key
from instrumentors import _semconv as sc
from instrumentors.causal import Produced, SpanDigests, consume, digests, fingerprint, produce, rebuild_links

TEST_SUITE_SECRET = "instrumentors-test-suite-key"  # tests/conftest.py
DOC = ("Refunds are issued within fourteen days of the return being received at our "
       "warehouse, provided the item is unused and in its original packaging with receipt.")
PROMPT = f"Answer from the context only.\n\n[1] {DOC}\n\nQuestion: how long do refunds take?"


def _unkeyed_whole_key(word: bytes) -> int:
    return hash((int.from_bytes(word, "little"),)) & fingerprint.MASK


def _produced_yes(tracer) -> tuple:
    with tracer.start_as_current_span("request"):
        span = tracer.start_span("chat")
        produce(span, [Produced("Yes", "generation", rank=0)])
        span.end()
    value = span.attributes[sc.CAUSAL_PRODUCED_DIGESTS]
    _, outputs = digests.parse_produced(value)
    assert len(outputs) == 1 and outputs[0].words == 1
    return value[0], outputs[0].keys


@pytest.fixture
def key_dir(tmp_path, set_config):
    """Default key setting (a key file next to the store) in a fresh directory."""
    _digest_key.reset()
    set_config(digest_key=None, store_path=str(tmp_path / "store" / "traces.db"))
    yield tmp_path / "store"
    _digest_key.reset()


def test_the_session_key_is_the_sha256_of_the_secret_and_named_by_its_kid(tracer):
    assert _config.get_config().digest_key == TEST_SUITE_SECRET
    secret = hashlib.sha256(TEST_SUITE_SECRET.encode()).digest()
    assert _digest_key.key() == secret
    assert _digest_key.key_id() == hmac.new(secret, b"instrumentors digest key id v1", "sha256").hexdigest()[:8]
    assert _digest_key.key_id() == "360251e5"
    head, keys = _produced_yes(tracer)
    assert head == "fp1 k=5 kid=360251e5"
    expected_id = int.from_bytes(
        hashlib.blake2b(b"yes", digest_size=8, key=secret, person=b"instr.word.v1").digest(), "little")
    assert fingerprint.word_ids("Yes!") == [expected_id]
    assert keys == (hash((expected_id,)) & fingerprint.MASK,)


def test_default_key_file_is_created_0600_and_keys_a_one_word_output(tracer, key_dir, set_config):
    head, keyed = _produced_yes(tracer)
    path = key_dir / "digest.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n")
    secret = bytes.fromhex(text.strip())
    assert _digest_key.key() == secret
    assert head == f"fp1 k=5 kid={hmac.new(secret, b'instrumentors digest key id v1', 'sha256').hexdigest()[:8]}"
    assert keyed != (_unkeyed_whole_key(b"yes"),)          # not what a dictionary attack computes

    set_config(digest_key="another secret")
    head_other, other = _produced_yes(tracer)
    assert other != keyed and head_other != head

    set_config(digest_key="OFF")                           # case-insensitive: today's format
    head_off, unkeyed = _produced_yes(tracer)
    assert head_off == "fp1 k=5"
    assert unkeyed == (_unkeyed_whole_key(b"yes"),)

    set_config(digest_key=None)                            # back to the file: same key again
    assert _produced_yes(tracer) == (head, keyed)
    assert path.read_text() == text


def test_an_existing_key_file_is_read_not_replaced(key_dir):
    key_dir.mkdir()
    (key_dir / "digest.key").write_text("ab" * 32 + "\n")
    assert _digest_key.key() == bytes.fromhex("ab" * 32)
    assert (key_dir / "digest.key").read_text() == "ab" * 32 + "\n"


def test_unwritable_key_directory_falls_back_to_a_process_key_with_one_warning(tmp_path, set_config, caplog, tracer):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    _digest_key.reset()
    caplog.set_level(logging.WARNING, logger="instrumentors")
    try:
        set_config(digest_key=None, store_path=str(blocker / "store" / "traces.db"))
        first = _digest_key.key()
        assert first is not None and len(first) == 32
        with tracer.start_as_current_span("request"):               # linking still works
            retrieval = tracer.start_span("retrieve")
            produce(retrieval, [Produced(DOC, "document", "kb/refunds", 0)])
            retrieval.end()
            consumption = consume([PROMPT])
        assert [link.attributes[sc.LINK_DOCUMENT_ID] for link in consumption.links] == ["kb/refunds"]
        assert len(_content.content_hash("You are terse.")) == 16
        set_config(digest_key=None, store_path=str(blocker / "other" / "traces.db"))
        assert _digest_key.key() == first                           # one key per process
        warnings = [r for r in caplog.records if r.name == "instrumentors" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "INSTRUMENTORS_DIGEST_KEY" in warnings[0].getMessage()
        assert not (blocker.parent / "digest.key").exists()
    finally:
        _digest_key.reset()


def test_a_corrupt_key_file_is_not_overwritten_and_falls_back(key_dir, caplog, monkeypatch):
    monkeypatch.setattr(_digest_key, "_READ_WAIT_SECONDS", 0.0)
    key_dir.mkdir()
    (key_dir / "digest.key").write_text("not hex")
    caplog.set_level(logging.WARNING, logger="instrumentors")
    assert len(_digest_key.key()) == 32
    assert (key_dir / "digest.key").read_text() == "not hex"
    assert sum(r.name == "instrumentors" for r in caplog.records) == 1


def test_keyed_word_cache_is_bounded_and_eviction_keeps_ids_stable():
    fingerprint.word_ids("warm up")
    first = fingerprint.word_ids("alpha beta gamma")
    vocabulary = " ".join(f"w{i}" for i in range(fingerprint.WORD_CACHE_MAX + 5000))
    ids = fingerprint.word_ids(vocabulary)
    assert len(ids) == fingerprint.WORD_CACHE_MAX + 5000 and len(set(ids)) == len(ids)
    assert 0 < fingerprint.word_cache_size() <= fingerprint.WORD_CACHE_MAX
    assert fingerprint.word_ids("alpha beta gamma") == first     # recomputed after eviction
    assert fingerprint.word_cache_size() <= fingerprint.WORD_CACHE_MAX


def test_content_hash_is_keyed(set_config):
    text = "You are a helpful assistant."
    secret = hashlib.sha256(TEST_SUITE_SECRET.encode()).digest()
    content_key = hmac.new(secret, b"instrumentors content hash v1", "sha256").digest()
    keyed = _content.content_hash(text)
    assert keyed == hmac.new(content_key, text.encode(), "sha256").hexdigest()[:16]
    assert keyed != hashlib.sha256(text.encode()).hexdigest()[:16]
    assert _content.content_hash(text) == keyed and _content.content_hash(text + " ") != keyed
    set_config(digest_key="another secret")
    assert _content.content_hash(text) not in (keyed, hashlib.sha256(text.encode()).hexdigest()[:16])
    set_config(digest_key="off")
    assert _content.content_hash(text) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_content_hash_cache_is_bounded_keyed_and_returns_what_the_hmac_gives(set_config):
    def uncached(text: str) -> str:
        return hmac.new(_digest_key.content_key(), text.encode(), "sha256").hexdigest()[:16]

    texts = [f"system prompt number {i}" for i in range(_content.HASH_CACHE_TEXTS + 50)]
    for text in texts + texts[:10]:
        assert _content.content_hash(text) == uncached(text)
    assert len(_content._hash_cache[1]) <= _content.HASH_CACHE_TEXTS
    long_text = "x" * (_content.HASH_CACHE_MAX_CHARS + 1)
    assert _content.content_hash(long_text) == uncached(long_text)
    assert long_text not in _content._hash_cache[1]           # long texts are not kept
    before = _content.content_hash(texts[-1])
    set_config(digest_key="a different secret")                # a new key: nothing cached is reused
    assert _content.content_hash(texts[-1]) == uncached(texts[-1]) != before


def _links_for(tracer) -> list:
    with tracer.start_as_current_span("request"):
        retrieval = tracer.start_span("retrieve")
        produce(retrieval, [Produced(DOC, "document", "kb/refunds", 0, 0.9),
                            Produced("Shipping is free above fifty euros for every order placed online.",
                                     "document", "kb/shipping", 1, 0.4)])
        retrieval.end()
        rewrite = tracer.start_span("rewrite")
        produce(rewrite, [Produced("refund delay policy", "generation", rank=0)])
        rewrite.end()
        consumption = consume([PROMPT, "refund delay policy"])
    return [dict(link.attributes) for link in consumption.links]


def test_in_process_links_are_the_same_keyed_and_unkeyed(tracer, set_config):
    keyed = _links_for(tracer)
    assert sorted((a[sc.LINK_SOURCE_KIND], a.get(sc.LINK_DOCUMENT_ID)) for a in keyed) == [
        ("document", "kb/refunds"), ("generation", None)]
    set_config(digest_key="off")
    assert _links_for(tracer) == keyed


def test_rebuild_only_compares_digests_of_the_same_kid():
    keyed = ("fp1 k=5 kid=0000aaaa", "generation;0;;1;" + "00000000000000ff" + ";")
    unkeyed = ("fp1 k=5", "generation;0;;1;" + "00000000000000ff" + ";")
    consumed_same = ("fp1 k=5 n=0 kid=0000aaaa", "=00000000000000ff")
    consumed_other = ("fp1 k=5 n=0 kid=0000bbbb", "=00000000000000ff")
    consumed_none = ("fp1 k=5 n=0", "=00000000000000ff")
    spans = [SpanDigests(1, 1, keyed), SpanDigests(1, 2, unkeyed), SpanDigests(1, 3, None, consumed_same),
             SpanDigests(1, 4, None, consumed_other), SpanDigests(1, 5, None, consumed_none)]
    pairs = sorted((link.producer_span_id, link.consumer_span_id) for link in rebuild_links(spans))
    assert pairs == [(1, 3), (2, 5)]
    assert digests.key_id_of(keyed) == "0000aaaa" and digests.key_id_of(unkeyed) is None


def test_config_reads_the_key_setting_and_never_shows_the_secret(caplog):
    assert _config.from_env({"INSTRUMENTORS_DIGEST_KEY": " s3cret \n"}).digest_key == "s3cret"
    assert _config.from_env({"INSTRUMENTORS_DIGEST_KEY": ""}).digest_key is None
    assert "s3cret" not in repr(_config.from_env({"INSTRUMENTORS_DIGEST_KEY": "s3cret"}))
    caplog.set_level(logging.WARNING, logger="instrumentors")
    saved = _config.get_config()
    try:
        assert _config.configure(digest_key=b"bytes-secret").digest_key == TEST_SUITE_SECRET
        assert "bytes-secret" not in caplog.text and "digest_key" in caplog.text
        assert _config.configure(digest_key="Off").digest_key == "Off"
        assert _digest_key.key() is None and _digest_key.key_id() is None
    finally:
        _config.set_config(saved)


# --- across processes ------------------------------------------------------------------

_CHILD = r"""
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from instrumentors import _digest_key
from instrumentors import _semconv as sc
from instrumentors.causal import Produced, consume, produce
role, text = sys.argv[1], sys.argv[2]
tracer = TracerProvider().get_tracer("child")
with tracer.start_as_current_span("request"):
    if role == "produce":
        span = tracer.start_span("produce")
        produce(span, [Produced(text, "document", "kb/refunds", 0), Produced("Yes", "generation", rank=1)])
        span.end()
        attrs = {"produced": list(span.attributes[sc.CAUSAL_PRODUCED_DIGESTS])}
    else:
        span = tracer.start_span("consume", attributes=consume([text, "yes"]).attributes)
        span.end()
        attrs = {"consumed": list(span.attributes[sc.CAUSAL_CONSUMED_DIGESTS])}
print(json.dumps({"span_id": span.get_span_context().span_id, "trace_id": span.get_span_context().trace_id,
                  "kid": _digest_key.key_id(), **attrs}))
"""


def _children(runs: list) -> list:
    """Start every (role, env changes) child at once (they race for the key file); their outputs."""
    procs = []
    for role, changes in runs:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENTORS_")}
        env.update(changes)
        procs.append(subprocess.Popen([sys.executable, "-c", _CHILD, role, DOC if role == "produce" else PROMPT],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "digest key file" not in stderr
        out.append(json.loads(stdout))
    return out


def _rebuilt(producer: dict, consumer: dict) -> list:
    spans = [SpanDigests(producer["trace_id"], producer["span_id"], producer["produced"]),
             SpanDigests(consumer["trace_id"], consumer["span_id"], None, consumer["consumed"])]
    return sorted((link.source_kind, link.document_id) for link in rebuild_links(spans, scope="process"))


def _without_kid(value: list) -> list:
    return [value[0].split(" kid=")[0], *value[1:]]


def test_processes_sharing_a_key_rebuild_links_and_others_do_not(tmp_path):
    store = str(tmp_path / "shared" / "traces.db")
    file_a, file_b, env_a, env_b, env_c = _children([
        ("produce", {"INSTRUMENTORS_STORE_PATH": store}),
        ("consume", {"INSTRUMENTORS_STORE_PATH": store}),
        ("produce", {"INSTRUMENTORS_DIGEST_KEY": "fleet secret", "INSTRUMENTORS_STORE_PATH": store}),
        ("consume", {"INSTRUMENTORS_DIGEST_KEY": "fleet secret"}),
        ("consume", {"INSTRUMENTORS_DIGEST_KEY": "another fleet"}),
    ])
    expected = [("document", "kb/refunds"), ("generation", None)]
    # default: both processes use the one key file next to the store (created once, 0600)
    key_file = tmp_path / "shared" / "digest.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = bytes.fromhex(key_file.read_text().strip())
    assert file_a["kid"] == file_b["kid"] == hmac.new(
        secret, b"instrumentors digest key id v1", "sha256").hexdigest()[:8]
    assert _rebuilt(file_a, file_b) == expected
    # an explicit secret shared by two processes
    assert env_a["kid"] == env_b["kid"] != file_a["kid"]
    assert _rebuilt(env_a, env_b) == expected
    # different keys: no link, and not only because of the kid (the keys differ too)
    assert env_c["kid"] != env_a["kid"]
    assert _rebuilt(env_a, env_c) == [] and _rebuilt(file_a, env_b) == []
    producer = dict(env_a, produced=_without_kid(env_a["produced"]))
    assert _rebuilt(producer, dict(env_b, consumed=_without_kid(env_b["consumed"]))) == expected
    assert _rebuilt(producer, dict(env_c, consumed=_without_kid(env_c["consumed"]))) == []
