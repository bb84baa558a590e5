"""Write the OpenAI cassettes under ``cassettes/test_openai_*/``.

There is no network and no API key here, so cassettes are not recorded from
api.openai.com. Instead each scenario in ``openai_scenarios.py`` is run through the real
openai SDK against an in-process ``httpx.MockTransport`` that answers with the
scenario's body in OpenAI's documented wire format (JSON objects; ``text/event-stream``
for streams, with the final usage chunk and ``data: [DONE]``), and vcrpy records the
exchange. The request in each cassette is therefore exactly what the SDK sends, and the
same scrubbing rules as the tests apply (tests/conftest.py: authorization, api-key,
openai-organization, openai-project, cookies and set-cookie are dropped). The fake
responses even carry an ``openai-organization`` and a ``set-cookie`` header, so the
scrubber is exercised; tests/test_cassette_secrets.py proves nothing slipped through.

Usage (from the repository root, in the project venv)::

    python tests/openai/make_cassettes.py              # every scenario
    python tests/openai/make_cassettes.py chat_basic   # some scenarios
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

import openai_scenarios as S  # noqa: E402

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
def _shared_scrubbing() -> tuple:
    spec = importlib.util.spec_from_file_location("_instrumentors_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SCRUBBED_REQUEST_HEADERS, module.scrub_response


def record(scenario: S.Scenario) -> Path:
    filter_headers, scrub_response = _shared_scrubbing()
    path = ROOT / "cassettes" / scenario.module / scenario.cassette
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        out = scenario.respond(body)
        content = out if isinstance(out, bytes) else json.dumps(out, ensure_ascii=False).encode()
        headers = {"content-type": scenario.content_type, **RESPONSE_HEADERS}
        return httpx.Response(200, headers=headers, content=content)

    recorder = vcr.VCR(
        filter_headers=filter_headers,
        before_record_response=scrub_response,
        decode_compressed_response=True,
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    )
    with recorder.use_cassette(str(path), record_mode="all"):
        client = S.make_client(scenario, False, http_client=httpx.Client(transport=httpx.MockTransport(handler)))
        result = S.resolve(client, scenario.method)(**scenario.kwargs)
        if scenario.kwargs.get("stream"):
            for _ in result:
                pass
    return path


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
