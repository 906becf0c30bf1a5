#!/usr/bin/env bash
# Usage: bash uc_explain.sh DATA -i IN -o OUT [-s SEG] [--method gradcam|occlusion|both] [--head NAME]   (--help for every option)
exec bash "$(dirname "${BASH_SOURCE[0]}")/scripts/uc_run.sh" explain "$@"
