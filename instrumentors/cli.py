"""The ``instrumentors`` command: query the embedded trace store from a terminal.

    instrumentors list                                  recent traces
    instrumentors query --where 'feedback.score<0.5' --where 'retrieval.top_score<0.6'
    instrumentors show TRACE                            the span tree with causal links
    instrumentors explain TRACE                         walk back from the output, flag anomalies
    instrumentors blame                                 what separates bad answers from good ones
    instrumentors prompts                               feedback per prompt version
    instrumentors feedback TRACE --score 0 --reason "outdated"
    instrumentors graph TRACE -o trace.html             self-contained HTML/SVG causal graph
    instrumentors info                                  store path, counts, size
    instrumentors ui --port 8765                        the local web UI (pip install 'instrumentors[ui]')

``--store PATH`` (or ``INSTRUMENTORS_STORE_PATH``) picks the file; ``--json`` prints
machine-readable output. TRACE is a trace id, or a unique prefix of at least 4 digits.
Exit codes: 0 ok, 1 store or trace problem (missing, locked, corrupt, unknown id),
2 usage error (bad arguments, malformed --where). Every command except ``feedback``
opens the store read-only: reading never changes or loses stored data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Optional, Sequence

from ._version import __version__
from .store import render
from .store.query import WHERE_HELP, FilterError, filters_from_where
from .store.schema import StoreError

EXIT_OK, EXIT_STORE, EXIT_USAGE = 0, 1, 2
_TRACE_HELP = "trace id: 32 hex digits, or a unique prefix of 4 or more"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as exit code 2 and a short message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    """``--timeout``: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, not {text!r}")
    return value


def _number(text: str) -> float:
    """A finite number (thresholds, scores, days): nan/inf would silently match nothing or everything."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--store", metavar="URL", default=default,
                        help="trace store: a file path, sqlite:///PATH, clickhouse://USER:PASS@HOST:8123/DB or"
                             " chdb:///DIR (default: $INSTRUMENTORS_STORE_URL, else $INSTRUMENTORS_STORE_PATH or"
                             " .instrumentors/traces.db)")
    parser.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print JSON instead of text")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", default=5.0 if top else argparse.SUPPRESS,
                        help="wait this long for a locked store (default 5)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="instrumentors", description="Query the instrumentors trace store.",
                     epilog="Filters (--where): " + WHERE_HELP)
    _common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("--where", "-w", action="append", default=[], metavar="EXPR",
                       help="filter, repeatable (AND): " + WHERE_HELP)

    for name, helptext in (("list", "recent traces (same as query)"), ("query", "traces or spans matching filters")):
        p = sub.add_parser(name, help=helptext, aliases=["ls"] if name == "list" else [])
        _common(p, top=False)
        where(p)
        p.add_argument("--limit", "-n", type=int, default=20 if name == "list" else 50, metavar="N",
                       help=f"show at most N results (default {20 if name == 'list' else 50})")
        p.add_argument("--span-level", action="store_true",
                       help="all filters on the same span; list spans instead of traces")

    p = sub.add_parser("show", help="one trace as a tree, with causal links")
    _common(p, top=False)
    p.add_argument("trace_id", metavar="TRACE", help=_TRACE_HELP)

    p = sub.add_parser("explain", help="walk back from the final output and flag anomalies")
    _common(p, top=False)
    p.add_argument("trace_id", metavar="TRACE", help=_TRACE_HELP)
    p.add_argument("--low-score", type=_number, default=0.6, help="retrieval scores below this are flagged (0.6)")
    p.add_argument("--feedback-threshold", type=_number, default=0.5, help="feedback below this is negative (0.5)")
    p.add_argument("--stale-days", type=_number, default=180.0,
                   help="documents older than this many days are stale (180; 0 = off)")

    p = sub.add_parser("blame", help="rank what separates negatively judged traces from the rest")
    _common(p, top=False)
    where(p)
    p.add_argument("--threshold", type=_number, default=0.5, help="feedback below this is negative (0.5)")
    p.add_argument("--key", help="only feedback with this key (e.g. user)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="show the N strongest causes (10)")
    p.add_argument("--max-traces", type=int, default=5000, metavar="N",
                   help="look at the N newest judged traces at most (5000)")
    p.add_argument("--min-support", type=int, default=3, metavar="N",
                   help="ignore causes seen in fewer than N negative traces (3)")
    p.add_argument("--stale-days", type=_number, default=180.0,
                   help="documents older than this many days are stale (180; 0 = off)")

    p = sub.add_parser("prompts", help="compare feedback per prompt template / system prompt version")
    _common(p, top=False)
    where(p)
    p.add_argument("--threshold", type=_number, default=0.5, help="feedback below this is negative (0.5)")
    p.add_argument("--key", help="only feedback with this key (e.g. user)")
    p.add_argument("--max-traces", type=int, default=5000, metavar="N",
                   help="look at the N newest judged traces at most (5000)")

    p = sub.add_parser("feedback", help="record feedback for a trace (writes to the store)")
    _common(p, top=False)
    p.add_argument("trace_id", metavar="TRACE", help=_TRACE_HELP)
    p.add_argument("--score", type=_number, required=True, help="the judgement, e.g. 0 (bad) to 1 (good)")
    p.add_argument("--reason", help="why, in the user's words (stored as feedback.reason)")
    p.add_argument("--step", dest="step_blamed", help="the step the user blames, e.g. retrieval")
    p.add_argument("--key", default="user", help="who or what judged: user, eval, ... (default user)")
    p.add_argument("--span-id", help="judge this span (16 hex digits) instead of the root")

    p = sub.add_parser("graph", help="export one trace's causal graph as self-contained HTML or SVG")
    _common(p, top=False)
    p.add_argument("trace_id", metavar="TRACE", help=_TRACE_HELP)
    p.add_argument("--format", "-f", choices=("html", "svg"), help="default: from the output name, else html")
    p.add_argument("--output", "-o", help="file to write ('-' = stdout; default TRACE.html)")

    p = sub.add_parser("info", help="store path, counts and size")
    _common(p, top=False)

    p = sub.add_parser("ui", help="serve the local web UI on 127.0.0.1 (needs the 'ui' extra)")
    _common(p, top=False)
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free port)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    return parser


def _print(text: str) -> None:
    try:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
        sys.stdout.flush()
    except BrokenPipeError:  # `instrumentors list | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        except OSError:
            pass


def _dump(obj: Any) -> None:
    _print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _store_path(args: argparse.Namespace) -> str:
    from ._config import get_config

    cfg = get_config()
    return (args.store or (os.environ.get("INSTRUMENTORS_STORE_URL") or "").strip()
            or (os.environ.get("INSTRUMENTORS_STORE_PATH") or "").strip() or cfg.store_url or cfg.store_path)


def _masked(store: str) -> str:
    from .store.url import mask

    return mask(store)


def _open(args: argparse.Namespace):
    from .store import TraceStore

    return TraceStore(_store_path(args), timeout=args.timeout)


def _cmd_query(args: argparse.Namespace, filters: dict) -> int:
    level = "span" if args.span_level else "trace"
    with _open(args) as store:
        rows = store.query(filters, args.limit, level=level)
        total = store.count(filters, level=level)
    if args.json:
        _dump({"filters": filters, "level": level, "total": total, "results": rows})
        return EXIT_OK
    if not rows:
        _print(f"No {level}s match" + (f" ({render.describe_filters(filters)})." if filters else " (store is empty)."))
        return EXIT_OK
    _print(render.span_table(rows) if level == "span" else render.trace_table(rows, list(filters)))
    what = f"{len(rows)} of {total} {level}s"
    _print(f"\n{what}" + (f" matching {render.describe_filters(filters)}" if filters else "") + ", newest first")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        data = store.trace(args.trace_id)
    if args.json:
        _dump(data)
    else:
        _print(render.trace_tree(data))
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = store.explain(args.trace_id, low_score=args.low_score, feedback_threshold=args.feedback_threshold,
                               stale_after_days=args.stale_days or None)
    if args.json:
        _dump(result)
    else:
        _print(render.explain_text(result))
    return EXIT_OK


def _cmd_blame(args: argparse.Namespace, filters: dict) -> int:
    with _open(args) as store:
        report = store.blame(threshold=args.threshold, filters=filters or None, feedback_key=args.key,
                             max_traces=args.max_traces, top=args.top, min_support=args.min_support,
                             stale_after_days=args.stale_days or None)
    if args.json:
        _dump(report)
    else:
        _print(render.blame_text(report))
    return EXIT_OK


def _cmd_prompts(args: argparse.Namespace, filters: dict) -> int:
    with _open(args) as store:
        rows = store.compare_prompts(threshold=args.threshold, feedback_key=args.key, max_traces=args.max_traces,
                                     filters=filters or None)
    if args.json:
        _dump(rows)
    else:
        _print(render.prompts_text(rows))
    return EXIT_OK


def _cmd_feedback(args: argparse.Namespace) -> int:
    import logging

    from ._feedback import FeedbackNotStored, _store_provider, record_feedback
    from .store.tracestore import normalize_trace_id

    path = _store_path(args)
    trace_id = args.trace_id
    if len(normalize_trace_id(trace_id)) < 32:  # a prefix: resolve it (read-only)
        with _open(args) as store:
            trace_id = store.resolve(trace_id)
    provider = _store_provider(path, args.timeout)
    # the one-line message below says what failed; no logged traceback on top of it
    logger = logging.getLogger("instrumentors")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        record = record_feedback(trace_id, args.score, reason=args.reason, step_blamed=args.step_blamed,
                                 key=args.key, span_id=args.span_id, tracer_provider=provider, store_path=path,
                                 timeout=args.timeout)
    except FeedbackNotStored as exc:
        sys.stderr.write(f"instrumentors: {exc}; nothing was recorded\n")
        return EXIT_STORE
    finally:
        logger.setLevel(level)
    if args.json:
        _dump(record.__dict__)
    else:
        where_ = {"span": "the given span", "root": "the root span",
                  "trace": "the trace as a whole (its root is not in the store)"}
        _print(f"recorded {record.key} feedback {record.score:g} on trace {record.trace_id} "
               f"under {where_[record.parent_source]} (span {record.span_id}) in {_masked(path)}")
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    from .store import graph

    with _open(args) as store:
        data = store.trace(args.trace_id)
        explanation = store.explain(data["trace_id"])
    output = args.output
    fmt = args.format or (os.path.splitext(output)[1].lstrip(".").lower() if output and output != "-" else "html")
    if fmt not in ("html", "svg"):
        raise _UsageError(f"cannot tell the format from {output!r}; use --format html or svg")
    document = graph.export(data, explanation, fmt)
    if output == "-":
        _print(document)
        return EXIT_OK
    output = output or f"trace-{data['trace_id'][:12]}.{fmt}"
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(document)
    if args.json:
        _dump({"trace_id": data["trace_id"], "format": fmt, "path": os.path.abspath(output)})
    else:
        _print(f"wrote {output} ({fmt}, {len(document) // 1024 + 1} kB, no external resources)")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stats = store.stats()
    if args.json:
        _dump(stats)
    else:
        _print(render.info_text(stats))
    return EXIT_OK


def _cmd_ui(args: argparse.Namespace) -> int:
    try:
        from . import ui
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(f"instrumentors: the web UI needs the 'ui' extra ({exc.name} is missing): "
                         "pip install 'instrumentors[ui]'\n")
        return EXIT_STORE
    if not 0 <= args.port <= 65535:
        raise _UsageError(f"--port must be between 0 and 65535, not {args.port}")

    def ready(url: str) -> None:
        _print(f"instrumentors UI for {_masked(_store_path(args))} on {url} (read-only; Ctrl+C stops it)")
        if args.open:
            import webbrowser

            webbrowser.open(url)

    try:
        ui.serve(_store_path(args), port=args.port, timeout=args.timeout, ready=ready)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


class _UsageError(Exception):
    pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``instrumentors`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        filters = filters_from_where(getattr(args, "where", []) or [])
    except FilterError as exc:
        parser.exit(EXIT_USAGE, f"instrumentors: error: {exc}\n")
    for name in ("limit", "top", "max_traces", "min_support"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            parser.exit(EXIT_USAGE, f"instrumentors: error: --{name.replace('_', '-')} must be >= 0\n")
    if getattr(args, "trace_id", None) is not None:  # a malformed id is a usage error, store or no store
        from .store.model import normalize_trace_id

        try:
            normalize_trace_id(args.trace_id)
        except ValueError as exc:
            parser.exit(EXIT_USAGE, f"instrumentors: error: {exc}\n")
    try:
        if args.command in ("list", "ls", "query"):
            return _cmd_query(args, filters)
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "explain":
            return _cmd_explain(args)
        if args.command == "blame":
            return _cmd_blame(args, filters)
        if args.command == "prompts":
            return _cmd_prompts(args, filters)
        if args.command == "feedback":
            return _cmd_feedback(args)
        if args.command == "graph":
            return _cmd_graph(args)
        if args.command == "info":
            return _cmd_info(args)
        if args.command == "ui":
            return _cmd_ui(args)
    except (FilterError, _UsageError) as exc:
        parser.exit(EXIT_USAGE, f"instrumentors: error: {exc}\n")
    except StoreError as exc:
        sys.stderr.write(f"instrumentors: {exc}\n")
        return EXIT_STORE
    except ValueError as exc:  # e.g. a malformed trace id or feedback score
        parser.exit(EXIT_USAGE, f"instrumentors: error: {exc}\n")
    except OSError as exc:
        sys.stderr.write(f"instrumentors: {exc}\n")
        return EXIT_STORE
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
