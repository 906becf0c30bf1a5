"""predict(), the artifact guards, safe loading and uc_predict.sh on small trained models."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import run_script
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict import get_predictor, predict
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

TINY = TrainingOptions(
    max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
)


def _train(root: Path, task_id: int, folds: list) -> TaskPaths:
    plan_and_preprocess(root, task_id, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, task_id)
    for fold in folds:
        ClassifierTrainer(paths, fold, TINY).run_training()
    return paths


@pytest.fixture(scope="module")
def roi_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("roi_model")
    generate_task(
        root, 11, "RoiCT", num_cases=10, with_roi=True, base_size=(10, 32, 32), num_test=3, extension=".mha", seed=4
    )
    return _train(root, 11, [0, 1])


@pytest.fixture(scope="module")
def noroi_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("noroi_model")
    generate_task(
        root,
        12,
        "NoRoiMR",
        num_cases=8,
        modalities=("T1", "T2"),
        with_roi=False,
        base_size=(10, 20, 20),
        num_test=2,
        seed=5,
    )
    return _train(root, 12, ["all"])


def _test_case(paths: TaskPaths, index: int, ext: str) -> tuple[list[Path], Path]:
    images = sorted((paths.raw / "imagesTs").glob(f"case_{index:04d}_*{ext}"))
    return images, paths.raw / "labelsTs" / f"case_{index:04d}{ext}"


def test_predict_contract_and_ensemble(roi_model):
    images, roi = _test_case(roi_model, 10, ".mha")
    artifact = roi_model.data_root / "trained_models"
    result = predict(artifact, images, roi)
    assert len(result) == 2 and isinstance(result[0], float) and 0 <= result[0] <= 1
    assert isinstance(result[1], list) and len(result[1]) == 3 and all(type(v) is float for v in result[1])
    assert sum(result[1]) == pytest.approx(1, abs=1e-6)
    assert json.loads(json.dumps(result)) == result
    single = [predict(artifact, images, roi, folds=[f]) for f in (0, 1)]
    assert result[0] == pytest.approx((single[0][0] + single[1][0]) / 2, abs=1e-6)
    np.testing.assert_allclose(result[1], np.mean([single[0][1], single[1][1]], axis=0), atol=1e-6)
    # any folder below trained_models down to the trainer folder works
    below = predict(roi_model.trainer_folder(), [str(p) for p in images], str(roi))
    assert below[0] == pytest.approx(result[0]) and below[1] == pytest.approx(result[1])
    tta = predict(artifact, images, roi, tta=True)
    assert len(tta[1]) == 3 and sum(tta[1]) == pytest.approx(1, abs=1e-6)


def test_models_are_loaded_once_per_artifact(roi_model, monkeypatch):
    import universalclassifier.inference.predictor as predictor_module

    artifact = roi_model.data_root / "trained_models"
    first = get_predictor(artifact)
    calls = []
    monkeypatch.setattr(predictor_module, "load_network_weights", lambda *a: calls.append(a))
    images, roi = _test_case(roi_model, 11, ".mha")
    predict(artifact, images, roi)
    predict(artifact, images, roi)
    assert get_predictor(artifact) is first and calls == []


def test_model_without_rois(noroi_model):
    images, _ = _test_case(noroi_model, 8, ".nii.gz")
    result = predict(noroi_model.data_root / "trained_models", images)
    assert isinstance(result[0], float) and len(result[1]) == 3
    assert get_predictor(noroi_model.data_root / "trained_models").fold_folders[0].name == "all"


def _raises(message: str, *args, **kwargs) -> None:
    with pytest.raises(UserInputError, match=message):
        predict(*args, **kwargs)


def test_guards(roi_model, noroi_model, tmp_path):
    artifact = roi_model.data_root / "trained_models"
    images, roi = _test_case(roi_model, 10, ".mha")
    _raises("does not exist", tmp_path / "nowhere", images, roi)
    _raises("No trained model", tmp_path, images, roi)
    _raises(r"Got 2 image file\(s\)|got 2 image file\(s\) but the model expects 1", artifact, images * 2, roi)
    _raises("not a single path", artifact, str(images[0]), roi)
    _raises("trained with ROI segmentations", artifact, images)
    no_roi_images, _ = _test_case(noroi_model, 8, ".nii.gz")
    _raises("trained without ROI segmentations", noroi_model.data_root / "trained_models", no_roi_images, roi)
    _raises("Input file .* does not exist", artifact, [tmp_path / "missing.mha"], roi)
    _raises(r"has no trained \['fold_3'\]", artifact, images, roi, folds=[3])

    # several tasks in one artifact
    both = tmp_path / "both"
    shutil.copytree(artifact, both)
    shutil.copytree(noroi_model.data_root / "trained_models", both, dirs_exist_ok=True)
    _raises("several tasks", both, images, roi)
    assert len(predict(both, images, roi, task=11)) == 2

    # geometry mismatch between image and ROI
    shifted = sitk.ReadImage(str(roi))
    shifted.SetOrigin(tuple(o + 5.0 for o in shifted.GetOrigin()))
    sitk.WriteImage(shifted, str(tmp_path / "shifted_roi.mha"))
    _raises("has origin .* one grid", artifact, images, tmp_path / "shifted_roi.mha")

    # unreadable and 2D inputs
    (tmp_path / "broken.mha").write_text("not an image")
    _raises("Cannot read image", artifact, [tmp_path / "broken.mha"], roi)
    flat = sitk.GetImageFromArray(np.zeros((20, 20), np.float32))
    sitk.WriteImage(flat, str(tmp_path / "flat.mha"))
    _raises("2D with 1 component", artifact, [tmp_path / "flat.mha"], roi)


def test_artifact_without_trained_folds(roi_model, tmp_path):
    images, roi = _test_case(roi_model, 10, ".mha")
    copy = tmp_path / "untrained"
    shutil.copytree(roi_model.data_root / "trained_models", copy)
    trainer_folder = next(copy.glob("**/plans.json")).parent
    for fold in trainer_folder.glob("fold_*"):
        (fold / "model_final_checkpoint.model").unlink()
    _raises("holds no trained fold", copy, images, roi)


def test_incompatible_format_versions(roi_model, tmp_path):
    images, roi = _test_case(roi_model, 10, ".mha")
    copy = tmp_path / "old"
    shutil.copytree(roi_model.data_root / "trained_models", copy)
    trainer_folder = next(copy.glob("**/plans.json")).parent
    plans = json.loads((trainer_folder / "plans.json").read_text())
    (trainer_folder / "plans.json").write_text(json.dumps({**plans, "format_version": 99}))
    _raises("format_version 99", copy, images, roi)
    (trainer_folder / "plans.json").write_text(json.dumps(plans))
    metadata_file = trainer_folder / "fold_0" / "model_final_checkpoint.model.json"
    metadata = json.loads(metadata_file.read_text())
    metadata_file.write_text(json.dumps({**metadata, "checkpoint_format_version": 0}))
    _raises("checkpoint format 0", copy, images, roi)


def test_prediction_never_unpickles(roi_model):
    images, roi = _test_case(roi_model, 10, ".mha")
    script = f"""
import json, pickle, _pickle
import torch, universalclassifier.inference.predict as p
def refuse(*args, **kwargs):
    raise AssertionError("generic unpickling attempted")
pickle.load = pickle.loads = pickle.Unpickler = refuse
_pickle.load = _pickle.loads = _pickle.Unpickler = refuse
artifact = {str(roi_model.data_root / 'trained_models')!r}
print(json.dumps(p.predict(artifact, {[str(i) for i in images]!r}, {str(roi)!r})))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout.strip().splitlines()[-1])) == 2


def test_import_is_light():
    code = (
        "import sys, universalclassifier; "
        "print('torch' in sys.modules, callable(universalclassifier.predict), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # predict() needs torch only when it runs the torch engine: neither the import nor the attribute loads it
    assert result.stdout.split() == ["False", "True", "False"]


def test_uc_predict_folder(roi_model, tmp_path):
    inputs, seg, out = tmp_path / "in", tmp_path / "seg", tmp_path / "out"
    shutil.copytree(roi_model.raw / "imagesTs", inputs)
    shutil.copytree(roi_model.raw / "labelsTs", seg)
    data = str(roi_model.data_root)
    result = run_script(
        "uc_predict.sh", data, "-i", str(inputs), "-s", str(seg), "-o", str(out), "-t", "11", "-f", "0", "1"
    )
    assert result.returncode == 0, result.stderr
    cases = ["case_0010", "case_0011", "case_0012"]
    for case in cases:
        content = json.loads((out / f"{case}.json").read_text())
        assert (
            content["case_id"] == case
            and isinstance(content["lesion_contrast"], float)
            and len(content["lesion_size"]) == 3
        )
    with open(out / "summary.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "case_id", "lesion_contrast_p0", "lesion_contrast_p1", "lesion_contrast_prediction",
        "lesion_contrast_prediction_name", "lesion_size_p0", "lesion_size_p1", "lesion_size_p2",
        "lesion_size_prediction", "lesion_size_prediction_name",
    ]
    assert [r[0] for r in rows[1:]] == cases

    # finished cases are skipped; a broken case is reported while the others still run
    stamp = (out / "case_0010.json").stat().st_mtime_ns
    (out / "case_0012.json").unlink()
    (inputs / "case_0011_0000.mha").write_text("broken")
    (out / "case_0011.json").unlink()
    result = run_script("uc_predict.sh", data, "-i", str(inputs), "-s", str(seg), "-o", str(out))
    assert result.returncode == 2 and "case_0011" in result.stderr
    assert (out / "case_0010.json").stat().st_mtime_ns == stamp and (out / "case_0012.json").is_file()
    result = run_script(
        "uc_predict.sh", data, "-i", str(inputs), "-s", str(seg), "-o", str(out), "--overwrite_existing"
    )
    assert (out / "case_0010.json").stat().st_mtime_ns != stamp

    result = run_script("uc_predict.sh", data, "-i", str(inputs), "-o", str(out))
    assert result.returncode == 2 and "pass the ROI folder with -s" in result.stderr
