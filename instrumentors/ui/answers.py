"""Whole-store answers (blame, the prompt comparison) reused while the store is unchanged.

Blame over a few thousand judged traces loads every one of them: seconds on a large
store, on every visit of the page. The store tells cheaply whether anything was added
since (:meth:`TraceStore.version`); while it says no, the same question gets the answer
already computed. A new span or feedback (from the app, the UI or another process)
changes the version and drops every kept answer. Kept answers are bounded (LRU).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

DEFAULT_SIZE = 16


class AnswerCache:
    def __init__(self, version: Callable[[], Any], size: int = DEFAULT_SIZE) -> None:
        self._version = version
        self._size = max(1, size)
        self._entries: "OrderedDict[Hashable, Any]" = OrderedDict()
        self._seen: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``'s answer for ``key``, computed again only when the store changed
        (or when it cannot tell: a version of None)."""
        version = self._version()
        if version is None:
            return compute()
        with self._lock:
            if version != self._seen:
                self._entries.clear()
                self._seen = version
            elif key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            if version == self._seen:
                self._entries[key] = value
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return value
