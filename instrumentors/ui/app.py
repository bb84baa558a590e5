"""The web UI's ASGI app: a JSON API over :class:`~instrumentors.store.TraceStore` and the
page that calls it (plain HTML/JS/CSS/SVG shipped in the package: nothing is fetched
from elsewhere, so it works offline).

Reads go through one read-only ``TraceStore``; the only write is feedback, through
:func:`instrumentors.record_feedback` as the CLI's ``feedback`` command does. Every list
is paged on the server (``limit``/``offset`` with a total from ``TraceStore.count``), so
a large store costs one page per request. The app answers only as ``127.0.0.1`` /
``localhost`` (a page elsewhere cannot reach it through DNS rebinding) and takes
feedback only as JSON from its own origin (a cross-site form cannot post it).
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..store import FilterError, StoreError, TraceNotFound, TraceStore
from ..store.query import filters_from_text
from . import views
from .answers import AnswerCache

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_PAGE = 500
DEFAULT_PAGE = 50
#: the seed article's question, one click away on the traces page
SEED_FILTER = "retrieval.top_score < 0.6 and feedback.score < 0.5"
PRESETS = [
    {"label": "low retrieval score & negative feedback (the seed's query)", "query": SEED_FILTER},
    {"label": "negative feedback", "query": "feedback.score < 0.5"},
    {"label": "errors", "query": "status = error"},
    {"label": "no feedback yet", "query": "feedback.score !exists"},
]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(views.json_safe(content), ensure_ascii=False, allow_nan=False,
                          default=str, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str) -> Response:
    return _JSON({"error": message}, status_code=status)


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _float_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None


def _time_param(request: Request, name: str) -> Optional[datetime]:
    """ISO 8601 (``2026-12-04T10:00``, ``...Z``, with an offset; naive = UTC) or epoch seconds."""
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=timezone.utc)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time or epoch seconds, not {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _filters(request: Request) -> dict:
    return filters_from_text(request.query_params.get("q", ""))


def feedback_target(given: Any, ts: TraceStore) -> Optional[str]:
    """Where feedback is written: the store as it was given (a path or URL, with its
    password: ``record_feedback`` follows it into SQLite, chDB or ClickHouse, as the CLI's
    ``feedback`` does). A ready ``TraceStore`` only knows its masked location, so a
    ClickHouse server behind a password cannot be written from that: None."""
    from .._config import get_config

    if isinstance(given, (str, os.PathLike)):
        return os.fspath(given)
    if given is None:
        cfg = get_config()
        return getattr(cfg, "store_url", None) or cfg.store_path
    location = str(ts.path)
    return None if ":***@" in location else location


def create_app(store: Any = None, *, timeout: float = 5.0) -> Starlette:
    """The app over ``store``: a :class:`TraceStore`, or a path/URL to open (None: the
    configured store). Opening fails here, with the store's own message, rather than on
    the first request."""
    owned = not isinstance(store, TraceStore)
    ts = TraceStore(os.fspath(store) if store is not None and owned else store, timeout=timeout) if owned else store
    location = str(ts.path)
    writable = feedback_target(store, ts)
    answers = AnswerCache(ts.version)

    def api(handler: Callable) -> Callable:
        def endpoint(request: Request) -> Response:
            try:
                return handler(request)
            except TraceNotFound as exc:
                return _error(404, str(exc))
            except FilterError as exc:
                return _error(400, str(exc))
            except StoreError as exc:
                return _error(503, str(exc))
            except ValueError as exc:
                return _error(400, str(exc))
        return endpoint

    def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-store"})

    def info(request: Request) -> Response:
        stats = ts.stats() if hasattr(ts, "stats") else {}
        return _JSON({"store": location, "stats": stats, "feedback_enabled": writable is not None,
                      "presets": PRESETS, "seed_filter": SEED_FILTER})

    def traces(request: Request) -> Response:
        filters = _filters(request)
        limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        since, until = _time_param(request, "since"), _time_param(request, "until")
        rows = ts.query(filters, limit, since=since, until=until, offset=offset)
        total = ts.count(filters, since=since, until=until)
        return _JSON({"filters": filters, "total": total, "offset": offset, "limit": limit, "results": rows})

    def trace(request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        data = ts.trace(trace_id)
        explanation = ts.explain(data["trace_id"], low_score=_float_param(request, "low_score", 0.6),
                                 feedback_threshold=_float_param(request, "threshold", 0.5))
        return _JSON({"trace": data, "explain": explanation, "graph": views.causal_graph(data, explanation),
                      "waterfall": views.waterfall(data), "feedback_enabled": writable is not None})

    async def feedback(request: Request) -> Response:
        if writable is None:
            return _error(405, f"this UI cannot record feedback into {location}: it was handed an open store "
                               "whose password it cannot see (start it with the store's URL)")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error(415, "feedback must be posted as application/json")
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return _error(403, f"feedback from another origin ({origin}) is refused")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        trace_id = request.path_params["trace_id"]
        from starlette.concurrency import run_in_threadpool

        from .._feedback import FeedbackNotStored

        try:
            record = await run_in_threadpool(_record, ts, writable, trace_id, body)
        except FeedbackNotStored as exc:  # the write failed (locked, unwritable): never "recorded"
            return _error(503, str(exc))
        except TraceNotFound as exc:
            return _error(404, str(exc))
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        except StoreError as exc:
            return _error(503, str(exc))
        return _JSON({"recorded": record, "feedback": ts.feedback(record["trace_id"])}, status_code=201)

    def blame(request: Request) -> Response:
        filters = _filters(request)
        args = dict(threshold=_float_param(request, "threshold", 0.5), feedback_key=request.query_params.get("key") or None,
                    top=_int_param(request, "top", 15, 1, 100),
                    min_support=_int_param(request, "min_support", 3, 1, 10**6),
                    max_traces=_int_param(request, "max_traces", 5000, 1, 100_000))
        key = ("blame", repr(sorted(filters.items())), tuple(sorted(args.items())))
        return _JSON(answers.get(key, lambda: ts.blame(filters=filters or None, **args)))

    def prompts(request: Request) -> Response:
        filters = _filters(request)
        args = dict(threshold=_float_param(request, "threshold", 0.5), feedback_key=request.query_params.get("key") or None,
                    max_traces=_int_param(request, "max_traces", 5000, 1, 100_000))
        key = ("prompts", repr(sorted(filters.items())), tuple(sorted(args.items())))
        rows = answers.get(key, lambda: ts.compare_prompts(filters=filters or None, **args))
        return _JSON({"threshold": args["threshold"], "rows": rows})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        if owned:
            ts.close()

    routes = [
        Route("/", index),
        Route("/api/info", api(info)),
        Route("/api/traces", api(traces)),
        Route("/api/traces/{trace_id}", api(trace)),
        Route("/api/traces/{trace_id}/feedback", feedback, methods=["POST"]),
        Route("/api/blame", api(blame)),
        Route("/api/prompts", api(prompts)),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS)],
                    lifespan=lifespan)
    app.state.store = ts
    return app


def _record(ts: TraceStore, target: str, trace_id: str, body: dict) -> dict:
    from .._feedback import _store_provider, record_feedback

    score = body.get("score")
    if isinstance(score, str):
        try:
            score = float(score)
        except ValueError:
            raise ValueError(f"score must be a number, not {score!r}") from None
    full = ts.resolve(trace_id)  # a known trace only: a typo must not create a new one
    reason = (body.get("reason") or "").strip() or None
    step = (body.get("step_blamed") or "").strip() or None
    key = (body.get("key") or "user").strip() or "user"
    provider = _store_provider(target)
    record = record_feedback(full, score, reason=reason, step_blamed=step, key=key, tracer_provider=provider,
                             store_path=target)
    provider.force_flush()
    return dict(record.__dict__)
