#!/usr/bin/env bash
# Usage: bash uc_install_model.sh model.zip DATA [--force]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" install_model "$@"
