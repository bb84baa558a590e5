"""Call-site patches of LlamaIndex model classes, including classes defined later.

Every ``BaseLLM`` subclass overrides ``chat``/``complete``/... itself (and the
``DispatcherSpanMixin`` decorates each override when the class is created), so there is
no single method to wrap. We wrap the methods each existing subclass defines, and hook
``DispatcherSpanMixin.__init_subclass__`` so a class created after ``instrument()`` (an
integration imported later, a user's ``CustomLLM``) is wrapped right after the mixin
decorated it: our wrapper is always the outermost layer, around the dispatcher span.

Every change is recorded and undone by :meth:`ClassPatcher.restore` (the original
objects are put back, so an identity check passes).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

import wrapt

from .._spans import report_internal_error


class ModelMethodWrapper(wrapt.FunctionWrapper):
    """Marks our wrappers so a class is never wrapped twice."""


class _Target:
    __slots__ = ("base", "methods", "make")

    def __init__(self, base: type, methods: Iterable[str], make: Callable[[str], Callable]) -> None:
        self.base = base
        self.methods = tuple(methods)
        self.make = make  # method name -> wrapt wrapper function


class ClassPatcher:
    """Wraps named methods on a base class and all its subclasses, present and future."""

    def __init__(self, mixin: type) -> None:
        self._mixin = mixin
        self._targets: list = []
        self._wrappers: dict = {}  # (target index, method) -> wrapper function, shared
        self._patched: list = []  # (cls, name, original)
        self._hook_original: Any = None
        self._hook: Any = None
        self._lock = threading.RLock()

    def add_target(self, base: type, methods: Iterable[str], make: Callable[[str], Callable]) -> None:
        self._targets.append(_Target(base, methods, make))

    # -- patching ----------------------------------------------------------------------
    def _patch_class(self, cls: type) -> None:
        for index, target in enumerate(self._targets):
            if not (isinstance(cls, type) and issubclass(cls, target.base)):
                continue
            for name in target.methods:
                original = cls.__dict__.get(name)
                if original is None or isinstance(original, ModelMethodWrapper):
                    continue
                if not callable(original) or getattr(original, "__isabstractmethod__", False):
                    continue
                key = (index, name)
                wrapper = self._wrappers.get(key)
                if wrapper is None:
                    wrapper = self._wrappers[key] = target.make(name)
                setattr(cls, name, ModelMethodWrapper(original, wrapper))
                self._patched.append((cls, name, original))

    def _walk(self, base: type) -> list:
        seen: set = set()
        out = []
        stack = [base]
        while stack:
            cls = stack.pop()
            if cls in seen:
                continue
            seen.add(cls)
            out.append(cls)
            try:
                stack.extend(type.__subclasses__(cls))
            except TypeError:
                pass
        return out

    def install(self) -> None:
        """Wrap every existing subclass, then hook class creation for the future ones."""
        with self._lock:
            for target in self._targets:
                for cls in self._walk(target.base):
                    try:
                        self._patch_class(cls)
                    except Exception as exc:  # noqa: BLE001 - one odd class must not stop the rest
                        report_internal_error("llama_index.patch_class", exc)
            self._install_hook()

    def _install_hook(self) -> None:
        original = self._mixin.__dict__.get("__init_subclass__")
        if original is None or not isinstance(original, classmethod):
            return
        patcher = self

        def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807
            original.__func__(cls, **kwargs)
            try:
                with patcher._lock:
                    patcher._patch_class(cls)
            except Exception as exc:  # noqa: BLE001
                report_internal_error("llama_index.init_subclass", exc)

        hook = classmethod(__init_subclass__)
        self._hook_original = original
        self._hook = hook
        self._mixin.__init_subclass__ = hook

    def restore(self) -> None:
        """Put every original back (newest first) and unhook class creation."""
        with self._lock:
            if self._hook is not None and self._mixin.__dict__.get("__init_subclass__") is self._hook:
                self._mixin.__init_subclass__ = self._hook_original
            self._hook = self._hook_original = None
            for cls, name, original in reversed(self._patched):
                try:
                    if isinstance(cls.__dict__.get(name), ModelMethodWrapper):
                        setattr(cls, name, original)
                except Exception as exc:  # noqa: BLE001
                    report_internal_error("llama_index.restore", exc)
            self._patched.clear()
            self._wrappers.clear()

    @property
    def patched(self) -> list:
        """``(cls, name, original)`` of every wrapped method (tests check identity)."""
        return list(self._patched)
