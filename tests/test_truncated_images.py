"""Truncated NIfTI files (issue 21, finding 4): SimpleITK reads a .nii or .nii.gz cut short without an error, the
missing voxels set to 0; the image reader refuses them, so validation, preprocessing and prediction all do."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from universalclassifier.dataset.image_io import read_geometry, read_image
from universalclassifier.dataset.validation import validate_task
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.inference.predict import predict
from untrained_artifact import held_out_case, shared_untrained_artifact

VOXELS = np.random.default_rng(0).uniform(1, 1000, (20, 30, 40)).astype(np.float32)


def _written(path: Path, compressed: bool) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(VOXELS), str(path), compressed)
    return path


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("name", ["image.nii", "image.nii.gz"])
@pytest.mark.parametrize("fraction", [0.55, 0.999])
def test_a_truncated_nifti_file_is_refused_by_every_reader(tmp_path, name, fraction):
    path = _cut(_written(tmp_path / name, name.endswith(".gz")), fraction)
    message = re.escape(str(path)) + r" is truncated: its header describes 96,352 bytes \(header and voxels\)"
    with pytest.raises(UserInputError, match=message):
        read_image(path)
    with pytest.raises(UserInputError, match=message):
        read_geometry(path)  # validation reads headers only


def test_complete_nifti_files_are_read_as_written(tmp_path):
    for path in (_written(tmp_path / "a.nii", False), _written(tmp_path / "b.nii.gz", True)):
        np.testing.assert_array_equal(read_image(path)[0], VOXELS)
    plain = shutil.copy(tmp_path / "a.nii", tmp_path / "plain.nii.gz")  # not compressed, though named so
    np.testing.assert_array_equal(read_image(Path(plain))[0], VOXELS)
    raw = gzip.decompress((tmp_path / "b.nii.gz").read_bytes())
    members = tmp_path / "members.nii.gz"  # two gzip members, as block-wise compressors write: the length is counted
    members.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    np.testing.assert_array_equal(read_image(members)[0], VOXELS)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return shared_untrained_artifact(tmp_path_factory)


def _as_cut_nii(source: Path, target: Path) -> Path:
    """`source` rewritten as an uncompressed .nii at `target`, cut to 60% of its bytes (the header stays whole)."""
    sitk.WriteImage(sitk.ReadImage(str(source)), str(target), False)
    return _cut(target, 0.6)


def test_validation_and_prediction_refuse_a_truncated_image(artifact, tmp_path):
    task = shutil.copytree(artifact.raw, tmp_path / artifact.raw.name)
    image = task / "imagesTr" / "case_0001_0000.nii.gz"
    _as_cut_nii(image, image.with_name("case_0001_0000.nii"))
    image.unlink()
    with pytest.raises(TaskValidationError, match=r"case case_0001: Image .*case_0001_0000\.nii is truncated"):
        validate_task(task, show_progress=False)
    images, roi = held_out_case(artifact)
    cut = _as_cut_nii(images[0], tmp_path / "case_0006_0000.nii")
    with pytest.raises(UserInputError, match=re.escape(str(cut)) + " is truncated"):
        predict(artifact.data_root / "trained_models", [cut], roi)
