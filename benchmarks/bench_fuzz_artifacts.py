"""Fuzz the artifact predict() reads: mutated plans.json, checkpoint metadata, calibration.json and weights files.

Per seed, every mutation of tests/artifact_mutations.py once (plans fields with the plans hash fixed so that they
get past the hash check, file-level damage, symlinks to /dev/zero, FIFOs, huge sparse files, wrong shapes, NaN
weights, compressed archives) plus `--random_fields` random field edits of each JSON file, and once per run a
decompression bomb. Each predict() runs in a child process limited to `--memory_gib` of address space and
`--seconds`, so that an allocation bomb or a hang counts as a failure. The larger version of
tests/test_fuzz_artifacts.py. Prints one JSON object with the counts (tried / refused cleanly / predicted normally /
failures, with the failures' details) and, as the floor, the time of one predict() on the unmutated artifact in
the same kind of child process. Exit code 1 when there are failures.
Example: python benchmarks/bench_fuzz_artifacts.py --seeds 0 1 2 --random_fields 10
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

from artifact_mutations import (  # noqa: E402
    BOMB_NAME,
    MEMORY_LIMIT_BYTES,
    child_context,
    counts,
    make_bomb,
    make_pristine,
    mutation_names,
    rng_for,
    run_mutation,
    run_predict,
)

RANDOM_FIELD_KINDS = ("plans: random field", "metadata: random field", "calibration: random field")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fuzzing and print the counts as JSON; returns 1 when a run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--random_fields", type=int, default=5, help="random edits per JSON file and seed (default 5)")
    parser.add_argument("--seconds", type=float, default=120.0, help="deadline per run, else a hang (default 120)")
    parser.add_argument("--memory_gib", type=float, default=MEMORY_LIMIT_BYTES / 2**30, help="address space (GiB)")
    parser.add_argument("--no_bomb", action="store_true", help="skip the decompression bomb (about 15 s to build)")
    args = parser.parse_args(argv)
    # Imported here, not above: every child process imports this script again, and it should stay cheap to import.
    from untrained_artifact import held_out_case, make_untrained_artifact

    logging.disable(logging.WARNING)
    memory = int(args.memory_gib * 2**30)
    context = child_context()
    outcomes = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = make_untrained_artifact(root / "source")
        case = held_out_case(source)
        pristine = make_pristine(source.data_root / "trained_models", root / "pristine")
        floor_started = time.perf_counter()
        floor = run_predict(context, (pristine.trained_models, *case), args.seconds, memory)
        floor_seconds = time.perf_counter() - floor_started
        assert floor[0] == "predicted", floor
        bomb = None
        if not args.no_bomb:
            bomb = root / "bomb.model"
            make_bomb(pristine.checkpoint, bomb)
        for seed in args.seeds:
            names = [n for n in mutation_names() if n != BOMB_NAME]
            names += [kind for kind in RANDOM_FIELD_KINDS for _ in range(args.random_fields)]
            if bomb is not None and seed == args.seeds[0]:
                names.append(BOMB_NAME)
            for index, name in enumerate(names):
                sandbox = root / "runs" / f"{seed}_{index}"
                rng = rng_for(name, seed, index)
                outcomes.append(run_mutation(context, pristine, case, sandbox, name, rng, args.seconds, memory, bomb))
                shutil.rmtree(sandbox)
    result = {
        "seeds": args.seeds,
        **counts(outcomes),
        "memory_limit_gib": args.memory_gib,
        "seconds": round(time.perf_counter() - started, 1),
        "floor_unmutated_predict_in_a_child_seconds": round(floor_seconds, 3),
    }
    print(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
