#!/usr/bin/env bash
# The LangChain instrumentor against the latest langchain-core 0.3.x (the main CI run
# covers the 1.x the `test` extra resolves to): a fresh venv with langchain-core 0.3.x,
# a compatible langchain-openai 0.3.x (and the openai it pins), the project and the
# test tools, then the LangChain tests (cassettes included).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instrumentors-langchain-matrix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

venv="$WORK/venv"
$PY -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e "$ROOT" "langchain-core>=0.3,<0.4" "langchain-openai>=0.3,<0.4" \
  "numpy>=1.26" "pytest>=8" "pytest-asyncio>=0.24" "pytest-recording>=0.13" "vcrpy>=9.4" "pytest-timeout>=2.3"
echo "--- langchain-core $("$venv/bin/python" -c 'import langchain_core; print(langchain_core.__version__)')," \
  "langchain-openai $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("langchain-openai"))')," \
  "openai $("$venv/bin/python" -c 'import openai; print(openai.__version__)')"
"$venv/bin/python" -m pytest -q tests/langchain
