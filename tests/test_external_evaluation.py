"""uc_evaluate: DeLong's test, labelled test sets from a folder or the task, the report and the paired comparison."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import assert_self_contained, html_tables, markdown_tables, one_torch_thread  # noqa: F401
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.delong import delong_test


def _naive_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """AUCs and the variance of their difference from explicit pairwise comparisons (O(m n))."""

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else 0.5 if x == z else 0.0

    def components(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = s[y == 1], s[y == 0]
        v10 = np.array([np.mean([psi(p, n) for n in neg]) for p in pos])
        v01 = np.array([np.mean([psi(p, n) for p in pos]) for n in neg])
        return v10, v01

    (a10, a01), (b10, b01) = components(a), components(b)
    m, n = len(a10), len(a01)
    variance = (np.var(a10, ddof=1) + np.var(b10, ddof=1) - 2 * np.cov(a10, b10)[0, 1]) / m + (
        np.var(a01, ddof=1) + np.var(b01, ddof=1) - 2 * np.cov(a01, b01)[0, 1]
    ) / n
    return float(a10.mean()), float(b10.mean()), float(variance)


def test_delong_matches_the_pairwise_definition():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    a = y + rng.normal(0, 0.8, 40)
    b = np.round(y + rng.normal(0, 1.2, 40), 1)  # rounded: ties count half
    result = delong_test(y, a, b)
    auc_a, auc_b, variance = _naive_delong(y, a, b)
    assert result["auc_a"] == pytest.approx(auc_a) and result["auc_b"] == pytest.approx(auc_b)
    assert result["standard_error"] == pytest.approx(np.sqrt(variance))
    assert 0 < result["p_value"] < 1 and result["z"] == pytest.approx((auc_a - auc_b) / np.sqrt(variance))
    same = delong_test(y, a, a)
    assert same["difference"] == 0 and same["p_value"] is None
    assert delong_test(np.ones(5), a[:5], b[:5])["auc_a"] is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from universalclassifier.paths import TaskPaths
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
    from universalclassifier.synthetic import generate_task
    from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

    root = tmp_path_factory.mktemp("evaluate")
    generate_task(root, 4, "Ev", num_cases=8, num_test=8, base_size=(8, 20, 20), seed=6)
    plan_and_preprocess(root, 4, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 4)
    options = TrainingOptions(
        max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
    )
    ClassifierTrainer(paths, "all", options).run_training()
    return paths


def test_evaluation_of_the_task_test_set_with_a_comparison(trained, tmp_path):
    from universalclassifier.cli import evaluate_main
    from universalclassifier.inference.predict import predict

    other = tmp_path / "other" / "trained_models"
    shutil.copytree(trained.data_root / "trained_models", other)
    out = tmp_path / "report"
    args = [str(trained.data_root), "-t", "4", "-o", str(out), "--use_dataset_test", "--num_resamples", "50"]
    assert evaluate_main([*args, "--compare", str(other), "--quiet"]) == 0
    summary = json.loads((out / "evaluation_summary.json").read_text())
    truth = json.loads((trained.raw / "test_targets.json").read_text())
    contrast = summary["heads"]["lesion_contrast"]
    assert summary["num_cases"] == 8 and contrast["num_cases"] == 8
    images = sorted((trained.raw / "imagesTs").glob("case_0008_*"))
    p1 = predict(trained.data_root / "trained_models", images, trained.raw / "labelsTs" / "case_0008.nii.gz")[0]
    worst = contrast["worst_cases"]
    assert len(worst) == 8 and [w["p_true"] for w in worst] == sorted(w["p_true"] for w in worst)
    row = next(w for w in worst if w["case_id"] == "case_0008")
    assert row["target"] == truth["case_0008"]["lesion_contrast"]
    assert row["p_true"] == pytest.approx(p1 if row["target"] == 1 else 1 - p1, abs=1e-6)
    comparison = summary["comparison"]["heads"]
    assert comparison["lesion_contrast"]["test"] == "DeLong" and comparison["lesion_contrast"]["difference"] == 0
    assert comparison["lesion_size"]["test"] == "paired bootstrap"
    report = (out / "evaluation_report.md").read_text()
    assert "# External evaluation: Task004_Ev, ClassifierTrainer" in report
    assert "Worst-predicted cases of lesion_size" in report
    assert "predicted by the ensemble of 1 fold(s) (all) of ClassifierTrainer" in report
    assert "The other model: the ensemble of 1 fold(s) (all) of ClassifierTrainer" in report
    assert "95% CIs: BCa bootstrap over cases" in report and "percentile bootstrap over cases" not in report
    assert summary["trainer"] == "ClassifierTrainer" and summary["folds"] == ["all"]
    assert (out / contrast["plots"]["roc"]).is_file() and contrast["plots"]["roc"].startswith("plots/")
    page = (out / "evaluation_report.html").read_text()  # the same report as one page with every plot embedded
    assert_self_contained(page, report.count("!["))
    assert report.count("![") == len(list((out / "plots").glob("*.png")))
    assert html_tables(page) == markdown_tables(report) and "Worst-predicted cases of lesion_size" in page


def test_evaluation_of_a_folder_with_a_labels_csv(trained, tmp_path):
    from universalclassifier.evaluation.external import evaluate, folder_cases
    from universalclassifier.plans import Plans

    plans = Plans.load(trained.plans_file)
    images, rois = tmp_path / "in", tmp_path / "seg"
    images.mkdir(), rois.mkdir()
    for n in (8, 9, 10):
        shutil.copy(trained.raw / "imagesTs" / f"case_{n:04d}_0000.nii.gz", images)
        shutil.copy(trained.raw / "labelsTs" / f"case_{n:04d}.nii.gz", rois)
    labels = tmp_path / "labels.csv"
    labels.write_text("case_id,lesion_contrast,lesion_size\ncase_0008,1,2\ncase_0009,0,\n")
    with pytest.raises(UserInputError, match=r"labels.csv has no row for the case\(s\) \['case_0010'\]"):
        folder_cases(images, rois, labels, plans)
    labels.write_text("case_id,lesion_contrast,lesion_size\ncase_0008,1,2\ncase_0009,0,\ncase_0010,1,7\n")
    with pytest.raises(UserInputError, match=r"case case_0010: 'lesion_size' = '7' is not one of \[0, 1, 2\]"):
        folder_cases(images, rois, labels, plans)
    labels.write_text("case_id,lesion_contrast,lesion_size\ncase_0008,1,2\ncase_0009,0,\ncase_0010,0,1\n")
    cases = folder_cases(images, rois, labels, plans)
    assert cases["case_0009"].targets == {"lesion_contrast": 0, "lesion_size": None}
    summary = evaluate(trained.data_root / "trained_models", cases, tmp_path / "out", num_resamples=20,
                       show_progress=False)
    assert summary["heads"]["lesion_size"]["num_cases"] == 2 and summary["heads"]["lesion_size"]["num_missing"] == 1


def test_evaluating_fewer_folds_than_planned_is_warned_about(trained, tmp_path, caplog):
    import logging

    from universalclassifier.evaluation.external import dataset_test_cases, evaluate
    from universalclassifier.plans import Plans

    artifact = tmp_path / "trained_models"
    shutil.copytree(trained.data_root / "trained_models", artifact)
    trainer = next(artifact.glob("**/plans.json")).parent
    (trainer / "all").rename(trainer / "fold_0")  # one of the five planned folds trained
    cases = dataset_test_cases(trained.raw, Plans.load(trained.plans_file))
    with caplog.at_level(logging.WARNING):
        summary = evaluate(artifact, cases, tmp_path / "out", num_resamples=20, show_progress=False)
    assert "The evaluated ensemble covers 1 of 5 planned folds (fold_0); missing: fold_1, fold_2, fold_3, fold_4" in (
        caplog.text
    )
    assert summary["folds"] == ["fold_0"] and summary["trainer_folder"] == str(trainer)
    report = (tmp_path / "out" / "evaluation_report.md").read_text()
    assert "the ensemble of 1 of 5 planned folds (fold_0; **missing: fold_1, fold_2, fold_3, fold_4**) of " \
        "ClassifierTrainer" in report
