"""A real Arize Phoenix server on loopback for one test module: its own temporary working
directory and SQLite file, free ports for HTTP and gRPC, stopped at the end.

Which Python runs it: ``INSTRUMENTORS_PHOENIX_PYTHON`` (a venv with ``arize-phoenix``;
``.ci/matrix.d/phoenix.sh`` makes one), else this interpreter if it can import phoenix.
Why a separate venv is the usual case: arize-phoenix depends on openai>=3 (through
pydantic-ai) while the ``test`` extra's langchain-openai and llama-index-llms-openai pin
openai<3, so the two cannot share one environment. The app side of the tests (our
instrumentation, the OTLP exporters) runs here as usual; only the server is elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

START_TIMEOUT_S = 240  # a cold start on a loaded 2-core machine (migrations, UI assets)


def phoenix_python() -> Optional[str]:
    exe = os.environ.get("INSTRUMENTORS_PHOENIX_PYTHON", "").strip()
    if exe:
        return exe
    if importlib.util.find_spec("phoenix") is not None and importlib.util.find_spec("phoenix.server") is not None:
        return sys.executable
    return None


SKIP_REASON = (
    "no Arize Phoenix server to start: set INSTRUMENTORS_PHOENIX_PYTHON to the python of a venv with "
    "arize-phoenix (bash .ci/matrix.d/phoenix.sh does it and runs these tests); arize-phoenix needs openai>=3, "
    "which the test extra's langchain-openai/llama-index-llms-openai pins exclude"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PhoenixServer:
    def __init__(self, python: str, workdir: Path) -> None:
        self.python = python
        self.workdir = workdir
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.log_path = workdir / "phoenix.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PHOENIX_", "OTEL_", "INSTRUMENTORS_", "VIRTUAL_ENV"))}
        env.update({
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{self.workdir / 'phoenix.db'}",
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ENABLE_AUTH": "false",
            "HOME": str(self.workdir),
        })
        return env

    def start(self) -> None:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.python, "-m", "phoenix.server.main", "serve"], cwd=self.workdir,
                                     env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Phoenix exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as resp:
                    if resp.status == 200 and self._grpc_open():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Phoenix did not answer within {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def _grpc_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join([line for line in text if "sqlalchemy.engine" not in line][-lines:])

    # -- Phoenix's REST API -------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def spans(self, project: str) -> list:
        """Every span Phoenix stored for a project (``GET /v1/projects/{name}/spans``, paged)."""
        out: list = []
        cursor = None
        while True:
            params: dict = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            try:
                page = self.get(f"/v1/projects/{urllib.parse.quote(project)}/spans", **params)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # the project does not exist until its first span arrives
                    return []
                raise
            out.extend(page.get("data") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def wait_for_spans(self, project: str, count: int, timeout_s: float = 120) -> list:
        deadline = time.monotonic() + timeout_s
        spans: list = []
        while time.monotonic() < deadline:
            spans = self.spans(project)
            if len(spans) >= count:
                return spans
            time.sleep(0.5)
        return spans
