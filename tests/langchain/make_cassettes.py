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

import sys
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cassette_recorder  # noqa: E402
import langchain_scenarios as S  # noqa: E402

MODULE = "test_langchain_openai"


def record(scenario: S.Scenario) -> Path:
    def drive(http_client: httpx.Client) -> None:
        scenario.run(S.chat_model(api_key="placeholder", http_client=http_client))

    return cassette_recorder.record(MODULE, scenario.cassette, scenario.respond, scenario.content_type, drive)


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
