"""The seed's pipeline (examples/seed_demo.py: query rewriter, vector search, context
assembler, answer generator, output validator, user feedback), run against any tracer
provider: what the Phoenix tests export."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, List, Tuple

DEMO = Path(__file__).resolve().parents[2] / "examples" / "seed_demo.py"


def demo_module() -> Any:
    name = "instrumentors_seed_demo"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, DEMO)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def run(provider: Any, questions: int, store_path: str) -> List[Tuple[str, str, Any]]:
    """Answer the first ``questions`` demo questions and judge each answer; returns
    (trace id, answer, FeedbackRecord) per question. Instrumentation is the caller's."""
    import instrumentors

    demo = demo_module()
    now = datetime.now(timezone.utc)
    app = demo.HelpCenter(provider)
    app.index(demo.FRESH_ARTICLES, now - timedelta(days=2))
    app.index(demo.STALE_ARTICLES, now - timedelta(days=245))
    out = []
    for question, _article, fact in demo.QUESTIONS[:questions]:
        trace_id, answer = app.answer(question)
        good = fact.lower() in answer.lower()
        record = instrumentors.record_feedback(
            trace_id, 1.0 if good else 0.0, reason=None if good else "outdated answer",
            span_id=_root_span_id(provider, trace_id), tracer_provider=provider, store_path=store_path)
        out.append((trace_id, answer, record))
    return out


_ROOTS: dict = {}


def _root_span_id(provider: Any, trace_id: str) -> Any:
    """The pipeline's root span id, remembered by :class:`RootRecorder` (a span processor the
    tests add): feedback then names its real parent rather than a synthetic one."""
    return _ROOTS.get(trace_id)


class RootRecorder:
    """A span processor remembering each trace's root span id (the app's ``rag_pipeline``)."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if span.parent is None:
            ctx = span.get_span_context()
            _ROOTS[format(ctx.trace_id, "032x")] = format(ctx.span_id, "016x")

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
