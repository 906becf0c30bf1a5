"""Tests for calibration, bootstrap AUC intervals and the cross-validation summary (library and command line)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import bootstrap_auc_ci
from universalclassifier.evaluation.calibration import (
    expected_calibration_error,
    plot_reliability_diagram,
    reliability_curve,
)
from universalclassifier.evaluation.metrics import macro_auc
from universalclassifier.evaluation.pooling import planned_folds
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.paths import NETWORK, PLANS_IDENTIFIER, TRAINER
from universalclassifier.plans import ClassificationLabel, Plans

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEADS = [
    ClassificationLabel(name="contrast", type="nominal", values=("darker", "brighter")),
    ClassificationLabel(name="size", type="ordinal", values=("small", "medium", "large")),
]


# ------------------------------------------------------------------ calibration
# Top-label confidence, correctness and bin (width 0.1) of each prediction:
#   [0.95, 0.05] target 0: confidence 0.95, correct, bin 9
#   [0.15, 0.85] target 1: confidence 0.85, correct, bin 8
#   [0.85, 0.15] target 1: confidence 0.85, wrong,   bin 8
#   [0.35, 0.65] target 1: confidence 0.65, correct, bin 6
#   [0.45, 0.55] target 0: confidence 0.55, wrong,   bin 5
# ECE = 1/5 |1 - 0.95| + 2/5 |0.5 - 0.85| + 1/5 |1 - 0.65| + 1/5 |0 - 0.55| = 0.01 + 0.14 + 0.07 + 0.11 = 0.33
HAND_TARGETS = [0, 1, 1, 1, 0]
HAND_PROBS = np.array([[0.95, 0.05], [0.15, 0.85], [0.85, 0.15], [0.35, 0.65], [0.45, 0.55]])


def test_ece_of_hand_computed_example() -> None:
    assert expected_calibration_error(HAND_TARGETS, HAND_PROBS) == pytest.approx(0.33)


def test_reliability_curve_bins() -> None:
    curve = reliability_curve(HAND_TARGETS, HAND_PROBS)
    assert curve.count.tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 2, 1]
    np.testing.assert_allclose(curve.confidence[[5, 6, 8, 9]], [0.55, 0.65, 0.85, 0.95])
    np.testing.assert_allclose(curve.accuracy[[5, 6, 8, 9]], [0.0, 1.0, 0.5, 1.0])
    assert np.isnan(curve.accuracy[0]) and np.isnan(curve.confidence[0])
    np.testing.assert_allclose(curve.bin_edges, np.linspace(0, 1, 11))


def test_ece_is_zero_when_calibrated() -> None:
    # Perfect and fully confident: confidence 1, accuracy 1.
    targets = [0, 2, 1, 2]
    assert expected_calibration_error(targets, np.eye(3)[targets]) == 0.0
    # Confidence 0.75 everywhere and 3 of 4 correct: accuracy 0.75 in the only filled bin.
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error([0, 0, 0, 1], probs) == pytest.approx(0.0)


def test_reliability_diagram_png(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "reliability.png"
    plot_reliability_diagram(HAND_TARGETS, HAND_PROBS, "hand example", out)
    assert out.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------ bootstrap
def _binary_data(num_cases: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Informative but imperfect binary predictions."""
    rng = np.random.default_rng(seed)
    targets = np.arange(num_cases) % 2
    p1 = np.clip(0.3 + 0.4 * targets + rng.normal(0, 0.25, num_cases), 0, 1)
    return targets, np.stack([1 - p1, p1], axis=1)


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_cases() -> None:
    small = _binary_data(30, seed=1)
    large = _binary_data(300, seed=1)
    low_small, high_small = bootstrap_auc_ci(*small, num_resamples=200)
    low_large, high_large = bootstrap_auc_ci(*large, num_resamples=200)
    assert low_small <= macro_auc(*small) <= high_small
    assert low_large <= macro_auc(*large) <= high_large
    assert high_large - low_large < high_small - low_small


def test_bootstrap_ci_multi_value_head() -> None:
    rng = np.random.default_rng(3)
    targets = np.arange(60) % 3
    probs = rng.dirichlet([1, 1, 1], 60) + 0.8 * np.eye(3)[targets]
    probs /= probs.sum(axis=1, keepdims=True)
    low, high = bootstrap_auc_ci(targets, probs, num_resamples=100)
    assert low <= macro_auc(targets, probs) <= high


def test_bootstrap_ci_undefined_for_single_class() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert bootstrap_auc_ci([1, 1, 1], probs, num_resamples=100) == (None, None)


def test_bootstrap_ci_is_reproducible() -> None:
    data = _binary_data(40, seed=2)
    assert bootstrap_auc_ci(*data, num_resamples=100, seed=7) == bootstrap_auc_ci(*data, num_resamples=100, seed=7)
    assert bootstrap_auc_ci(*data, num_resamples=100, seed=7) != bootstrap_auc_ci(*data, num_resamples=100, seed=8)


# ------------------------------------------------------------------ cross-validation summary
def _plans(task_name: str) -> Plans:
    return Plans(
        task_name=task_name,
        modalities=["MR"],
        normalization_schemes=["zscore"],
        use_mask_for_norm=[False],
        intensity_properties={},
        transpose_forward=[0, 1, 2],
        transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0],
        image_size=[16, 16, 16],
        batch_size=2,
        do_dummy_2D_data_aug=False,
        num_roi_classes=2,
        uses_roi=False,
        classification_labels=HEADS,
        num_training_cases=12,
    )


def _case(rng: np.random.Generator, n: int) -> dict:
    contrast, size = n % 2, n % 3
    p1 = float(np.clip(0.3 + 0.4 * contrast + rng.normal(0, 0.2), 0.01, 0.99))
    p_size = rng.dirichlet([1, 1, 1]) + np.eye(3)[size]
    p_size /= p_size.sum()
    return {
        "contrast": {"target": contrast, "probabilities": [1 - p1, p1]},
        "size": {"target": size, "probabilities": p_size.tolist()},
    }


def _write_predictions(folder: Path, cases: dict) -> None:
    (folder / "validation").mkdir(parents=True)
    (folder / "validation" / "predictions.json").write_text(json.dumps(cases))


def _fake_trainer_folder(trainer: Path, task_name: str = "Task001_X") -> dict:
    """Two validated folds of 6 cases each (plus distractors); returns the cases that must be pooled."""
    rng = np.random.default_rng(0)
    _plans(task_name).save(trainer / "plans.json")
    cases = {f"case_{n:02d}": _case(rng, n) for n in range(12)}
    _write_predictions(trainer / "fold_0", {c: cases[c] for c in list(cases)[:6]})
    # fold_1 repeats case_00 with other predictions: the one of fold_0 is kept.
    fold_1 = {c: cases[c] for c in list(cases)[6:]} | {"case_00": _case(rng, 1)}
    _write_predictions(trainer / "fold_1", fold_1)
    (trainer / "fold_2").mkdir()  # not validated yet
    _write_predictions(trainer / "all", {"case_99": _case(rng, 99)})  # not a numbered fold
    return cases


def _pooled(cases: dict, head: str) -> tuple[np.ndarray, np.ndarray]:
    targets = np.array([c[head]["target"] for c in cases.values()])
    return targets, np.array([c[head]["probabilities"] for c in cases.values()])


def test_summarize_cross_validation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cases = _fake_trainer_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        summary = summarize_cross_validation(tmp_path, num_resamples=100)
    assert "case_00" in caplog.text and "fold_2" in caplog.text

    assert summary["folds"] == ["fold_0", "fold_1"]
    assert summary["num_cases"] == 12
    y, p = _pooled(cases, "contrast")
    contrast = summary["heads"]["contrast"]
    assert contrast["num_cases"] == 12
    assert contrast["folds"] == ["fold_0", "fold_1"]
    assert contrast["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert contrast["auc_ci_95"][0] <= contrast["auc"] <= contrast["auc_ci_95"][1]
    assert contrast["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert np.sum(contrast["confusion_matrix"]) == 12
    y, p = _pooled(cases, "size")
    size = summary["heads"]["size"]
    # an ordinal head: the mean AUC of the thresholds grade >= 1 and grade >= 2
    thresholds = [roc_auc_score(y >= k, p[:, k:].sum(axis=1)) for k in (1, 2)]
    assert size["auc"] == pytest.approx(np.mean(thresholds))
    assert size["auc_per_threshold"] == pytest.approx({">=1": thresholds[0], ">=2": thresholds[1]})
    assert np.asarray(size["confusion_matrix"]).shape == (3, 3)

    assert json.loads((tmp_path / "cv_summary.json").read_text()) == summary
    report = (tmp_path / "cv_report.md").read_text()
    assert "Task001_X" in report and "fold_0, fold_1" in report
    assert "| brighter |" in report and "| large |" in report  # confusion matrices with value names
    for head in ("contrast", "size"):
        assert f"## {head}" in report
        for kind in ("roc", "confusion", "reliability"):
            png = f"cv_plots/{kind}_{head}.png"
            assert f"({png})" in report
            assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_the_summary_names_trainer_and_missing_folds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trainer = tmp_path / f"{TRAINER}__{PLANS_IDENTIFIER}"
    trainer.mkdir()
    _fake_trainer_folder(trainer)
    with caplog.at_level(logging.WARNING):
        summary = summarize_cross_validation(trainer, num_resamples=20)
    assert "The cross-validation summary covers 2 of 5 planned folds (fold_0, fold_1); missing: fold_2, fold_3, " \
        "fold_4" in caplog.text
    assert summary["trainer"] == TRAINER and summary["planned_folds"] == [f"fold_{k}" for k in range(5)]
    report = (trainer / "cv_report.md").read_text()
    assert report.startswith(f"# Cross-validation summary: Task001_X, {TRAINER}\n")
    assert "2 of 5 planned folds (fold_0, fold_1; **missing: fold_2, fold_3, fold_4**)" in report
    assert f"`{TRAINER}__{PLANS_IDENTIFIER}`" in report
    assert "95% CI: BCa bootstrap over cases" in report and "percentile bootstrap over cases" not in report

    splits = tmp_path / "splits_final.json"  # a task split into two folds on purpose: nothing is missing
    splits.write_text(json.dumps([{"train": [], "val": []}] * 2))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        summarize_cross_validation(trainer, num_resamples=20, planned=planned_folds(splits))
    assert "planned folds" not in caplog.text
    assert "2 fold(s) (fold_0, fold_1)" in (trainer / "cv_report.md").read_text()
    assert planned_folds(tmp_path / "missing.json") == [f"fold_{k}" for k in range(5)]


def test_summarize_without_folds_fails(tmp_path: Path) -> None:
    _plans("Task001_X").save(tmp_path / "plans.json")
    (tmp_path / "fold_0").mkdir()
    with pytest.raises(UserInputError, match="fold_N/validation/predictions.json; train"):
        summarize_cross_validation(tmp_path)
    with pytest.raises(UserInputError, match="no plans.json"):
        summarize_cross_validation(tmp_path / "missing")


def test_summarize_rejects_predictions_of_other_plans(tmp_path: Path) -> None:
    _plans("Task001_X").save(tmp_path / "plans.json")
    wrong = {"contrast": {"target": 1, "probabilities": [0.2, 0.8]}, "size": {"target": 0, "probabilities": [1.0, 0.0]}}
    _write_predictions(tmp_path / "fold_0", {"case_00": wrong})
    with pytest.raises(UserInputError, match="case 'case_00' head 'size' needs a target in 0..2 and 3 probabilities"):
        summarize_cross_validation(tmp_path)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "universalclassifier.cli", "summarize", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )


def test_summarize_command(tmp_path: Path) -> None:
    (tmp_path / "raw" / "nnUNet_raw_data" / "Task001_X").mkdir(parents=True)
    trainer = tmp_path / "trained_models" / "nnUNet" / NETWORK / "Task001_X" / f"{TRAINER}__{PLANS_IDENTIFIER}"

    result = _run_cli(str(tmp_path), "-t", "1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "train (and validate) the folds first" in result.stderr

    trainer.mkdir(parents=True)
    _fake_trainer_folder(trainer)
    result = _run_cli(str(tmp_path), "-t", "1", "--num_resamples", "20")
    assert result.returncode == 0, result.stderr
    assert "contrast" in result.stderr and "size" in result.stderr and "AUC [95% CI]" in result.stderr
    assert (trainer / "cv_summary.json").is_file() and (trainer / "cv_report.md").is_file()
