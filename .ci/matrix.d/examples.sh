#!/usr/bin/env bash
# Every example in a fresh venv made with exactly the install line README's "Examples"
# table gives for it (one venv per extra), run offline: no key, no network.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instrumentors-examples-matrix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

rows=$(sed -nE 's/^\| `(examples\/[A-Za-z0-9_./-]+\.py)` \| `pip install -e "\.\[([A-Za-z0-9_,-]+)\]"` \|.*/\2 \1/p' README.md)
[ -n "$rows" ] || { echo "no examples table in README.md"; exit 1; }
for extra in $(echo "$rows" | cut -d' ' -f1 | sort -u); do
  venv="$WORK/venv-$extra"
  $PY -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$ROOT[$extra]"
  for example in $(echo "$rows" | awk -v e="$extra" '$1 == e {print $2}'); do
    echo "--- [$extra] $example"
    run="$WORK/run-$(basename "$example" .py)"
    mkdir -p "$run"
    (cd "$run" && env -u OPENAI_API_KEY INSTRUMENTORS_STORE_PATH="$run/traces.db" \
      "$venv/bin/python" "$ROOT/$example" > "$run/out.txt" 2> "$run/err.txt") \
      || { cat "$run/err.txt"; echo "FAILED: $example after pip install -e \".[$extra]\""; exit 1; }
    if grep -q Traceback "$run/err.txt"; then cat "$run/err.txt"; exit 1; fi
    tail -n 2 "$run/out.txt"
  done
done
