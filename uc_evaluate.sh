#!/usr/bin/env bash
# Usage: bash uc_evaluate.sh DATA -t ID -o OUT (-i IN [-s SEG] --labels CSV | --use_dataset_test) [--compare OTHER]
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" evaluate "$@"
