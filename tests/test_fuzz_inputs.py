"""Fuzzing (small): mutated tasks and prediction inputs end accepted or refused with a UserInputError, never another
exception, a hang, a changed raw task folder or a file outside DATA/preprocessed. The larger run is
benchmarks/bench_fuzz_inputs.py; the mutations are in tests/fuzz_mutations.py."""

from __future__ import annotations

import numpy as np
import pytest

from fuzz_mutations import (
    Outcome,
    digest,
    make_pristine,
    predict_mutation_names,
    run_predict_mutation,
    run_task_mutation,
    tally,
    task_mutation_names,
)
from untrained_artifact import held_out_case, shared_untrained_artifact

SEEDS = (0, 1, 2)
TASK_MUTATIONS_PER_SEED = 15
PREDICT_MUTATIONS_PER_SEED = 10
SECONDS_PER_RUN = 60
# Accepted, but slow for a test: one case at 1000x the spacing makes the planner resample every case to 240^3.
SLOW = {"case: spacing x1000"}
# What this suite was written for; run once each, on top of the sampled mutations.
ALWAYS_TASK = [
    "json: head name", "json: absolute image path", "json: image path", "image: mha header: huge size",
    "image: mha header: NaN spacing", "roi: label 40000", "every ROI empty", "dataset.json a directory",
    "json: overlong label path",
]
ALWAYS_PREDICT = [
    "image: mha header: huge size", "image: nii header: negative spacing", "roi: label 40000",
    "roi: thousands of labels", "folds an int", "artifact None", "max_input_voxels evil", "roi path too long",
]


def _sample(names: list[str], count: int, seed: int) -> list[str]:
    candidates = [n for n in names if n not in SLOW]
    return [str(n) for n in np.random.default_rng(seed).choice(candidates, size=count, replace=False)]


def _assert_clean(outcomes: list[Outcome], always: list[str]) -> dict:
    counts = tally(outcomes)
    assert counts["failures"] == 0, "\n".join(counts["failure_details"])
    for name in always:
        outcome = next(o for o in outcomes if o.mutation.startswith(name))
        assert outcome.result == "refused", outcome
    return counts


def test_mutated_tasks_are_refused_by_validation_or_accepted(tmp_path):
    outcomes = []
    for seed in SEEDS:
        pristine = tmp_path / f"pristine_{seed}"
        make_pristine(pristine, seed)
        before = digest(pristine)
        names = _sample(task_mutation_names(), TASK_MUTATIONS_PER_SEED, seed) + (ALWAYS_TASK if seed == 0 else [])
        for index, name in enumerate(names):
            sandbox = tmp_path / "runs" / f"{seed}_{index}"
            outcomes.append(run_task_mutation(pristine, sandbox, name, seed, SECONDS_PER_RUN))
        assert digest(pristine) == before
    counts = _assert_clean(outcomes, ALWAYS_TASK)
    assert counts["mutations_tried"] == len(SEEDS) * TASK_MUTATIONS_PER_SEED + len(ALWAYS_TASK)
    refusals = [o for o in outcomes if o.result == "refused"]
    # validation reads image headers only: damaged pixel data shows when the pixels are read, as a UserInputError
    late = [o for o in refusals if o.error != "TaskValidationError"]
    assert refusals
    assert all(o.error == "UserInputError" and o.detail.startswith("Cannot read image") for o in late), late
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["runs", *(f"pristine_{s}" for s in SEEDS)])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return shared_untrained_artifact(tmp_path_factory)


def test_mutated_prediction_inputs_are_refused_or_accepted(artifact, tmp_path):
    images, roi = held_out_case(artifact)
    trained_models = artifact.data_root / "trained_models"
    outcomes = []
    for seed in SEEDS:
        names = _sample(predict_mutation_names(), PREDICT_MUTATIONS_PER_SEED, seed) + (
            ALWAYS_PREDICT if seed == 0 else []
        )
        for index, name in enumerate(names):
            sandbox = tmp_path / f"{seed}_{index}"
            outcomes.append(run_predict_mutation(trained_models, images[0], roi, sandbox, name, seed, SECONDS_PER_RUN))
    counts = _assert_clean(outcomes, ALWAYS_PREDICT)
    assert counts["mutations_tried"] == len(SEEDS) * PREDICT_MUTATIONS_PER_SEED + len(ALWAYS_PREDICT)
    assert counts["refused_cleanly"] > 0
