#!/usr/bin/env bash
# Usage: bash uc_train.sh DATA 3d_fullres ClassifierTrainer TASK FOLD [-c] [--validation_only] [--fp32] [--max_num_epochs N] ...   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" train "$@"
