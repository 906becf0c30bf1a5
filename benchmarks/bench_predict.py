"""Benchmark predict(): cold start, warm seconds per case for 1 and 5 folds, against a floor measured in this run.

Trains 5 folds of a generated task for one tiny epoch each (weights do not matter for speed), then times
- cold start: a fresh interpreter importing universalclassifier and loading the ensemble (then its first case),
- warm: predict() per test case with 1 fold and with all 5 folds,
- the floor: reading + preprocessing the same case plus one forward pass per fold, each measured on its own.
Prints one JSON object. Example: python benchmarks/bench_predict.py --size 24 64 64
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from universalclassifier.inference.predict import get_predictor, predict
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.preprocessing.preprocessor import preprocess_case, to_network_input
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

COLD_START = """
import json, sys, time
start = time.perf_counter()
from universalclassifier.inference.predict import get_predictor, predict
predictor = get_predictor(sys.argv[1])
loaded = time.perf_counter()
predict(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
print(json.dumps({"import_and_load": loaded - start, "first_case": time.perf_counter() - loaded}))
"""


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=(24, 64, 64), metavar=("Z", "Y", "X"))
    parser.add_argument("--test_cases", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the tiny folds' undefined validation AUCs are expected here
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = generate_task(root, 1, "BenchPredict", num_cases=10, with_roi=True, base_size=args.size,
                             num_test=args.test_cases, extension=".mha", seed=11)
        plan_and_preprocess(root, 1, num_workers=2, show_progress=False)
        paths = TaskPaths.find(root, 1)
        tiny = TrainingOptions(max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False)
        for fold in range(5):
            ClassifierTrainer(paths, fold, tiny).run_training()
        artifact = root / "trained_models"
        cases = [
            (sorted((task / "imagesTs").glob(f"case_{i:04d}_*.mha")), task / "labelsTs" / f"case_{i:04d}.mha")
            for i in range(10, 10 + args.test_cases)
        ]
        cold = json.loads(subprocess.run(
            [sys.executable, "-c", COLD_START, str(artifact), json.dumps([str(p) for p in cases[0][0]]), str(cases[0][1])],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1])

        result = {"benchmark": "predict", "device": "cuda" if torch.cuda.is_available() else "cpu", "case_size": list(args.size)}
        result["cold_start_seconds"] = {k: round(v, 3) for k, v in cold.items()}
        for folds in ([0], None):
            predictor = get_predictor(artifact, folds)
            images, roi = cases[0]
            predict(artifact, images, roi, folds=folds)  # warm-up
            warm = statistics.median(
                _median_seconds(lambda c=c: predict(artifact, c[0], c[1], folds=folds), args.repeats) for c in cases
            )
            preprocess = statistics.median(
                _median_seconds(lambda c=c: preprocess_case("c", c[0], c[1], predictor.plans), args.repeats) for c in cases
            )
            array, _ = preprocess_case("c", images, roi, predictor.plans)
            batch = torch.from_numpy(to_network_input(array, predictor.plans.num_roi_classes)[None]).to(predictor.device)
            with torch.no_grad():
                forward = _median_seconds(lambda: [n(batch) for n in predictor.networks], args.repeats)
            floor = preprocess + forward
            key = f"{len(predictor.networks)}_fold"
            result[key] = {
                "warm_seconds_per_case": round(warm, 4),
                "floor_seconds": round(floor, 4),
                "floor_read_and_preprocess_seconds": round(preprocess, 4),
                "floor_forward_seconds": round(forward, 4),
                "ratio_warm_to_floor": round(warm / floor, 3),
            }
        result["image_size"] = predictor.plans.image_size
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
