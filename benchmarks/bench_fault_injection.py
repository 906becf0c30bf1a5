"""Fault injection: SIGKILL plan & preprocess, training and folder prediction at random moments, then run them again.

Each stage runs as a subprocess (the real command line) and is killed, with its whole process group, after a
random delay drawn per seed: counted from the start (preprocessing), from when the fold's training log appears
(training) or from when the output folder appears, i.e. once the models are loaded (prediction), and at most as
long as an uninterrupted run takes from there. Then the stage is re-run (preprocessing, prediction) or resumed with
-c (training, when a model_latest exists), and the result is checked against an uninterrupted run:
- preprocessing: right after the kill, training either refuses the data or sees exactly the reference arrays and
  plans; after the re-run, plans and arrays are byte-identical to the reference;
- training: the resumed fold ends at the planned epoch count with finite weights, its checkpoints load as
  matching weight/metadata pairs, and its validation covers the fold's validation cases;
- prediction: every case has exactly one valid result equal to the reference, and summary.csv lists each once.
Prints one JSON object: per stage the runs tried, how many were still running when killed, and the failures found.

Usage: python benchmarks/bench_fault_injection.py [--seeds 0 1 2 3 4 5] [--stages preprocess train predict]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from universalclassifier.artifact.checkpoint import load_checkpoint
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict_folder import predict_folder
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

EPOCHS, BATCHES = 3, 2
TRAIN_OPTIONS = TrainingOptions(
    max_num_epochs=EPOCHS, num_batches_per_epoch=BATCHES, num_val_batches_per_epoch=1, num_workers=0, save_every=1,
    show_progress=False,
)
TRAIN_ARGUMENTS = [
    "--max_num_epochs", str(EPOCHS), "--num_batches_per_epoch", str(BATCHES), "--num_val_batches_per_epoch", "1",
    "--num_workers", "0", "--save_every", "1", "--quiet",
]
CHECKPOINTS = ("model_final_checkpoint.model", "model_latest.model", "model_best.model")
STAGES = ("preprocess", "train", "predict")


@dataclass
class StageReport:
    """Counts of one stage: runs started with a kill scheduled, runs still going when killed, failures found."""

    stage: str
    runs: int = 0
    kills: int = 0
    failures: list[str] = field(default_factory=list)


def subprocess_env() -> dict[str, str]:
    """One thread per process: tiny networks on a shared CPU run many times faster without oversubscription."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "universalclassifier.cli", *arguments]


def run_to_end(command: Sequence[str], after: Path | None = None) -> tuple[float, int, str]:
    """Run a command to completion; return the seconds from when `after` appeared (from the start when None) to
    its end, its exit code and the last line it wrote to stderr."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=subprocess_env(), text=True)
        while after is not None and not after.exists() and process.poll() is None:
            time.sleep(0.01)
        start = time.perf_counter()
        process.wait(timeout=900)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
    return seconds, process.returncode, lines[-1] if lines else ""


def run_and_kill(command: Sequence[str], delay: float, after: Path | None = None) -> bool:
    """Start a command in its own process group and SIGKILL the group `delay` s after `after` exists (after the
    start when None); True if it was still running then."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(), start_new_session=True
    )
    while after is not None and not after.exists() and process.poll() is None:
        time.sleep(0.01)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def preprocessed_digest(paths: TaskPaths) -> dict[str, str]:
    """SHA-256 of the plans and of every file in the stage folder."""
    files = [paths.plans_file] + (sorted(paths.stage_folder.iterdir()) if paths.stage_folder.is_dir() else [])
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def training_verdict(paths: TaskPaths) -> str:
    """What a trainer does with the preprocessed data as it is now: "accepted", "refused" (a clear error) or
    "crashed: ..." (any other exception). Splits it creates are removed again."""
    had_splits = paths.splits_file.exists()
    try:
        ClassifierTrainer(paths, 0, TRAIN_OPTIONS)
        return "accepted"
    except UserInputError:
        return "refused"
    except Exception as exc:  # a traceback instead of a clear error is a failure found
        return f"crashed: {exc!r}"
    finally:
        if not had_splits:
            paths.splits_file.unlink(missing_ok=True)


def preprocess_faults(paths: TaskPaths, seeds: Sequence[int], window: tuple[float, float]) -> StageReport:
    """Kill plan & preprocess of a task already preprocessed once (the reference), check, re-run, compare."""
    report = StageReport("preprocess")
    reference = preprocessed_digest(paths)
    command = cli("plan_and_preprocess", str(paths.data_root), "-t", paths.task_name, "-tf", "1", "--quiet")
    for seed in seeds:
        delay = random.Random(seed).uniform(*window)
        report.runs += 1
        report.kills += run_and_kill(command, delay)
        verdict = training_verdict(paths)
        if verdict == "accepted" and preprocessed_digest(paths) != reference:
            verdict = "accepted incomplete or stale data"
        if verdict not in ("accepted", "refused"):
            report.failures.append(f"seed {seed}: after a kill at {delay:.2f} s, training {verdict}")
        plan_and_preprocess(paths.data_root, paths.task_name, num_workers=1, show_progress=False)
        if preprocessed_digest(paths) != reference:
            report.failures.append(f"seed {seed}: the re-run does not reproduce the reference plans and arrays")
    return report


def _check_trained_fold(paths: TaskPaths, fold: int) -> list[str]:
    """Problems of a fold that should have finished training: epochs, weights, checkpoint pairs, validation."""
    folder = paths.trainer_folder() / f"fold_{fold}"
    problems = []
    for name in CHECKPOINTS:
        try:
            tensors, metadata = load_checkpoint(folder / name)
        except Exception as exc:  # any failure to load is what this benchmark looks for
            problems.append(f"{name} does not load: {exc}")
            continue
        if not all(torch.isfinite(t).all() for t in tensors["network"].values() if t.is_floating_point()):
            problems.append(f"{name} holds non-finite weights")
        if name != "model_best.model" and (metadata["epoch"] != EPOCHS or len(metadata["log"]["train_loss"]) != EPOCHS):
            problems.append(f"{name} is at epoch {metadata['epoch']} with {len(metadata['log']['train_loss'])} logged")
    splits = json.loads(paths.splits_file.read_text())
    try:
        validated = json.loads((folder / "validation" / "predictions.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return problems + [f"validation/predictions.json: {exc}"]
    if sorted(validated) != sorted(splits[fold]["val"]):
        problems.append("validation/predictions.json does not cover the fold's validation cases")
    return problems


def train_faults(
    paths: TaskPaths, seeds: Sequence[int], window: tuple[float, float], resume_in_process: bool = False
) -> StageReport:
    """Kill training of fold (seed mod 5) `window` s after it starts its log, resume it (-c if a model_latest
    exists, else from the start) and check it."""
    report = StageReport("train")
    for seed in seeds:
        fold = seed % 5
        shutil.rmtree(paths.trainer_folder() / f"fold_{fold}", ignore_errors=True)
        delay = random.Random(seed).uniform(*window)
        report.runs += 1
        train = cli("train", str(paths.data_root), "3d_fullres", "ClassifierTrainer", paths.task_name, str(fold))
        log = paths.trainer_folder() / f"fold_{fold}" / "training_log.txt"
        report.kills += run_and_kill([*train, *TRAIN_ARGUMENTS], delay, after=log)
        resume = (paths.trainer_folder() / f"fold_{fold}" / "model_latest.model").is_file()
        try:
            if resume_in_process:
                ClassifierTrainer(paths, fold, TRAIN_OPTIONS).run_training(resume=resume)
            else:
                _, code, message = run_to_end([*train, *TRAIN_ARGUMENTS, *(["-c"] if resume else [])])
                if code:
                    raise RuntimeError(message)
        except Exception as exc:  # a resume that fails is a failure found, not a crash of the benchmark
            report.failures.append(f"seed {seed}: resuming fold {fold} after a kill at {delay:.2f} s failed: {exc}")
            continue
        problems = _check_trained_fold(paths, fold)
        report.failures += [f"seed {seed}: fold {fold} after a kill at {delay:.2f} s: {p}" for p in problems]
    return report


def _check_predictions(out: Path, reference: dict[str, dict]) -> list[str]:
    """Problems of a resumed prediction folder: missing, invalid or different case results, summary.csv rows."""
    problems = []
    for case_id, expected in reference.items():
        try:
            got = json.loads((out / f"{case_id}.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{case_id}.json: {exc}")
            continue
        per_head = [key for key in expected if key not in ("case_id", "heads", "configuration")]  # predict() values
        same = (
            got.keys() == expected.keys()
            and got.get("configuration") == expected.get("configuration")
            and all(np.allclose(got[key], expected[key], atol=1e-6) for key in per_head)
        )
        if not same:
            problems.append(f"{case_id}.json differs from the uninterrupted prediction")
    try:
        with open(out / "summary.csv", newline="") as handle:
            listed = [row[0] for row in list(csv.reader(handle))[1:]]
    except OSError as exc:
        return problems + [f"summary.csv: {exc}"]
    if listed != sorted(reference):
        problems.append(f"summary.csv lists {listed}, expected every case once")
    return problems


def predict_faults(
    paths: TaskPaths, images: Path, rois: Path, out_root: Path, seeds: Sequence[int], window: tuple[float, float],
    rerun_in_process: bool = False,
) -> StageReport:
    """Kill uc_predict into a fresh folder `window` s after it creates that folder (the models are loaded then),
    run it again (resuming), compare with an uninterrupted prediction."""
    report = StageReport("predict")
    artifact = paths.data_root / "trained_models"
    reference_folder = out_root / "reference"
    predict_folder(artifact, images, reference_folder, rois, show_progress=False)
    reference = {p.stem: json.loads(p.read_text()) for p in sorted(reference_folder.glob("*.json"))}
    for seed in seeds:
        out = out_root / f"seed_{seed}"
        command = cli("predict", str(paths.data_root), "-i", str(images), "-s", str(rois), "-o", str(out), "--quiet")
        delay = random.Random(seed).uniform(*window)
        report.runs += 1
        report.kills += run_and_kill(command, delay, after=out)
        try:
            if rerun_in_process:
                failed = predict_folder(artifact, images, out, rois, show_progress=False)
                if failed:
                    raise RuntimeError(f"cases {failed} failed")
            else:
                _, code, message = run_to_end(command)
                if code:
                    raise RuntimeError(message)
        except Exception as exc:  # a re-run that fails is a failure found
            report.failures.append(f"seed {seed}: re-running after a kill at {delay:.2f} s failed: {exc}")
            continue
        problems = _check_predictions(out, reference)
        report.failures += [f"seed {seed}: after a kill at {delay:.2f} s: {p}" for p in problems]
    return report


def _uninterrupted(command: Sequence[str], after: Path | None = None) -> float:
    """Seconds an uninterrupted run takes (from `after` appearing); stops the benchmark if the run fails."""
    seconds, code, message = run_to_end(command, after)
    if code:
        raise SystemExit(f"uninterrupted run {' '.join(command)} failed: {message}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    reports, timings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "preprocess" in args.stages:
            generate_task(root / "pp", 1, "FaultPP", num_cases=24, with_roi=True, base_size=(24, 64, 64), seed=1)
            seconds = _uninterrupted(cli("plan_and_preprocess", str(root / "pp"), "-t", "1", "-tf", "1", "--quiet"))
            timings["preprocess_s"] = round(seconds, 2)
            reports.append(preprocess_faults(TaskPaths.find(root / "pp", 1), args.seeds, (0.0, seconds)))
        if {"train", "predict"} & set(args.stages):
            generate_task(
                root / "tr", 2, "FaultTrain", num_cases=6, with_roi=True, base_size=(8, 16, 16), num_test=12, seed=2
            )
            plan_and_preprocess(root / "tr", 2, num_workers=1, show_progress=False)
            paths = TaskPaths.find(root / "tr", 2)
            train = cli("train", str(paths.data_root), "3d_fullres", "ClassifierTrainer", "2", "0", *TRAIN_ARGUMENTS)
            seconds = _uninterrupted(train, after=paths.trainer_folder() / "fold_0" / "training_log.txt")
            timings["train_after_log_s"] = round(seconds, 2)
            if "train" in args.stages:
                reports.append(train_faults(paths, args.seeds, (0.0, seconds)))
            if "predict" in args.stages:
                images, rois, out = paths.raw / "imagesTs", paths.raw / "labelsTs", root / "timing"
                predict = cli(
                    "predict", str(paths.data_root), "-i", str(images), "-s", str(rois), "-o", str(out), "--quiet"
                )
                seconds = _uninterrupted(predict, after=out)
                timings["predict_after_loading_s"] = round(seconds, 2)
                reports.append(predict_faults(paths, images, rois, root / "predictions", args.seeds, (0.0, seconds)))
    summary = {
        "benchmark": "fault_injection",
        "seeds": args.seeds,
        "uninterrupted_seconds": timings,
        "stages": [asdict(r) for r in reports],
        "runs": sum(r.runs for r in reports),
        "kills": sum(r.kills for r in reports),
        "failures": sum(len(r.failures) for r in reports),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
