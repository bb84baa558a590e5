"""``TraceReader``: what a storage engine must answer so that :class:`TraceStore` (and
through it explain, blame, compare_prompts, the CLI and the web UI) works on it.

One reader per engine (``sqlite_reader.SQLiteReader`` for the embedded file,
``clickhouse_reader.ClickHouseReader`` for a ClickHouse server or chDB). A reader pushes
the filters down to its engine and returns traces as the plain dicts of
:mod:`instrumentors.store.model`; the analyses only ever see those dicts, never a reader.

*Refs* are the reader's own handles for traces (a row id, a trace id): opaque outside the
reader, handed back to it to load what it found.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

from .query import Condition


class TraceReader(ABC):
    #: where the traces are, for messages (a path; a URL with the password masked)
    location: str

    @abstractmethod
    def close(self) -> None: ...

    # -- filtering (pushed down to the engine) -------------------------------------------

    @abstractmethod
    def find_traces(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                    until_ns: Optional[int], offset: int = 0) -> list:
        """Refs of the traces matching every condition (TraceQL semantics, see
        :mod:`.query`), newest first (ties in a stable order); without time bounds, traces
        known only from their feedback follow (by trace id). ``offset`` skips that many of
        this sequence first: the UI pages through a large store with it."""

    @abstractmethod
    def find_spans(self, conditions: Sequence[Condition], limit: Optional[int], since_ns: Optional[int],
                   until_ns: Optional[int], offset: int = 0) -> list:
        """Span dicts (:func:`model.span_record` plus ``trace_id``) matching every
        condition on the same span, newest first, after skipping ``offset``."""

    @abstractmethod
    def count(self, conditions: Sequence[Condition], level: str, since_ns: Optional[int] = None,
              until_ns: Optional[int] = None) -> int:
        """How many ``find_traces`` / ``find_spans`` would return with no limit (in
        ``[since_ns, until_ns)`` when given; with a bound, no feedback-only traces)."""

    @abstractmethod
    def scored_traces(self, key: Optional[str], limit: Optional[int], conditions: Sequence[Condition]) -> list:
        """(ref, lowest feedback score) of traces with feedback (of ``key``) that match the
        conditions, most recently judged first."""

    # -- loading -----------------------------------------------------------------------

    @abstractmethod
    def resolve(self, text: str) -> tuple:
        """(ref, full trace id) for a normalised id or prefix; raises ``TraceNotFound``."""

    @abstractmethod
    def load(self, refs: Sequence[Any], *, links: bool = True) -> dict:
        """ref -> ``{"meta", "spans", "feedback"}``; spans in start order, each with
        ``links`` and ``events`` (empty lists when ``links`` is false: summaries)."""

    @abstractmethod
    def load_lean(self, refs: Sequence[Any]) -> dict:
        """ref -> what ``blame()`` reads: ``meta`` (``trace_id``, ``root_span_id``,
        ``start_ns``) and ``spans`` (ids, parent, name, times, status, attributes and only
        the causal ``links``, without their attributes)."""

    @abstractmethod
    def recent_feedback(self, limit: Optional[int]) -> list: ...

    @abstractmethod
    def span_names(self, pairs: Sequence[tuple]) -> dict:
        """(trace id, span id) -> span name, for links into other traces."""

    @abstractmethod
    def root_span_id(self, ref: Any) -> Optional[str]: ...

    def version(self) -> Any:
        """A cheap value that changes whenever spans or feedback are added, so that an
        answer computed over the whole store (the UI's blame) can be reused while it is
        unchanged. None (the default): unknown, never reuse."""
        return None

    @abstractmethod
    def stats(self) -> dict: ...
