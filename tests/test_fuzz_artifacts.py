"""Fuzzing (small): predict() on mutated artifacts ends predicted or refused with a UserInputError, never another
exception, a crash, a hang or an allocation beyond the memory limit. The larger run is
benchmarks/bench_fuzz_artifacts.py; the mutations are in tests/artifact_mutations.py."""

from __future__ import annotations

import numpy as np
import pytest

from artifact_mutations import (
    BOMB_NAME,
    MEMORY_LIMIT_BYTES,
    child_context,
    counts,
    make_pristine,
    mutation_names,
    rng_for,
    run_mutation,
    run_predict,
)
from untrained_artifact import held_out_case, shared_untrained_artifact

SEEDS = (0, 1)
MUTATIONS_PER_SEED = 6
SECONDS_PER_RUN = 120
# Slow for a test: tens of MB of JSON, or a bomb that takes seconds to build.
SLOW = {"plans: a head with 2000000 values", "plans: 200000 heads", "plans: covariates evil", BOMB_NAME}
# The examples; run once each, on top of the sampled mutations.
ALWAYS = [
    "plans: image_size huge", "plans: 100000 modalities", "plans: num_roi_classes huge", "plans: uses_roi evil",
    "plans file: FIFO", "plans file: deeply nested", "metadata: no recipe",
    "metadata file: symlink to /dev/zero", "weights: a head with another shape", "weights: NaN weight",
    "weights: deflate-compressed", "weights file: huge sparse file",
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    source = shared_untrained_artifact(tmp_path_factory)
    copy = make_pristine(source.data_root / "trained_models", tmp_path_factory.mktemp("pristine"))
    return copy, held_out_case(source)


def test_mutated_artifacts_are_refused_or_predict_within_the_memory_limit(pristine, tmp_path):
    artifact, case = pristine
    context = child_context()
    assert run_predict(context, (artifact.trained_models, *case), SECONDS_PER_RUN, MEMORY_LIMIT_BYTES)[0] == "predicted"
    candidates = [n for n in mutation_names() if n not in SLOW and n not in ALWAYS]
    outcomes = []
    for seed in SEEDS:
        names = [str(n) for n in np.random.default_rng(seed).choice(candidates, MUTATIONS_PER_SEED, replace=False)]
        for index, name in enumerate(names + (ALWAYS if seed == SEEDS[0] else [])):
            sandbox = tmp_path / f"{seed}_{index}"
            rng = rng_for(name, seed, index)
            outcomes.append(run_mutation(context, artifact, case, sandbox, name, rng, SECONDS_PER_RUN))
    summary = counts(outcomes)
    assert summary["failures"] == 0, "\n".join(summary["failure_details"])
    assert summary["tried"] == len(SEEDS) * MUTATIONS_PER_SEED + len(ALWAYS)
    assert summary["refused_by_the_plans_hash_check"] == 0  # the plans edits got past it, as a forger's would
    for name in ALWAYS:
        outcome = next(o for o in outcomes if o.mutation.startswith(name))
        assert outcome.result == "refused" and outcome.error == "UserInputError", outcome
