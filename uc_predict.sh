#!/usr/bin/env bash
# Usage: bash uc_predict.sh DATA -i IN -o OUT [-s SEG] [-t ID] [-f 0 1 2 3 4] [--tta] [--overwrite_existing]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"
elif [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"
else python="python3"; fi
exec "$python" -m universalclassifier.cli predict "$@"
