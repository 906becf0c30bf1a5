"""Benchmark predict(): cold start, warm seconds per case for 1 and 5 folds, against a floor measured in this run.

Trains 5 folds of a generated task for one tiny epoch each (weights do not matter for speed), then times
- cold start: a fresh interpreter importing universalclassifier and loading the ensemble (then its first case;
  its peak RSS after 6 cases is reported),
- warm: predict() per test case with 1 fold and with all 5 folds,
- the floor: reading + preprocessing the same case plus one forward pass per fold, each measured on its own.
Prints one JSON object. Example: python benchmarks/bench_predict.py --size 24 64 64
"""

from __future__ import annotations

import argparse
import json
import logging
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
import json, resource, sys, time
start = time.perf_counter()
from universalclassifier.inference.predict import get_predictor, predict
predictor = get_predictor(sys.argv[1])
loaded = time.perf_counter()
predict(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
first_case = time.perf_counter() - loaded
for _ in range(5):
    predict(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_and_load": loaded - start, "first_case": first_case, "peak_rss_mb": peak}))
"""


def _seconds(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=3, default=(24, 64, 64), metavar=("Z", "Y", "X"))
    parser.add_argument("--test_cases", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the tiny folds' undefined validation AUCs are expected here
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = generate_task(root, 1, "BenchPredict", num_cases=10, with_roi=True, base_size=args.size,
                             num_test=args.test_cases, extension=".mha", seed=11)
        plan_and_preprocess(root, 1, num_workers=2, show_progress=False)
        paths = TaskPaths.find(root, 1)
        tiny = TrainingOptions(
            max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
        )
        for fold in range(5):
            ClassifierTrainer(paths, fold, tiny).run_training()
        artifact = root / "trained_models"
        cases = [
            (sorted((task / "imagesTs").glob(f"case_{i:04d}_*.mha")), task / "labelsTs" / f"case_{i:04d}.mha")
            for i in range(10, 10 + args.test_cases)
        ]
        first_images = json.dumps([str(p) for p in cases[0][0]])
        cold = json.loads(subprocess.run(
            [sys.executable, "-c", COLD_START, str(artifact), first_images, str(cases[0][1])],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1])

        device = "cuda" if torch.cuda.is_available() else "cpu"
        result = {"benchmark": "predict", "device": device, "case_size": list(args.size)}
        result["cold_start_seconds"] = {
            "import_and_load": round(cold["import_and_load"], 3), "first_case": round(cold["first_case"], 3)
        }
        result["peak_rss_mb_prediction_process"] = round(cold["peak_rss_mb"], 1)
        for folds in ([0], None):
            predictor = get_predictor(artifact, folds)
            predict(artifact, *cases[0], folds=folds)  # warm-up
            warm, preprocess, forward = [], [], []
            for _ in range(args.repeats):  # interleaved, so that machine noise hits all three alike
                for images, roi in cases:
                    warm.append(_seconds(predict, artifact, images, roi, folds=folds))
                    preprocess.append(_seconds(preprocess_case, "c", images, roi, predictor.plans))
                    array, _ = preprocess_case("c", images, roi, predictor.plans)
                    batch = torch.from_numpy(to_network_input(array, predictor.plans.num_roi_classes)[None])
                    with torch.inference_mode():
                        forward.append(
                            _seconds(lambda networks, x: [n(x) for n in networks], predictor.networks, batch)
                        )
            floor = statistics.median(preprocess) + statistics.median(forward)
            result[f"{len(predictor.networks)}_fold"] = {
                "warm_seconds_per_case": round(statistics.median(warm), 4),
                "floor_seconds": round(floor, 4),
                "floor_read_and_preprocess_seconds": round(statistics.median(preprocess), 4),
                "floor_forward_seconds": round(statistics.median(forward), 4),
                "ratio_warm_to_floor": round(statistics.median(warm) / floor, 3),
            }
        result["image_size"] = predictor.plans.image_size
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
