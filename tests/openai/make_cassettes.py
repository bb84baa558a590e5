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

import sys
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cassette_recorder  # noqa: E402
import openai_scenarios as S  # noqa: E402


def record(scenario: S.Scenario) -> Path:
    def drive(http_client: httpx.Client) -> None:
        import openai

        client = S.make_client(scenario, False, http_client=http_client)
        try:
            result = S.resolve(client, scenario.method)(**scenario.kwargs)
        except openai.APIStatusError:
            if scenario.status < 400:
                raise
            return  # an error scenario: the exchange is recorded
        if scenario.kwargs.get("stream"):
            for _ in result:
                pass

    return cassette_recorder.record(scenario.module, scenario.cassette, scenario.respond,
                                    scenario.content_type, drive, status=scenario.status)


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
