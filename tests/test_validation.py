"""Input validation of raw task folders (README, "Errors and how to fix them"): each test breaks a tiny synthetic task
in one way."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import assert_in, edit_json, entry, load_json, make_task, validate, validation_error
from universalclassifier.dataset.validation import ValidatedTask
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.preprocessing.preprocessor import load_case

VALIDATION_LOGGER = "universalclassifier.dataset.validation"


# --------------------------------------------------------------------------------------------------- helpers


def read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def write_image(
    path: Path,
    array: np.ndarray,
    spacing: tuple[float, ...] | None = None,
    origin: tuple[float, ...] | None = None,
    direction: tuple[float, ...] | None = None,
) -> None:
    """Write an array (z, y, x) with SimpleITK; spacing, origin and direction in SimpleITK (x, y, z) order."""
    image = sitk.GetImageFromArray(array)
    if spacing is not None:
        image.SetSpacing(tuple(float(s) for s in spacing))
    if origin is not None:
        image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    sitk.WriteImage(image, str(path), True)


def rewrite_like(
    path: Path,
    reference: Path,
    array: np.ndarray | None = None,
    spacing_factor: float = 1.0,
    origin_shift: float = 0.0,
    direction: tuple[float, ...] | None = None,
) -> None:
    """(Re)write `path` on the grid of `reference`, optionally with another array, scaled spacing or shifted origin."""
    ref = read(reference)
    if array is None:
        array = sitk.GetArrayFromImage(read(path))
    write_image(
        path,
        array,
        spacing=[s * spacing_factor for s in ref.GetSpacing()],
        origin=[o + origin_shift for o in ref.GetOrigin()],
        direction=direction if direction is not None else ref.GetDirection(),
    )


def snapshot(folder: Path) -> dict[str, int]:
    """Every path below `folder` (files and directories) with its modification time in ns."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------------------------------ missing files


def test_missing_modality_file_single_modality(tmp_path):
    task = make_task(tmp_path)
    (task / "imagesTr" / "case_0002_0000.nii.gz").unlink()
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        str(error),
        "case case_0002",
        "missing modality 0 (CT)",
        "imagesTr/case_0002_0000.nii.gz",
        "add it or remove the case from 'training'",
    )


def test_missing_second_modality_file(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"))
    (task / "imagesTr" / "case_0003_0001.nii.gz").unlink()
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "case case_0003", "missing modality 1 (T2)", "case_0003_0001.nii.gz", "add it")
    assert "case_0003_0000" not in str(error)


def test_missing_roi_file(tmp_path):
    task = make_task(tmp_path)
    (task / "labelsTr" / "case_0001.nii.gz").unlink()
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0001",
        "ROI file ./labelsTr/case_0001.nii.gz",
        "does not exist",
        "add the segmentation or fix the path",
    )


def test_unreadable_image_file(tmp_path):
    task = make_task(tmp_path)
    (task / "imagesTr" / "case_0005_0000.nii.gz").write_bytes(b"this is not an image")
    error = validation_error(task)
    assert_in(str(error), "case case_0005", "case_0005_0000.nii.gz", "Cannot read image", "valid image file")


# -------------------------------------------------------------------------------------- ROI all-or-nothing


def test_label_entry_missing_for_some_cases(tmp_path):
    task = make_task(tmp_path)

    def drop_some(d):
        del entry(d, "case_0001")["label"]
        del entry(d, "case_0004")["label"]

    edit_json(task, drop_some)
    error = validation_error(task)
    assert_in(
        str(error),
        "all-or-nothing",
        "4 case(s) have a 'label' entry but 2 do not",
        "case_0001, case_0004",
        "add ROI files for those cases or remove all 'label' entries and 'labels'",
    )


def test_labels_without_any_label_entry(tmp_path):
    task = make_task(tmp_path)

    def drop_all(d):
        for item in d["training"]:
            del item["label"]

    edit_json(task, drop_all)
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "sets 'labels'",
        "no training case has a 'label' entry",
        "6 ROI files exist in labelsTr",
        "add a 'label' entry for each case",
        "remove 'labels'",
    )


def test_labels_without_label_entries_or_roi_files(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: [item.pop("label") for item in d["training"]])
    shutil.rmtree(task / "labelsTr")
    error = validation_error(task)
    assert_in(str(error), "sets 'labels'", "remove 'labels'")
    assert "ROI files exist in labelsTr" not in str(error)


def test_label_entries_without_labels_map(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.pop("labels"))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "6 training case(s) have a 'label' (ROI) entry",
        "no 'labels' map",
        "add 'labels'",
        "or remove the 'label' entries",
    )


def test_roi_files_on_disk_but_no_labels_nor_label_entries(tmp_path):
    task = make_task(tmp_path)

    def drop_rois(d):
        d.pop("labels")
        for item in d["training"]:
            del item["label"]

    edit_json(task, drop_rois)
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "labelsTr holds ROI files for 6 case(s)",
        "case_0000",
        "neither 'labels' nor 'label' entries",
        "add both",
        "move labelsTr out of the task",
    )


# ----------------------------------------------------------------------------------- classification values


@pytest.mark.parametrize("bad_value", [7, -1, "1", 1.5, True])
def test_value_not_among_values(tmp_path, bad_value):
    task = make_task(tmp_path)
    edit_json(task, lambda d: entry(d, "case_0002").__setitem__("lesion_size", bad_value))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0002",
        f"'lesion_size' = {bad_value!r}",
        "not one of the label's values [0, 1, 2]",
        "use an integer key of its 'values'",
    )


def test_a_case_without_any_known_label_is_refused(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: entry(d, "case_0003").pop("lesion_contrast"))
    validate(task)  # one unknown value is allowed (a missing label)
    edit_json(task, lambda d: entry(d, "case_0003").__setitem__("lesion_size", None))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0003",
        "no value for any classification label (['lesion_contrast', 'lesion_size'])",
        "needs at least one known value",
    )


def test_head_with_a_single_occurring_value(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: [item.__setitem__("lesion_contrast", 0) for item in d["training"]])
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "classification label 'lesion_contrast'",
        "only value(s) [0] occur in training",
        "at least two different values",
    )


def test_values_keys_not_consecutive(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["classification_labels"][0].__setitem__("values", {"0": "darker", "2": "brighter"}))
    error = validation_error(task)
    assert_in(
        str(error),
        "classification label 'lesion_contrast' 'values'",
        "['0', '2'] are not consecutive from 0",
        "renumber them as ['0', '1']",
    )


def test_values_keys_not_integers(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["classification_labels"][1].__setitem__("values", {"small": 0, "large": 1}))
    error = validation_error(task)
    assert_in(str(error), "'lesion_size' 'values'", "non-integer keys", 'use "0", "1", ... as keys')


def test_values_with_a_single_entry(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["classification_labels"][0].__setitem__("values", {"0": "only"}))
    error = validation_error(task)
    assert_in(str(error), "'lesion_contrast' 'values' must be an object with at least 2 entries")


def test_modality_keys_not_consecutive(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.__setitem__("modality", {"1": "CT"}))
    error = validation_error(task)
    assert_in(str(error), "'modality' keys ['1'] are not consecutive from 0", "renumber them as ['0']")


def test_duplicate_case(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["training"].append(dict(entry(d, "case_0001"))))
    error = validation_error(task)
    assert_in(str(error), "case case_0001 appears more than once in 'training'", "keep one entry per case")


# --------------------------------------------------------------------------------------------- geometry


def test_roi_size_mismatch(tmp_path):
    task = make_task(tmp_path)
    image_file = task / "imagesTr" / "case_0001_0000.nii.gz"
    roi_file = task / "labelsTr" / "case_0001.nii.gz"
    roi = sitk.GetArrayFromImage(read(roi_file))
    bigger = np.zeros((roi.shape[0], roi.shape[1], roi.shape[2] + 2), dtype=roi.dtype)
    bigger[..., : roi.shape[2]] = roi
    rewrite_like(roi_file, image_file, array=bigger)
    error = validation_error(task)
    assert len(error.problems) == 1
    z, y, x = roi.shape
    assert_in(
        error.problems[0],
        "case case_0001",
        f"case_0001.nii.gz has size [{z}, {y}, {x + 2}] (z, y, x) but the first image has [{z}, {y}, {x}]",
        "(case_0001_0000.nii.gz)",
        "resample it onto the same grid",
    )


def test_modality_size_mismatch(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"), with_roi=False)
    first = task / "imagesTr" / "case_0004_0000.nii.gz"
    second = task / "imagesTr" / "case_0004_0001.nii.gz"
    array = sitk.GetArrayFromImage(read(second))
    rewrite_like(second, first, array=array[:-1])
    error = validation_error(task)
    assert_in(str(error), "case case_0004", "case_0004_0001.nii.gz has size", "resample")


def test_roi_spacing_mismatch(tmp_path):
    task = make_task(tmp_path)
    rewrite_like(
        task / "labelsTr" / "case_0002.nii.gz", task / "imagesTr" / "case_0002_0000.nii.gz", spacing_factor=1.01
    )
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0002",
        "case_0002.nii.gz has spacing",
        "but the first image has",
        "(case_0002_0000.nii.gz)",
        "resample it onto the same grid",
    )


def test_second_modality_origin_mismatch(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"))
    rewrite_like(
        task / "imagesTr" / "case_0002_0001.nii.gz", task / "imagesTr" / "case_0002_0000.nii.gz", origin_shift=0.5
    )
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0002",
        "case_0002_0001.nii.gz has origin",
        "(case_0002_0000.nii.gz)",
        "resample it onto the same grid",
    )


def test_roi_direction_mismatch(tmp_path):
    task = make_task(tmp_path)
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    rewrite_like(task / "labelsTr" / "case_0003.nii.gz", task / "imagesTr" / "case_0003_0000.nii.gz", direction=flipped)
    error = validation_error(task)
    assert_in(str(error), "case case_0003", "case_0003.nii.gz has direction", "resample")


def test_geometry_differences_within_tolerance_pass(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"))
    # relative spacing difference 4e-4 and absolute origin difference 4e-4 mm: both within the 1e-3 tolerance
    rewrite_like(
        task / "labelsTr" / "case_0001.nii.gz", task / "imagesTr" / "case_0001_0000.nii.gz", spacing_factor=1 + 4e-4
    )
    rewrite_like(
        task / "imagesTr" / "case_0002_0001.nii.gz", task / "imagesTr" / "case_0002_0000.nii.gz", origin_shift=4e-4
    )
    result = validate(task)
    assert len(result.cases) == 6


@pytest.mark.parametrize("spacing_factor, origin_shift", [(1 + 2e-3, 0.0), (1.0, 2e-3 * 60)])
def test_geometry_differences_just_beyond_tolerance_fail(tmp_path, spacing_factor, origin_shift):
    task = make_task(tmp_path)
    roi_file = task / "labelsTr" / "case_0001.nii.gz"
    rewrite_like(
        roi_file, task / "imagesTr" / "case_0001_0000.nii.gz", spacing_factor=spacing_factor, origin_shift=origin_shift
    )
    error = validation_error(task)
    assert_in(str(error), "case case_0001", "spacing" if spacing_factor != 1.0 else "origin", "resample")


def test_2d_modality_file(tmp_path):
    task = make_task(tmp_path)
    path = task / "imagesTr" / "case_0001_0000.nii.gz"
    write_image(path, np.zeros((12, 12), dtype=np.float32))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "case case_0001", "case_0001_0000.nii.gz is a 2D image", "must be 3D")


def test_4d_modality_file(tmp_path):
    task = make_task(tmp_path)
    path = task / "imagesTr" / "case_0004_0000.nii.gz"
    volume = sitk.GetImageFromArray(np.zeros((8, 12, 12), dtype=np.float32))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(path))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0004",
        "case_0004_0000.nii.gz is a 4D image",
        "must be 3D",
        "store each modality as its own 3D file",
    )


# ------------------------------------------------------------------------------------------- ROI content


def test_roi_value_not_in_labels(tmp_path):
    task = make_task(tmp_path)
    roi_file = task / "labelsTr" / "case_0003.nii.gz"
    roi = sitk.GetArrayFromImage(read(roi_file))
    roi[0, 0, 0] = 5
    rewrite_like(roi_file, task / "imagesTr" / "case_0003_0000.nii.gz", array=roi)
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(
        error.problems[0],
        "case case_0003",
        "ROI case_0003.nii.gz holds values [5]",
        "not in dataset.json 'labels' [0, 1]",
        "add them to 'labels' or fix the segmentation",
    )


def test_roi_non_integer_values(tmp_path):
    task = make_task(tmp_path)
    roi_file = task / "labelsTr" / "case_0002.nii.gz"
    roi = sitk.GetArrayFromImage(read(roi_file)).astype(np.float32)
    roi[0, 0, 0] = 0.5
    rewrite_like(roi_file, task / "imagesTr" / "case_0002_0000.nii.gz", array=roi)
    error = validation_error(task)
    assert_in(str(error), "case case_0002", "ROI case_0002.nii.gz holds non-integer values [0.5]", "integer label map")


def test_multi_component_modality_file(tmp_path):
    task = make_task(tmp_path)
    path = task / "imagesTr" / "case_0001_0000.nii.gz"
    reference = read(path)
    vector = sitk.GetImageFromArray(np.zeros((*sitk.GetArrayFromImage(reference).shape, 3), np.float32), isVector=True)
    vector.CopyInformation(reference)
    sitk.WriteImage(vector, str(path))
    error = validation_error(task)
    assert_in(str(error), "case case_0001", "case_0001_0000.nii.gz", "3 components", "single-channel")


def test_roi_with_infinite_value(tmp_path):
    task = make_task(tmp_path, extension=".mha")  # NIfTI round trips in ITK lose inf
    roi_file = task / "labelsTr" / "case_0001.mha"
    roi = sitk.GetArrayFromImage(read(roi_file)).astype(np.float32)
    roi[0, 0, 0] = np.inf
    rewrite_like(roi_file, roi_file, array=roi)
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "case case_0001", "case_0001.mha", "inf")
    assert "9223372036854775808" not in error.problems[0]


# ------------------------------------------------------------------------------------ malformed dataset.json


def test_dataset_json_invalid(tmp_path):
    task = make_task(tmp_path)
    (task / "dataset.json").write_text('{"modality": {"0": "CT"},')
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "dataset.json is not valid JSON", "fix its syntax")


def test_dataset_json_missing_file(tmp_path):
    task = make_task(tmp_path)
    (task / "dataset.json").unlink()
    error = validation_error(task)
    assert_in(str(error), "dataset.json does not exist", "needs a dataset.json")


def test_dataset_json_not_an_object(tmp_path):
    task = make_task(tmp_path)
    (task / "dataset.json").write_text("[1, 2]")
    error = validation_error(task)
    assert_in(str(error), "must hold a JSON object")


@pytest.mark.parametrize("key", ["modality", "classification_labels", "training"])
def test_dataset_json_missing_required_key(tmp_path, key):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.pop(key))
    error = validation_error(task)
    assert len(error.problems) == 1
    assert_in(error.problems[0], f"dataset.json is missing the key(s) ['{key}']", "add them")


def test_dataset_json_empty_training(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.__setitem__("training", []))
    error = validation_error(task)
    assert_in(str(error), "'training' must be a non-empty list of cases")


def test_training_entry_without_image(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["training"][2].pop("image"))
    error = validation_error(task)
    assert_in(str(error), "training[2] needs an 'image' path")


# ------------------------------------------------------------------------------- several problems at once


def test_all_problems_reported_in_one_error(tmp_path):
    task = make_task(tmp_path)
    (task / "imagesTr" / "case_0002_0000.nii.gz").unlink()
    edit_json(task, lambda d: entry(d, "case_0004").__setitem__("lesion_size", 7))
    roi_file = task / "labelsTr" / "case_0005.nii.gz"
    roi = sitk.GetArrayFromImage(read(roi_file))
    roi[0, 0, 0] = 5
    rewrite_like(roi_file, task / "imagesTr" / "case_0005_0000.nii.gz", array=roi)
    error = validation_error(task)
    assert len(error.problems) >= 3
    message = str(error)
    assert_in(message, f"has {len(error.problems)} problem(s)", "fix them and run again")
    assert_in(
        message, "case case_0002", "case_0002_0000.nii.gz", "case case_0004", "'lesion_size' = 7", "case case_0005"
    )
    # one problem per line, each naming its own case
    assert sum(p.startswith("case case_0002") for p in error.problems) == 1
    assert sum(p.startswith("case case_0004") for p in error.problems) == 1
    assert sum(p.startswith("case case_0005") for p in error.problems) == 1


def test_parallel_validation_reports_the_same_problems(tmp_path):
    task = make_task(tmp_path)
    (task / "imagesTr" / "case_0002_0000.nii.gz").unlink()
    rewrite_like(
        task / "labelsTr" / "case_0003.nii.gz", task / "imagesTr" / "case_0003_0000.nii.gz", spacing_factor=1.1
    )
    serial = validation_error(task)
    with pytest.raises(TaskValidationError) as info:
        validate(task, num_workers=2)
    assert info.value.problems == serial.problems


def test_task_validation_error_is_a_user_input_error():
    assert issubclass(TaskValidationError, UserInputError)


# --------------------------------------------------------------------------------------------- warnings


def test_roi_without_foreground_warns(tmp_path, caplog):
    task = make_task(tmp_path)
    roi_file = task / "labelsTr" / "case_0004.nii.gz"
    empty = np.zeros_like(sitk.GetArrayFromImage(read(roi_file)))
    rewrite_like(roi_file, task / "imagesTr" / "case_0004_0000.nii.gz", array=empty)
    with caplog.at_level(logging.WARNING, logger=VALIDATION_LOGGER):
        result = validate(task)
    assert len(result.cases) == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "case case_0004" in w and "case_0004.nii.gz has no foreground" in w and "nonzero crop" in w for w in warnings
    ), warnings


def test_stray_image_file_warns(tmp_path, caplog):
    task = make_task(tmp_path)
    shutil.copy(task / "imagesTr" / "case_0000_0000.nii.gz", task / "imagesTr" / "case_0099_0000.nii.gz")
    with caplog.at_level(logging.WARNING, logger=VALIDATION_LOGGER):
        result = validate(task)
    assert [c.case_id for c in result.cases] == [f"case_{i:04d}" for i in range(6)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("case_0099_0000.nii.gz" in w and "not listed in dataset.json" in w for w in warnings), warnings


def test_num_training_mismatch_warns(tmp_path, caplog):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.__setitem__("numTraining", 10))
    with caplog.at_level(logging.WARNING, logger=VALIDATION_LOGGER):
        result = validate(task)
    assert len(result.cases) == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("numTraining=10" in w and "6 training cases" in w for w in warnings), warnings


def test_clean_task_logs_no_warning(tmp_path, caplog):
    task = make_task(tmp_path)
    with caplog.at_level(logging.WARNING):
        validate(task)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -------------------------------------------------------------------------------------------- NaN voxels


def test_nan_voxels_pass_validation_and_are_zeroed_on_load(tmp_path, caplog):
    # NIfTI round trips in ITK lose NaN, so this task is written as .mha
    task = make_task(tmp_path, extension=".mha")
    image_file = task / "imagesTr" / "case_0001_0000.mha"
    array = sitk.GetArrayFromImage(read(image_file)).astype(np.float32)
    array[0, 0, 0] = np.nan
    array[1, 2, 3] = np.nan
    array[2, 3, 4] = np.inf
    rewrite_like(image_file, image_file, array=array)
    assert np.isnan(sitk.GetArrayFromImage(read(image_file))).sum() == 2

    result = validate(task)
    case = next(c for c in result.cases if c.case_id == "case_0001")
    with caplog.at_level(logging.WARNING):
        data, roi, _ = load_case(case.case_id, case.images, case.roi)
    assert data.shape == (1, *array.shape)
    assert np.isfinite(data).all()
    assert data[0, 0, 0, 0] == 0 and data[0, 1, 2, 3] == 0 and data[0, 2, 3, 4] == 0
    finite = np.isfinite(array)
    np.testing.assert_array_equal(data[0][finite], array[finite])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("case_0001" in w and "NaN" in w and "replaced by 0" in w for w in warnings), warnings


# ------------------------------------------------------------------------------------------ valid tasks


def test_valid_task_with_roi(tmp_path):
    task = make_task(tmp_path)
    dataset = load_json(task)
    result = validate(task)
    assert isinstance(result, ValidatedTask)
    assert result.folder == task
    assert result.uses_roi is True
    assert len(result.cases) == 6
    assert result.description.modalities == ("CT",)
    assert [h.name for h in result.description.classification_labels] == ["lesion_contrast", "lesion_size"]
    assert result.description.roi_labels == {0: "background", 1: "organ"}
    for case, item in zip(result.cases, dataset["training"], strict=True):
        assert case.images == (task / "imagesTr" / f"{case.case_id}_0000.nii.gz",)
        assert case.roi == task / "labelsTr" / f"{case.case_id}.nii.gz"
        assert case.targets == {"lesion_contrast": item["lesion_contrast"], "lesion_size": item["lesion_size"]}


def test_valid_two_modality_task_without_roi(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"), with_roi=False, extension=".mha")
    result = validate(task)
    assert result.uses_roi is False
    assert result.description.roi_labels is None
    assert [c.case_id for c in result.cases] == [f"case_{i:04d}" for i in range(6)]
    for case in result.cases:
        assert case.roi is None
        assert case.images == (
            task / "imagesTr" / f"{case.case_id}_0000.mha",
            task / "imagesTr" / f"{case.case_id}_0001.mha",
        )


def test_modality_files_found_with_other_extension(tmp_path):
    # dataset.json names .nii.gz but one modality is stored as .nii: it is still found
    task = make_task(tmp_path, modalities=("T1", "T2"))
    old = task / "imagesTr" / "case_0002_0001.nii.gz"
    sitk.WriteImage(read(old), str(task / "imagesTr" / "case_0002_0001.nii"))
    old.unlink()
    result = validate(task)
    case = next(c for c in result.cases if c.case_id == "case_0002")
    assert [p.name for p in case.images] == ["case_0002_0000.nii.gz", "case_0002_0001.nii"]


# ----------------------------------------------------------------------------------- read-only validation


def test_validation_never_writes_into_the_task_folder(tmp_path):
    good = make_task(tmp_path / "good", modalities=("T1", "T2"))
    bad = make_task(tmp_path / "bad")
    (bad / "imagesTr" / "case_0002_0000.nii.gz").unlink()
    edit_json(bad, lambda d: entry(d, "case_0004").__setitem__("lesion_size", 7))
    before = snapshot(tmp_path)
    validation_error(bad)
    validate(good)
    validate(good, num_workers=2)
    assert snapshot(tmp_path) == before
