"""Head types (nominal, ordinal, regression) and missing labels: parsing, plans, losses, outputs, end to end."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from helpers import assert_in, edit_json, make_task, one_torch_thread, validation_error  # noqa: F401
from universalclassifier.dataset.dataset_json import read_dataset_json
from universalclassifier.errors import UserInputError
from universalclassifier.network.heads import OrdinalHead, grade_probabilities, head_predictions
from universalclassifier.network.i3d import build_network
from universalclassifier.plans import ClassificationLabel
from universalclassifier.training.losses import head_loss, summed_loss

NOMINAL = ClassificationLabel("a", "nominal", ("x", "y"))
ORDINAL = ClassificationLabel("g", "ordinal", ("1", "2", "3"))
REGRESSION = ClassificationLabel("v", "regression", (), target_mean=10.0, target_sd=2.0)


# ------------------------------------------------------------------------------------------------ dataset.json
def _heads(tmp_path, heads: list[dict], values: list[dict]):
    task = make_task(tmp_path)

    def change(d):
        d["classification_labels"] = heads
        for item, case_values in zip(d["training"], values * len(d["training"]), strict=False):
            for head in ("lesion_contrast", "lesion_size"):
                item.pop(head, None)
            item.update(case_values)

    edit_json(task, change)
    return task


def test_types_values_and_missing_labels_are_read(tmp_path):
    heads = [
        {"name": "grade", "ordinal": True, "values": {"0": "low", "1": "mid", "2": "high"}},
        {"name": "volume", "type": "regression"},
        {"name": "severity", "type": "nominal", "values": {"0": "mild", "1": "severe"}},
    ]
    values = [
        {"grade": 0, "volume": 1.5, "severity": None},
        {"grade": 2, "volume": 2, "severity": 1},
        {"grade": 1, "volume": 3.25},  # severity absent: unknown
        {"grade": 2, "volume": 0.5, "severity": 0},
    ]
    task = _heads(tmp_path, heads, values)
    description, problems = read_dataset_json(task / "dataset.json")
    assert problems == []
    grade, volume, severity = description.classification_labels
    assert (grade.type, grade.num_values, grade.num_outputs) == ("ordinal", 3, 2)
    assert (volume.type, volume.num_values, volume.num_outputs, volume.values) == ("regression", 1, 1, ())
    assert (severity.type, severity.num_outputs) == ("nominal", 2)
    known = [v["volume"] for v in (values * 6)[: len(description.training)]]
    assert volume.target_mean == pytest.approx(np.mean(known))
    assert volume.target_sd == pytest.approx(np.std(known))
    first, _, third = description.training[:3]
    assert first.targets == {"grade": 0, "volume": 1.5, "severity": None}
    assert third.targets["severity"] is None and isinstance(description.training[1].targets["volume"], float)
    restored = ClassificationLabel.from_dict(json.loads(json.dumps(volume.to_dict())), "plans")
    assert restored == volume and volume.to_dict()["type"] == "regression"
    assert "type" not in severity.to_dict()  # nominal heads keep the older form (and their plans hash)


@pytest.mark.parametrize(
    ("heads", "values", "expected"),
    [
        ([{"name": "h", "type": "ordinal-ish", "values": {"0": "a", "1": "b"}}], [{"h": 0}],
         "'type' is 'ordinal-ish'; use one of ['nominal', 'ordinal', 'regression']"),
        ([{"name": "h", "type": "nominal", "ordinal": True, "values": {"0": "a", "1": "b"}}], [{"h": 0}],
         "'ordinal' is true but 'type' is 'nominal'; drop one of them"),
        ([{"name": "h", "type": "regression", "values": {"0": "a", "1": "b"}}], [{"h": 0}],
         "regression head and has 'values'"),
        ([{"name": "h", "type": "regression"}], [{"h": "big"}], "'h' = 'big' is not a finite number"),
        ([{"name": "h", "type": "regression"}], [{"h": 1e200}],
         "'h' = 1e+200 is not a finite number of magnitude at most 1e+15"),  # its square overflows float64
        ([{"name": "h", "type": "regression"}], [{"h": 10**400}],
         "'h' = 10000000000000000000000000000000000...(401 characters) is not a finite number"),  # float() overflows
        ([{"name": "h", "type": "regression"}], [{"h": 1.0}], "it needs at least 5 known values that differ"),
        ([{"name": "h", "values": {"0": "a", "1": "b"}}], [{"h": None}],
         "no value for any classification label (['h'])"),
        ([{"name": "h", "values": {"0": "a", "1": "b"}}], [{"h": 1.5}], "'h' = 1.5 is not one of the label's values"),
    ],
)
def test_bad_types_and_values_are_refused(tmp_path, heads, values, expected):
    task = _heads(tmp_path, heads, values)
    assert_in(str(validation_error(task)), expected)


def test_a_head_needs_two_known_values(tmp_path):
    heads = [{"name": "h", "values": {"0": "a", "1": "b"}}, {"name": "k", "values": {"0": "a", "1": "b"}}]
    task = _heads(tmp_path, heads, [{"h": 1, "k": None}, {"h": 0, "k": 1}, {"h": 1, "k": None}])
    assert_in(str(validation_error(task)), "classification label 'k': only value(s) [1] occur in training")


# ------------------------------------------------------------------------------------------------ losses
def test_losses_by_type_with_hand_computed_values():
    # nominal: uniform logits over 2 values cost log 2; smoothing 0.2 makes a confident logit pay for the 0.1
    assert float(head_loss(NOMINAL, torch.zeros(2, 2), torch.tensor([0.0, 1.0]))) == pytest.approx(math.log(2))
    confident = torch.tensor([[10.0, -10.0]])
    assert float(head_loss(NOMINAL, confident, torch.tensor([0.0]), 0.2)) == pytest.approx(0.1 * 20, rel=1e-3)
    # ordinal: cumulative logits (0, 0) for grade 2 -> targets [1, 1]: 2 * log 2
    assert float(head_loss(ORDINAL, torch.zeros(1, 2), torch.tensor([2.0]))) == pytest.approx(2 * math.log(2))
    # grade 0 with logits (-20, -20) costs almost nothing; grade 1 with them pays about 20 for the first threshold
    assert float(head_loss(ORDINAL, torch.full((1, 2), -20.0), torch.tensor([0.0]))) == pytest.approx(0, abs=1e-6)
    assert float(head_loss(ORDINAL, torch.full((1, 2), -20.0), torch.tensor([1.0]))) == pytest.approx(20, rel=1e-3)
    # regression: target 14 standardizes to 2; output 0 -> Huber 2 - 0.5 = 1.5; output 1.5 -> 0.5 * 0.5^2 = 0.125
    assert float(head_loss(REGRESSION, torch.tensor([[0.0]]), torch.tensor([14.0]))) == pytest.approx(1.5)
    assert float(head_loss(REGRESSION, torch.tensor([[1.5]]), torch.tensor([14.0]))) == pytest.approx(0.125)


def test_missing_targets_are_masked_out_of_the_loss():
    outputs = [torch.tensor([[0.0, 0.0], [50.0, -50.0]], requires_grad=True), torch.tensor([[3.0], [0.0]])]
    # case 1's nominal target is unknown (its terrible logits must not count); regression knows only case 1
    target = torch.tensor([[1.0, float("nan")], [float("nan"), 10.0]])
    loss = summed_loss([NOMINAL, REGRESSION], outputs, target)
    assert float(loss.detach()) == pytest.approx(math.log(2) + 0.0)
    loss.backward()
    assert torch.equal(outputs[0].grad[1], torch.zeros(2))
    nothing_known = head_loss(NOMINAL, outputs[0], torch.tensor([float("nan")] * 2))
    assert float(nothing_known.detach()) == 0 and nothing_known.requires_grad


# ------------------------------------------------------------------------------------------------ outputs
def test_ordinal_head_is_rank_consistent_and_gives_grade_probabilities():
    torch.manual_seed(0)
    head = OrdinalHead(8, 4)
    with torch.no_grad():
        head.gaps.copy_(torch.tensor([-3.0, 2.0]))  # any gap values keep the thresholds increasing
    thresholds = head.thresholds()
    assert thresholds.shape == (3,) and bool((thresholds[1:] > thresholds[:-1]).all())
    logits = head(torch.randn(50, 8))
    assert logits.shape == (50, 3)
    at_least = torch.sigmoid(logits)
    assert bool((at_least[:, 1:] <= at_least[:, :-1]).all())
    probabilities = grade_probabilities(logits)
    assert probabilities.shape == (50, 4) and bool((probabilities >= 0).all())
    assert torch.allclose(probabilities.sum(1), torch.ones(50))
    # P(grade >= 1) = 0.5 and P(grade >= 2) = 0 give (0.5, 0.5, 0)
    known = grade_probabilities(torch.tensor([[0.0, -100.0]]))
    assert torch.allclose(known, torch.tensor([[0.5, 0.5, 0.0]]))


def test_predictions_by_type_and_the_network_outputs():
    outputs = [torch.tensor([[0.0, math.log(3)]]), torch.tensor([[0.0, -100.0]]), torch.tensor([[-0.5]])]
    nominal, ordinal, regression = head_predictions([NOMINAL, ORDINAL, REGRESSION], outputs)
    assert torch.allclose(nominal, torch.tensor([[0.25, 0.75]]))
    assert torch.allclose(ordinal, torch.tensor([[0.5, 0.5, 0.0]]))
    assert float(regression) == pytest.approx(10.0 - 0.5 * 2.0)  # de-standardized: mean + output * sd
    network = build_network(2, [2, 3, 1], normalization="group", head_types=["nominal", "ordinal", "regression"])
    shapes = [tuple(o.shape) for o in network.eval()(torch.randn(2, 2, 8, 16, 16))]
    assert shapes == [(2, 2), (2, 2), (2, 1)]
    with pytest.raises(ValueError, match="a regression head has one output"):
        build_network(2, [3], head_types=["regression"])
    with pytest.raises(ValueError, match="head_types must name one of"):
        build_network(2, [3], head_types=["binary"])


def test_plans_refuse_a_damaged_regression_head():
    raw = REGRESSION.to_dict()
    raw["target_sd"] = 0
    with pytest.raises(UserInputError, match="plans: a regression head needs target_mean and a positive target_sd"):
        ClassificationLabel.from_dict(raw, "plans")
    legacy = {"name": "g", "ordinal": True, "values": {"0": "a", "1": "b", "2": "c"}}
    assert ClassificationLabel.from_dict(legacy, "plans").type == "ordinal"


# ------------------------------------------------------------------------------------------------ end to end
def test_label_types_end_to_end(tmp_path):
    """Ordinal, regression, a head with missing values, covariates and patients with two scans: plan, train, summarize,
    predict (one case and a folder)."""
    from universalclassifier.evaluation.summarize import summarize_cross_validation
    from universalclassifier.inference.predict import predict
    from universalclassifier.paths import TaskPaths
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
    from universalclassifier.plans import Plans
    from universalclassifier.synthetic import generate_task
    from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

    generate_task(tmp_path, 7, "Types", num_cases=20, base_size=(8, 20, 20), seed=4, label_types=True)
    plan_and_preprocess(tmp_path, 7, num_workers=1, show_progress=False)
    task = TaskPaths.find(tmp_path, 7)
    plans = Plans.load(task.plans_file)
    assert [h.type for h in plans.classification_labels] == ["nominal", "ordinal", "regression", "nominal", "nominal"]
    volume = plans.classification_labels[2]
    assert volume.target_mean > 0 and volume.target_sd > 0
    age, sex = plans.covariates
    assert (age.name, age.type, sex.values) == ("age", "numeric", ("F", "M")) and 40 <= age.fill <= 80
    assert plans.covariate_width == 2 + 3 and 40 < age.mean < 80
    dataset = json.loads((task.raw / "dataset.json").read_text())
    groups = {e["image"].split("/")[-1].split(".")[0]: e["patient_id"] for e in dataset["training"]}

    options = TrainingOptions(
        max_num_epochs=2, num_batches_per_epoch=2, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
    )
    trainer = ClassifierTrainer(task, 0, options, trainer_name="ClassifierTrainer")
    assert trainer.case_groups == groups
    case = next(e for e in dataset["training"] if e["covariates"]["age"] is None)  # an unknown age: imputed, flagged
    encoded = trainer.case_covariates[case["image"].split("/")[-1].split(".")[0]]
    assert encoded[:2] == pytest.approx([(age.fill - age.mean) / age.sd, 1.0])
    assert list(encoded[2:]) == [float(case["covariates"]["sex"] == "F"), float(case["covariates"]["sex"] == "M"), 0.0]
    splits = json.loads(task.splits_file.read_text())
    for fold in splits:  # the two scans of a patient are never split between training and validation
        assert not {groups[c] for c in fold["train"]} & {groups[c] for c in fold["val"]}
    trainer.run_training()

    validation = task.trainer_folder() / "fold_0" / "validation"
    per_case = json.loads((validation / "predictions.json").read_text())
    entry = next(iter(per_case.values()))
    assert set(entry["lesion_volume"]) == {"target", "prediction"} and len(entry["lesion_size"]["probabilities"]) == 3
    summary = json.loads((validation / "summary.json").read_text())["heads"]
    strength_targets = [case["contrast_strength"]["target"] for case in per_case.values()]
    assert summary["contrast_strength"]["num_missing"] == strength_targets.count(None)
    assert summary["contrast_strength"]["num_cases"] == len(per_case) - strength_targets.count(None)
    assert {"mae", "rmse", "r2", "pearson", "spearman"} <= set(summary["lesion_volume"])
    assert {"quadratic_weighted_kappa", "mae_grades", "auc_per_threshold"} <= set(summary["lesion_size"])
    assert (validation / "scatter_lesion_volume.png").is_file() and (validation / "roc_lesion_size.png").is_file()

    cv = summarize_cross_validation(task.trainer_folder(), num_resamples=50)
    assert cv["heads"]["lesion_volume"]["type"] == "regression" and len(cv["heads"]["lesion_volume"]["r2_ci_95"]) == 2
    report = (task.trainer_folder() / "cv_report.md").read_text()
    assert "| Regression head | Cases | MAE [95% CI]" in report and "quadratic weighted kappa" in report

    images = sorted(task.raw.joinpath("imagesTr").glob("case_0000_*"))
    artifact, roi = task.data_root / "trained_models", task.raw / "labelsTr" / "case_0000.nii.gz"
    contrast, size, lesion_volume, strength, risk = predict(artifact, images, roi, covariates={"age": 70, "sex": "F"})
    assert 0 <= contrast <= 1 and 0 <= strength <= 1 and 0 <= risk <= 1
    assert len(size) == 3 and sum(size) == pytest.approx(1, abs=1e-6) and min(size) >= 0
    assert isinstance(lesion_volume, float) and math.isfinite(lesion_volume)
    with pytest.raises(UserInputError, match=r"trained with the covariates \['age', 'sex'\]: pass covariates="):
        predict(artifact, images, roi)
    with pytest.raises(UserInputError, match=r"No value for the covariate\(s\) \['age'\]"):
        predict(artifact, images, roi, covariates={"sex": "M"})
    with pytest.raises(UserInputError, match=r"covariate 'sex' = 'X' is not one of \['F', 'M'\]"):
        predict(artifact, images, roi, covariates={"age": 50, "sex": "X"})
    imputed = predict(artifact, images, roi, covariates={"sex": "M"}, impute_missing_covariates=True)
    assert len(imputed) == 5 and 0 <= imputed[4] <= 1

    # a folder of cases with a covariates CSV, checked before any case is predicted
    from universalclassifier.inference.predict_folder import predict_folder

    inputs, rois, out = tmp_path / "in", tmp_path / "seg", tmp_path / "out"
    inputs.mkdir(), rois.mkdir()
    for n in (0, 1):
        shutil.copy(task.raw / "imagesTr" / f"case_000{n}_0000.nii.gz", inputs)
        shutil.copy(task.raw / "labelsTr" / f"case_000{n}.nii.gz", rois)
    table = tmp_path / "covariates.csv"
    table.write_text("case_id,age,sex\ncase_0000,71.5,F\n")
    with pytest.raises(UserInputError, match="case case_0001 in .*covariates.csv: This model was trained with the"):
        predict_folder(artifact, inputs, out, rois, show_progress=False, covariates_file=table)
    assert not out.exists() or not any(out.iterdir())  # refused before any case was predicted
    table.write_text("case_id,age,sex\ncase_0000,71.5,F\ncase_0001,,M\n")
    assert predict_folder(
        artifact, inputs, out, rois, show_progress=False, covariates_file=table, impute_missing_covariates=True
    ) == []
    result = json.loads((out / "case_0000.json").read_text())
    assert result["high_risk"] == pytest.approx(
        predict(artifact, images, roi, covariates={"age": 71.5, "sex": "F"})[4], abs=1e-6
    )
    table.write_text("case_id,age,weight\ncase_0000,71.5,80\n")
    with pytest.raises(UserInputError, match=r"needs the columns case_id and \['age', 'sex'\]"):
        predict_folder(artifact, inputs, out, rois, show_progress=False, covariates_file=table)
