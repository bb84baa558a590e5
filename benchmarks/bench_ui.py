"""Web UI: how long each page's API call takes on a large store, against the store call it
wraps, measured in the same run.

    python benchmarks/bench_ui.py               # 100k spans (12,500 traces)
    python benchmarks/bench_ui.py --spans 1000000

The store is bench_store.py's (seed-shaped RAG traces, feedback on each). Each API call
goes through the whole ASGI app in process (Starlette's TestClient: routing, JSON
encoding; no socket), next to the ``TraceStore`` call(s) it makes, timed the same way,
and a request floor (an empty route through the same client); (API - floor) / store is
the UI's own cost on top of the store's. "Large stores stay
responsive" means a list page costs one page, wherever it is: the first page, a page
deep in the list and a filtered page are all reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import bench_store  # noqa: E402

from instrumentors.store import TraceStore  # noqa: E402
from instrumentors.store.query import filters_from_text  # noqa: E402

SEED = "retrieval.top_score < 0.6 and feedback.score < 0.5"


def _floor_request():
    """One request through TestClient to a route that does nothing: the client's and the
    framework's own cost per call, which the UI's figures include."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    client = TestClient(Starlette(routes=[Route("/", lambda request: JSONResponse({}))]),
                        base_url="http://127.0.0.1")
    return lambda: client.get("/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from instrumentors.ui import create_app

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ui.db")
        count, _, _ = bench_store.ingest(path, args.spans)
        store = TraceStore(path)
        client = TestClient(create_app(store), base_url="http://127.0.0.1")
        total = store.count()
        deep = max(0, total - 100)
        seed = filters_from_text(SEED)
        some = store.query(seed, limit=1)[0]["trace_id"]

        def get(url: str, **params):
            def call():
                response = client.get(url, params=params)
                assert response.status_code == 200, response.text
                return response
            return call

        cases = [
            ("traces list, first page of 50", get("/api/traces", limit=50),
             lambda: (store.query(limit=50), store.count())),
            (f"traces list, page at offset {deep:,}", get("/api/traces", limit=50, offset=deep),
             lambda: (store.query(limit=50, offset=deep), store.count())),
            ("seed filter, first page of 50", get("/api/traces", q=SEED, limit=50),
             lambda: (store.query(seed, limit=50), store.count(seed))),
            ("one trace (tree, explain, graph)", get(f"/api/traces/{some}"),
             lambda: (store.trace(some), store.explain(some))),
        ]
        floor_s, _ = bench_store.timed(_floor_request(), repeats=9)
        print(f"== {count:,} spans ({total:,} traces), load average {bench_store._load():.1f} "
              f"on {os.cpu_count()} CPUs ==")
        print(f"  request floor (an empty Starlette route, same client): {floor_s * 1000:.1f} ms")
        print(f"  {'page':40} {'API':>9} {'store':>9}  (API - floor) / store")
        for label, api, direct in cases:
            api_s, _ = bench_store.timed(api)
            store_s, _ = bench_store.timed(direct)
            print(f"  {label:40} {api_s * 1000:7.1f}ms {store_s * 1000:7.1f}ms  {(api_s - floor_s) / store_s:5.2f}x")
        client.close()
        store.close()


if __name__ == "__main__":
    main()
