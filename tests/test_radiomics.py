"""The radiomics reference: mirp features, the logistic-regression model, uc_radiomics and its row in uc_summarize."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import run_script
from universalclassifier.artifact import find_trainer_folder
from universalclassifier.cli import radiomics_main
from universalclassifier.dataset.image_io import Geometry, read_image, write_image
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import bootstrap_auc_difference
from universalclassifier.evaluation.graded_metrics import bootstrap_mae_difference
from universalclassifier.evaluation.reference_comparison import REFERENCE_LABEL
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.evaluation.summary_report import format_summary_table
from universalclassifier.paths import REFERENCE_FOLDER, TaskPaths
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.radiomics.model import (
    ALPHA_GRID,
    DEFAULT_ALPHA,
    ClassificationHead,
    RegressionHead,
    fit_reference,
    predict_reference,
)
from universalclassifier.synthetic import HEADS, LABEL_TYPE_HEADS, generate_task
from universalclassifier.training.splits import make_splits

needs_mirp = pytest.mark.skipif(find_spec("mirp") is None, reason="the optional dependency mirp is not installed")
HEAD_SIZES = {"lesion_contrast": 2, "lesion_size": 3}
LABELS = [ClassificationLabel.from_dict(head, "synthetic HEADS") for head in HEADS]
LABEL_TYPE_LABELS = LABELS + [
    ClassificationLabel("lesion_volume", "regression", ()),
    ClassificationLabel("contrast_strength", "nominal", ("mild", "strong")),
    ClassificationLabel("high_risk", "nominal", ("no", "yes")),
]
PREDICTION_COLUMNS = [
    "case_id", "lesion_contrast_target", "lesion_contrast_p0", "lesion_contrast_p1", "lesion_contrast_prediction",
    "lesion_contrast_prediction_name", "lesion_size_target", "lesion_size_p0", "lesion_size_p1", "lesion_size_p2",
    "lesion_size_prediction", "lesion_size_prediction_name",
]


def _snapshot(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """uc_radiomics.sh on a 30-case task whose lesion contrast is easy to see, with 2 feature workers."""
    if find_spec("mirp") is None:
        pytest.skip("the optional dependency mirp is not installed")
    root = tmp_path_factory.mktemp("radiomics")
    raw = generate_task(root, 21, "Lesions", num_cases=30, with_roi=True, base_size=(12, 24, 24), seed=3)
    before = _snapshot(raw)
    result = run_script("uc_radiomics.sh", str(root), "-t", "21", "--num_workers", "1")
    assert result.returncode == 0, result.stderr
    paths = TaskPaths.find(root, 21)
    dataset = json.loads((raw / "dataset.json").read_text())
    targets = {e["image"].split("/")[-1].removesuffix(".nii.gz"): e for e in dataset["training"]}
    return SimpleNamespace(root=root, raw=raw, paths=paths, before=before, result=result, targets=targets)


@pytest.fixture(scope="module")
def label_types_run(tmp_path_factory):
    """run_radiomics_reference on a 15-case task with a regression head, a head with unknown values and covariates."""
    if find_spec("mirp") is None:
        pytest.skip("the optional dependency mirp is not installed")
    from universalclassifier.radiomics import run_radiomics_reference

    root = tmp_path_factory.mktemp("radiomics_label_types")
    raw = generate_task(root, 22, "Types", num_cases=15, with_roi=True, base_size=(8, 20, 20), seed=4, label_types=True)
    assert [head["name"] for head in LABEL_TYPE_HEADS] == [label.name for label in LABEL_TYPE_LABELS[2:]]
    handler, package_logger = _Records(), logging.getLogger("universalclassifier")
    level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    try:
        result = run_radiomics_reference(root, 22, num_workers=1, show_progress=False)
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(level)
    dataset = json.loads((raw / "dataset.json").read_text())
    targets = {e["image"].split("/")[-1].removesuffix(".nii.gz"): e for e in dataset["training"]}
    return SimpleNamespace(
        root=root, paths=TaskPaths.find(root, 22), result=result, targets=targets, log=handler.text()
    )


class _Records(logging.Handler):
    """Collects the INFO messages of a module-scoped run (caplog is function-scoped)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def text(self) -> str:
        return "\n".join(self.messages)


# ------------------------------------------------------------------ the command
@needs_mirp
def test_command_writes_out_of_fold_predictions_on_the_training_folds(reference_run):
    paths, targets = reference_run.paths, reference_run.targets
    folder = paths.reference_folder()
    assert folder == paths.trainer_folder().parent / REFERENCE_FOLDER
    splits = json.loads(paths.splits_file.read_text())
    case_ids = sorted(targets)
    per_head = {head: [targets[c][head] for c in case_ids] for head in HEAD_SIZES}
    assert splits == make_splits(case_ids, per_head)  # the folds the deep trainer creates from the same cases

    seen = []
    for fold, split in enumerate(splits):
        validation = folder / f"fold_{fold}" / "validation"
        header, rows = _read_csv(validation / "predictions.csv")
        assert header == PREDICTION_COLUMNS
        assert [row[0] for row in rows] == split["val"]
        predictions = json.loads((validation / "predictions.json").read_text())
        for row in rows:
            case = targets[row[0]]
            assert int(row[1]) == case["lesion_contrast"] and int(row[6]) == case["lesion_size"]
            assert sum(map(float, row[2:4])) == pytest.approx(1, abs=1e-5)
            assert sum(map(float, row[7:10])) == pytest.approx(1, abs=1e-5)
            assert row[5] == ("darker", "brighter")[int(row[4])]
            entry = predictions[row[0]]["lesion_size"]
            assert entry["target"] == case["lesion_size"]
            np.testing.assert_allclose(entry["probabilities"], list(map(float, row[7:10])), atol=1e-6)
        summary = json.loads((validation / "summary.json").read_text())
        assert summary["fold"] == str(fold) and set(summary["heads"]) == set(HEAD_SIZES)
        seen += [row[0] for row in rows]
    assert sorted(seen) == case_ids  # every training case exactly once out of fold

    result = json.loads((folder / "radiomics_summary.json").read_text())
    assert result["model"] == REFERENCE_LABEL
    assert result["num_cases"] == 30 and result["folds"] == [f"fold_{k}" for k in range(5)]
    assert result["heads"]["lesion_contrast"]["auc"] > 0.8
    assert set(result["chosen_C"]["fold_0"]) == set(HEAD_SIZES)
    assert "lesion_contrast AUC" in reference_run.result.stderr
    # mirp's own logging and warnings stay out of the console
    assert reference_run.result.stdout == ""
    assert "Initialising feature computation" not in reference_run.result.stderr
    assert "Warning" not in reference_run.result.stderr


# pooled CT statistics as plan & preprocess writes them: plans without them are refused as damaged
CT_STATISTICS = {"0": {"mean": 40.0, "sd": 30.0, "median": 40.0, "min": -1000.0, "max": 400.0,
                      "percentile_00_5": -50.0, "percentile_99_5": 150.0}}


@needs_mirp
def test_regression_heads_and_unknown_values(label_types_run):
    paths, targets, result = label_types_run.paths, label_types_run.targets, label_types_run.result
    case_ids = sorted(targets)
    unknown = [c for c in case_ids if targets[c]["contrast_strength"] is None]
    assert 0 < len(unknown) < len(case_ids)
    splits = json.loads(paths.splits_file.read_text())
    per_head = {label.name: [targets[c][label.name] for c in case_ids] for label in LABEL_TYPE_LABELS}
    groups = {c: targets[c]["patient_id"] for c in case_ids}
    # the folds the deep trainer creates: regression values stratified on quantile bins, patients kept together
    assert splits == make_splits(case_ids, per_head, regression_labels=["lesion_volume"], groups=groups)

    heads = result["heads"]
    volume = heads["lesion_volume"]
    assert volume["type"] == "regression" and volume["num_cases"] == 15 and volume["num_missing"] == 0
    assert {"mae", "rmse", "r2", "pearson", "spearman"} <= set(volume) and volume["mae"] >= 0
    assert isinstance(volume["r2"], float)
    strength = heads["contrast_strength"]
    assert strength["num_missing"] == len(unknown) and strength["num_cases"] == 15 - len(unknown)
    assert "auc" in strength and "r2" not in strength
    assert set(result["chosen_alpha"]["fold_0"]) == {"lesion_volume"}
    assert result["chosen_alpha"]["fold_0"]["lesion_volume"] in ALPHA_GRID
    assert set(result["chosen_C"]["fold_0"]) == {"lesion_contrast", "lesion_size", "contrast_strength", "high_risk"}

    for fold, split in enumerate(splits):
        validation = paths.reference_folder() / f"fold_{fold}" / "validation"
        assert {p.name for p in validation.iterdir()} == {"predictions.csv", "predictions.json", "summary.json"}
        predictions = json.loads((validation / "predictions.json").read_text())
        assert list(predictions) == split["val"]
        header, rows = _read_csv(validation / "predictions.csv")
        assert "lesion_volume_prediction" in header and "contrast_strength_p1" in header
        for case_id, entry in predictions.items():
            assert entry["lesion_volume"]["target"] == targets[case_id]["lesion_volume"]
            assert isinstance(entry["lesion_volume"]["prediction"], float)
            assert entry["contrast_strength"]["target"] == targets[case_id]["contrast_strength"]
            assert sum(entry["contrast_strength"]["probabilities"]) == pytest.approx(1)  # predicted for every case
        column = header.index("contrast_strength_target")
        assert {row[0] for row in rows if row[column] == ""} == set(unknown) & set(split["val"])
        summary = json.loads((validation / "summary.json").read_text())
        assert summary["heads"]["lesion_volume"]["type"] == "regression"

    log = label_types_run.log
    assert "lesion_volume MAE" in log and "R²" in log and "alpha=" in log
    assert "the covariates ['age', 'sex'] are not used" in log
    assert "known training values)" in log  # contrast_strength: fitted on its known values only


@needs_mirp
def test_summarize_compares_regression_heads_with_the_reference(label_types_run):
    paths, targets = label_types_run.paths, label_types_run.targets
    trainer = paths.trainer_folder()
    trainer.mkdir(parents=True)
    Plans(
        task_name=paths.task_name, modalities=["CT"], normalization_schemes=["CT"], use_mask_for_norm=[False],
        intensity_properties=CT_STATISTICS, transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2],
        target_spacing=[2.0, 1.0, 1.0], image_size=[8, 20, 20], batch_size=2, do_dummy_2D_data_aug=False,
        num_roi_classes=3, uses_roi=True, classification_labels=LABEL_TYPE_LABELS, num_training_cases=15,
    ).save(trainer / "plans.json")
    rng = np.random.default_rng(1)
    deep = {}
    for fold, split in enumerate(json.loads(paths.splits_file.read_text())):
        predictions = {}
        for case_id in split["val"]:
            case = targets[case_id]
            predictions[case_id] = {
                label.name: {"target": case[label.name], "probabilities": rng.dirichlet([1, 1]).tolist()}
                for label in LABEL_TYPE_LABELS if label.num_values == 2
            }
            predictions[case_id]["lesion_size"] = {"target": case["lesion_size"], "probabilities": [0.2, 0.5, 0.3]}
            volume = case["lesion_volume"]
            predictions[case_id]["lesion_volume"] = {"target": volume, "prediction": volume + rng.normal(0, 1e-6)}
        (trainer / f"fold_{fold}" / "validation").mkdir(parents=True)
        (trainer / f"fold_{fold}" / "validation" / "predictions.json").write_text(json.dumps(predictions))
        deep.update(predictions)

    summary = summarize_cross_validation(trainer, num_resamples=50)
    reference = summary["reference"]
    assert reference["available"] and set(reference["heads"]) == {label.name for label in LABEL_TYPE_LABELS}
    volume = reference["heads"]["lesion_volume"]
    assert volume["type"] == "regression" and volume["num_cases"] == 15
    assert volume["mae"] == pytest.approx(label_types_run.result["heads"]["lesion_volume"]["mae"])
    assert volume["r2_ci_95"][0] is None or volume["r2_ci_95"][0] <= volume["r2"]
    deep_mae = float(np.mean([abs(deep[c]["lesion_volume"]["prediction"] - targets[c]["lesion_volume"]) for c in deep]))
    paired = volume["deep_minus_reference_mae"]
    assert paired["num_cases"] == 15 and paired["difference"] == pytest.approx(deep_mae - volume["mae"])
    assert paired["difference"] < 0  # the deep stand-in is almost exact
    strength = reference["heads"]["contrast_strength"]
    known = [c for c in targets if targets[c]["contrast_strength"] is not None]
    assert strength["num_cases"] == len(known) and strength["deep_minus_reference_auc"]["num_cases"] == len(known)

    report = (trainer / "cv_report.md").read_text()
    assert f"| lesion_volume | {REFERENCE_LABEL} | 15 | {volume['mae']:.3f}" in report
    assert "| lesion_volume | Deep model | 15 |" in report
    assert "MAE of the deep model minus the reference on the cases both predicted" in report
    table = format_summary_table(summary)
    assert table.count("regression head") == 2 and table.count("lesion_volume") == 2


@needs_mirp
def test_feature_table_cache_and_agreement_with_numpy(reference_run, caplog):
    from universalclassifier.radiomics import run_radiomics_reference
    from universalclassifier.radiomics.features import case_features

    paths = reference_run.paths
    header, rows = _read_csv(paths.radiomics_features_folder / "features.csv")
    assert header[0] == "case_id" and [row[0] for row in rows] == sorted(reference_run.targets)
    assert len(header) > 100 and all(name.startswith("m0_label1_") for name in header[1:])
    for family in ("stat_", "morph_", "ih_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_"):
        assert any(name.startswith(f"m0_label1_{family}") for name in header[1:]), family
    table = np.array([[float(v) for v in row[1:]] for row in rows])
    assert table.shape == (30, len(header) - 1) and np.isfinite(table).all()

    # serial extraction in this process gives what the two workers of the command cached
    image_file = reference_run.raw / "imagesTr" / "case_0004_0000.nii.gz"
    roi_file = reference_run.raw / "labelsTr" / "case_0004.nii.gz"
    features = case_features([image_file], roi_file)
    assert list(features) == header[1:]
    np.testing.assert_allclose(list(features.values()), table[4], rtol=1e-9)
    # first-order features and the voxel-count volume agree with numpy on the same voxels
    image, geometry = read_image(image_file)
    roi, _ = read_image(roi_file)
    inside = image[roi == 1]
    assert features["m0_label1_stat_mean"] == pytest.approx(inside.mean(), rel=1e-5)
    assert features["m0_label1_stat_max"] == pytest.approx(inside.max())
    assert features["m0_label1_stat_median"] == pytest.approx(np.median(inside), rel=1e-5)
    assert features["m0_label1_morph_vol_approx"] == pytest.approx(inside.size * np.prod(geometry.spacing), rel=1e-5)

    with caplog.at_level(logging.INFO):
        run_radiomics_reference(reference_run.root, 21, folds=[0], num_workers=1, show_progress=False)
    assert "Reusing the cached radiomics features of 30 case(s)" in caplog.text
    assert "Computing radiomics features" not in caplog.text


@needs_mirp
def test_summarize_reports_the_reference_beside_the_deep_model(reference_run):
    paths = reference_run.paths
    artifact = reference_run.root / "trained_models"
    # the reference folder alone is no model for predict()
    with pytest.raises(UserInputError, match="No trained model"):
        find_trainer_folder(artifact)

    trainer = paths.trainer_folder()
    trainer.mkdir(parents=True)
    Plans(
        task_name=paths.task_name, modalities=["CT"], normalization_schemes=["CT"], use_mask_for_norm=[False],
        intensity_properties=CT_STATISTICS, transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2],
        target_spacing=[2.0, 1.0, 1.0], image_size=[12, 24, 24], batch_size=2, do_dummy_2D_data_aug=False,
        num_roi_classes=2, uses_roi=True, classification_labels=LABELS, num_training_cases=30,
    ).save(trainer / "plans.json")
    rng = np.random.default_rng(0)
    splits = json.loads(paths.splits_file.read_text())
    deep = {}
    for fold, split in enumerate(splits):
        predictions = {}
        for case_id in split["val"]:
            case = reference_run.targets[case_id]
            p1 = float(np.clip(0.2 + 0.6 * case["lesion_contrast"] + rng.normal(0, 0.2), 0.01, 0.99))
            predictions[case_id] = {
                "lesion_contrast": {"target": case["lesion_contrast"], "probabilities": [1 - p1, p1]},
                "lesion_size": {"target": case["lesion_size"], "probabilities": rng.dirichlet([1, 1, 1]).tolist()},
            }
        (trainer / f"fold_{fold}" / "validation").mkdir(parents=True)
        (trainer / f"fold_{fold}" / "validation" / "predictions.json").write_text(json.dumps(predictions))
        deep.update(predictions)
    assert find_trainer_folder(artifact) == trainer  # never the RadiomicsReference sibling
    assert find_trainer_folder(artifact, task=21) == trainer

    summary = summarize_cross_validation(trainer, num_resamples=50)
    reference = summary["reference"]
    assert reference["available"] and reference["label"] == REFERENCE_LABEL
    assert reference["num_cases"] == 30 and reference["folds"] == [f"fold_{k}" for k in range(5)]
    pooled = {}
    for fold in range(5):
        fold_file = paths.reference_folder() / f"fold_{fold}" / "validation" / "predictions.json"
        pooled.update(json.loads(fold_file.read_text()))
    cases = sorted(pooled)
    y = [pooled[c]["lesion_contrast"]["target"] for c in cases]
    reference_auc = roc_auc_score(y, [pooled[c]["lesion_contrast"]["probabilities"][1] for c in cases])
    deep_auc = roc_auc_score(y, [deep[c]["lesion_contrast"]["probabilities"][1] for c in cases])
    contrast = reference["heads"]["lesion_contrast"]
    assert contrast["auc"] == pytest.approx(reference_auc)
    assert contrast["auc_ci_95"][0] <= contrast["auc"] <= contrast["auc_ci_95"][1]
    paired = contrast["deep_minus_reference_auc"]
    assert paired["num_cases"] == 30 and paired["difference"] == pytest.approx(deep_auc - reference_auc)
    assert np.asarray(reference["heads"]["lesion_size"]["confusion_matrix"]).shape == (3, 3)
    assert json.loads((trainer / "cv_summary.json").read_text())["reference"] == reference

    report = (trainer / "cv_report.md").read_text()
    assert "## Deep model vs. radiomics reference" in report
    assert f"| lesion_contrast | {REFERENCE_LABEL} | 30 | {contrast['auc']:.3f} [" in report
    assert "| lesion_contrast | Deep model | 30 |" in report
    assert REFERENCE_LABEL in format_summary_table(summary)


def test_summarize_says_how_to_get_the_reference(tmp_path):
    trainer = TaskPaths(tmp_path, "Task007_X").trainer_folder()
    trainer.mkdir(parents=True)
    Plans(
        task_name="Task007_X", modalities=["T1"], normalization_schemes=["CT"], use_mask_for_norm=[False],
        intensity_properties=CT_STATISTICS, transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0], image_size=[8, 8, 8], batch_size=2, do_dummy_2D_data_aug=False,
        num_roi_classes=2, uses_roi=False, classification_labels=LABELS[:1], num_training_cases=4,
    ).save(trainer / "plans.json")
    predictions = {
        f"case_{n}": {"lesion_contrast": {"target": n % 2, "probabilities": [0.6 - 0.2 * (n % 2), 0.4 + 0.2 * (n % 2)]}}
        for n in range(4)
    }
    (trainer / "fold_0" / "validation").mkdir(parents=True)
    (trainer / "fold_0" / "validation" / "predictions.json").write_text(json.dumps(predictions))
    summary = summarize_cross_validation(trainer, num_resamples=20)
    how_to = "uc_radiomics DATA -t Task007_X"
    assert summary["reference"] == {"available": False, "label": REFERENCE_LABEL, "how_to": how_to}
    assert "Run `uc_radiomics DATA -t Task007_X`" in (trainer / "cv_report.md").read_text()
    assert "run uc_radiomics DATA -t Task007_X" in format_summary_table(summary)

    # a reference made for other heads is left out with the reason, it does not block the deep model's summary
    stale = trainer.parent / REFERENCE_FOLDER / "fold_0" / "validation"
    stale.mkdir(parents=True)
    stale_predictions = {"case_0": {"other_head": {"target": 0, "probabilities": [1, 0]}}}
    (stale / "predictions.json").write_text(json.dumps(stale_predictions))
    summary = summarize_cross_validation(trainer, num_resamples=20)
    assert not summary["reference"]["available"] and "no target and probabilities" in summary["reference"]["problem"]


def test_cached_features_are_reused_only_while_settings_and_inputs_match(tmp_path):
    from universalclassifier.radiomics.reference import FeatureTable, _read_cached_rows, _write_features

    columns = ["m0_label1_stat_mean", "m0_label2_stat_mean"]
    table = FeatureTable(["a", "b"], columns, np.array([[1.5, np.nan], [2.0, 3.25]]))
    signatures = {"a": [["a_0000.nii.gz", 10, 1]], "b": [["b_0000.nii.gz", 10, 1]]}
    _write_features(tmp_path, table, {"settings": {"bins": 32}, "cases": signatures})
    rows = _read_cached_rows(tmp_path, {"bins": 32}, signatures)
    assert rows["b"] == {"m0_label1_stat_mean": 2.0, "m0_label2_stat_mean": 3.25}
    assert rows["a"]["m0_label1_stat_mean"] == 1.5 and np.isnan(rows["a"]["m0_label2_stat_mean"])
    changed = dict(signatures, b=[["b_0000.nii.gz", 11, 2]])  # b's image was rewritten
    assert set(_read_cached_rows(tmp_path, {"bins": 32}, changed)) == {"a"}
    assert set(_read_cached_rows(tmp_path, {"bins": 32}, {"a": signatures["a"]})) == {"a"}  # b left the task
    assert _read_cached_rows(tmp_path, {"bins": 16}, signatures) == {}  # other settings: everything recomputed


# ------------------------------------------------------------------ features of hand-made cases
def _write(array: np.ndarray, path: Path, spacing=(2.0, 1.0, 1.0)) -> Path:
    write_image(array, Geometry(array.shape, spacing, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)), path)
    return path


@needs_mirp
def test_labels_absent_labels_and_the_nonzero_fallback(tmp_path):
    from universalclassifier.radiomics.reference import compute_features, feature_table

    rng = np.random.default_rng(1)
    image = rng.normal(100, 10, (10, 16, 16)).astype(np.float32)
    two_labels = np.zeros(image.shape, np.uint8)
    two_labels[2:8, 3:13, 3:13] = 1
    two_labels[4:6, 6:10, 6:10] = 2  # a lesion (2) inside the organ (1)
    image_file = _write(image, tmp_path / "a_0000.nii.gz")
    organ_only = (two_labels > 0).astype(np.uint8)
    cases = [
        ([image_file], _write(two_labels, tmp_path / "a.nii.gz")),
        ([image_file], _write(organ_only, tmp_path / "b.nii.gz")),
    ]
    rows = compute_features(cases, num_workers=1, show_progress=False)
    assert rows[0]["m0_label2_stat_mean"] == pytest.approx(image[two_labels == 2].mean(), rel=1e-5)
    assert rows[0]["m0_label1_stat_mean"] == pytest.approx(image[two_labels == 1].mean(), rel=1e-5)  # lesion excluded
    assert rows[1]["m0_label1_stat_mean"] == pytest.approx(image[two_labels > 0].mean(), rel=1e-5)
    assert not any(name.startswith("m0_label2_") for name in rows[1])
    table = feature_table({"a": rows[0], "b": rows[1]})
    label2 = [i for i, name in enumerate(table.columns) if name.startswith("m0_label2_")]
    assert label2 and np.isnan(table.values[1, label2]).all() and np.isfinite(table.values[0, label2]).any()

    # no ROI: the filled nonzero region of any modality is label 1; all-zero images use the whole image
    body = np.zeros(image.shape, np.float32)
    body[1:9, 2:14, 2:14] = image[1:9, 2:14, 2:14]
    other = np.where(body != 0, 2 * body + 5, 0).astype(np.float32)
    files = [_write(body, tmp_path / "c_0000.nii.gz"), _write(other, tmp_path / "c_0001.nii.gz")]
    zero_files = [_write(np.zeros(image.shape, np.float32), tmp_path / f"d_000{m}.nii.gz") for m in range(2)]
    no_roi, empty = compute_features([(files, None), (zero_files, None)], num_workers=1, show_progress=False)
    assert no_roi["m1_label1_stat_mean"] == pytest.approx(other[body != 0].mean(), rel=1e-5)
    assert no_roi["m0_label1_morph_vol_approx"] == pytest.approx((body != 0).sum() * 2.0, rel=1e-5)
    assert empty["m0_label1_morph_vol_approx"] == pytest.approx(image.size * 2.0, rel=1e-5)
    assert {name.split("_")[0] for name in no_roi} == {"m0", "m1"}


@needs_mirp
def test_reference_scores_in_process(reference_run):
    from universalclassifier.radiomics import reference_scores

    raw = reference_run.raw
    cases = [
        ([raw / "imagesTr" / f"case_{n:04d}_0000.nii.gz"], raw / "labelsTr" / f"case_{n:04d}.nii.gz") for n in range(8)
    ]
    targets = {head: [reference_run.targets[f"case_{n:04d}"][head] for n in range(6)] for head in HEAD_SIZES}
    scores = reference_scores(cases[:6], targets, cases[6:], HEAD_SIZES, num_workers=2)
    assert set(scores) == set(HEAD_SIZES)
    assert scores["lesion_contrast"].shape == (2, 2) and scores["lesion_size"].shape == (2, 3)
    for probabilities in scores.values():
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


# ------------------------------------------------------------------ the model
def test_model_is_deterministic_and_handles_sparse_values():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    x = rng.normal(0, 1, (20, 6)) + y[:, None] * [2.0, 0, 0, 0, 0, 0]
    x[:, 3] = 7.0  # constant: removed
    x[::4, 1] = np.nan  # missing: imputed
    x[:, 4] = np.nan  # never observed: dropped
    sparse = np.array([0] * 9 + [1] * 10 + [2])  # value 2 has a single case: no inner cross-validation possible
    targets = {"easy": y, "sparse": sparse, "single": np.zeros(20, dtype=int)}
    sizes = {"easy": 2, "sparse": 4, "single": 3}
    first = predict_reference(fit_reference(x, targets, sizes), x)
    second = predict_reference(fit_reference(x, targets, sizes), x)
    for name in targets:
        np.testing.assert_array_equal(first[name], second[name])
        assert first[name].shape == (20, sizes[name])
        np.testing.assert_allclose(first[name].sum(axis=1), 1.0)
    assert roc_auc_score(y, first["easy"][:, 1]) > 0.9
    assert (first["sparse"][:, 3] == 0).all()  # value 3 never seen in training
    np.testing.assert_array_equal(first["single"], np.tile([1.0, 0.0, 0.0], (20, 1)))


def test_regression_head_is_a_ridge_regression_in_target_units():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (60, 5))
    x[:, 4] = 2.5  # constant: removed
    volume = 40.0 + 12.0 * x[:, 0] - 7.0 * x[:, 1]  # exact linear function of two features, in ml
    train, test = slice(0, 40), slice(40, 60)
    models = fit_reference(x[train], {"volume": volume[train]}, {}, regression_heads=["volume"])
    model = models["volume"]
    assert isinstance(model, RegressionHead) and model.alpha in ALPHA_GRID and model.num_cases == 40
    predicted = predict_reference(models, x[test])["volume"]
    assert predicted.shape == (20, 1)  # the deep model's width-1 convention for regression heads
    residual = np.sum((predicted[:, 0] - volume[test]) ** 2)
    assert 1 - residual / np.sum((volume[test] - volume[test].mean()) ** 2) > 0.99
    again = predict_reference(fit_reference(x[train], {"volume": volume[train]}, {}, regression_heads=["volume"]), x)
    np.testing.assert_array_equal(again["volume"][40:], predicted)  # deterministic

    few = fit_reference(x[:5], {"volume": volume[:5]}, {}, regression_heads=["volume"])["volume"]
    assert few.alpha == DEFAULT_ALPHA and few.num_cases == 5  # too few values for an inner cross-validation
    constant = fit_reference(x[:8], {"volume": [3.5] * 8}, {}, regression_heads=["volume"])
    assert constant["volume"].alpha is None
    np.testing.assert_array_equal(predict_reference(constant, x)["volume"], np.full((60, 1), 3.5))


def test_each_head_is_fitted_on_its_known_values_only():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (40, 3))
    x[:30:5, 2] = np.nan  # imputed with the median of the known cases
    x[30:] = 1000.0  # cases without a value: they would move every median and coefficient if they were used
    label = (x[:, 0] > 0).astype(int)
    value = 3.0 * x[:, 0] + x[:, 1]
    targets = {
        "label": [int(v) for v in label[:30]] + [None] * 10,
        "value": [float(v) for v in value[:30]] + [np.nan] * 10,  # NaN is unknown too
    }
    models = fit_reference(x, targets, {"label": 2}, regression_heads=["value"])
    classifier, regressor = models["label"], models["value"]
    assert isinstance(classifier, ClassificationHead) and isinstance(regressor, RegressionHead)
    assert classifier.num_cases == regressor.num_cases == 30
    for pipeline in (classifier.pipeline, regressor.estimator):
        np.testing.assert_allclose(pipeline.named_steps["impute"].statistics_, np.nanmedian(x[:30], axis=0))
    predictions = predict_reference(models, x)  # every case is predicted, known or not
    assert predictions["label"].shape == (40, 2) and predictions["value"].shape == (40, 1)
    assert np.isfinite(predictions["value"]).all()
    assert roc_auc_score(label[:30], predictions["label"][:30, 1]) > 0.9
    assert np.corrcoef(value[:30], predictions["value"][:30, 0])[0, 1] > 0.99

    with pytest.raises(ValueError, match="no training case with a known value"):
        fit_reference(x, {"label": [None] * 40}, {"label": 2})
    with pytest.raises(ValueError, match="integers in 0..1"):
        fit_reference(x, {"label": [0.5] * 40}, {"label": 2})


def test_paired_mae_difference():
    y = np.linspace(0.0, 10.0, 30)
    rng = np.random.default_rng(5)
    good, poor = y + rng.normal(0, 0.1, 30), y + rng.normal(0, 2.0, 30)
    difference, low, high = bootstrap_mae_difference(y, good, poor, num_resamples=200, seed=1)
    assert difference == pytest.approx(np.abs(good - y).mean() - np.abs(poor - y).mean())
    assert low <= difference <= high < 0
    assert bootstrap_mae_difference(y[:2], good[:2], poor[:2])[1:] == (None, None)  # too few cases for an interval


def test_paired_auc_difference():
    y = np.array([0, 1] * 15)
    rng = np.random.default_rng(2)
    good = np.stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1], axis=1)
    noisy = rng.dirichlet([1, 1], size=30)
    assert bootstrap_auc_difference(y, good, good, num_resamples=50) == (0.0, 0.0, 0.0)
    difference, low, high = bootstrap_auc_difference(y, good, noisy, num_resamples=100, seed=3)
    assert difference == pytest.approx(1.0 - roc_auc_score(y, noisy[:, 1]))
    assert low <= difference <= high


# ------------------------------------------------------------------ errors and the optional dependency
@needs_mirp
def test_missing_task(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert radiomics_main([str(tmp_path), "-t", "99", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: No task folder for '99'") and error.count("\n") == 1


def test_missing_mirp_is_reported_before_any_work(tmp_path, capsys, monkeypatch):
    from universalclassifier.radiomics import reference_scores

    generate_task(tmp_path, 3, "Tiny", num_cases=6, base_size=(8, 10, 10), seed=0)
    monkeypatch.setitem(sys.modules, "mirp", None)  # makes `import mirp` fail as if it were not installed
    message = "The radiomics reference needs the optional dependency mirp: pip install 'universalclassifier[radiomics]'"
    assert radiomics_main([str(tmp_path), "-t", "3"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing preprocessed, no folder written
    with pytest.raises(UserInputError, match="optional dependency mirp"):
        reference_scores([], {}, [], {})


def test_mirp_is_never_imported_by_the_package_or_predict():
    code = (
        "import sys, universalclassifier, universalclassifier.radiomics, universalclassifier.cli\n"
        "import universalclassifier.evaluation.summarize, universalclassifier.inference.predict\n"
        "print('mirp' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@needs_mirp
def test_raw_task_is_unchanged(reference_run):
    assert _snapshot(reference_run.raw) == reference_run.before
