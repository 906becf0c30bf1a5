#!/usr/bin/env bash
# Usage: bash uc_predict.sh DATA -i IN -o OUT [-s SEG] [-t ID] [-f 0 1 2 3 4] [--tta] [--overwrite_existing]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" predict "$@"
