#!/usr/bin/env bash
# The Phoenix round trip (tests/phoenix/test_phoenix_roundtrip.py) against a real Arize
# Phoenix server. arize-phoenix depends on openai>=3 (through pydantic-ai), which the
# `test` extra's langchain-openai / llama-index-llms-openai pins exclude, so the server gets
# a venv of its own; the tests (our instrumentation, the OTLP exporters) run in a second
# fresh venv with the project's `phoenix` and `demo` extras. The main run skips these
# tests with that reason; here they must pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instrumentors-phoenix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

$PY -m venv "$WORK/server"
"$WORK/server/bin/python" -m pip install -q --upgrade pip
"$WORK/server/bin/python" -m pip install -q "arize-phoenix"

$PY -m venv "$WORK/app"
"$WORK/app/bin/python" -m pip install -q --upgrade pip
"$WORK/app/bin/python" -m pip install -q -e "$ROOT[phoenix,demo]" \
  "pytest>=8" "pytest-asyncio>=0.24" "pytest-recording>=0.13" "vcrpy>=6" "pytest-timeout>=2.3"
echo "--- arize-phoenix $("$WORK/server/bin/python" -c 'from importlib.metadata import version; print(version("arize-phoenix"))')"
# INSTRUMENTORS_PHOENIX_REQUIRED: a server that cannot start fails the run instead of skipping
INSTRUMENTORS_PHOENIX_REQUIRED=1 INSTRUMENTORS_PHOENIX_PYTHON="$WORK/server/bin/python" \
  "$WORK/app/bin/python" -m pytest -q tests/phoenix
