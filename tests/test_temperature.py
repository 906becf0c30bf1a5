"""Temperature scaling: the fit, the cross-fitted report, calibration.json and its use by predict()."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from helpers import one_torch_thread  # noqa: F401
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.calibration import expected_calibration_error
from universalclassifier.evaluation.temperature import (
    CALIBRATION_FILE,
    apply_temperature,
    fit_temperature,
    read_temperatures,
)
from universalclassifier.plans import Plans


def _overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary cases right 70% of the time, predicted with confidence 0.97."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 2, n)
    targets = np.where(rng.uniform(size=n) < 0.7, predicted, 1 - predicted)
    probabilities = np.where(predicted[:, None] == np.arange(2)[None], 0.97, 0.03)
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


def test_the_summary_fits_calibration_and_predict_applies_it(tmp_path, caplog):
    from universalclassifier.evaluation.summarize import summarize_cross_validation
    from universalclassifier.inference.predict import predict
    from universalclassifier.paths import TaskPaths
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
    from universalclassifier.synthetic import generate_task
    from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

    generate_task(tmp_path, 3, "Cal", num_cases=10, base_size=(8, 20, 20), seed=5)
    plan_and_preprocess(tmp_path, 3, num_workers=1, show_progress=False)
    paths = TaskPaths.find(tmp_path, 3)
    options = TrainingOptions(
        max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
    )
    for fold in (0, 1):
        ClassifierTrainer(paths, fold, options).run_training()
    folder = paths.trainer_folder()
    summary = summarize_cross_validation(folder, num_resamples=20)
    contrast = summary["heads"]["lesion_contrast"]
    assert "temperature" not in summary["heads"]["lesion_size"]  # ordinal: left as it is
    stored = json.loads((folder / CALIBRATION_FILE).read_text())
    assert stored["heads"]["lesion_contrast"]["temperature"] == pytest.approx(contrast["temperature"])
    assert contrast["ece_calibrated"] is not None and (folder / contrast["plot_calibrated"]).is_file()
    assert "Temperature scaling: T = " in (folder / "cv_report.md").read_text()

    images = sorted(paths.raw.joinpath("imagesTr").glob("case_0000_*"))
    roi = paths.raw / "labelsTr" / "case_0000.nii.gz"
    raw = predict(tmp_path / "trained_models", images, roi, calibrate=False)
    calibrated = predict(tmp_path / "trained_models", images, roi)
    expected = apply_temperature(np.array([1 - raw[0], raw[0]]), contrast["temperature"])[1]
    assert abs(contrast["temperature"] - 1) > 0.05 and abs(calibrated[0] - raw[0]) > 1e-4  # it did change
    assert calibrated[0] == pytest.approx(expected, abs=1e-6) and calibrated[1] == raw[1]

    plans = Plans.load(folder / "plans.json")
    stored["plans_hash"] = "0" * 64
    (folder / CALIBRATION_FILE).write_text(json.dumps(stored))
    with caplog.at_level(logging.WARNING):
        assert read_temperatures(folder, plans) == {}
    assert "was fitted for other plans" in caplog.text
    stored["heads"]["lesion_size"] = {"temperature": 1.5}
    (folder / CALIBRATION_FILE).write_text(json.dumps(stored))
    with pytest.raises(UserInputError, match="calibration.json holds temperatures .* not nominal heads"):
        read_temperatures(folder, plans)
    (folder / CALIBRATION_FILE).write_text("{")
    with pytest.raises(UserInputError, match="calibration.json is damaged"):
        read_temperatures(folder, plans)
