"""uc_find_best on hand-made out-of-fold predictions of two trainer variants (no training), and predict() following
the best_configuration.json it writes."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from helpers import make_plans, run_script
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.find_best import DEFAULT_VARIANT, REPORT_FILE, find_best_configuration
from universalclassifier.evaluation.find_best_cli import find_best_main
from universalclassifier.evaluation.reference_comparison import REFERENCE_LABEL
from universalclassifier.evaluation.validation_files import write_validation_files
from universalclassifier.inference.best_configuration import BEST_CONFIGURATION_FILE, preferred_trainer_folder
from universalclassifier.inference.predict import get_predictor, predict
from universalclassifier.paths import PLANS_IDENTIFIER, REFERENCE_FOLDER, TRAINER, ArtifactLayout, TaskPaths
from universalclassifier.plans import ClassificationLabel, Plans
from untrained_artifact import held_out_case, make_untrained_artifact, save_untrained_fold

TASK = "Task005_Best"
OTHER = f"{TRAINER}AUC23__{PLANS_IDENTIFIER}"
HEADS = [
    ClassificationLabel(name="malignant", type="nominal", values=("no", "yes")),
    ClassificationLabel(name="volume", type="regression", values=()),
]
NUM_CASES, NUM_FOLDS = 60, 3
CASES = [f"case_{n:03d}" for n in range(NUM_CASES)]
FOLDS = [CASES[fold::NUM_FOLDS] for fold in range(NUM_FOLDS)]


def _targets(head: ClassificationLabel, cases: Sequence[str]) -> list[int | float]:
    """Fixed targets per case: values cycling through the head's values, a standard normal for regression."""
    numbers = [int(case.rsplit("_", 1)[1]) for case in cases]
    if head.is_regression:
        return [float(np.random.default_rng(n).normal()) for n in numbers]
    return [n % head.num_values for n in numbers]


def _write_predictions(
    folder: Path, heads: Sequence[ClassificationLabel], folds: Sequence[Sequence[str]], signal: float, seed: int,
    skip_folds: Sequence[int] = (),
) -> None:
    """`fold_N/validation/` of every fold not in `skip_folds`: predictions that follow the targets with `signal` (the
    higher, the better), plus noise drawn with `seed`."""
    rng = np.random.default_rng(seed)
    for fold, cases in enumerate(folds):
        targets = {head.name: _targets(head, cases) for head in heads}
        predictions = {}
        for head in heads:
            if head.is_regression:
                noise = rng.normal(size=len(cases)) / signal
                predictions[head.name] = (np.array(targets[head.name]) + noise)[:, None]
            else:
                noise = rng.normal(size=(len(cases), head.num_values))
                logits = signal * np.eye(head.num_values)[targets[head.name]] + noise
                predictions[head.name] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        if fold not in skip_folds:
            write_validation_files(
                folder / f"fold_{fold}" / ArtifactLayout.VALIDATION, cases, heads, targets, predictions,
                {"fold": str(fold)},
            )


def _task(root: Path) -> Path:
    """A task known by its preprocessed folder (with a 3-fold splits_final.json); returns its trained_models folder."""
    preprocessed = root / "preprocessed" / TASK
    preprocessed.mkdir(parents=True)
    splits = [{"train": [c for c in CASES if c not in val], "val": val} for val in FOLDS]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits))
    return TaskPaths(root, TASK).trainer_folder().parent


def _variant(task_folder: Path, name: str, signal: float, seed: int, skip_folds: Sequence[int] = ()) -> Path:
    folder = task_folder / name
    folder.mkdir(parents=True)
    plans = dataclasses.replace(make_plans(1, (16, 16, 16)), task_name=TASK, classification_labels=HEADS)
    plans.save(folder / ArtifactLayout.PLANS)
    _write_predictions(folder, HEADS, FOLDS, signal, seed, skip_folds)
    return folder


def _pooled(folder: Path, head: str) -> tuple[np.ndarray, np.ndarray]:
    cases = {}
    for fold in range(NUM_FOLDS):
        cases |= json.loads((folder / f"fold_{fold}" / "validation" / "predictions.json").read_text())
    targets = np.array([entry[head]["target"] for entry in cases.values()])
    key = "prediction" if head == "volume" else "probabilities"
    return targets, np.array([entry[head][key] for entry in cases.values()])


def test_a_clearly_better_variant_is_chosen(tmp_path: Path) -> None:
    task_folder = _task(tmp_path)
    default = _variant(task_folder, DEFAULT_VARIANT, signal=0.3, seed=1)
    other = _variant(task_folder, OTHER, signal=3.0, seed=2)
    result = find_best_configuration(tmp_path, 5, num_resamples=200)

    chosen = {"trainer_folder": OTHER, "trainer": f"{TRAINER}AUC23", "plans_identifier": PLANS_IDENTIFIER}
    assert result["chosen"] == chosen
    assert "significantly above 0" in result["reason"]
    assert json.loads((task_folder / BEST_CONFIGURATION_FILE).read_text()) == result
    for folder in (default, other):
        y, p = _pooled(folder, "malignant")
        values, predicted = _pooled(folder, "volume")
        heads = result["variants"][folder.name]["heads"]
        assert heads["malignant"] == pytest.approx(roc_auc_score(y, p[:, 1]))
        assert heads["volume"] == pytest.approx(r2_score(values, predicted))
        assert result["variants"][folder.name]["score"] == pytest.approx((heads["malignant"] + heads["volume"]) / 2)
    paired = result["variants"][OTHER]["minus_default"]
    scores = {name: variant["score"] for name, variant in result["variants"].items()}
    assert paired["difference"] == pytest.approx(scores[OTHER] - scores[DEFAULT_VARIANT])
    assert 0 < paired["ci_95"][0] < paired["difference"] < paired["ci_95"][1]
    assert result["num_cases"] == NUM_CASES and result["planned_folds"] == ["fold_0", "fold_1", "fold_2"]

    report = (task_folder / REPORT_FILE).read_text()
    assert f"**Chosen: `{OTHER}`.**" in report
    assert "| Variant | Eligible | malignant AUC | volume R² | Score | Minus the default [95% CI] |" in report
    assert report.index(f"`{DEFAULT_VARIANT}`") < report.index(f"| `{OTHER}`")  # the default's row first
    assert "No radiomics reference" in report and "Rule: " in report


def test_a_difference_the_bootstrap_cannot_tell_from_chance_keeps_the_default(tmp_path: Path) -> None:
    task_folder = _task(tmp_path)
    _variant(task_folder, DEFAULT_VARIANT, signal=1.0, seed=2)
    _variant(task_folder, OTHER, signal=1.0, seed=12)
    result = find_best_configuration(tmp_path, TASK, num_resamples=200)

    other = result["variants"][OTHER]
    assert other["score"] > result["variants"][DEFAULT_VARIANT]["score"]  # the other scores higher ...
    low, high = other["minus_default"]["ci_95"]
    assert low < 0 < high  # ... by a difference the data cannot tell from chance
    assert result["chosen"]["trainer_folder"] == DEFAULT_VARIANT
    assert "not significant, so the default recipe is kept" in result["reason"]


def test_a_tie_goes_to_the_default(tmp_path: Path) -> None:
    task_folder = _task(tmp_path)
    _variant(task_folder, OTHER, signal=1.0, seed=3)
    _variant(task_folder, DEFAULT_VARIANT, signal=1.0, seed=3)
    result = find_best_configuration(tmp_path, 5, num_resamples=50)
    assert result["chosen"]["trainer_folder"] == DEFAULT_VARIANT
    assert result["variants"][OTHER]["minus_default"]["difference"] == 0
    assert "a tie counts for the default" in result["reason"]


def test_variants_without_complete_out_of_fold_predictions_are_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task_folder = _task(tmp_path)
    _variant(task_folder, DEFAULT_VARIANT, signal=0.3, seed=1)
    _variant(task_folder, OTHER, signal=5.0, seed=2, skip_folds=[2])  # far better, but fold_2 is not validated
    with caplog.at_level(logging.WARNING):
        result = find_best_configuration(tmp_path, 5, num_resamples=50)
    problem = "no validation predictions of fold_2 (of 3 planned folds)"
    assert f"{OTHER} is left out of the comparison: {problem}" in caplog.text
    assert result["chosen"]["trainer_folder"] == DEFAULT_VARIANT
    assert result["reason"] == "It is the only eligible variant."
    assert result["variants"][OTHER]["score"] is None
    assert "no: no validation predictions of fold_2" in (task_folder / REPORT_FILE).read_text()

    # every fold validated, but a validation case of the splits has no prediction
    _write_predictions(task_folder / OTHER, HEADS, [FOLDS[0], FOLDS[1], FOLDS[2][1:]], 5.0, seed=2)
    result = find_best_configuration(tmp_path, 5, num_resamples=50)
    problem = f"1 validation case(s) of the splits have no prediction ({FOLDS[2][0]})"
    assert result["variants"][OTHER]["problem"] == problem
    assert result["chosen"]["trainer_folder"] == DEFAULT_VARIANT

    other_heads = _variant(task_folder, f"{TRAINER}Other__{PLANS_IDENTIFIER}", signal=5.0, seed=2)
    plans = Plans.load(other_heads / ArtifactLayout.PLANS)
    dataclasses.replace(plans, classification_labels=HEADS[:1]).save(other_heads / ArtifactLayout.PLANS)
    result = find_best_configuration(tmp_path, 5, num_resamples=50)
    assert result["variants"][other_heads.name]["problem"] == (
        f"its heads differ from those of {DEFAULT_VARIANT} (the task's labels changed in between): retrain it"
    )

    shutil.rmtree(task_folder / DEFAULT_VARIANT / "fold_1" / "validation")
    with pytest.raises(UserInputError, match=r"No variant of Task005_Best has complete out-of-fold predictions .*"
                       r"fold_1.*train and validate every fold of one of them"):
        find_best_configuration(tmp_path, 5, num_resamples=50)


def test_the_radiomics_reference_is_compared_but_never_chosen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    task_folder = _task(tmp_path)
    _variant(task_folder, DEFAULT_VARIANT, signal=0.3, seed=1)
    _variant(task_folder, OTHER, signal=0.3, seed=4)
    _write_predictions(task_folder / REFERENCE_FOLDER, HEADS, FOLDS, signal=5.0, seed=5)
    with caplog.at_level(logging.WARNING):
        result = find_best_configuration(tmp_path, 5, num_resamples=200)
    reference = result["reference"]
    assert reference["available"] and reference["num_cases"] == NUM_CASES
    assert result["chosen"]["trainer_folder"] in (DEFAULT_VARIANT, OTHER)
    assert reference["chosen_minus_reference"]["ci_95"][1] < 0
    assert "radiomics reference scores significantly higher" in result["reason"]
    assert "The radiomics reference beats" in caplog.text
    report = (task_folder / REPORT_FILE).read_text()
    assert f"| {REFERENCE_LABEL} ({NUM_CASES} shared cases) | not a model for predict() |" in report
    assert "Chosen minus reference: -" in report


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    task_folder = _task(tmp_path)
    assert find_best_main([str(tmp_path), "-d", "5", "--quiet"]) == 2
    assert "No trained variant of Task005_Best" in capsys.readouterr().err
    _variant(task_folder, DEFAULT_VARIANT, signal=1.0, seed=1)
    assert find_best_main([str(tmp_path), "-d", "5", "--num_resamples", "20", "--quiet"]) == 0
    assert (task_folder / BEST_CONFIGURATION_FILE).is_file()
    result = run_script("uc_find_best.sh", str(tmp_path), "-t", TASK, "--num_resamples", "20")
    assert result.returncode == 0, result.stderr
    assert f"chose {DEFAULT_VARIANT}" in result.stderr


# ------------------------------------------------------------------------------- the trainer folder predict() uses


def _trainer_tree(root: Path, names: Sequence[str]) -> Path:
    """trained_models with a trainer folder (plans.json only) per name in one task; returns the task folder."""
    task_folder = root / "trained_models" / "nnUNet" / "3d_fullres" / TASK
    plans = dataclasses.replace(make_plans(1, (16, 16, 16)), task_name=TASK, classification_labels=HEADS)
    for name in names:
        (task_folder / name).mkdir(parents=True)
        plans.save(task_folder / name / ArtifactLayout.PLANS)
    return task_folder


def _choose(task_folder: Path, name: str) -> None:
    (task_folder / BEST_CONFIGURATION_FILE).write_text(json.dumps({"chosen": {"trainer_folder": name}}))


def test_the_lookup_follows_best_configuration_unless_a_trainer_folder_is_named(tmp_path: Path) -> None:
    task_folder = _trainer_tree(tmp_path, [DEFAULT_VARIANT, OTHER])
    artifact = tmp_path / "trained_models"
    with pytest.raises(UserInputError, match="several trainers/plans .* or choose one with uc_find_best"):
        preferred_trainer_folder(artifact)
    _choose(task_folder, OTHER)
    assert preferred_trainer_folder(artifact) == task_folder / OTHER
    assert preferred_trainer_folder(artifact, task=5) == task_folder / OTHER
    assert preferred_trainer_folder(task_folder) == task_folder / OTHER
    assert preferred_trainer_folder(task_folder / DEFAULT_VARIANT) == task_folder / DEFAULT_VARIANT  # named: it wins


def test_a_stale_or_unreadable_best_configuration_is_warned_about_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task_folder = _trainer_tree(tmp_path, [DEFAULT_VARIANT, OTHER])
    artifact = tmp_path / "trained_models"
    _choose(task_folder, f"{TRAINER}Gone__{PLANS_IDENTIFIER}")
    with caplog.at_level(logging.WARNING), pytest.raises(UserInputError, match="several trainers/plans"):
        preferred_trainer_folder(artifact)
    assert f"chose {TRAINER}Gone__{PLANS_IDENTIFIER}, which is no longer a trained model there (stale" in caplog.text
    shutil.rmtree(task_folder / OTHER)
    assert preferred_trainer_folder(artifact) == task_folder / DEFAULT_VARIANT  # as without the file

    caplog.clear()
    _choose(task_folder, "../elsewhere")
    with caplog.at_level(logging.WARNING):
        assert preferred_trainer_folder(artifact) == task_folder / DEFAULT_VARIANT
    assert "names no trainer folder under chosen.trainer_folder; run uc_find_best again or delete" in caplog.text


@pytest.fixture(scope="module")
def two_trainers(tmp_path_factory: pytest.TempPathFactory) -> TaskPaths:
    """An untrained artifact with two trainer folders of different weights (the default, and ClassifierTrainerAUC23
    with far better out-of-fold predictions), compared by find_best_configuration."""
    paths = make_untrained_artifact(tmp_path_factory.mktemp("find_best"), 44)
    default = paths.trainer_folder()
    default.rename(default.parent / OTHER)
    save_untrained_fold(paths, seed=99)
    heads = Plans.load(default / ArtifactLayout.PLANS).classification_labels
    folds = [[f"case_{n:03d}" for n in range(fold, 40, 2)] for fold in range(2)]
    paths.splits_file.write_text(json.dumps([{"train": [], "val": cases} for cases in folds]))
    _write_predictions(default, heads, folds, signal=0.2, seed=1)
    _write_predictions(default.parent / OTHER, heads, folds, signal=5.0, seed=2)
    assert find_best_configuration(paths.data_root, 44, num_resamples=100)["chosen"]["trainer_folder"] == OTHER
    return paths


def test_predict_uses_the_chosen_variant_and_an_explicit_trainer_folder_wins(two_trainers: TaskPaths) -> None:
    artifact = two_trainers.data_root / "trained_models"
    default = two_trainers.trainer_folder()
    other = default.parent / OTHER
    assert get_predictor(artifact, device="cpu").trainer_folder == other.resolve()
    assert get_predictor(default, device="cpu").trainer_folder == default.resolve()
    images, roi = held_out_case(two_trainers)
    chosen = predict(artifact, images, roi, device="cpu")
    assert chosen == predict(other, images, roi, device="cpu")
    assert chosen != predict(default, images, roi, device="cpu")
