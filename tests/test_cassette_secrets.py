"""No cassette (of any library) may keep a credential, org/project id or cookie.

Scans every file under ``cassettes/``: VCR YAML/JSON cassettes are parsed and every
request and response header name is checked; every file's text is also searched for
API-key shaped strings (``sk-...``) and bearer tokens, whatever its format.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"

FORBIDDEN_HEADERS = {
    "authorization", "api-key", "x-api-key", "openai-organization", "openai-project", "cookie", "set-cookie",
}
SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),  # OpenAI keys: sk-..., sk-proj-..., sk-svcacct-...
    re.compile(r"\bBearer\s+[A-Za-z0-9._\-]{8,}", re.IGNORECASE),
]
# A header line in any YAML-ish text, even in a file that does not parse.
HEADER_LINE = re.compile(r"^\s*['\"]?(" + "|".join(map(re.escape, FORBIDDEN_HEADERS)) + r")['\"]?\s*:", re.I | re.M)


def _headers(document) -> list:
    """Every header name in a VCR cassette document (request and response)."""
    names = []
    interactions = document.get("interactions", []) if isinstance(document, dict) else []
    for interaction in interactions or ():
        for side in ("request", "response"):
            headers = (interaction or {}).get(side, {}).get("headers") or {}
            names += [str(name) for name in headers]
    return names


def scan(folder: Path) -> list:
    """(file, problem) for every secret found under ``folder``."""
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = str(path.relative_to(folder))
        document = None
        try:
            if path.suffix in (".yaml", ".yml"):
                document = yaml.safe_load(text)
            elif path.suffix == ".json":
                document = json.loads(text)
        except Exception:  # noqa: BLE001 - unparsable: the text scans below still apply
            document = None
        for name in _headers(document):
            if name.lower() in FORBIDDEN_HEADERS:
                problems.append((rel, f"header {name}"))
        if document is None:
            for match in HEADER_LINE.finditer(text):
                problems.append((rel, f"header {match.group(1)}"))
        for pattern in SECRET_PATTERNS:
            for match in pattern.finditer(text):
                problems.append((rel, f"secret-looking {match.group(0)[:12]}..."))
    return problems


def test_cassettes_exist():
    assert any(CASSETTES.rglob("*.yaml")), "no cassettes found: the scan below would prove nothing"


def test_no_secret_in_any_cassette():
    assert scan(CASSETTES) == []


def test_scanner_finds_planted_secrets(tmp_path):
    cassette = {
        "interactions": [{
            "request": {"headers": {"Authorization": ["Bearer abcdefghijklmnop"], "OpenAI-Project": ["proj_1"]},
                        "body": "", "method": "POST", "uri": "https://api.openai.com/v1/chat/completions"},
            "response": {"headers": {"Set-Cookie": ["a=b"]}, "body": {"string": "key sk-proj-abcdefghijkl"},
                         "status": {"code": 200, "message": "OK"}},
        }],
        "version": 1,
    }
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "one.yaml").write_text(yaml.safe_dump(cassette))
    (tmp_path / "broken.yaml").write_text("api-key: 123\n  : [unbalanced")
    problems = scan(tmp_path)
    assert ("lib/one.yaml", "header Authorization") in problems
    assert ("lib/one.yaml", "header OpenAI-Project") in problems
    assert ("lib/one.yaml", "header Set-Cookie") in problems
    assert any(p[0] == "lib/one.yaml" and p[1].startswith("secret-looking sk-proj") for p in problems)
    assert any(p[0] == "lib/one.yaml" and p[1].startswith("secret-looking Bearer") for p in problems)
    assert ("broken.yaml", "header api-key") in problems


REQUEST_SIDE = ["authorization", "api-key", "openai-organization", "openai-project", "cookie"]
RESPONSE_SIDE = ["set-cookie", "openai-organization", "openai-project", "cookie"]


@pytest.mark.parametrize("header", REQUEST_SIDE)
def test_recording_drops_request_header(vcr_config, header):
    assert header in [h.lower() for h in vcr_config["filter_headers"]]


@pytest.mark.parametrize("header", RESPONSE_SIDE)
def test_recording_drops_response_header(vcr_config, header):
    response = {"headers": {header.title(): ["value"], "Content-Type": ["application/json"]}}
    assert vcr_config["before_record_response"](response)["headers"] == {"Content-Type": ["application/json"]}
