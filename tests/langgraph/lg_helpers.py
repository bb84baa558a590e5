"""Offline LangGraph building blocks: the in-process OpenAI (``tests/openai_wire.py``),
the agent's tools, and a span tree to assert on."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from langchain_core.tools import tool
from openai_wire import MODEL, FakeOpenAI, always_call, httpx_module, react_policy  # noqa: F401 (re-exported)

QUESTION = "When does the Paris office open?"


# ---------------------------------------------------------------------------------------
# The tools an agent calls
# ---------------------------------------------------------------------------------------

OFFICE_HOURS = "The Paris office opens at 9:00 from Monday to Friday (updated March 2024)."


@tool
def search_web(query: str) -> str:
    """Search the company knowledge base."""
    return OFFICE_HOURS


@tool
def empty_search(query: str) -> str:
    """Search that finds nothing."""
    return ""


@tool
def broken_search(query: str) -> str:
    """Search whose backend is down."""
    raise ConnectionError("search backend unreachable")


# ---------------------------------------------------------------------------------------
# Span tree
# ---------------------------------------------------------------------------------------


class SpanTree:
    """The finished spans of one test, navigable by name and parent."""

    def __init__(self, spans: Iterable[Any]) -> None:
        self.spans = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def named(self, name: str) -> list:
        return sorted((s for s in self.spans if s.name == name), key=lambda s: s.start_time)

    def one(self, name: str) -> Any:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {self.names()}"
        return found[0]

    def kind(self, kind: str) -> list:
        return sorted((s for s in self.spans if s.attributes.get("instrumentors.span.kind") == kind),
                      key=lambda s: s.start_time)

    def parent(self, span: Any) -> Optional[Any]:
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def ancestors(self, span: Any) -> list:
        out = []
        parent = self.parent(span)
        while parent is not None:
            out.append(parent)
            parent = self.parent(parent)
        return out

    def children(self, span: Any) -> list:
        return sorted((s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id),
                      key=lambda s: s.start_time)

    def roots(self) -> list:
        return sorted((s for s in self.spans if self.parent(s) is None), key=lambda s: s.start_time)

    def names(self) -> list:
        return sorted(s.name for s in self.spans)

    def trace_ids(self) -> set:
        return {s.context.trace_id for s in self.spans}

    def outline(self, span: Any = None, depth: int = 0, keep: Callable[[Any], bool] = lambda s: True) -> list:
        """``["invoke_agent X", "  agent", ...]``: the tree below ``span`` (roots if None),
        spans ``keep`` rejects skipped (their children lifted)."""
        roots = [span] if span is not None else self.roots()
        out: list = []
        for root in roots:
            if keep(root):
                out.append("  " * depth + root.name)
                inner = depth + 1
            else:
                inner = depth
            for child in self.children(root):
                out.extend(self.outline(child, inner, keep))
        return out


def graph_outline(tree: SpanTree) -> list:
    """The outline of graph, node, model, tool and client spans only."""
    kinds = {"agent", "workflow", "node", "llm", "tool"}

    def keep(span: Any) -> bool:
        kind = span.attributes.get("instrumentors.span.kind")
        if kind == "workflow":
            return span.attributes.get("gen_ai.operation.name") == "invoke_workflow"
        return kind in kinds

    return tree.outline(keep=keep)


def links_of(span: Any, link_type: str) -> list:
    return [link for link in span.links if link.attributes.get("gen_ai.attribution.link_type") == link_type]
