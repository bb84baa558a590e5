"""Matching robustness: what prompt templates do to a document must not break its link,
and what they do not do (a different, near-duplicate document) must not create one."""

from __future__ import annotations

import json
import random

import pytest
from opentelemetry import trace

from instrumentors import _semconv as sc
from instrumentors.causal import Produced, consume, produce
from instrumentors.causal import fingerprint as fpmod

REFUND = (
    "Refunds for damaged goods are issued within thirty days of delivery. Customers must keep "
    "the original receipt and photograph the damage before contacting support. Refunds are paid "
    "to the original payment method; store credit is offered only on request."
)
SHIPPING = (
    "Standard shipping to Canada takes five to seven business days. Express delivery is "
    "available for an extra fee in major cities, and every parcel can be tracked online "
    "from the moment it leaves our warehouse in Montreal."
)
OFFICE = (
    "The company headquarters moved to Lisbon in 2021 after the merger with a Portuguese "
    "logistics firm. The old Porto office now hosts the customer support team and a small "
    "training centre for new hires."
)


def run(tracer, docs, inputs, **produced_kwargs):
    """Register ``docs`` ({id: text}) from a retrieval span and consume ``inputs`` in the
    same trace; returns ({doc id: coverage}, consumption)."""
    with tracer.start_as_current_span("request"):
        retrieval = tracer.start_span("retrieve")
        produce(retrieval, [Produced(text, "document", doc_id, rank, 0.9 - rank / 10)
                            for rank, (doc_id, text) in enumerate(docs.items())])
        retrieval.end()
        consumption = consume(inputs if isinstance(inputs, list) else [inputs])
    links = {link.attributes[sc.LINK_DOCUMENT_ID]: link.attributes[sc.LINK_COVERAGE]
             for link in consumption.links}
    return links, consumption


ALL = {"refund": REFUND, "shipping": SHIPPING, "office": OFFICE}


def test_exact_copy_links_with_full_coverage_and_attributes(tracer):
    links, consumption = run(tracer, ALL, f"Use this context:\n{REFUND}\n\nQuestion: can I get a refund?")
    assert links == {"refund": 1.0}
    (link,) = consumption.links
    assert dict(link.attributes) == {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_INFORMED_BY,
        sc.LINK_SOURCE_KIND: "document",
        sc.LINK_COVERAGE: 1.0,
        sc.LINK_DOCUMENT_ID: "refund",
        sc.LINK_RANK: 0,
        sc.LINK_SCORE: 0.9,
    }
    assert consumption.attributes[sc.CAUSAL_SOURCE_COUNT] == 1
    assert consumption.attributes[sc.CAUSAL_SOURCE_IDS] == ("refund",)
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("shipping", "office")


@pytest.mark.parametrize("transform", [
    pytest.param(lambda d: "\n".join(d.split(". ")), id="sentences-on-lines"),
    pytest.param(lambda d: "  ".join(d.split(" ")).replace(";", ";\n\t"), id="spaces-tabs"),
    pytest.param(lambda d: d.upper(), id="upper-case"),
    pytest.param(lambda d: f'"{d}"', id="double-quoted"),
    pytest.param(lambda d: f"\u201c{d}\u201d", id="smart-quoted"),
    pytest.param(lambda d: "\n".join("> " + s for s in d.split(". ")), id="markdown-blockquote"),
    pytest.param(lambda d: "\n".join(f"{i}. {s}" for i, s in enumerate(d.split(". "), 1)), id="numbered-lines"),
    pytest.param(lambda d: " ".join(f"({i}) {s}" for i, s in enumerate(d.split(". "), 1)), id="inline-numbering"),
    pytest.param(lambda d: d.replace(". ", " [3]. "), id="citation-markers"),
    pytest.param(lambda d: json.dumps({"context": d.replace(". ", ".\n")}), id="json-escaped"),
    pytest.param(lambda d: d.replace("a", "\uff41"), id="fullwidth-nfkc"),
    pytest.param(lambda d: "**" + d.replace(" the ", " _the_ ") + "**", id="markdown-emphasis"),
])
def test_template_transformations_keep_full_coverage(tracer, transform):
    prompt = "Context documents:\n[1] " + transform(REFUND) + "\n---\nAnswer briefly."
    links, _ = run(tracer, ALL, prompt)
    assert links == {"refund": 1.0}


def expected_coverage(doc: str, part: str, k: int = 5) -> float:
    doc_keys = fpmod.fingerprint(doc, k).keys
    part_keys = fpmod.input_keys([part], k).all
    return round(len(doc_keys & part_keys) / len(doc_keys), 3)


def test_truncated_chunk_links_with_its_coverage(tracer):
    cut = REFUND[: int(len(REFUND) * 0.75)]  # mid-word
    links, consumption = run(tracer, ALL, "Context: " + cut)
    assert links == {"refund": expected_coverage(REFUND, cut)}
    assert 0.6 < links["refund"] < 0.8
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("shipping", "office")


def test_chunk_truncated_away_is_reported_unused(tracer):
    cut = REFUND[: int(len(REFUND) * 0.3)]
    links, consumption = run(tracer, ALL, ["Context: " + cut + "\n" + SHIPPING])
    assert links == {"shipping": 1.0}
    # the best-scored chunk was truncated away by the context assembler: visible here
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("refund", "office")


def test_coverage_threshold_is_configurable(tracer, set_config):
    cut = REFUND[: int(len(REFUND) * 0.75)]
    set_config(causal_min_coverage=0.8)
    links, _ = run(tracer, ALL, cut)
    assert links == {}
    set_config(causal_min_coverage=0.3)
    cut = REFUND[: int(len(REFUND) * 0.4)]
    links, _ = run(tracer, ALL, cut)
    assert list(links) == ["refund"]


def test_shingle_length_is_configurable(tracer, set_config):
    set_config(causal_shingle_words=3)
    links, consumption = run(tracer, ALL, "x " + OFFICE)
    assert links == {"office": 1.0}
    assert consumption.attributes[sc.CAUSAL_CONSUMED_DIGESTS][0].startswith("fp1 k=3 ")


STALE = REFUND.replace("thirty days", "fourteen days")


def test_near_duplicate_stale_version_is_not_linked(tracer):
    docs = {"refund-v2": REFUND, "refund-v1": STALE, "shipping": SHIPPING}
    links, consumption = run(tracer, docs, "Context:\n" + REFUND)
    assert links == {"refund-v2": 1.0}
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("refund-v1", "shipping")
    links, consumption = run(tracer, docs, "Context:\n" + STALE)
    assert links == {"refund-v1": 1.0}
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("refund-v2", "shipping")


def test_both_near_duplicates_link_when_both_are_used(tracer):
    docs = {"refund-v2": REFUND, "refund-v1": STALE}
    links, _ = run(tracer, docs, "A: " + REFUND + "\nB: " + STALE)
    assert links == {"refund-v2": 1.0, "refund-v1": 1.0}


def test_near_duplicate_of_a_truncated_chunk_is_not_linked(tracer):
    docs = {"refund-v1": STALE, "refund-v2": REFUND}
    cut = REFUND[: int(len(REFUND) * 0.8)]  # the differing words are in the kept part
    links, consumption = run(tracer, docs, cut)
    assert links == {"refund-v2": expected_coverage(REFUND, cut)}
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("refund-v1",)


def test_overlapping_chunks_only_the_used_one_links(tracer):
    words = (REFUND + " " + SHIPPING + " " + OFFICE).split()
    first, second = " ".join(words[:60]), " ".join(words[30:90])  # 50% overlap
    docs = {"chunk-1": first, "chunk-2": second}
    links, consumption = run(tracer, docs, "Context: " + first)
    assert links == {"chunk-1": 1.0}
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("chunk-2",)
    links, _ = run(tracer, docs, "Context: " + first + "\n" + second)
    assert links == {"chunk-1": 1.0, "chunk-2": 1.0}


def test_identical_documents_link_once(tracer):
    docs = {"copy-a": OFFICE, "copy-b": OFFICE, "refund": REFUND}
    links, consumption = run(tracer, docs, OFFICE)
    assert links == {"copy-a": 1.0}  # best rank of one span
    # its twin's content is present: it is not "unused"
    assert consumption.attributes[sc.CAUSAL_UNUSED_IDS] == ("refund",)


def test_unrelated_text_sharing_common_phrases_does_not_link(tracer):
    prompt = ("Customers must keep calm. The company moved on. Standard shipping is great. "
              "The original payment method of the company is unknown to support.")
    links, consumption = run(tracer, ALL, prompt)
    assert links == {}
    assert consumption.attributes[sc.CAUSAL_SOURCE_COUNT] == 0
    assert sc.CAUSAL_SOURCE_IDS not in consumption.attributes


def test_long_documents_are_sampled_and_still_match(tracer, set_config):
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(5000)]
    long_doc = " ".join(rng.choice(vocab) for _ in range(3000))
    sample, threshold = fpmod.sample(fpmod.fingerprint(long_doc, 5).keys)
    assert fpmod.MAX_KEYS_PER_SOURCE // 2 <= len(sample) <= fpmod.MAX_KEYS_PER_SOURCE
    assert threshold < 1 << 64 and all(key < threshold for key in sample)
    links, _ = run(tracer, {"long": long_doc}, "intro " + long_doc)
    assert links == {"long": 1.0}
    set_config(causal_min_coverage=0.2)
    half = " ".join(long_doc.split()[:1500])
    links, _ = run(tracer, {"long": long_doc}, half)
    assert 0.4 < links["long"] < 0.6  # an unbiased estimate from the sample


# --- short texts ----------------------------------------------------------------------


def run_generation(tracer, generated, inputs):
    with tracer.start_as_current_span("request"):
        llm = tracer.start_span("chat rewriter")
        produce(llm, [Produced(generated, "generation")])
        llm.end()
        consumption = consume(inputs)
    return llm, consumption


def test_short_generation_used_verbatim_as_a_query_links(tracer):
    llm, consumption = run_generation(tracer, "refund damaged goods", ["Refund damaged goods?"])
    (link,) = consumption.links
    assert link.context.span_id == llm.get_span_context().span_id
    assert dict(link.attributes) == {
        sc.GEN_AI_ATTRIBUTION_LINK_TYPE: sc.LINK_CAUSED_BY_GENERATION,
        sc.LINK_SOURCE_KIND: "generation",
        sc.LINK_COVERAGE: 1.0,
    }
    assert consumption.attributes[sc.CAUSAL_SOURCE_IDS] == (f"generation@{llm.get_span_context().span_id:016x}",)
    assert sc.CAUSAL_UNUSED_IDS not in consumption.attributes


def test_one_word_generation_links_only_as_a_whole_input(tracer):
    _, consumption = run_generation(tracer, "Lisbon.", ["lisbon"])
    assert len(consumption.links) == 1
    _, consumption = run_generation(tracer, "Lisbon.", ["Our office in Lisbon is closed"])
    assert consumption.links == []


def test_short_generation_inside_a_longer_prompt_links(tracer):
    _, consumption = run_generation(tracer, "refund for damaged goods",
                                    ["Search results for: refund for damaged goods. Be brief."])
    assert [dict(l.attributes)[sc.LINK_SOURCE_KIND] for l in consumption.links] == ["generation"]
    # two words are too ambiguous to search inside a longer text
    _, consumption = run_generation(tracer, "damaged goods", ["Search results for damaged goods today"])
    assert consumption.links == []


def test_longer_generation_used_as_query_links(tracer):
    rewritten = "What is the refund window for goods that arrived damaged in transit?"
    _, consumption = run_generation(tracer, rewritten, [rewritten])
    assert [l.attributes[sc.LINK_COVERAGE] for l in consumption.links] == [1.0]


# --- the key function -----------------------------------------------------------------


def test_portable_key_function_equals_the_builtin():
    rng = random.Random(3)
    for _ in range(500):
        ids = tuple(rng.getrandbits(rng.choice([8, 40, 64, 200])) for _ in range(rng.randint(1, 7)))
        assert fpmod._py_tuple_key(ids) == hash(ids) & fpmod.MASK
    assert fpmod.FAST_KEYS is True


def test_normalisation():
    assert fpmod.normalise('1. Hello,  "World"\n2) foo [3] bar\\nbaz caf\u00e9 \uff21\uff22') == \
        "hello world foo bar baz caf\u00e9 ab"
    # numbers that are content are kept
    assert fpmod.normalise("version 3.5 costs 2024 dollars") == "version 3 5 costs 2024 dollars"
    assert fpmod.word_ids("") == []


# --- what a model copied from its own input is not its output --------------------------


def llm(tracer, inputs, output, set_attributes=True):
    consumption = consume(inputs)
    span = tracer.start_span("chat", links=consumption.links,
                             attributes=consumption.attributes if set_attributes else None)
    produce(span, [Produced(output, "generation")])
    span.end()
    return span


QUESTION = "hi! what is the refund window for goods that arrived damaged, and do I need the receipt?"


def test_rewriter_echoing_the_question_does_not_link_readers_of_the_question(tracer):
    with tracer.start_as_current_span("request"):
        rewriter = llm(tracer, ["Rewrite as a search query.", QUESTION],
                       "refund window for goods that arrived damaged, and do I need the receipt: policy lookup")
        assert consume(["Question: " + QUESTION]).links == []
        query = consume(["refund window for goods that arrived damaged, and do I need the receipt: policy lookup"])
    assert [l.context.span_id for l in query.links] == [rewriter.get_span_context().span_id]


def test_without_the_consumed_attribute_the_whole_output_counts(tracer):
    """An instrumentor that forgot to set consumption.attributes: graceful, just less exact."""
    with tracer.start_as_current_span("request"):
        llm(tracer, ["Rewrite as a search query.", QUESTION],
            "refund window for goods that arrived damaged, and do I need the receipt: policy lookup",
            set_attributes=False)
        assert len(consume(["Question: " + QUESTION]).links) == 1


def test_short_output_copied_from_the_input_links_only_as_a_whole(tracer):
    with tracer.start_as_current_span("request"):
        extractor = llm(tracer, ["Extract the topic.", QUESTION], "goods that arrived damaged")
        assert consume(["Question: " + QUESTION]).links == []
        query = consume(["Goods that arrived damaged"])
    assert [l.context.span_id for l in query.links] == [extractor.get_span_context().span_id]


def test_purely_extractive_answer_keeps_all_its_keys(tracer):
    with tracer.start_as_current_span("request"):
        extract = llm(tracer, ["Quote the relevant sentence.", REFUND], REFUND.split(". ")[1] + ".")
        validated = consume([REFUND.split(". ")[1]])
    assert [l.context.span_id for l in validated.links] == [extract.get_span_context().span_id]


def test_ascii_fast_path_and_unicode_path_agree():
    """An ASCII document inside a prompt with one non-ASCII character takes the other
    code path: the words must be the same."""
    rng = random.Random(11)
    alphabet = "abcXYZ019 .,;:!?()[]{}<>\"'-_/\\*#\n\t"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert fpmod.normalise(text + " \u00e9t\u00e9") == (fpmod.normalise(text) + " \u00e9t\u00e9").strip()


def test_portable_path_gives_the_same_keys(monkeypatch):
    fast = fpmod.input_keys([REFUND, "short query here"], 5, (3,))
    monkeypatch.setattr(fpmod, "FAST_KEYS", False)
    slow = fpmod.input_keys([REFUND, "short query here"], 5, (3,))
    assert (slow.shingles, slow.wholes, slow.all) == (fast.shingles, fast.wholes, fast.all)
    assert len(fast.shingles) > 30


def test_nested_spans_producing_the_same_completion_link_once_to_the_outer(tracer):
    """Robustness: a framework LLM span and the client span inside it both produced the
    completion (instrumentors normally skip the inner one): one link, to the outer span."""
    answer = "The refund window for damaged goods is thirty days from the delivery date."
    with tracer.start_as_current_span("request"):
        outer = tracer.start_span("chat (framework)")
        with trace.use_span(outer):
            inner = tracer.start_span("chat (client)")
            produce(inner, [Produced(answer, "generation")])
            inner.end()
        produce(outer, [Produced(answer, "generation")])
        outer.end()
        consumption = consume([answer])
    assert [l.context.span_id for l in consumption.links] == [outer.get_span_context().span_id]
    assert consumption.attributes[sc.CAUSAL_SOURCE_COUNT] == 1
