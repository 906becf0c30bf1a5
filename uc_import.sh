#!/usr/bin/env bash
# Usage: bash uc_import.sh DATA --from {innereye,deepreg-h5,folder} SOURCE... -t ID [--name NAME]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" import "$@"
