#!/usr/bin/env bash
# Usage: bash uc_find_best.sh DATA -t ID [--num_resamples N]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" find_best "$@"
