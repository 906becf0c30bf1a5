"""What predictions say: the predicted value and its name per head (predict_detailed, case JSON, summary.csv), and
uc_predict's record of the configuration that made each case's result."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections import OrderedDict

import numpy as np
import pytest

import universalclassifier.inference.predict as predict_module
from helpers import one_torch_thread  # noqa: F401
from universalclassifier.inference.predict import predict, predict_detailed
from universalclassifier.inference.predict_folder import predict_folder
from untrained_artifact import held_out_case, shared_untrained_artifact

SUMMARY_COLUMNS = [
    "case_id",
    "lesion_contrast_p0", "lesion_contrast_p1", "lesion_contrast_prediction", "lesion_contrast_prediction_name",
    "lesion_size_p0", "lesion_size_p1", "lesion_size_p2", "lesion_size_prediction", "lesion_size_prediction_name",
]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return shared_untrained_artifact(tmp_path_factory)


def _median_grade(probabilities: list[float]) -> int:
    """The grade g with P(grade >= g) > 0.5 and P(grade >= g + 1) <= 0.5, from its definition."""
    return max(k for k in range(len(probabilities)) if k == 0 or sum(probabilities[k:]) > 0.5)


def test_predict_detailed_names_the_predicted_value(untrained):
    artifact = untrained.data_root / "trained_models"
    images, roi = held_out_case(untrained)
    details = predict_detailed(artifact, images, roi)
    plain = predict(artifact, images, roi)
    assert json.loads(json.dumps(details)) == details
    contrast, size = details
    assert contrast["head"] == "lesion_contrast" and contrast["type"] == "nominal"
    assert contrast["probabilities"][1] == pytest.approx(plain[0])
    assert sum(contrast["probabilities"]) == pytest.approx(1)
    assert contrast["prediction"] == int(np.argmax(contrast["probabilities"]))
    assert contrast["prediction_name"] == ("darker", "brighter")[contrast["prediction"]]
    assert size["head"] == "lesion_size" and size["type"] == "ordinal"
    assert size["probabilities"] == pytest.approx(plain[1])
    assert size["prediction"] == _median_grade(size["probabilities"])
    assert size["prediction_name"] == ("small", "medium", "large")[size["prediction"]]


def test_case_json_and_summary_csv_name_the_predicted_value(untrained, tmp_path):
    out = tmp_path / "out"
    assert predict_folder(untrained.data_root / "trained_models", untrained.raw / "imagesTs", out,
                          untrained.raw / "labelsTs", show_progress=False) == []
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == SUMMARY_COLUMNS
    assert [row[0] for row in rows[1:]] == ["case_0006", "case_0007"]
    images, roi = held_out_case(untrained, 7)
    expected = predict_detailed(untrained.data_root / "trained_models", images, roi)
    result = json.loads((out / "case_0007.json").read_text())
    assert result["lesion_contrast"] == pytest.approx(expected[0]["probabilities"][1])  # the predict() value, as before
    for head in expected:
        stored = result["heads"][head["head"]]
        assert stored["prediction"] == head["prediction"] and stored["prediction_name"] == head["prediction_name"]
        assert stored["probabilities"] == pytest.approx(head["probabilities"])
    row = dict(zip(rows[0], rows[2], strict=True))
    assert row["lesion_size_prediction"] == str(expected[1]["prediction"])
    assert row["lesion_size_prediction_name"] == expected[1]["prediction_name"]
    assert float(row["lesion_contrast_p1"]) == pytest.approx(expected[0]["probabilities"][1], abs=1e-6)


def test_results_of_another_configuration_are_predicted_again(untrained, tmp_path, caplog, monkeypatch):
    from universalclassifier.evaluation.temperature import write_calibration
    from universalclassifier.plans import Plans

    artifact = tmp_path / "trained_models"
    shutil.copytree(untrained.data_root / "trained_models", artifact)
    inputs, rois, out = untrained.raw / "imagesTs", untrained.raw / "labelsTs", tmp_path / "out"
    files = [out / "case_0006.json", out / "case_0007.json"]

    def run(**options) -> list[int]:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert predict_folder(artifact, inputs, out, rois, show_progress=False, **options) == []
        return [f.stat().st_mtime_ns for f in files]

    first = run()
    configuration = json.loads(files[0].read_text())["configuration"]
    trainer = next(artifact.glob("**/plans.json")).parent
    checkpoint_id = json.loads((trainer / "all" / "model_final_checkpoint.model.json").read_text())["checkpoint_id"]
    assert configuration["folds"] == {"all": checkpoint_id} and configuration["tta"] is False
    assert configuration["calibration"] is None and configuration["package_version"]
    assert run() == first and "2 finished before with the same configuration" in caplog.text

    with_tta = run(tta=True)  # the same folder with other options: predicted again, not mixed into summary.csv
    assert all(new != old for new, old in zip(with_tta, first, strict=True))
    assert "Predicting 2 case(s) again: their results were made with another configuration (tta in 2 differed)" in (
        caplog.text
    )
    assert json.loads(files[0].read_text())["configuration"]["tta"] is True

    plans = Plans.load(trainer / "plans.json")
    write_calibration(trainer, plans, {"all": checkpoint_id}, {"lesion_contrast": {"temperature": 2.0}})
    monkeypatch.setattr(predict_module, "_PREDICTORS", OrderedDict())  # a newly loaded ensemble reads calibration.json
    run(tta=True)
    assert "Applying the temperature calibration" in caplog.text and "(calibration in 2 differed)" in caplog.text
    calibrated = json.loads(files[0].read_text())
    assert calibrated["configuration"]["calibration"] is not None
    run(tta=True, calibrate=False)
    assert "(calibration in 2 differed)" in caplog.text
    assert json.loads(files[0].read_text())["configuration"]["calibration"] is None

    current = json.loads(files[1].read_text())  # as an older version wrote it: no heads, no configuration
    files[1].write_text(json.dumps({k: v for k, v in current.items() if k not in ("heads", "configuration")}))
    run(tta=True, calibrate=False)
    assert "Predicting 1 case(s) again" in caplog.text and "(configuration in 1 differed)" in caplog.text
