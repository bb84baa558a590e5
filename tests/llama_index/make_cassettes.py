"""Write the LlamaIndex + OpenAI cassettes under ``cassettes/test_llama_index_openai/``.

No network and no API key here: each scenario in ``li_scenarios.py`` runs through the
real llama-index-llms-openai and openai SDK against an in-process ``httpx.MockTransport``
that answers in OpenAI's wire format (JSON; ``text/event-stream`` with a final usage
chunk and ``data: [DONE]``), and vcrpy records the exchange with the same scrubbing
rules as the tests (tests/conftest.py). The request in each cassette is therefore exactly
what LlamaIndex sends.

Usage (repository root, project venv)::

    python tests/llama_index/make_cassettes.py            # every scenario
    python tests/llama_index/make_cassettes.py chat rag   # some
"""

from __future__ import annotations

import asyncio
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

import li_scenarios as S  # noqa: E402

MODULE = "test_llama_index_openai"
RESPONSE_HEADERS = {
    "openai-version": "2020-10-01",
    "openai-organization": "user-recorded-org-id",
    "openai-processing-ms": "388",
    "x-request-id": "req_9a1c4e7f2b3d4c5e8f9a0b1c2d3e4f50",
    "set-cookie": "__cf_bm=recorded-cookie-value; path=/; HttpOnly; Secure; SameSite=None",
}


@functools.lru_cache(maxsize=None)
def _scrubbing() -> tuple:
    spec = importlib.util.spec_from_file_location("_instrumentors_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SCRUBBED_REQUEST_HEADERS, module.scrub_response


def record(scenario: S.Scenario) -> Path:
    filter_headers, scrub_response = _scrubbing()
    path = ROOT / "cassettes" / MODULE / scenario.cassette
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    def handler(request: httpx.Request) -> httpx.Response:
        out = scenario.respond(json.loads(request.content) if request.content else {})
        content = out if isinstance(out, bytes) else json.dumps(out, ensure_ascii=False).encode()
        return httpx.Response(200, headers={"content-type": scenario.content_type, **RESPONSE_HEADERS},
                              content=content)

    recorder = vcr.VCR(filter_headers=filter_headers, before_record_response=scrub_response,
                       decode_compressed_response=True,
                       match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    with recorder.use_cassette(str(path), record_mode="all"):
        llm = S.make_llm(scenario, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
        asyncio.run(S.run(scenario.name, llm, is_async=False))
    return path


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
