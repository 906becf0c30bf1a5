#!/usr/bin/env bash
# Usage: bash uc_export.sh DATA -t ID [-tr TRAINER] [-f 0 1 2 3 4] -o model.zip [--intended_use FILE]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" export "$@"
