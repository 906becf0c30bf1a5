#!/usr/bin/env bash
# Usage: bash uc_plan_and_preprocess.sh DATA -t ID [ID ...] [-tf N] [-tl N] [-no_pp] [--verify_dataset_integrity]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" plan_and_preprocess "$@"
