#!/usr/bin/env bash
# The OpenAI instrumentor against the oldest and newest openai majors we support: the
# main CI run covers the version the `test` extra resolves to (2.x, pinned by
# langchain-openai); here each of the latest 1.x and the latest 3.x gets a fresh venv
# with only the project and the test tools (no langchain, no llama-index).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instrumentors-openai-matrix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for spec in "openai>=1.0,<2" "openai>=3,<4"; do
  venv="$WORK/venv"
  rm -rf "$venv"
  $PY -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$ROOT" "$spec" \
    "pytest>=8" "pytest-asyncio>=0.24" "pytest-recording>=0.13" "vcrpy>=9.4" "pytest-timeout>=2.3"
  echo "--- openai $("$venv/bin/python" -c 'import openai; print(openai.__version__)') ($spec)"
  "$venv/bin/python" -m pytest -q tests/openai tests/test_cassette_secrets.py
done
