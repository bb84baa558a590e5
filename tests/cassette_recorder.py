"""Recording cassettes without a network: the real SDK talks to an in-process
``httpx.MockTransport`` that answers in OpenAI's wire format, and vcrpy records the
exchange with the suite's scrubbing rules (tests/conftest.py). Shared by every library's
``make_cassettes.py``; the fake responses carry an ``openai-organization`` and a
``set-cookie`` header so the scrubber is exercised on every recording."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any, Callable

import httpx
import vcr

ROOT = Path(__file__).resolve().parent.parent

# Headers a real OpenAI response carries (the sensitive ones must be scrubbed on record).
RESPONSE_HEADERS = {
    "openai-version": "2020-10-01",
    "openai-organization": "user-recorded-org-id",
    "openai-processing-ms": "412",
    "x-request-id": "req_5f0c2b4e1f0a4c9e8e3f1b2a7d6c5e4f",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-limit-tokens": "10000000",
    "x-ratelimit-remaining-tokens": "9999950",
    "set-cookie": "__cf_bm=recorded-cookie-value; path=/; HttpOnly; Secure; SameSite=None",
    "cf-ray": "8f1e2d3c4b5a6978-CDG",
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
}


@functools.lru_cache(maxsize=None)
def _scrubbing() -> tuple:
    spec = importlib.util.spec_from_file_location("_instrumentors_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SCRUBBED_REQUEST_HEADERS, module.scrub_response


def record(
    module: str,
    cassette: str,
    respond: Callable[[dict], Any],
    content_type: str,
    run: Callable[[httpx.Client], None],
    status: int = 200,
) -> Path:
    """Record ``cassettes/<module>/<cassette>``: ``run(http_client)`` drives the SDK with a
    client whose transport answers every request with ``respond(request_json)`` (a JSON
    object, or bytes such as an SSE body)."""
    filter_headers, scrub_response = _scrubbing()
    path = ROOT / "cassettes" / module / cassette
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    def handler(request: httpx.Request) -> httpx.Response:
        out = respond(json.loads(request.content) if request.content else {})
        content = out if isinstance(out, bytes) else json.dumps(out, ensure_ascii=False).encode()
        return httpx.Response(status, headers={"content-type": content_type, **RESPONSE_HEADERS}, content=content)

    recorder = vcr.VCR(
        filter_headers=filter_headers,
        before_record_response=scrub_response,
        decode_compressed_response=True,
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    )
    with recorder.use_cassette(str(path), record_mode="all"):
        run(httpx.Client(transport=httpx.MockTransport(handler)))
    return path
