"""A folder holding one DICOM series is accepted wherever an image file is: training images, predict(), uc_predict."""

from __future__ import annotations

import json
import locale
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import one_torch_thread, series_from_file, validate, write_series  # noqa: F401  (autouse fixture)
from universalclassifier.dataset.image_io import Geometry, read_geometry, read_image
from universalclassifier.dataset.validation import validate_task
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.inference.predict import predict
from universalclassifier.inference.predict_folder import find_cases, predict_folder
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

TASK_ID = 31
TINY = TrainingOptions(
    max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
)
UID_ROOT = "1.2.826.0.1.3680043.2.1125.9"  # a UID prefix for generated test data
SPACING = (2.0, 0.7, 0.7)  # z, y, x
ORIGIN = (-12.5, 30.25, 101.0)
C, S = math.cos(0.3), math.sin(0.3)
OBLIQUE = (C, -S, 0.0, S, C, 0.0, 0.0, 0.0, 1.0)
FLIPPED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def ct_volume(direction: tuple[float, ...] = IDENTITY) -> tuple[np.ndarray, sitk.Image]:
    """An int16 CT-like volume (8, 16, 16) with SPACING, ORIGIN and `direction`."""
    rng = np.random.default_rng(3)
    array = rng.integers(-1024, 3000, (8, 16, 16)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(SPACING)))
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction)
    return array, image


def assert_geometry(geometry: Geometry, size: tuple[int, ...], direction: tuple[float, ...]) -> None:
    assert geometry.size == size
    assert geometry.spacing == pytest.approx(SPACING, abs=1e-9)
    assert geometry.origin == pytest.approx(ORIGIN, abs=1e-9)
    assert geometry.direction == pytest.approx(direction, abs=1e-9)


# ------------------------------------------------------------------------------------------- reading a series


@pytest.mark.parametrize("direction", [IDENTITY, OBLIQUE, FLIPPED], ids=["axial", "oblique", "flipped"])
def test_series_reads_as_written(tmp_path, direction):
    array, image = ct_volume(direction)
    folder = write_series(image, tmp_path / "series", f"{UID_ROOT}.1")
    (folder / "notes.txt").write_text("not DICOM")  # other files next to the series are ignored

    before = locale.setlocale(locale.LC_ALL)
    header = read_geometry(folder)
    values, geometry = read_image(folder, dtype=np.float64)
    assert locale.setlocale(locale.LC_ALL) == before  # reading leaves the process locale (text I/O encoding) alone

    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, array)
    assert_geometry(geometry, (8, 16, 16), direction)
    assert header == geometry  # the header-only geometry is the one ImageSeriesReader gives
    # exactly what SimpleITK's own series reader gives
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = reader.Execute()
    assert geometry.spacing == tuple(reversed(reference.GetSpacing()))
    assert geometry.origin == reference.GetOrigin() and geometry.direction == reference.GetDirection()


def test_size_limit_is_checked_on_the_headers(tmp_path, monkeypatch):
    _, image = ct_volume()
    folder = write_series(image, tmp_path / "series", f"{UID_ROOT}.2")

    def no_pixels(self):
        raise AssertionError("pixels were read")

    monkeypatch.setattr(sitk.ImageSeriesReader, "Execute", no_pixels)
    with pytest.raises(UserInputError, match=r"has 2,048 voxels .* more than max_input_voxels = 2,047") as info:
        read_image(folder, max_voxels=8 * 16 * 16 - 1)
    assert str(folder) in str(info.value)
    assert read_geometry(folder).size == (8, 16, 16)


def test_folder_with_two_series_is_refused(tmp_path):
    folder = tmp_path / "two"
    write_series(ct_volume()[1], folder / "a", f"{UID_ROOT}.3")
    write_series(ct_volume(FLIPPED)[1], folder / "b", f"{UID_ROOT}.4")
    for path in [*(folder / "a").iterdir(), *(folder / "b").iterdir()]:
        path.rename(folder / f"{path.parent.name}_{path.name}")
    (folder / "a").rmdir()
    (folder / "b").rmdir()
    for read in (read_geometry, read_image):
        with pytest.raises(UserInputError) as info:
            read(folder)
        message = str(info.value)
        assert str(folder) in message and "2 DICOM series" in message and "exactly one" in message, message
        assert f"{UID_ROOT}.3" in message and f"{UID_ROOT}.4" in message, message


def test_empty_folder_and_folder_without_dicom_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="is empty") as info:
        read_image(empty)
    assert str(empty) in str(info.value)

    other = tmp_path / "other"
    (other / "nested").mkdir(parents=True)
    (other / "readme.txt").write_text("no images here")
    sitk.WriteImage(ct_volume()[1], str(other / "volume.nii.gz"))
    for read in (read_geometry, read_image):
        with pytest.raises(UserInputError, match="holds no DICOM series") as info:
            read(other)
        assert str(other) in str(info.value)


# --------------------------------------------------------------------------------------- a task with a series


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> tuple[Path, Path]:
    """Two data roots holding the same synthetic CT task (ROIs, one test case), both planned and preprocessed: in
    the second, case_0001's image is a DICOM series folder instead of its .nii.gz file."""
    nifti_root = tmp_path_factory.mktemp("dicom_nifti")
    generate_task(nifti_root, TASK_ID, "Dicom", num_cases=6, base_size=(10, 20, 20), num_test=1, seed=5)
    series_root = tmp_path_factory.mktemp("dicom_series")
    shutil.copytree(nifti_root / "raw", series_root / "raw")
    images = TaskPaths.find(series_root, TASK_ID).raw / "imagesTr"
    series_from_file(images / "case_0001_0000.nii.gz", images / "case_0001_0000", f"{UID_ROOT}.10")
    (images / "case_0001_0000.nii.gz").unlink()
    for root in (nifti_root, series_root):
        plan_and_preprocess(root, TASK_ID, num_workers=1, show_progress=False)
    return nifti_root, series_root


def test_task_with_a_series_validates(tasks):
    raw = TaskPaths.find(tasks[1], TASK_ID).raw
    case = {c.case_id: c for c in validate(raw).cases}["case_0001"]
    assert case.images == (raw / "imagesTr" / "case_0001_0000",)


def test_task_with_a_series_preprocesses_like_the_file(tasks):
    nifti, series = (TaskPaths.find(root, TASK_ID) for root in tasks)
    for case_id in [f"case_{i:04d}" for i in range(6)]:
        expected = np.load(nifti.stage_folder / f"{case_id}.npy")
        actual = np.load(series.stage_folder / f"{case_id}.npy")
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4, err_msg=case_id)
        properties = json.loads((series.stage_folder / f"{case_id}.json").read_text())
        reference = json.loads((nifti.stage_folder / f"{case_id}.json").read_text())
        assert properties["original_size"] == reference["original_size"]
        assert properties["original_spacing"] == pytest.approx(reference["original_spacing"], rel=1e-9)


def test_validation_reports_bad_series_folders(tasks, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tasks[0] / "raw", root / "raw")
    raw = TaskPaths.find(root, TASK_ID).raw
    images = raw / "imagesTr"
    series_from_file(images / "case_0002_0000.nii.gz", images / "case_0002_0000", f"{UID_ROOT}.20")
    series_from_file(images / "case_0003_0000.nii.gz", images / "case_0003_0000" / "a", f"{UID_ROOT}.21")
    write_series(ct_volume()[1], images / "case_0003_0000" / "b", f"{UID_ROOT}.22")
    for path in (images / "case_0003_0000").glob("*/*.dcm"):
        path.rename(path.parent.parent / f"{path.parent.name}_{path.name}")
    for sub in ("a", "b"):
        (images / "case_0003_0000" / sub).rmdir()
    (images / "case_0004_0000").mkdir()
    for case in ("case_0002", "case_0003", "case_0004"):
        (images / f"{case}_0000.nii.gz").unlink()
    (images / "case_0002_0000" / "IM0000.dcm").unlink()  # case_0002: one slice fewer than its ROI

    with pytest.raises(TaskValidationError) as info:
        validate_task(raw, show_progress=False)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert "case case_0002" in problems[0] and "has size" in problems[0] and "case_0002_0000" in problems[0]
    assert "case case_0003" in problems[1] and f"{UID_ROOT}.21" in problems[1] and f"{UID_ROOT}.22" in problems[1]
    assert "case case_0004" in problems[2] and str(images / "case_0004_0000") in problems[2] and "empty" in problems[2]


# ----------------------------------------------------------------------------------------------- prediction


@pytest.fixture(scope="module")
def model(tasks) -> TaskPaths:
    """Fold 0 of the .nii.gz task, trained for one batch."""
    paths = TaskPaths.find(tasks[0], TASK_ID)
    ClassifierTrainer(paths, 0, TINY).run_training()
    return paths


@pytest.fixture(scope="module")
def test_case(model, tmp_path_factory) -> dict[str, Path]:
    """The task's test case as files and as DICOM series folders (image and ROI)."""
    folder = tmp_path_factory.mktemp("dicom_case")
    image, roi = model.raw / "imagesTs" / "case_0006_0000.nii.gz", model.raw / "labelsTs" / "case_0006.nii.gz"
    return {
        "image": image,
        "roi": roi,
        "image_series": series_from_file(image, folder / "image", f"{UID_ROOT}.30"),
        "roi_series": series_from_file(roi, folder / "roi", f"{UID_ROOT}.31"),
    }


def test_predict_series_like_file(model, test_case):
    artifact = model.data_root / "trained_models"
    expected = predict(artifact, [test_case["image"]], test_case["roi"], folds=[0], device="cpu")
    with_series = predict(artifact, [test_case["image_series"]], test_case["roi"], folds=[0], device="cpu")
    all_series = predict(artifact, [str(test_case["image_series"])], test_case["roi_series"], folds=[0], device="cpu")
    for result in (with_series, all_series):
        assert len(result) == len(expected) == 2
        assert result[0] == pytest.approx(expected[0], abs=1e-5)
        assert result[1] == pytest.approx(expected[1], abs=1e-5)


def test_predict_refuses_a_bad_series_folder(model, test_case, tmp_path):
    artifact = model.data_root / "trained_models"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="is empty") as info:
        predict(artifact, [empty], test_case["roi"], folds=[0], device="cpu")
    assert str(empty) in str(info.value)
    with pytest.raises(UserInputError, match="does not exist"):
        predict(artifact, [tmp_path / "missing"], test_case["roi"], folds=[0], device="cpu")


def test_predict_folder_with_series_subfolder(model, test_case, tmp_path):
    inputs, rois = tmp_path / "in", tmp_path / "seg"
    inputs.mkdir()
    rois.mkdir()
    shutil.copy(test_case["image"], inputs / "file_0000.nii.gz")
    shutil.copy(test_case["roi"], rois / "file.nii.gz")
    shutil.copytree(test_case["image_series"], inputs / "series_0000")
    shutil.copy(test_case["roi"], rois / "series.nii.gz")
    shutil.copytree(test_case["image_series"], inputs / "both_0000")
    shutil.copytree(test_case["roi_series"], rois / "both")
    (inputs / "empty_0000").mkdir()
    shutil.copy(test_case["roi"], rois / "empty.nii.gz")
    assert find_cases(inputs, 1)["series"] == [inputs / "series_0000"]

    output = tmp_path / "out"
    artifact = model.data_root / "trained_models"
    failed = predict_folder(artifact, inputs, output, rois, folds=[0], show_progress=False)

    assert failed == ["empty"]
    expected = json.loads((output / "file.json").read_text())
    for case_id in ("series", "both"):
        result = json.loads((output / f"{case_id}.json").read_text())
        assert result["case_id"] == case_id
        assert result["lesion_contrast"] == pytest.approx(expected["lesion_contrast"], abs=1e-5)
        assert result["lesion_size"] == pytest.approx(expected["lesion_size"], abs=1e-5)
    rows = (output / "summary.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["both", "file", "series"]


def test_find_cases_refuses_a_file_and_a_series_for_one_modality(tmp_path):
    inputs = tmp_path / "in"
    image = ct_volume()[1]
    write_series(image, inputs / "case_0000", f"{UID_ROOT}.40")
    sitk.WriteImage(image, str(inputs / "case_0000.nii.gz"))
    with pytest.raises(UserInputError, match=r"both case_0000 and case_0000\.nii\.gz are one case's modality"):
        find_cases(inputs, 1)
    (inputs / "case_0000.nii.gz").unlink()
    assert find_cases(inputs, 1) == {"case": [inputs / "case_0000"]}
