#!/usr/bin/env bash
# End-to-end packaging check:
#   (a) build the wheel with `python -m build`, `pip wheel` and `poetry build` and check each one's contents;
#   (b) install it, after the CPU torch pin, into a fresh virtual environment;
#   (c) from outside the repository, train a tiny synthetic model with the installed console scripts and run the
#       grand-challenge entry point (examples/grand_challenge/process.py) on one test case.
# Usage: bash scripts/check_wheel.sh        (PYTHON=python3.11 picks the interpreter for the virtual environments)
set -euo pipefail

start=$SECONDS
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
torch_pin="torch==2.13.0"
example="$repo/examples/grand_challenge"
# Scratch space: /dev/shm (tmpfs) when it has 4 GiB free. Two virtual environments of ~40,000 files are written
# and deleted; on a disk mounted with online discard, deleting them alone takes over a minute.
scratch="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -ge $((4 * 1024 * 1024)) ]; then
    scratch=/dev/shm
fi
work="$(mktemp -d "$scratch/uc_wheel_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH VIRTUAL_ENV

step() { echo "[$((SECONDS - start))s] $*"; }
fail() { echo "wheel check: FAILED: $*" >&2; exit 1; }

# Run a command with its output in a log that is shown only when it fails.
quietly() {
    if ! "$@" >"$work/command.log" 2>&1; then
        tail -n 60 "$work/command.log" >&2
        fail "command failed: $*"
    fi
}

# One universalclassifier wheel in folder $1, with the package, its requirements and console scripts, and no tests.
check_wheel() {
    local folder="$1" wheels names metadata entry_points name
    shopt -s nullglob
    wheels=("$folder"/universalclassifier-*.whl)
    shopt -u nullglob
    [ "${#wheels[@]}" -eq 1 ] || fail "$folder holds ${#wheels[@]} universalclassifier wheels, expected exactly one"
    names="$(unzip -Z1 "${wheels[0]}")"
    ! grep -qE '(^|/)tests/' <<<"$names" || fail "${wheels[0]} contains test files: $(grep -E '(^|/)tests/' <<<"$names" | head -3)"
    ! grep -qE '(__pycache__/|\.pyc$)' <<<"$names" || fail "${wheels[0]} contains compiled Python caches"
    grep -qx 'universalclassifier/inference/predict.py' <<<"$names" || fail "${wheels[0]} lacks universalclassifier/inference/predict.py"
    grep -qx 'universalclassifier/py.typed' <<<"$names" || fail "${wheels[0]} lacks universalclassifier/py.typed (PEP 561 marker)"
    metadata="$(unzip -p "${wheels[0]}" 'universalclassifier-*.dist-info/METADATA')"
    for name in torch SimpleITK numpy scipy batchgenerators scikit-learn; do
        grep -qiE "^Requires-Dist: *${name}([^A-Za-z0-9._-]|$)" <<<"$metadata" || fail "${wheels[0]} METADATA lacks Requires-Dist: $name"
    done
    entry_points="$(unzip -p "${wheels[0]}" 'universalclassifier-*.dist-info/entry_points.txt')"
    for name in uc_plan_and_preprocess uc_train uc_predict; do
        grep -qE "^${name} *=" <<<"$entry_points" || fail "${wheels[0]} entry_points.txt lacks the console script $name"
    done
    sort <<<"$names" >"$folder.files"
}

step "tools environment (build, poetry)"
quietly "$python" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet build poetry >"$work/command.log" 2>&1 || {
    tail -n 30 "$work/command.log" >&2
    fail "cannot install build and poetry from the package registry"
}

step "building the wheel three ways"
quietly "$work/tools/bin/python" -m build --wheel --outdir "$work/wheels/build" "$repo"
quietly "$work/tools/bin/pip" wheel "$repo" --no-deps --wheel-dir "$work/wheels/pip"
quietly "$work/tools/bin/poetry" --directory "$repo" build --format wheel --output "$work/wheels/poetry"
for builder in build pip poetry; do
    check_wheel "$work/wheels/$builder"
done
for builder in pip poetry; do
    diff -u "$work/wheels/build.files" "$work/wheels/$builder.files" >&2 || fail "the $builder wheel holds other files than the build wheel"
done
wheel=("$work"/wheels/build/universalclassifier-*.whl)
echo "  $(basename "${wheel[0]}"): $(wc -l <"$work/wheels/build.files") files, identical file lists from build, pip and poetry"

step "fresh environment: $torch_pin first, then the wheel and its dependencies"
venv="$work/venv"
quietly "$python" -m venv "$venv"
quietly "$venv/bin/pip" install --no-compile "$torch_pin"
quietly "$venv/bin/pip" install --no-compile "${wheel[0]}"

mkdir "$work/run"
cd "$work/run"
"$venv/bin/python" - "$venv" <<'EOF' || fail "the fresh environment does not import the installed package"
import sys
from pathlib import Path

import torch
import universalclassifier

venv = Path(sys.argv[1]).resolve()
location = Path(universalclassifier.__file__).resolve()
assert venv in location.parents, f"universalclassifier imported from {location}, not from {venv}"
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__} replaced the pinned 2.13.0"
print(f"  universalclassifier {universalclassifier.__version__} from {location.parent}, torch {torch.__version__}")
EOF

step "synthetic task: plan, preprocess and train fold 0 for one batch"
quietly "$venv/bin/python" -c "
from universalclassifier.synthetic import generate_task
generate_task('data', 1, 'LesionDemo', num_cases=6, base_size=(10, 24, 24), num_test=2, extension='.mha', seed=0)
"
quietly "$venv/bin/uc_plan_and_preprocess" data -t 1 -tf 1 --quiet
quietly "$venv/bin/uc_train" data 3d_fullres ClassifierTrainer 1 0 --max_num_epochs 1 --num_batches_per_epoch 1 \
    --num_val_batches_per_epoch 1 --num_workers 0 --quiet

step "grand-challenge entry point on one test case"
raw="data/raw/nnUNet_raw_data/Task001_LesionDemo"
mkdir -p input/images/ct-image input/images/organ-segmentation
cp "$raw/imagesTs/case_0006_0000.mha" input/images/ct-image/5f1f6c1e-7d2b-4a51-9c0e-2b1f0a9e6d11.mha
cp "$raw/labelsTs/case_0006.mha" input/images/organ-segmentation/8a3e0c55-1b6f-4f0e-a7d2-6c9b4e2f1a03.mha
quietly "$venv/bin/python" "$example/process.py" --input input --output output --artifact data/trained_models \
    --config "$example/task_config.json"
"$venv/bin/python" - <<'EOF' || fail "process.py wrote unexpected outputs"
import json
import math
from pathlib import Path

output = Path("output")
files = sorted(p.name for p in output.iterdir())
assert files == ["lesion-contrast-likelihood.json", "lesion-size-likelihoods.json"], files
contrast = json.loads((output / "lesion-contrast-likelihood.json").read_text())
sizes = json.loads((output / "lesion-size-likelihoods.json").read_text())
assert isinstance(contrast, float) and 0 <= contrast <= 1, contrast
assert isinstance(sizes, list) and len(sizes) == 3 and all(isinstance(v, float) for v in sizes), sizes
assert math.isclose(sum(sizes), 1, abs_tol=1e-6), sizes
print(f"  lesion-contrast-likelihood {contrast:.4f}, lesion-size-likelihoods {[round(v, 4) for v in sizes]}")
EOF

step "done"
echo "wheel check: OK"
