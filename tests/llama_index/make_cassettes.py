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
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cassette_recorder  # noqa: E402
import li_scenarios as S  # noqa: E402

MODULE = "test_llama_index_openai"


def record(scenario: S.Scenario) -> Path:
    def drive(http_client: httpx.Client) -> None:
        asyncio.run(S.run(scenario.name, S.make_llm(scenario, http_client=http_client), is_async=False))

    return cassette_recorder.record(MODULE, scenario.cassette, scenario.respond, scenario.content_type, drive)


def main(names: list) -> None:
    for name in names or list(S.SCENARIOS):
        print(record(S.SCENARIOS[name]).relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
