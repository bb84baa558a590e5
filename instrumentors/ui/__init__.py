"""``instrumentors ui``: a local web app over the trace store.

Pages: the traces list (the ``instrumentors query`` filter syntax, paging, a time
range), one trace (span waterfall, causal graph, the explain walk-back with its
anomalies, attributes on click, feedback buttons), blame (ranked findings with their
negative/positive rates and example traces) and prompts (versions with their feedback).
Served on 127.0.0.1 only; every asset ships in the package (no CDN, no network).

Needs the ``ui`` extra (Starlette, uvicorn): ``pip install 'instrumentors[ui]'``.
"""

from __future__ import annotations

from typing import Any, Optional

DEFAULT_PORT = 8765
HOST = "127.0.0.1"


def create_app(store: Any = None, *, timeout: float = 5.0):
    """The ASGI app over a ``TraceStore`` or a store path/URL (see :mod:`.app`)."""
    from .app import create_app as _create

    return _create(store, timeout=timeout)


def serve(store: Any = None, *, port: int = DEFAULT_PORT, timeout: float = 5.0,
          ready: Optional[Any] = None, log_level: str = "warning") -> None:
    """Serve the UI on 127.0.0.1:``port`` until interrupted (``port=0``: any free port).
    ``ready(url)`` is called once the socket listens."""
    import socket

    import uvicorn

    app = create_app(store, timeout=timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))  # bound before the server starts: an occupied port fails here, clearly
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {HOST}:{port}: {exc.strerror} (--port 0 picks a free port)") from exc
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    server = uvicorn.Server(config)
    if ready is not None:
        ready(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["create_app", "serve", "DEFAULT_PORT", "HOST"]
