"""Fuzz plan & preprocess and predict() with mutated tasks and inputs (the large version of tests/test_fuzz_inputs.py).

Per seed: a valid 6-case synthetic task (.nii.gz for even seeds, .mha for odd ones), every task mutation of
tests/fuzz_mutations.py once plus `--random_fields` random dataset.json field replacements/deletions, and every
prediction mutation once against an untrained artifact. Each run must end accepted or refused with a
UserInputError; anything else, a run past `--seconds`, a changed raw task folder or a file written outside
DATA/preprocessed is a failure. Prints one JSON object with the counts (and the failures), and, as the floor,
the time of plan & preprocess on the unmutated task. Exit code 1 when there are failures.
Example: python benchmarks/bench_fuzz_inputs.py --seeds 0 1 2 3 4 5 --random_fields 30
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the mutations live beside the fuzz test that shares them

from fuzz_mutations import (  # noqa: E402
    TASK_ID,
    Outcome,
    make_pristine,
    predict_mutation_names,
    run_predict_mutation,
    run_task_mutation,
    tally,
    task_mutation_names,
)
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess  # noqa: E402
from untrained_artifact import held_out_case, make_untrained_artifact  # noqa: E402


def _clean_run_seconds(pristine: Path, work: Path) -> float:
    """Plan & preprocess of the unmutated task: what one accepted task mutation costs at least."""
    shutil.copytree(pristine, work)
    started = time.perf_counter()
    plan_and_preprocess(work, TASK_ID, num_workers=1, show_progress=False)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fuzzing and print the counts as JSON; returns 1 when a run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default 0 1 2 3 4)")
    parser.add_argument("--random_fields", type=int, default=20, help="random dataset.json edits per seed (default 20)")
    parser.add_argument("--seconds", type=float, default=120.0, help="deadline per run, else a hang (default 120)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the refusals' own warnings are expected; the counts are the result

    task_outcomes: list[Outcome] = []
    predict_outcomes: list[Outcome] = []
    floors = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        artifact = make_untrained_artifact(root / "artifact")
        images, roi = held_out_case(artifact)
        for seed in args.seeds:
            pristine = root / f"pristine_{seed}"
            make_pristine(pristine, seed)
            floors.append(_clean_run_seconds(pristine, root / f"clean_{seed}"))
            names = task_mutation_names() + ["json: random field"] * args.random_fields
            for index, name in enumerate(names):
                sandbox = root / "tasks" / f"{seed}_{index}"
                task_outcomes.append(run_task_mutation(pristine, sandbox, name, seed, args.seconds, variant=index))
                shutil.rmtree(sandbox)
            for index, name in enumerate(predict_mutation_names()):
                sandbox = root / "predict" / f"{seed}_{index}"
                predict_outcomes.append(
                    run_predict_mutation(
                        artifact.data_root / "trained_models", images[0], roi, sandbox, name, seed, args.seconds, index
                    )
                )
                shutil.rmtree(sandbox)
    task, predict = tally(task_outcomes), tally(predict_outcomes)
    result = {
        "seeds": args.seeds,
        "mutations_tried": task["mutations_tried"] + predict["mutations_tried"],
        "accepted_as_valid": task["accepted_as_valid"] + predict["accepted_as_valid"],
        "refused_cleanly": task["refused_cleanly"] + predict["refused_cleanly"],
        "failures": task["failures"] + predict["failures"],
        "plan_and_preprocess": task,
        "predict": predict,
        "refused_after_validation": sum(
            o.result == "refused" and o.error != "TaskValidationError" for o in task_outcomes
        ),
        "seconds": round(time.perf_counter() - started, 1),
        "floor_clean_plan_and_preprocess_seconds": round(min(floors), 3),
    }
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
