"""uninstrument() puts back the identical objects, over every module it patches.

Not a list of the attributes we know we patch (each library's lifecycle tests have
those): a snapshot of *every* attribute of every module and class of openai,
langchain_core, langchain_openai, llama_index.core and llama_index.llms.openai (plus the
OTel hooks they reach), taken before ``instrument_all()`` and compared by identity after
``uninstrument_all()``. While instrumented the snapshot must differ (the test can fail),
and after uninstrument nothing may be different, added or left behind -- also on classes
defined while instrumentation was on.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest

import instrumentors

PREFIXES = ("openai", "langchain_core", "langchain_openai", "llama_index.core", "llama_index.llms.openai")
# caches libraries fill in on their own while they run (not patches)
VOLATILE = ("__abstractmethods__", "_abc_impl", "__parameters__", "__pydantic", "model_fields", "__signature__",
            "__annotations__", "__orig_bases__", "_lc_", "__private_attributes__", "__class_vars__",
            "__weakref__", "__dict__", "__slotnames__")


def _import_all() -> None:
    for name in ("openai", "openai.resources.chat.completions", "openai.resources.responses",
                 "openai.resources.embeddings", "openai.resources.completions", "openai.resources.moderations",
                 "langchain_core.callbacks.manager", "langchain_core.runnables.config", "langchain_core.tools",
                 "langchain_core.vectorstores", "langchain_core.retrievers", "langchain_core.language_models",
                 "langchain_openai", "llama_index.core", "llama_index.core.instrumentation",
                 "llama_index.core.callbacks", "llama_index.llms.openai"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _modules() -> list:
    return [(n, m) for n, m in list(sys.modules.items())
            if isinstance(m, types.ModuleType) and n.startswith(PREFIXES)]


def snapshot() -> dict:
    """(owner, attribute) -> the object, for every module attribute and every attribute in
    the ``__dict__`` of every class those modules define."""
    out: dict = {}
    classes: dict = {}
    for name, module in _modules():
        for attr, value in list(vars(module).items()):
            out[(name, attr)] = value
            if isinstance(value, type) and getattr(value, "__module__", "").startswith(PREFIXES):
                classes[id(value)] = value
    for cls in list(classes.values()):  # subclasses created at runtime too
        stack = [cls]
        while stack:
            c = stack.pop()
            try:
                stack.extend(s for s in type.__subclasses__(c) if id(s) not in classes)
            except TypeError:
                continue
            classes.setdefault(id(c), c)
            for s in type.__subclasses__(c):
                classes.setdefault(id(s), s)
    for cls in classes.values():
        if str(cls.__module__).startswith("instrumentors"):
            continue  # our own subclasses (the callback handler...), not patches
        owner = f"{cls.__module__}.{cls.__qualname__}#{id(cls)}"
        for attr, value in list(vars(cls).items()):
            if not attr.startswith(VOLATILE):
                out[(owner, attr)] = value
    return out


def _otel_hooks() -> dict:
    """LlamaIndex's dispatcher handler lists and LangChain's configure hooks: lists we append to."""
    out = {}
    try:
        from llama_index.core.instrumentation import get_dispatcher

        root = get_dispatcher()
        out["span_handlers"] = list(root.span_handlers)
        out["event_handlers"] = list(root.event_handlers)
    except ImportError:
        pass
    try:
        from langchain_core.tracers import context as lc_context

        out["configure_hooks"] = list(getattr(lc_context, "_configure_hooks", []))
    except ImportError:
        pass
    return out


def _ours(value) -> bool:
    """An object of this package (a wrapper, a hook, a proxy) left where the app sees it."""
    import wrapt

    try:
        if isinstance(value, (wrapt.ObjectProxy, type(sys))):
            return isinstance(value, wrapt.ObjectProxy)
        module = getattr(value, "__module__", None) if callable(value) else None
        return str(type(value).__module__).startswith("instrumentors") or str(module or "").startswith(
            "instrumentors")
    except Exception:  # noqa: BLE001 - an odd lazy object: not ours
        return False


@pytest.mark.timeout(300)
def test_uninstrument_restores_every_attribute_identically(tracer_provider):
    _import_all()
    instrumentors.uninstrument_all()
    before, hooks_before = snapshot(), _otel_hooks()

    assert sorted(instrumentors.instrument_all(tracer_provider=tracer_provider)) == [
        "langchain", "llama_index", "openai"]
    try:
        from langchain_core.language_models.fake_chat_models import FakeListChatModel
        from llama_index.core.llms.mock import MockLLM

        class LateChat(FakeListChatModel):  # defined while instrumented
            pass

        class LateLLM(MockLLM):
            pass

        LateChat(responses=["ok"]).invoke("hi")
        LateLLM(max_tokens=3).complete("hi")
        during = snapshot()
        changed = [k for k in before if k in during and during[k] is not before[k]]
        assert len(changed) >= 10, "instrument_all() patched nothing that this snapshot sees"
        assert _otel_hooks() != hooks_before
    finally:
        instrumentors.uninstrument_all()

    after, hooks_after = snapshot(), _otel_hooks()
    changed = [k for k in before if k in after and after[k] is not before[k]]
    assert not changed, f"not restored: {changed[:20]}"
    left = [k for k, v in after.items() if _ours(v)]
    assert not left, f"instrumentors objects left behind: {left[:20]}"  # also on LateChat / LateLLM
    assert any(k[0].split("#")[0].endswith("LateLLM") for k in after)  # the late classes were looked at
    assert hooks_after == hooks_before
