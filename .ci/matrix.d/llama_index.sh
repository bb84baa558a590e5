#!/usr/bin/env bash
# The LlamaIndex instrumentor against the latest llama-index-core 0.12.x (the main CI run
# covers the 0.14.x the `test` extra resolves to): a fresh venv with llama-index-core
# 0.12.x, a compatible llama-index-llms-openai 0.3.x when it installs (its cassette tests
# are skipped otherwise), the project and the test tools, then the LlamaIndex tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instrumentors-llama-index-matrix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

TOOLS=("pytest>=8" "pytest-asyncio>=0.24" "pytest-recording>=0.13" "vcrpy>=9.4" "pytest-timeout>=2.3")
venv="$WORK/venv"
$PY -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
if ! "$venv/bin/python" -m pip install -q -e "$ROOT" "llama-index-core>=0.12,<0.13" \
    "llama-index-llms-openai>=0.3,<0.4" "${TOOLS[@]}"; then
  echo "--- llama-index-llms-openai 0.3.x did not install: OpenAI LLM tests will be skipped"
  "$venv/bin/python" -m pip install -q -e "$ROOT" "llama-index-core>=0.12,<0.13" "${TOOLS[@]}"
fi
echo "--- llama-index-core $("$venv/bin/python" -c 'import llama_index.core as c; print(c.__version__)')," \
  "llama-index-llms-openai $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("llama-index-llms-openai"))' 2>/dev/null || echo none)"
"$venv/bin/python" -m pytest -q tests/llama_index
