"""Fail open, every extractor broken in turn.

Each extraction function (every function of the modules that read SDK objects into
attributes, the content gate, the causal produce/consume, and every method of the
OpenAI extraction classes) is replaced, one at a time, by one that raises. The callers'
workloads (OpenAI chat/tools/streams/Responses/embeddings/legacy/parse/HTTP error,
LangChain chain/stream/scored search/tool/error, LlamaIndex query/stream/chat/error)
must then see exactly what they see without instrumentation (results, or the same
exception with the same message), every span must still end, and every broken function
must have been reached by some workload (otherwise its row proves nothing).
"""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

import instrumentors
import workloads as W

MODULES = {
    "instrumentors.openai.extract": ("openai",),
    "instrumentors.langchain._readers": ("langchain",),
    "instrumentors.langchain._retrieval": ("langchain",),
    "instrumentors.llama_index._readers": ("llama_index",),
    "instrumentors.llama_index._prompts": ("llama_index",),
    "instrumentors._readers": ("openai", "langchain", "llama_index"),
    "instrumentors._content": ("openai", "langchain", "llama_index"),
}
CAUSAL = ("instrumentors.causal._api", ("produce", "consume"), ("openai", "langchain", "llama_index"))
# reached only by inputs these workloads do not make (kept listed so a new function is noticed)
NOT_REACHED_HERE = {
    "instrumentors.llama_index._readers.is_node_list",  # no caller in the package (dead code)
}
# defaults of the OpenAI extraction base classes: every operation overrides them
BASE_CLASSES = ("Operation", "Accumulator")


class Broken(RuntimeError):
    pass


def _targets() -> list:
    """(label, owner, attribute name, libraries) for every extraction function/method."""
    out = []
    for name, libs in MODULES.items():
        module = importlib.import_module(name)
        for attr, value in sorted(vars(module).items()):
            if inspect.isfunction(value) and value.__module__ == name:
                out.append((f"{name}.{attr}", module, attr, libs))
            elif inspect.isclass(value) and value.__module__ == name and name.endswith("openai.extract") \
                    and attr not in BASE_CLASSES:
                for meth, fn in sorted(vars(value).items()):
                    if inspect.isfunction(fn) and not meth.startswith("__"):
                        out.append((f"{name}.{attr}.{meth}", value, meth, libs))
    module = importlib.import_module(CAUSAL[0])
    for attr in CAUSAL[1]:
        out.append((f"{CAUSAL[0]}.{attr}", module, attr, CAUSAL[2]))
    return out


TARGETS = _targets()


@pytest.fixture(scope="module")
def baseline():
    """What the caller gets without instrumentation."""
    instrumentors.uninstrument_all()
    return W.run_all()


def _break(monkeypatch, owner, attr, hits: list) -> None:
    original = getattr(owner, attr)

    def broken(*args, **kwargs):
        hits.append(1)
        raise Broken(f"{attr} is broken")

    monkeypatch.setattr(owner, attr, broken)
    if inspect.ismodule(owner):  # also every `from module import fn` copy inside the package
        for name, module in list(sys.modules.items()):
            if name.startswith("instrumentors") and module is not owner:
                for key, value in list(vars(module).items()):
                    if value is original:
                        monkeypatch.setattr(module, key, broken)


def test_every_extraction_module_is_covered():
    assert len(TARGETS) >= 80, len(TARGETS)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("label, owner, attr, libs", TARGETS, ids=[t[0].replace("instrumentors.", "") for t in TARGETS])
def test_broken_extractor_changes_nothing_for_the_caller(baseline, traced, instrument_all_with, monkeypatch,
                                                         label, owner, attr, libs):
    hits: list = []
    _break(monkeypatch, owner, attr, hits)
    # capture on, and off for the shared gate/readers (the capture-off paths differ there)
    shared = getattr(owner, "__name__", "").startswith(("instrumentors._", "instrumentors.causal"))
    for capture in (True, False) if shared else (True,):
        instrument_all_with(traced, capture_content=capture, causal_links=True)
        got = W.run_all(libs)
        for key, value in got.items():
            assert value == baseline[key], f"{label} broken (capture {capture}): {key} changed for the caller"
        assert traced.counter.still_open() == [], f"{label} broken (capture {capture}): spans left open"
    if label not in NOT_REACHED_HERE:
        assert hits, f"{label} was never called by the workloads: its row proves nothing"
