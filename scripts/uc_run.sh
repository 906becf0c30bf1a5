#!/usr/bin/env bash
# Runs one universalclassifier command (plan_and_preprocess, train, predict, summarize, radiomics, import, evaluate,
# explain, export, install_model, find_best) with the right interpreter: the active virtual environment, else .venv in
# the repository, else python3.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"
elif [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"
else python="python3"; fi
exec "$python" -m universalclassifier.cli "$@"
