#!/usr/bin/env bash
# Usage: bash uc_radiomics.sh DATA -t ID [--num_workers N] [--folds 0 1 2 3 4]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" radiomics "$@"
