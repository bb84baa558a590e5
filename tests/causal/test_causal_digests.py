"""Digests on spans and rebuilding links from them, in process and across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from instrumentors import _semconv as sc
from instrumentors.causal import Produced, SpanDigests, consume, produce, rebuild_links
from instrumentors.causal import digests

DOCS = {
    "faq-1": ("To reset your password open the account page, choose security settings and follow the "
              "link we send to the email address registered on your account."),
    "faq-2": ("Two factor authentication can be enabled from the security settings page with any "
              "authenticator app; backup codes are shown once and should be stored safely."),
    "faq-3": ("Accounts that stay inactive for more than two years are archived, and their data is "
              "deleted after a further notice period of ninety days."),
}
ANSWER = ("Open the account page, pick the security settings, and use the emailed link to set a new "
          "password for your account.")


def pipeline(tracer):
    """retrieve -> generate (uses faq-1 and faq-2) -> validate; returns the spans."""
    with tracer.start_as_current_span("request"):
        retrieval = tracer.start_span("retrieve")
        produce(retrieval, [Produced(text, "document", doc_id, rank, 0.7 - rank / 10)
                            for rank, (doc_id, text) in enumerate(DOCS.items())])
        retrieval.end()
        consumption = consume(["Context:\n" + DOCS["faq-1"] + "\n" + DOCS["faq-2"], "How do I reset it?"])
        generation = tracer.start_span("chat", links=consumption.links, attributes=consumption.attributes)
        produce(generation, [Produced(ANSWER, "generation", rank=0)])
        generation.end()
        consumption = consume([ANSWER])
        validator = tracer.start_span("validate", links=consumption.links, attributes=consumption.attributes)
        validator.end()
    return retrieval, generation, validator


def triples(links, names):
    return sorted((names[l.consumer_span_id], names[l.producer_span_id], l.document_id, l.ambiguous)
                  for l in links)


def test_rebuild_without_registry_matches_in_process_links(tracer, span_exporter):
    pipeline(tracer)
    finished = span_exporter.get_finished_spans()
    names = {s.context.span_id: s.name for s in finished}
    in_process = sorted((s.name, names[l.context.span_id], l.attributes.get(sc.LINK_DOCUMENT_ID), False)
                        for s in finished for l in s.links)
    assert in_process == [("chat", "retrieve", "faq-1", False), ("chat", "retrieve", "faq-2", False),
                          ("validate", "chat", None, False)]
    # as a backend without our registry would: ignore the recorded links
    rebuilt = rebuild_links([SpanDigests.from_span(s, with_links=False) for s in finished])
    assert triples(rebuilt, names) == in_process
    by_doc = {l.document_id: l for l in rebuilt}
    assert by_doc["faq-1"].attributes() == {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY, sc.LINK_SOURCE_KIND: "document",
        sc.LINK_COVERAGE: 1.0, sc.LINK_DOCUMENT_ID: "faq-1", sc.LINK_RANK: 0, sc.LINK_SCORE: 0.7}
    assert by_doc[None].link_type == sc.LINK_CAUSED_BY_GENERATION
    # with the recorded links, nothing needs rebuilding
    assert rebuild_links([SpanDigests.from_span(s) for s in finished]) == []


def test_rebuild_respects_trace_scope_and_time_order(tracer, span_exporter):
    pipeline(tracer)
    pipeline(tracer)
    finished = span_exporter.get_finished_spans()
    rebuilt = rebuild_links([SpanDigests.from_span(s, with_links=False) for s in finished])
    assert len(rebuilt) == 6 and all(l.consumer_trace_id == l.producer_trace_id for l in rebuilt)
    across = rebuild_links([SpanDigests.from_span(s, with_links=False) for s in finished], scope="process")
    assert len(across) > 6
    # a producer that ended after the consumer started cannot have caused it
    shifted = [SpanDigests.from_span(s, with_links=False) for s in finished]
    shifted = [d if d.produced is None else SpanDigests(d.trace_id, d.span_id, d.produced, d.consumed,
                                                         d.start_time, 2 ** 62) for d in shifted]
    assert rebuild_links(shifted) == []


def test_near_duplicates_are_flagged_ambiguous(tracer, span_exporter):
    stale = DOCS["faq-1"].replace("email address", "postal address")
    with tracer.start_as_current_span("request"):
        retrieval = tracer.start_span("retrieve")
        produce(retrieval, [Produced(DOCS["faq-1"], "document", "new", 0), Produced(stale, "document", "old", 1)])
        retrieval.end()
        consumption = consume([DOCS["faq-1"]])
        consumer = tracer.start_span("chat", links=consumption.links, attributes=consumption.attributes)
        consumer.end()
    assert [l.attributes[sc.LINK_DOCUMENT_ID] for l in consumption.links] == ["new"]  # in process: exact
    rebuilt = rebuild_links([SpanDigests.from_span(s, with_links=False) for s in span_exporter.get_finished_spans()])
    # from sketches the stale copy still looks used (75% of its sketch): both are flagged
    assert sorted((l.document_id, l.ambiguous) for l in rebuilt) == [("new", True), ("old", True)]


def test_malformed_digests_are_ignored():
    good = SpanDigests(1, 2, ("fp1 k=5", "document;0;0.5;9;" + "0" * 16 + ";d"), None)
    bad = [
        SpanDigests(1, 3, "not a sequence", ("fp1 k=5 n=1", "0" * 16)),
        SpanDigests(1, 4, ("fp2 k=5", "x"), ("fp1 k=x n=1", "0" * 16)),
        SpanDigests(1, 5, ("fp1 k=5", "too;few;fields"), ("fp1 k=5 n=1", "zz")),
        SpanDigests(1, 6, None, ("fp1 k=4 n=1", "0" * 16)),  # another shingle length
    ]
    # only span 3's consumed digest is readable (its unreadable "produced" is just ignored)
    assert [(l.producer_span_id, l.consumer_span_id) for l in rebuild_links([good, *bad])] == [(2, 3)]
    assert digests.parse_produced(("fp1 k=5", "document;x;;9;;d")) == (5, [])
    links = rebuild_links([good, SpanDigests(1, 7, None, ("fp1 k=5 n=1", "0" * 16))])
    assert [(l.producer_span_id, l.consumer_span_id, l.document_id, l.coverage) for l in links] == [(2, 7, "d", 1.0)]


_PRODUCER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    from instrumentors.causal import Produced, produce

    docs = json.loads(sys.stdin.read())
    parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        int(os.environ["TRACE_ID"]), 0x1111, is_remote=True, trace_flags=TraceFlags(1))))
    tracer = TracerProvider().get_tracer("retrieval-service")
    span = tracer.start_span("retrieve", context=parent)
    produce(span, [Produced(t, "document", i, r, 0.5) for r, (i, t) in enumerate(docs.items())])
    span.end()
    print(json.dumps({"span_id": span.get_span_context().span_id, "start": span.start_time,
                      "end": span.end_time, "produced": list(span.attributes["instrumentors.causal.produced"])}))
""")


def test_links_rebuild_across_processes(tracer):
    """The retrieval runs in another process (another PYTHONHASHSEED); the generation here.
    No registry is shared, yet the digests rebuild the link."""
    trace_id = 0x5EED0000000000000000000000000001
    env = dict(os.environ, TRACE_ID=str(trace_id), PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", _PRODUCER_SCRIPT], input=json.dumps(DOCS), env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    remote = json.loads(out.stdout)
    parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, 0x2222, is_remote=True, trace_flags=TraceFlags(1))))
    consumption = consume(["Context:\n" + DOCS["faq-2"] + "\n" + DOCS["faq-3"][:100]], parent)
    assert consumption.links == []  # nothing registered in this process
    span = tracer.start_span("chat", context=parent, attributes=consumption.attributes)
    span.end()
    spans = [
        SpanDigests(trace_id, remote["span_id"], tuple(remote["produced"]), None, remote["start"], remote["end"]),
        SpanDigests.from_span(span),
    ]
    rebuilt = sorted(rebuild_links(spans), key=lambda l: l.rank)
    assert [(l.producer_span_id, l.document_id, l.rank) for l in rebuilt] == [
        (remote["span_id"], "faq-2", 1), (remote["span_id"], "faq-3", 2)]
    assert rebuilt[0].coverage == 1.0
    assert 0.4 < rebuilt[1].coverage < 0.8  # faq-3 was cut to ~60%: estimated from sketches
    assert all(l.link_type == sc.LINK_INFORMED_BY and not l.ambiguous for l in rebuilt)


def test_smallest_keys_selection_is_exact():
    import random

    rng = random.Random(2)
    for n in (0, 5, 64, 129, 1000, 50_000):
        keys = {rng.getrandbits(64) for _ in range(n)}
        assert digests.smallest(keys, 64, len(keys)) == sorted(keys)[:64]
    low = set(range(1000))  # not uniform
    assert digests.smallest(low, 64, len(low)) == list(range(64))
    high = {digests.MASK - i for i in range(1000)}  # the threshold has to grow to the top
    assert digests.smallest(high, 64, len(high)) == sorted(high)[:64]
