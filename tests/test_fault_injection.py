"""Fault injection: plan & preprocess, training and folder prediction are SIGKILLed at random moments as subprocesses,
then re-run or resumed; the result must be complete and equal to an uninterrupted run.

The harness is benchmarks/bench_fault_injection.py, which runs the same with more seeds and prints the counts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys

import pytest

from helpers import REPO, one_torch_thread  # noqa: F401 (autouse fixture)
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task

_spec = importlib.util.spec_from_file_location(
    "bench_fault_injection", REPO / "benchmarks" / "bench_fault_injection.py"
)
faults = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = faults  # dataclasses look their module up there
_spec.loader.exec_module(faults)

logger = logging.getLogger(__name__)
SEEDS = [3, 7]


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> TaskPaths:
    root = tmp_path_factory.mktemp("faults")
    generate_task(root, 31, "Faults", num_cases=6, with_roi=True, base_size=(8, 16, 16), num_test=8, seed=5)
    plan_and_preprocess(root, 31, num_workers=1, show_progress=False)
    return TaskPaths.find(root, 31)


@pytest.fixture(scope="module")
def preprocess_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_pp")
    generate_task(root, 32, "FaultsPP", num_cases=10, with_roi=True, base_size=(12, 32, 32), seed=6)
    command = faults.cli("plan_and_preprocess", str(root), "-t", "32", "-tf", "1", "--quiet")
    seconds, code, message = faults.run_to_end(command)
    assert code == 0, message
    return faults.preprocess_faults(TaskPaths.find(root, 32), SEEDS, (0.2 * seconds, seconds))


@pytest.fixture(scope="module")
def train_report(task):
    """Folds SEEDS mod 5, each killed within 3 s of starting its training log and resumed."""
    return faults.train_faults(task, SEEDS, (0.0, 3.0), resume_in_process=True)


@pytest.fixture(scope="module")
def predict_report(task, train_report, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults_predictions")
    return faults.predict_faults(
        task, task.raw / "imagesTs", task.raw / "labelsTs", out, SEEDS, (0.0, 0.6), rerun_in_process=True
    )


def test_killed_preprocessing_is_refused_or_complete_and_reruns_identically(preprocess_report):
    assert preprocess_report.runs == len(SEEDS) and preprocess_report.failures == []


def test_killed_training_resumes_to_the_planned_epochs(task, train_report):
    assert train_report.runs == len(SEEDS) and train_report.failures == []
    for seed in SEEDS:
        final = json.loads(
            (task.trainer_folder() / f"fold_{seed % 5}" / "model_final_checkpoint.model.json").read_text()
        )
        assert final["epoch"] == faults.EPOCHS


def test_killed_folder_prediction_gives_every_case_once(predict_report):
    assert predict_report.runs == len(SEEDS) and predict_report.failures == []


def test_the_kills_hit_running_processes(preprocess_report, train_report, predict_report):
    reports = [preprocess_report, train_report, predict_report]
    counts = [(r.stage, r.runs, r.kills, len(r.failures)) for r in reports]
    logger.info("fault injection (stage, runs, kills, failures): %s", counts)
    assert sum(r.kills for r in reports) >= 1, "no run was killed: the kill windows are too long for this machine"
