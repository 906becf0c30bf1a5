"""Temperature scaling: the fit, when a head keeps it, calibration.json tied to the folds' checkpoints, and its use
by predict() and uc_evaluate."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import one_torch_thread  # noqa: F401
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.calibration import expected_calibration_error
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.evaluation.temperature import fit_temperature
from universalclassifier.inference.calibration import CALIBRATION_FILE, apply_temperature, read_calibration
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import ClassificationLabel, Plans
from untrained_artifact import held_out_case, shared_untrained_artifact

TRAINER_FOLDER = "ClassifierTrainer__UniversalClassifierPlansv1.0"


def _overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary cases right 70% of the time, predicted with confidence 0.97."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 2, n)
    targets = np.where(rng.uniform(size=n) < 0.7, predicted, 1 - predicted)
    probabilities = np.where(predicted[:, None] == np.arange(2)[None], 0.97, 0.03)
    return targets, probabilities


def _confident(n: int, confidence: float, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """n binary cases (half of each value) predicted with `confidence`, the first `accuracy` share right."""
    targets = np.arange(n) % 2
    right = np.arange(n) < round(accuracy * n)
    predicted = np.where(right, targets, 1 - targets)
    probabilities = np.where(predicted[:, None] == np.arange(2)[None], confidence, 1 - confidence)
    return targets, probabilities


def test_apply_temperature_with_hand_computed_values():
    # p = (0.8, 0.2), T = 2: softmax(log p / 2) = (sqrt 0.8, sqrt 0.2) / (sqrt 0.8 + sqrt 0.2) = (2/3, 1/3)
    assert apply_temperature(np.array([0.8, 0.2]), 2.0) == pytest.approx([2 / 3, 1 / 3])
    assert apply_temperature(np.array([[0.8, 0.2]]), 1.0)[0] == pytest.approx([0.8, 0.2])
    rows = np.random.default_rng(1).dirichlet(np.ones(4), size=20)
    for temperature in (0.3, 4.0):  # the predicted value never changes
        assert (apply_temperature(rows, temperature).argmax(1) == rows.argmax(1)).all()


def test_fit_softens_overconfident_predictions():
    targets, probabilities = _overconfident()
    temperature = fit_temperature(targets, probabilities)
    # the NLL optimum gives the predicted value the observed accuracy a as confidence:
    # 0.97^(1/T) / (0.97^(1/T) + 0.03^(1/T)) = a, so T = log(0.97 / 0.03) / log(a / (1 - a))
    observed_accuracy = (probabilities.argmax(1) == targets).mean()
    expected = np.log(0.97 / 0.03) / np.log(observed_accuracy / (1 - observed_accuracy))
    assert temperature == pytest.approx(expected, rel=1e-3)
    before = expected_calibration_error(targets, probabilities)
    after = expected_calibration_error(targets, apply_temperature(probabilities, temperature))
    assert before > 0.2 and after < 0.02


# ------------------------------------------------------------ when uc_summarize keeps a temperature
def _fold_predictions(folder: Path, nominal: str, ordinal: str, targets: np.ndarray, probabilities: np.ndarray) -> None:
    """fold/validation/predictions.json with the given binary head and a certain ordinal head."""
    cases = {
        f"{folder.name}_case_{n:03d}": {
            nominal: {"target": int(y), "probabilities": [float(v) for v in p]},
            ordinal: {"target": int(y), "probabilities": [1.0 - y, float(y), 0.0]},
        }
        for n, (y, p) in enumerate(zip(targets, probabilities, strict=True))
    }
    (folder / "validation").mkdir(parents=True)
    (folder / "validation" / "predictions.json").write_text(json.dumps(cases))


def _plans() -> Plans:
    """Plans of a fake task with a binary head `malignant` and an ordinal head `grade`."""
    return Plans(
        task_name="Task001_Calibration",
        modalities=["MR"],
        normalization_schemes=["zscore"],
        use_mask_for_norm=[False],
        intensity_properties={},
        transpose_forward=[0, 1, 2],
        transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0],
        image_size=[8, 8, 8],
        batch_size=2,
        do_dummy_2D_data_aug=False,
        num_roi_classes=2,
        uses_roi=False,
        classification_labels=[
            ClassificationLabel(name="malignant", type="nominal", values=("no", "yes")),
            ClassificationLabel(name="grade", type="ordinal", values=("1", "2", "3")),
        ],
        num_training_cases=40,
    )


def _summarize(root: Path, folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Path, dict, dict]:
    """A trainer folder with a binary head `malignant` predicted as given per fold, summarized: the folder, the
    summary's head and calibration.json."""
    trainer = root / TRAINER_FOLDER
    trainer.mkdir(parents=True)
    _plans().save(trainer / "plans.json")
    for k, (targets, probabilities) in enumerate(folds):
        _fold_predictions(trainer / f"fold_{k}", "malignant", "grade", targets, probabilities)
    summary = summarize_cross_validation(trainer, num_resamples=20, planned=[f"fold_{k}" for k in range(len(folds))])
    return trainer, summary["heads"]["malignant"], json.loads((trainer / CALIBRATION_FILE).read_text())


def test_too_few_cases_keep_no_temperature(tmp_path):
    targets, probabilities = _overconfident(12)
    trainer, head, stored = _summarize(tmp_path, [(targets[:6], probabilities[:6]), (targets[6:], probabilities[6:])])
    entry = stored["heads"]["malignant"]
    assert entry["temperature"] == 1.0 and entry["temperature_kept"] is False and entry["temperature_fitted"] is None
    assert "only 12 case(s)" in entry["temperature_reason"] and "at least 20" in entry["temperature_reason"]
    assert "grade" not in stored["heads"]  # ordinal: left as it is
    report = (trainer / "cv_report.md").read_text()
    assert "calibration.json holds T = 1 for this head: only 12 case(s)" in report
    assert read_calibration(trainer, Plans.load(trainer / "plans.json")).temperatures == {}


def test_one_class_keeps_no_temperature(tmp_path):
    targets, probabilities = _overconfident(60)
    targets[:] = 1
    _, _, stored = _summarize(tmp_path, [(targets[:30], probabilities[:30]), (targets[30:], probabilities[30:])])
    entry = stored["heads"]["malignant"]
    assert entry["temperature"] == 1.0 and "only the value(s) [1] occur" in entry["temperature_reason"]


def test_a_temperature_that_worsens_the_cross_fitted_ece_is_not_kept(tmp_path, caplog):
    # fold_0 over-confident (0.99, 60% right), fold_1 under-confident (0.55, all right): the temperature of one fold
    # makes the other fold worse, so scaling does not help cases it was not fitted on
    folds = [_confident(20, 0.99, 0.6), _confident(20, 0.55, 1.0)]
    with caplog.at_level(logging.INFO):
        trainer, head, stored = _summarize(tmp_path, folds)
    entry = stored["heads"]["malignant"]
    assert head["ece_calibrated"] > head["ece"] > 0.3
    assert entry["temperature"] == 1.0 and entry["temperature_kept"] is False
    assert entry["temperature_fitted"] != pytest.approx(1.0, abs=0.05)
    assert "is not below" in entry["temperature_reason"] and "not kept" in caplog.text
    assert read_calibration(trainer, Plans.load(trainer / "plans.json")).temperatures == {}


def test_a_temperature_on_the_search_bound_is_warned_about(tmp_path, caplog):
    # every case right at confidence 0.6: the NLL keeps falling as T shrinks, down to the bound 0.05
    folds = [_confident(20, 0.6, 1.0), _confident(20, 0.6, 1.0)]
    with caplog.at_level(logging.WARNING):
        _, _, stored = _summarize(tmp_path, folds)
    assert stored["heads"]["malignant"]["temperature_fitted"] == pytest.approx(0.05, rel=0.01)
    assert "lies on the bound of the search [0.05, 20]" in caplog.text


def test_a_helpful_temperature_is_kept(tmp_path):
    targets, probabilities = _overconfident(400)
    trainer, head, stored = _summarize(tmp_path, [(targets[:200], probabilities[:200]),
                                                  (targets[200:], probabilities[200:])])
    entry = stored["heads"]["malignant"]
    assert entry["temperature_kept"] is True and entry["temperature"] == pytest.approx(fit_temperature(targets,
                                                                                                       probabilities))
    assert head["ece_calibrated"] < head["ece"] and (trainer / head["plot_calibrated"]).is_file()
    assert stored["folds"] == {"fold_0": None, "fold_1": None}  # no checkpoints in this fake folder
    assert "kept in calibration.json" in (trainer / "cv_report.md").read_text()


# ------------------------------------------------------------ calibration.json belongs to the folds' checkpoints
@pytest.fixture
def calibrated(tmp_path_factory, tmp_path):
    """A copy of the untrained artifact with folds fold_0 and fold_1 (copies of `all`), over-confident validation
    predictions and uc_summarize's calibration.json."""
    source = shared_untrained_artifact(tmp_path_factory)
    root = tmp_path / "trained_models"
    shutil.copytree(source.data_root / "trained_models", root)
    trainer = next(root.glob(f"**/{TRAINER_FOLDER}"))
    targets, probabilities = _overconfident(400)
    for k in (0, 1):
        shutil.copytree(trainer / "all", trainer / f"fold_{k}", ignore=shutil.ignore_patterns("validation"))
        _fold_predictions(trainer / f"fold_{k}", "lesion_contrast", "lesion_size", targets[k::2], probabilities[k::2])
    summarize_cross_validation(trainer, num_resamples=20, planned=["fold_0", "fold_1"])
    return source, root, trainer


def _checkpoint_id(fold: Path) -> str:
    return json.loads((fold / f"{ArtifactLayout.FINAL}.json").read_text())["checkpoint_id"]


def _retrain(fold: Path) -> None:
    """Save the fold's final checkpoint again, as retraining does: same weights, a new checkpoint id."""
    from universalclassifier.artifact.checkpoint import load_checkpoint, save_checkpoint

    tensors, metadata = load_checkpoint(fold / ArtifactLayout.FINAL)
    save_checkpoint(fold / ArtifactLayout.FINAL, tensors, {k: v for k, v in metadata.items() if k != "checkpoint_id"})


def test_calibration_applies_to_its_checkpoints_only(calibrated, caplog):
    from universalclassifier.inference.predictor import Predictor

    source, artifact, trainer = calibrated
    stored = json.loads((trainer / CALIBRATION_FILE).read_text())
    assert stored["folds"] == {f"fold_{k}": _checkpoint_id(trainer / f"fold_{k}") for k in (0, 1)}
    temperature = stored["heads"]["lesion_contrast"]["temperature"]
    assert stored["heads"]["lesion_contrast"]["temperature_kept"] and temperature > 1.5
    images, roi = held_out_case(source)

    predictor = Predictor(artifact)
    raw = predictor.predict_case(images, roi, calibrate=False)
    with caplog.at_level(logging.INFO):
        scaled = predictor.predict_case(images, roi)
    assert f"Applying the temperature calibration {trainer / CALIBRATION_FILE}" in caplog.text
    assert f"lesion_contrast T = {temperature:.3f}" in caplog.text
    assert scaled[0] == pytest.approx(apply_temperature(np.array([1 - raw[0], raw[0]]), temperature)[1], abs=1e-6)
    assert scaled[1] == raw[1]  # ordinal head: left as it is

    _retrain(trainer / "fold_1")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        after_retraining = Predictor(artifact).predict_case(images, roi)
    assert "fold_1 of this ensemble has been retrained since or is not among them" in caplog.text
    assert "run uc_summarize again" in caplog.text
    assert after_retraining[0] == pytest.approx(raw[0], abs=1e-6) and after_retraining[1] == raw[1]
    # the fold that was not retrained still carries the calibration
    assert Predictor(artifact, folds=[0]).predict_case(images, roi)[0] == pytest.approx(scaled[0], abs=1e-6)
    # a fold the calibration was not fitted on
    shutil.copytree(trainer / "fold_0", trainer / "fold_2")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert Predictor(artifact, folds=[0, 2]).calibration() is None
    assert "fold_2 of this ensemble" in caplog.text


def test_old_or_damaged_calibration_files(calibrated, caplog):
    _, _, trainer = calibrated
    plans = Plans.load(trainer / "plans.json")
    path = trainer / CALIBRATION_FILE
    stored = json.loads(path.read_text())
    old = {key: stored[key] for key in ("method", "plans_hash", "heads")}  # as versions before the checkpoint ids
    path.write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING):
        assert read_calibration(trainer, plans) is None
    assert "did not record which fold checkpoints it was fitted on" in caplog.text
    path.write_text(json.dumps({**stored, "plans_hash": "0" * 64}))
    with caplog.at_level(logging.WARNING):
        assert read_calibration(trainer, plans) is None
    assert "was fitted for other plans" in caplog.text
    path.write_text(json.dumps({**stored, "heads": {**stored["heads"], "lesion_size": {"temperature": 1.5}}}))
    with pytest.raises(UserInputError, match=r"calibration.json holds temperatures for \['lesion_size'\]"):
        read_calibration(trainer, plans)
    path.write_text(json.dumps({**stored, "heads": {"lesion_contrast": {"temperature": 1e9}}}))
    with pytest.raises(UserInputError, match=r"calibration.json holds the temperature 1000000000.0 .* outside"):
        read_calibration(trainer, plans)
    path.write_text("{")
    with pytest.raises(UserInputError, match="calibration.json is not valid JSON"):
        read_calibration(trainer, plans)


def test_uc_evaluate_logs_and_reports_the_calibration(calibrated, tmp_path, caplog):
    from universalclassifier.evaluation.external import LabelledCase, evaluate

    source, artifact, trainer = calibrated
    cases = {}
    for index, value in ((6, 0), (7, 1)):
        images, roi = held_out_case(source, index)
        cases[f"case_{index:04d}"] = LabelledCase(images, roi, {"lesion_contrast": value, "lesion_size": value})
    with caplog.at_level(logging.INFO):
        summary = evaluate(artifact, cases, tmp_path / "report", num_resamples=10, show_progress=False)
    temperature = json.loads((trainer / CALIBRATION_FILE).read_text())["heads"]["lesion_contrast"]["temperature"]
    assert "Applying the temperature calibration" in caplog.text
    assert summary["calibrated"] is True and summary["calibration"] == f"lesion_contrast T = {temperature:.3f}"
    report = (tmp_path / "report" / "evaluation_report.md").read_text()
    assert f"temperature-scaled (lesion_contrast T = {temperature:.3f})" in report
    without = evaluate(artifact, cases, tmp_path / "raw", calibrate=False, num_resamples=10, show_progress=False)
    assert without["calibrated"] is False and "without calibration" in (tmp_path / "raw" / "evaluation_report.md"
                                                                          ).read_text()
