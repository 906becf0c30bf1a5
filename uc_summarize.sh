#!/usr/bin/env bash
# Usage: bash uc_summarize.sh DATA -t ID [--num_resamples N] [--verbose|--quiet]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"
elif [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"
else python="python3"; fi
exec "$python" -m universalclassifier.cli summarize "$@"
