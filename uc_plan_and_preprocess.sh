#!/usr/bin/env bash
# Usage: bash uc_plan_and_preprocess.sh DATA -t ID [-tf N] [-tl N] [-no_pp] [--verify_dataset_integrity]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"
elif [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"
else python="python3"; fi
exec "$python" -m universalclassifier.cli plan_and_preprocess "$@"
