"""Integration: uc_plan_and_preprocess.sh on generated tasks, asserting on plans, arrays and files."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import make_plans, run_script
from universalclassifier.errors import UserInputError
from universalclassifier.paths import PLANS_FILENAME, STAGE_FOLDER
from universalclassifier.planning.fingerprint import DatasetFingerprint
from universalclassifier.planning.plan_and_preprocess import FINGERPRINT_FILENAME
from universalclassifier.planning.planner import plan_target_spacing
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.preprocessing.case_properties import CaseProperties
from universalclassifier.preprocessing.preprocessor import preprocess_case
from universalclassifier.synthetic import HEADS, generate_task

PLAN_KEYS = {
    "image_size", "target_spacing", "transpose_forward", "transpose_backward", "batch_size", "do_dummy_2D_data_aug",
    "normalization_schemes", "use_mask_for_norm", "intensity_properties", "num_modalities", "modalities",
    "num_roi_classes", "uses_roi", "classification_labels", "format_version",
}


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _load_fingerprint(preprocessed: Path) -> DatasetFingerprint:
    path = preprocessed / FINGERPRINT_FILENAME
    return DatasetFingerprint.from_dict(json.loads(path.read_text()), str(path))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    # CT with ROIs, thin slabs along x (anisotropic, coarsest axis last -> transposed first)
    generate_task(
        root, 1, "CTroi", num_cases=12, with_roi=True, base_size=(36, 40, 10), spacing=(0.8, 0.8, 4.0), seed=1
    )
    # two-modality MR without ROIs, written as .mha
    generate_task(
        root,
        2,
        "MRnoroi",
        num_cases=10,
        modalities=("T1", "T2"),
        with_roi=False,
        base_size=(20, 28, 24),
        extension=".mha",
        seed=2,
    )
    return root


@pytest.fixture(scope="module")
def ct_run(data_root):
    raw = data_root / "raw" / "nnUNet_raw_data" / "Task001_CTroi"
    before = _tree_digest(raw)
    result = run_script("uc_plan_and_preprocess.sh", str(data_root), "-t", "1", "-tf", "2")
    return result, before, raw


@pytest.fixture(scope="module")
def mr_run(data_root):
    result = run_script("uc_plan_and_preprocess.sh", str(data_root), "-t", "Task002_MRnoroi", "-tf", "1")
    return result


def test_ct_task_plans(ct_run, data_root):
    result, before, raw = ct_run
    assert result.returncode == 0, result.stderr
    out = data_root / "preprocessed" / "Task001_CTroi"
    raw_plans = json.loads((out / PLANS_FILENAME).read_text())
    assert PLAN_KEYS <= set(raw_plans)
    plans = Plans.load(out / PLANS_FILENAME)
    assert plans.normalization_schemes == ["CT"] and plans.use_mask_for_norm == [False]
    assert plans.uses_roi and plans.num_roi_classes == 2 and plans.num_modalities == 1
    assert plans.transpose_forward == [2, 0, 1] and plans.transpose_backward == [1, 2, 0]
    fingerprint = _load_fingerprint(out)
    sizes = np.array([c.size_after_cropping for c in fingerprint.cases])
    spacings = np.array([c.spacing for c in fingerprint.cases])
    expected_target = plan_target_spacing(spacings, sizes)[[2, 0, 1]]
    np.testing.assert_allclose(plans.target_spacing, expected_target)
    # the default size rule: the image holds 90% of the cases per axis
    extents = np.percentile((sizes * spacings)[:, [2, 0, 1]], 90, axis=0)
    assert plans.image_size == [int(np.ceil(round(e / t, 6))) for e, t in zip(extents, expected_target, strict=True)]
    assert (plans.size_rule, plans.size_percentile) == ("percentile", 90.0)
    assert raw_plans["size_rule"] == "percentile" and "roi_margin_mm" not in raw_plans  # AUC23's value: left out
    stats = plans.intensity_properties["0"]
    assert stats["min"] <= stats["percentile_00_5"] < stats["median"] < stats["percentile_99_5"] <= stats["max"]
    assert 60 < stats["mean"] < 120  # the organ (ROI) of the synthetic CT is about 90 HU
    assert [h.name for h in plans.classification_labels] == ["lesion_contrast", "lesion_size"]
    # stored in their dataset.json form, ordinal heads with their type
    assert raw_plans["classification_labels"] == [HEADS[0], {**HEADS[1], "type": "ordinal"}]
    assert _tree_digest(raw) == before, "the raw task folder must never be modified"


def test_ct_task_arrays(ct_run, data_root):
    assert ct_run[0].returncode == 0, ct_run[0].stderr
    out = data_root / "preprocessed" / "Task001_CTroi"
    plans = Plans.load(out / PLANS_FILENAME)
    arrays = sorted((out / STAGE_FOLDER).glob("*.npy"))
    assert len(arrays) == 12
    zooms = []
    for path in arrays:
        array = np.load(path, mmap_mode="r")
        assert isinstance(array, np.memmap) and array.dtype == np.float32
        assert array.shape == (2, *plans.image_size)
        roi = np.asarray(array[-1])
        assert set(np.unique(roi).tolist()) <= {-1.0, 0.0, 1.0} and (roi == 1).any()
        properties = json.loads(path.with_suffix(".json").read_text())
        assert set(properties["classification_targets"]) == {"lesion_contrast", "lesion_size"}
        # at the target spacing; a case larger than the image on some axis is zoomed down (uniformly) to fit it
        extents = [
            s * sp / t
            for s, sp, t in zip(
                [properties["size_after_cropping"][a] for a in plans.transpose_forward],
                [properties["original_spacing"][a] for a in plans.transpose_forward],
                plans.target_spacing,
                strict=True,
            )
        ]
        zoom = properties["zoom"]
        assert zoom == pytest.approx(min(1.0, *(i / e for i, e in zip(plans.image_size, extents, strict=True))))
        assert properties["size_after_resampling"] == [
            min(i, max(1, int(round(e * zoom)))) for i, e in zip(plans.image_size, extents, strict=True)
        ]
        zooms.append(zoom)
    assert min(zooms) < 1 and sum(z == 1 for z in zooms) >= 9  # the 90th percentile: most cases are not zoomed
    # CT normalization: clipped to the fingerprint percentiles, standardized with its mean and sd
    stats = plans.intensity_properties["0"]
    image = np.load(arrays[0])[0]
    low = (stats["percentile_00_5"] - stats["mean"]) / stats["sd"]
    high = (stats["percentile_99_5"] - stats["mean"]) / stats["sd"]
    assert image.min() >= min(low, 0) - 1e-4 and image.max() <= high + 1e-4


def test_effective_dataset_json_and_no_generated_rois_with_real_rois(ct_run, data_root):
    out = data_root / "preprocessed" / "Task001_CTroi"
    effective = json.loads((out / "dataset.json").read_text())
    assert effective["labels"] == {"0": "background", "1": "organ"}
    assert all(Path(e["label"]).is_file() and "labelsTr" in e["label"] for e in effective["training"])
    assert not (out / "generated_rois").exists()


def test_mr_task_without_rois(mr_run, data_root):
    assert mr_run.returncode == 0, mr_run.stderr
    out = data_root / "preprocessed" / "Task002_MRnoroi"
    plans = Plans.load(out / PLANS_FILENAME)
    assert plans.normalization_schemes == ["zscore", "zscore"] and not plans.uses_roi
    assert plans.num_roi_classes == 2 and plans.intensity_properties == {}
    assert plans.use_mask_for_norm == [_load_fingerprint(out).median_size_reduction < 0.75] * 2
    effective = json.loads((out / "dataset.json").read_text())
    assert effective["labels"] == {"0": "background", "1": "foreground"}
    for entry in effective["training"]:
        roi_path = Path(entry["label"])
        assert roi_path.parent == out / "generated_rois"
        roi = sitk.ReadImage(str(roi_path))
        image = sitk.ReadImage(entry["image"].replace(".mha", "_0000.mha"))
        assert roi.GetSize() == image.GetSize() and (sitk.GetArrayViewFromImage(roi) == 1).all()
    arrays = sorted((out / STAGE_FOLDER).glob("*.npy"))
    assert len(arrays) == 10
    for path in arrays:
        array = np.load(path)
        assert array.shape == (3, *plans.image_size)
        properties = json.loads(path.with_suffix(".json").read_text())
        z, y, x = properties["size_after_resampling"]
        (bz, _), (by, _), (bx, _) = properties["pad_offsets"]
        inside = array[:2, bz : bz + z, by : by + y, bx : bx + x]
        # the ROI of a task without ROI files is the body: 1 inside it, -1 in the corners of its box (0 in the padding
        # and where resampling leaves neither label above one half)
        roi = array[-1, bz : bz + z, by : by + y, bx : bx + x]
        assert plans.roi_from_body and {-1.0, 1.0} <= set(np.unique(roi).tolist())
        assert (roi == 0).mean() < 0.05
        assert 0.3 < (roi == 1).mean() < 0.9  # an ellipsoidal body fills about half of its bounding box
        assert set(np.unique(array[-1]).tolist()) <= {-1.0, 0.0, 1.0}
        if not plans.use_mask_for_norm[0]:  # z-score over the whole resampled image
            np.testing.assert_allclose(inside.mean(axis=(1, 2, 3)), 0, atol=1e-3)
            np.testing.assert_allclose(inside.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_predict_time_preprocessing_matches_stored_arrays(mr_run, data_root):
    assert mr_run.returncode == 0, mr_run.stderr
    out = data_root / "preprocessed" / "Task002_MRnoroi"
    plans = Plans.load(out / PLANS_FILENAME)
    raw = data_root / "raw" / "nnUNet_raw_data" / "Task002_MRnoroi" / "imagesTr"
    array, properties = preprocess_case(
        "case_0003", [raw / "case_0003_0000.mha", raw / "case_0003_0001.mha"], None, plans
    )
    np.testing.assert_array_equal(array, np.load(out / STAGE_FOLDER / "case_0003.npy"))
    stored = json.loads((out / STAGE_FOLDER / "case_0003.json").read_text())
    assert properties.classification_targets is None and "classification_targets" not in properties.to_dict()
    assert properties == replace(CaseProperties.from_dict(stored, "stored"), classification_targets=None)


def test_fingerprint_and_case_properties_round_trip_byte_for_byte(ct_run, data_root):
    assert ct_run[0].returncode == 0, ct_run[0].stderr
    out = data_root / "preprocessed" / "Task001_CTroi"
    path = out / FINGERPRINT_FILENAME
    fingerprint = DatasetFingerprint.from_dict(json.loads(path.read_text()), str(path))
    assert json.dumps(fingerprint.to_dict(), indent=2) + "\n" == path.read_text()  # same keys, order and values
    assert fingerprint.modalities == ["CT"] and fingerprint.num_cases == len(fingerprint.cases) == 12
    for case_file in sorted((out / STAGE_FOLDER).glob("case_*.json")):
        properties = CaseProperties.from_dict(json.loads(case_file.read_text()), str(case_file))
        assert json.dumps(properties.to_dict(), indent=2) + "\n" == case_file.read_text()
        assert properties.case_id == case_file.stem
        assert set(properties.classification_targets or {}) == {"lesion_contrast", "lesion_size"}


def test_malformed_fingerprint_and_case_properties_are_user_errors_naming_the_file(ct_run, data_root):
    out = data_root / "preprocessed" / "Task001_CTroi"
    path = out / FINGERPRINT_FILENAME
    raw = json.loads(path.read_text())
    del raw["cases"][1]["spacing"]
    with pytest.raises(UserInputError, match=re.escape(f"{path}: cases[1] lacks the key(s) ['spacing']")):
        DatasetFingerprint.from_dict(raw, str(path))
    case_file = out / STAGE_FOLDER / "case_0000.json"
    raw = {**json.loads(case_file.read_text()), "classification_targets": [0, 1]}
    del raw["pad_offsets"]
    with pytest.raises(UserInputError, match=re.escape(f"{case_file} lacks the key(s) ['pad_offsets']")):
        CaseProperties.from_dict(raw, str(case_file))
    raw["pad_offsets"] = [[0, 0]] * 3
    message = (
        f"{case_file}: 'classification_targets' and 'covariates' must be objects, 'group' a string and 'zoom' a number "
        "in (0, 1]"
    )
    with pytest.raises(UserInputError, match=re.escape(message)):
        CaseProperties.from_dict(raw, str(case_file))
    raw["classification_targets"], raw["group"] = {}, 7
    with pytest.raises(UserInputError, match=re.escape(message)):
        CaseProperties.from_dict(raw, str(case_file))
    raw["group"], raw["zoom"] = "P1", 0.0
    with pytest.raises(UserInputError, match=re.escape(message)):
        CaseProperties.from_dict(raw, str(case_file))
    del raw["zoom"]  # written before zooming existed: never zoomed
    assert CaseProperties.from_dict(raw, str(case_file)).zoom == 1.0


def test_rerun_keeps_user_splits_and_plan_only_skips_arrays(mr_run, data_root):
    assert mr_run.returncode == 0, mr_run.stderr
    out = data_root / "preprocessed" / "Task002_MRnoroi"
    splits = out / "splits_final.json"
    splits.write_text('[{"train": ["case_0000"], "val": ["case_0001"]}]')
    stale = out / STAGE_FOLDER / "stale_case.npy"
    stale.write_bytes(b"old")
    result = run_script(
        "uc_plan_and_preprocess.sh", str(data_root), "-t", "2", "-tf", "2", "--verify_dataset_integrity", "-tl", "4"
    )
    assert result.returncode == 0, result.stderr
    assert splits.read_text() == '[{"train": ["case_0000"], "val": ["case_0001"]}]'
    assert not stale.exists() and len(list((out / STAGE_FOLDER).glob("*.npy"))) == 10

    root = data_root.parent / "plan_only"
    generate_task(root, 3, "PlanOnly", num_cases=6, base_size=(10, 12, 12))
    result = run_script("uc_plan_and_preprocess.sh", str(root), "-t", "3", "-no_pp")
    assert result.returncode == 0, result.stderr
    assert (root / "preprocessed" / "Task003_PlanOnly" / PLANS_FILENAME).is_file()
    assert not (root / "preprocessed" / "Task003_PlanOnly" / STAGE_FOLDER).exists()


def test_user_errors_exit_with_one_line(tmp_path):
    result = run_script("uc_plan_and_preprocess.sh", str(tmp_path), "-t", "7")
    assert result.returncode == 2
    assert result.stderr.startswith("error: No task folder for '7'") and "Traceback" not in result.stderr
    generate_task(tmp_path, 7, "Broken", num_cases=6, base_size=(8, 10, 10))
    (tmp_path / "raw" / "nnUNet_raw_data" / "Task007_Broken" / "imagesTr" / "case_0001_0000.nii.gz").unlink()
    result = run_script("uc_plan_and_preprocess.sh", str(tmp_path), "-t", "7")
    assert result.returncode == 2 and "case case_0001: missing modality 0 (CT)" in result.stderr
    assert not (tmp_path / "preprocessed" / "Task007_Broken" / STAGE_FOLDER).exists()


def test_task_in_the_short_raw_layout(tmp_path):
    generate_task(tmp_path, 4, "Short", num_cases=6, base_size=(10, 12, 12))
    (tmp_path / "raw" / "nnUNet_raw_data" / "Task004_Short").rename(tmp_path / "raw" / "Task004_Short")
    result = run_script("uc_plan_and_preprocess.sh", str(tmp_path), "-t", "4", "-tf", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "preprocessed" / "Task004_Short" / STAGE_FOLDER).glob("*.npy"))) == 6


def test_plans_store_labels_as_records_in_the_dataset_json_form(tmp_path):
    plans = make_plans(1, (8, 8, 8))
    path = tmp_path / PLANS_FILENAME
    plans.save(path)
    raw = json.loads(path.read_text())
    assert raw["classification_labels"] == [
        {"name": "malignant", "ordinal": False, "values": {"0": "no", "1": "yes"}},
        {"name": "grade", "ordinal": True, "values": {"0": "1", "1": "2", "2": "3"}, "type": "ordinal"},
    ]
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    assert plans.content_hash() == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    loaded = Plans.load(path)
    assert loaded == plans and loaded.content_hash() == plans.content_hash()
    assert loaded.classification_labels[1] == ClassificationLabel(name="grade", type="ordinal", values=("1", "2", "3"))
    assert loaded.head_names == ["malignant", "grade"] and loaded.head_sizes == [2, 3]


@pytest.mark.parametrize(
    "entry",
    [
        "grade",
        {"name": "grade", "values": {"0": "low", "1": "high"}},
        {"name": "grade", "ordinal": True, "values": {"0": "low", "2": "high"}},
        {"name": "grade", "ordinal": True, "values": ["low", "high"]},
        {"name": 3, "ordinal": True, "values": {"0": "low", "1": "high"}},
    ],
)
def test_malformed_label_in_plans_is_a_user_error(tmp_path, entry):
    path = tmp_path / PLANS_FILENAME
    make_plans(1, (8, 8, 8)).save(path)
    raw = json.loads(path.read_text())
    raw["classification_labels"][1] = entry
    path.write_text(json.dumps(raw))
    with pytest.raises(UserInputError, match=re.escape(f"{path}: classification_labels[1]")):
        Plans.load(path)


def test_auc23_size_rule_and_roi_margin_in_mm_from_the_command_line(tmp_path):
    generate_task(tmp_path, 3, "Margins", num_cases=8, with_roi=True, base_size=(30, 34, 12), seed=3)
    result = run_script(
        "uc_plan_and_preprocess.sh", str(tmp_path), "-t", "3", "-tf", "1", "--size_rule", "max", "--roi_margin_mm", "4"
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "preprocessed" / "Task003_Margins"
    plans = Plans.load(out / PLANS_FILENAME)
    assert (plans.size_rule, plans.size_percentile, plans.roi_margin_mm) == ("max", 100.0, 4.0)
    fingerprint = _load_fingerprint(out)
    sizes = np.array([c.size_after_cropping for c in fingerprint.cases], dtype=float)
    spacings = np.array([c.spacing for c in fingerprint.cases])
    forward = plans.transpose_forward
    extents = (sizes * spacings)[:, forward].max(axis=0)
    assert plans.image_size == [
        int(np.ceil(round(e / t, 6))) for e, t in zip(extents, plans.target_spacing, strict=True)
    ]
    for path in (out / STAGE_FOLDER).glob("*.npy"):
        properties = json.loads(path.with_suffix(".json").read_text())
        assert properties["zoom"] == 1.0  # the max rule never zooms
        # the ROI box grew by 4 mm per side on top of 5%: at least ceil(4 / spacing) voxels more than the ROI itself
        roi_box = properties["roi_bbox_in_nonzero_crop"]
        assert all(stop - start >= 2 * np.ceil(4 / s) for (start, stop), s in
                   zip(roi_box, properties["original_spacing"], strict=True))
    refused = run_script("uc_plan_and_preprocess.sh", str(tmp_path), "-t", "3", "--size_rule", "max",
                         "--size_percentile", "80")
    assert refused.returncode != 0 and "--size_percentile applies to --size_rule percentile only" in refused.stderr


def test_plans_from_before_the_size_rule_load_as_the_auc23_planning_with_their_hash():
    legacy = make_plans(1, (8, 12, 12))  # the AUC23 planning: every planning field at its old value
    written = legacy.to_dict()
    assert not {"size_rule", "size_percentile", "roi_margin_fraction", "roi_margin_mm", "roi_from_body"} & set(written)
    loaded = Plans.from_dict(written)
    assert (loaded.size_rule, loaded.size_percentile, loaded.roi_margin.fraction, loaded.roi_margin.mm) == (
        "max", 100.0, 0.05, 0.0
    )
    assert loaded.content_hash() == legacy.content_hash()
    new = replace(legacy, size_rule="percentile", size_percentile=90.0, roi_margin_mm=3.0)
    assert Plans.from_dict(new.to_dict()) == new and new.content_hash() != legacy.content_hash()
    for bad in ({"size_rule": "median"}, {"size_percentile": 0}, {"roi_margin_mm": "5"}):
        with pytest.raises(UserInputError, match="size_rule must be one of"):
            Plans.from_dict({**new.to_dict(), **bad}, "plans.json")


def test_without_rois_the_whole_crop_is_the_roi_with_no_body_roi(tmp_path):
    generate_task(tmp_path, 4, "NoBody", num_cases=6, with_roi=False, base_size=(16, 20, 20), seed=4)
    result = run_script("uc_plan_and_preprocess.sh", str(tmp_path), "-t", "4", "-tf", "1", "--no_body_roi")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "preprocessed" / "Task004_NoBody"
    raw_plans = json.loads((out / PLANS_FILENAME).read_text())
    assert "roi_from_body" not in raw_plans and not Plans.load(out / PLANS_FILENAME).roi_from_body  # AUC23's ROI
    for path in (out / STAGE_FOLDER).glob("*.npy"):
        values = set(np.unique(np.load(path)[-1]).tolist())
        assert 1.0 in values and values <= {0.0, 1.0}  # 1 in the whole crop (no -1 outside the body), 0 in the padding
