"""Write the LangChain cassettes under ``cassettes/test_langchain_openai/``.

No network and no API key here, so nothing is recorded from api.openai.com: each
scenario in ``langchain_scenarios.py`` runs through LangChain's ``ChatOpenAI`` and the
real openai SDK against an in-process ``httpx.MockTransport`` that answers in OpenAI's
wire format, and vcrpy records the exchange (the request is exactly what
langchain-openai sends). The scrubbing rules are the suite's (tests/conftest.py); the
fake responses carry an ``openai-organization`` and a ``set-cookie`` header so the
scrubber is exercised.

Usage (repository root, project venv)::

    python tests/langchain/make_cassettes.py            # every scenario
    python tests/langchain/make_cassettes.py rag_invoke # one
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

import httpx
import vcr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import langchain_scenarios as S  # noqa: E402

MODULE = "test_langchain_openai"
RESPONSE_HEADERS = {
    "openai-version": "2020-10-01",
    "openai-organization": "user-recorded-org-id",
    "openai-processing-ms": "388",
    "x-request-id": "req_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "set-cookie": "__cf_bm=recorded-cookie-value; path=/; HttpOnly; Secure; SameSite=None",
    "cf-ray": "8f2a3b4c5d6e7f80-AMS",
}


@functools.lru_cache(maxsize=None)
def _shared_scrubbing() -> tuple:
    spec = importlib.util.spec_from_file_location("_instrumentors_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SCRUBBED_REQUEST_HEADERS, module.scrub_response


def record(scenario: S.Scenario) -> Path:
    filter_headers, scrub_response = _shared_scrubbing()
    path = ROOT / "cassettes" / MODULE / scenario.cassette
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        out = scenario.respond(body)
        content = out if isinstance(out, bytes) else json.dumps(out, ensure_ascii=False).encode()
        return httpx.Response(200, headers={"content-type": scenario.content_type, **RESPONSE_HEADERS},
                              content=content)

    recorder = vcr.VCR(
        filter_headers=filter_headers,
        before_record_response=scrub_response,
        decode_compressed_response=True,
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    )
    with recorder.use_cassette(str(path), record_mode="all"):
        model = S.chat_model(api_key="placeholder",
                             http_client=httpx.Client(transport=httpx.MockTransport(handler)))
        scenario.run(model)
    return path


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
