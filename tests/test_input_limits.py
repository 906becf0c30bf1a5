"""Bounds on prediction (and training) inputs: image size from the header, size after resampling, ROI labels."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import universalclassifier.preprocessing.preprocessor as preprocessor_module
from universalclassifier.dataset.image_io import MAX_INPUT_VOXELS
from universalclassifier.dataset.validation import validate_task
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.inference.predict import predict
from universalclassifier.preprocessing.resampling import MAX_RESAMPLED_VOXELS
from untrained_artifact import held_out_case, shared_untrained_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return shared_untrained_artifact(tmp_path_factory)


def _write_like(reference: Path, array: np.ndarray, path: Path, spacing_factor: float = 1.0) -> Path:
    """Write `array` on the grid of `reference` (spacing scaled by `spacing_factor`)."""
    grid = sitk.ReadImage(str(reference))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    image.SetSpacing(tuple(s * spacing_factor for s in grid.GetSpacing()))
    sitk.WriteImage(image, str(path))
    return path


def _patched_mha(reference: Path, path: Path, old: str, new: str) -> Path:
    """An uncompressed .mha copy of `reference` whose text header has `old` replaced by `new`."""
    sitk.WriteImage(sitk.ReadImage(str(reference)), str(path), False)
    header, data = path.read_bytes().split(b"ElementDataFile = LOCAL\n")
    text = header.decode()
    line = next(row for row in text.splitlines() if row.startswith(old))
    path.write_bytes(text.replace(line, new).encode() + b"ElementDataFile = LOCAL\n" + data)
    return path


def _forbid(monkeypatch, name: str) -> None:
    """Make a costly preprocessing step fail the test if it is reached."""

    def reached(*args, **kwargs):
        raise AssertionError(f"{name} ran although the input should have been refused before it")

    monkeypatch.setattr(preprocessor_module, name, reached)


def test_header_claiming_too_many_voxels_is_refused_before_any_pixel_is_read(artifact, tmp_path):
    images, roi = held_out_case(artifact)
    huge = _patched_mha(images[0], tmp_path / "huge_0000.mha", "DimSize", "DimSize = 4096 4096 4096")
    with pytest.raises(
        UserInputError, match=rf"huge_0000\.mha has 68,719,476,736 voxels.*max_input_voxels = {MAX_INPUT_VOXELS:,}"
    ):
        predict(artifact.data_root / "trained_models", [huge], roi)


def test_max_input_voxels_is_a_predict_keyword(artifact):
    images, roi = held_out_case(artifact)
    voxels = math.prod(sitk.ReadImage(str(images[0])).GetSize())
    artifact_path = artifact.data_root / "trained_models"
    with pytest.raises(UserInputError, match=rf"more than max_input_voxels = {voxels - 1:,}"):
        predict(artifact_path, images, roi, max_input_voxels=voxels - 1)
    assert len(predict(artifact_path, images, roi, max_input_voxels=voxels)) == 2


@pytest.mark.parametrize(
    "spacing_line, shown",
    [
        ("ElementSpacing = 0 1 1", r"\[1\.0, 1\.0, 0\.0\]"),
        ("ElementSpacing = -2 1 1", r"-2\.0"),
        ("ElementSpacing = 1 nan 1", r"(?:nan|0\.0)"),  # MetaIO reads a NaN spacing as 0
    ],
)
def test_header_spacing_must_be_finite_and_positive(artifact, tmp_path, spacing_line, shown):
    images, roi = held_out_case(artifact)
    bad = _patched_mha(images[0], tmp_path / "bad_0000.mha", "ElementSpacing", spacing_line)
    _patched_mha(roi, tmp_path / "bad_roi.mha", "ElementSpacing", spacing_line)
    with pytest.raises(UserInputError, match=rf"bad_0000\.mha has spacing .*{shown}.*finite number > 0"):
        predict(artifact.data_root / "trained_models", [bad], tmp_path / "bad_roi.mha")


def test_case_that_would_resample_beyond_the_limit_is_refused_before_resampling(artifact, tmp_path, monkeypatch):
    images, roi = held_out_case(artifact)
    # the same voxels with a 1000 times coarser spacing: about 10^9 times more voxels at the model's spacing
    coarse, coarse_roi = (
        _write_like(path, sitk.GetArrayFromImage(sitk.ReadImage(str(path))), tmp_path / name, spacing_factor=1000)
        for path, name in ((images[0], "coarse_0000.nii.gz"), (roi, "coarse_roi.nii.gz"))
    )
    _forbid(monkeypatch, "resample_image")
    _forbid(monkeypatch, "resample_labels")
    artifact_path = artifact.data_root / "trained_models"
    with pytest.raises(
        UserInputError, match=rf"more than max_resampled_voxels = {MAX_RESAMPLED_VOXELS:,}.*coarse_0000"
    ):
        predict(artifact_path, [coarse], coarse_roi)
    with pytest.raises(UserInputError, match=r"more than max_resampled_voxels = 10 \(the model's image size"):
        predict(artifact_path, images, roi, max_resampled_voxels=10)


@pytest.mark.parametrize(
    "value, dtype, shown",
    [
        (40000, np.int32, "40000"),  # overflowed int16 and became "outside the body"
        (2, np.uint8, "2"),
        (-3, np.int16, "-3"),
        (0.5, np.float32, "0.5"),
        (np.nan, np.float32, "nan"),
    ],
)
def test_roi_values_that_are_not_the_models_labels_are_refused(artifact, tmp_path, monkeypatch, value, dtype, shown):
    images, roi = held_out_case(artifact)
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(roi))).astype(dtype)
    array[array.shape[0] // 2, 3:6, 3:6] = value
    bad = _write_like(roi, array, tmp_path / "roi.mha")  # ITK's NIfTI I/O turns NaN into 0
    _forbid(monkeypatch, "resample_labels")
    with pytest.raises(
        UserInputError, match=rf"ROI {bad} holds value\(s\) {shown} .*integer labels 0\.\.1 \(num_roi_classes = 2\)"
    ):
        predict(artifact.data_root / "trained_models", images, bad)


def test_roi_with_thousands_of_labels_is_refused_before_any_resampling(artifact, tmp_path, monkeypatch):
    images, roi = held_out_case(artifact)
    shape = sitk.GetArrayFromImage(sitk.ReadImage(str(roi))).shape
    labels = (np.arange(math.prod(shape)) % 3000).reshape(shape).astype(np.int32)
    bad = _write_like(roi, labels, tmp_path / "many.nii.gz")
    _forbid(monkeypatch, "resample_labels")
    with pytest.raises(UserInputError, match=r"holds value\(s\) 2, 3, 4, .* more\) that are not ROI labels"):
        predict(artifact.data_root / "trained_models", images, bad)


def test_validation_refuses_oversized_and_unusable_headers(artifact, tmp_path):
    task = shutil.copytree(artifact.raw, tmp_path / artifact.raw.name)
    first = task / "imagesTr" / "case_0000_0000.nii.gz"
    _patched_mha(first, task / "imagesTr" / "case_0000_0000.mha", "DimSize", "DimSize = 100000 100000 100000")
    first.unlink()
    second = task / "imagesTr" / "case_0001_0000.nii.gz"
    _patched_mha(second, task / "imagesTr" / "case_0001_0000.mha", "ElementSpacing", "ElementSpacing = 1 1 0")
    second.unlink()
    with pytest.raises(TaskValidationError) as caught:
        validate_task(task, show_progress=False)
    problems = caught.value.problems
    assert any(
        "case case_0000: case_0000_0000.mha has 1,000,000,000,000,000 voxels" in p and "max_input_voxels" in p
        for p in problems
    )
    assert any("case case_0001: case_0001_0000.mha has spacing" in p and "finite number > 0" in p for p in problems)
    smaller = math.prod(sitk.ReadImage(str(task / "imagesTr" / "case_0002_0000.nii.gz")).GetSize()) - 1
    with pytest.raises(
        TaskValidationError, match=rf"case_0002_0000\.nii\.gz has .* more than max_input_voxels = {smaller:,}"
    ):
        validate_task(task, show_progress=False, max_input_voxels=smaller)


def test_command_line_limits_reach_prediction_and_planning(artifact, tmp_path, caplog, capsys):
    from universalclassifier.cli import plan_and_preprocess_main, predict_main

    raw = artifact.raw
    assert predict_main([
        str(artifact.data_root), "-i", str(raw / "imagesTs"), "-s", str(raw / "labelsTs"), "-o", str(tmp_path / "out"),
        "--max_resampled_voxels", "10", "--quiet",
    ]) != 0
    assert "more than max_resampled_voxels = 10" in caplog.text
    assert not list((tmp_path / "out").glob("*.json"))
    task = tmp_path / "data" / "raw" / "nnUNet_raw_data" / raw.name
    shutil.copytree(raw, task)
    capsys.readouterr()
    arguments = [str(tmp_path / "data"), "-t", raw.name, "--max_input_voxels", "100", "--quiet"]
    assert plan_and_preprocess_main(arguments) != 0
    assert "more than max_input_voxels = 100" in capsys.readouterr().err
    preprocessed = tmp_path / "data" / "preprocessed"
    assert not preprocessed.exists() or not any(preprocessed.rglob("*.npy"))
