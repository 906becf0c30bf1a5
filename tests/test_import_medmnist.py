"""uc_import --from medmnist: a MedMNIST v2 3D .npz becomes a raw task with its official split and labelled test set;
files that are not a 3D MedMNIST set are refused with the file named."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from universalclassifier.dataset.image_io import read_image
from universalclassifier.dataset.validation import validate_task
from universalclassifier.evaluation.external import dataset_test_cases
from universalclassifier.importing.cli import import_main
from universalclassifier.importing.task_writer import SPLITS_FILENAME
from universalclassifier.plans import ClassificationLabel
from universalclassifier.training.splits import fold_cases, load_or_create_splits

SIDE = 8
TASK = "raw/nnUNet_raw_data/Task007_Imported"
REAL_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "adrenalmnist3d" / "adrenalmnist3d_dev.npz"


def _images(count: int, seed: int, shape: tuple[int, ...] = (SIDE, SIDE, SIDE)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.uint8)


def _labels(codes: list[int]) -> np.ndarray:
    return np.asarray(codes, dtype=np.uint8).reshape(-1, 1)


def _arrays(with_test: bool = True) -> dict[str, np.ndarray]:
    """12 train, 6 val (and 6 test) cases of 8³ with the codes 0, 1, 2."""
    arrays = {
        "train_images": _images(12, 0),
        "train_labels": _labels([i % 3 for i in range(12)]),
        "val_images": _images(6, 1),
        "val_labels": _labels([0, 1, 2, 0, 1, 2]),
    }
    if with_test:
        arrays.update(test_images=_images(6, 2), test_labels=_labels([2, 1, 0, 0, 1, 2]))
    return arrays


def _npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path


def _import(data: Path, source: Path, *args: str, name: str | None = "Imported") -> int:
    named = ["--name", name] if name is not None else []
    return import_main([str(data), "--from", "medmnist", str(source), "-t", "7", *named, "--quiet", *args])


def _dataset(task: Path) -> dict:
    return json.loads((task / "dataset.json").read_text())


def _report(task: Path) -> dict:
    return json.loads((task / "import_report.json").read_text())


def _case(entry: dict) -> str:
    return Path(entry["image"]).name.removesuffix(".nii.gz")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_val_become_training_cases_with_the_official_split_and_test_cases_are_labelled(tmp_path):
    arrays = _arrays()
    source = _npz(tmp_path / "tiny.npz", arrays)
    before = _sha(source)
    data = tmp_path / "data"
    assert _import(data, source) == 0
    assert _sha(source) == before
    task = data / TASK
    described = validate_task(task, show_progress=False)
    train_ids = [f"train_{i:04d}" for i in range(12)]
    val_ids = [f"val_{i:04d}" for i in range(6)]
    assert [c.case_id for c in described.cases] == train_ids + val_ids
    dataset = _dataset(task)
    assert dataset["modality"] == {"0": "image"}  # 0-255 values are not Hounsfield units: z-scored per image
    assert dataset["classification_labels"] == [
        {"name": "target", "type": "nominal", "values": {"0": "0", "1": "1", "2": "2"}}
    ]
    assert dataset["numTraining"] == 18 and "labels" not in dataset
    assert {_case(e): e["target"] for e in dataset["training"]} == {
        **{c: i % 3 for i, c in enumerate(train_ids)},
        **{c: [0, 1, 2, 0, 1, 2][i] for i, c in enumerate(val_ids)},
    }
    assert sorted(p.name for p in (task / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in train_ids + val_ids]
    test_ids = [f"test_{i:04d}" for i in range(6)]
    assert sorted(p.name for p in (task / "imagesTs").iterdir()) == [f"{c}_0000.nii.gz" for c in test_ids]
    assert dataset["numTest"] == 6
    assert dataset["test"] == [
        {"image": f"./imagesTs/{c}.nii.gz", "target": v} for c, v in zip(test_ids, [2, 1, 0, 0, 1, 2], strict=True)
    ]
    # a written image: the source array, (z, y, x) at 1 mm
    image = sitk.ReadImage(str(task / "imagesTr" / "val_0003_0000.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(image), arrays["val_images"][3])
    assert image.GetSpacing() == pytest.approx((1.0, 1.0, 1.0)) and image.GetPixelID() == sitk.sitkUInt8
    array, _ = read_image(task / "imagesTs" / "test_0005_0000.nii.gz")
    assert np.array_equal(array, arrays["test_images"][5])
    # the official split, in the form training reads as splits_final.json
    split = json.loads((task / SPLITS_FILENAME).read_text())
    assert split == [{"train": train_ids, "val": val_ids}]
    splits_final = tmp_path / "splits_final.json"
    shutil.copy(task / SPLITS_FILENAME, splits_final)
    splits = load_or_create_splits(splits_final, train_ids + val_ids, {})
    assert fold_cases(splits, 0, train_ids + val_ids) == (train_ids, val_ids)
    # uc_evaluate --use_dataset_test finds the test cases and their values
    head = ClassificationLabel("target", "nominal", ("0", "1", "2"))
    plans = SimpleNamespace(head_names=["target"], classification_labels=[head], num_modalities=1, uses_roi=False)
    cases = dataset_test_cases(task, plans)  # type: ignore[arg-type]
    assert list(cases) == test_ids
    assert cases["test_0000"].targets == {"target": 2} and cases["test_0000"].roi is None
    assert cases["test_0000"].images == [task / "imagesTs" / "test_0000_0000.nii.gz"]
    report = _report(task)
    assert report["source"]["kind"] == "medmnist"
    assert report["num_imported"] == 18 and report["num_test_imported"] == 6 and report["num_skipped"] == 0
    assert report["official_split"] == {"file": SPLITS_FILENAME, "num_train": 12, "num_val": 6}
    assert report["source"]["options"]["num_cases"] == {"train": 12, "val": 6, "test": 6}
    assert report["value_maps"] == {}


def test_name_class_names_label_name_and_modalities(tmp_path):
    arrays = _arrays(with_test=False)
    arrays["train_labels"] = _labels([i % 2 for i in range(12)])
    arrays["val_labels"] = _labels([0, 1, 0, 1, 0, 0])
    source = _npz(tmp_path / "adrenalmnist3d_64.npz", arrays)
    data = tmp_path / "data"
    assert _import(data, source, "--label_name", "diagnosis", "--modalities", "mask", name=None) == 0
    task = data / "raw/nnUNet_raw_data/Task007_adrenalmnist3d_64"
    validate_task(task, show_progress=False)
    dataset = _dataset(task)
    assert dataset["modality"] == {"0": "mask"}
    assert dataset["classification_labels"] == [
        {"name": "diagnosis", "type": "nominal", "values": {"0": "normal", "1": "hyperplasia"}}
    ]
    assert "test" not in dataset and not (task / "imagesTs").exists()
    assert _report(task)["source"]["options"]["class_names"] == "adrenalmnist3d"


def test_codes_not_starting_at_zero_are_shifted_in_every_split(tmp_path):
    arrays = _arrays()
    arrays["train_labels"] = _labels([[1, 2, 4][i % 3] for i in range(12)])
    arrays["val_labels"] = _labels([1, 2, 4, 1, 2, 4])
    arrays["test_labels"] = _labels([4, 2, 1, 1, 2, 4])
    source = _npz(tmp_path / "fracturemnist3d.npz", arrays)  # codes 1..4 are no fracture classes: named by codes
    data = tmp_path / "data"
    assert _import(data, source) == 0
    task = data / TASK
    validate_task(task, show_progress=False)
    dataset = _dataset(task)
    assert dataset["classification_labels"][0]["values"] == {"0": "1", "1": "2", "2": "3", "3": "4"}
    assert [e["target"] for e in dataset["training"][:3]] == [0, 1, 3]
    assert [e["target"] for e in dataset["test"]] == [3, 1, 0, 0, 1, 3]
    report = _report(task)
    assert report["value_maps"] == {"target": {"1": 0, "2": 1, "3": 2, "4": 3}}
    assert report["source"]["options"]["class_names"] == "codes"


def _without(key: str) -> dict[str, np.ndarray]:
    arrays = _arrays()
    del arrays[key]
    return arrays


def _with(**changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**_arrays(), **changes}


@pytest.mark.parametrize(
    "arrays, message",
    [
        (_without("val_labels"), "has no key(s) ['val_labels']"),
        (_without("test_labels"), "has no key(s) ['test_labels']"),
        (_with(train_images=_images(12, 0, (28, 28))), "a 2D MedMNIST set; this tool takes the 3D sets"),
        (_with(train_images=_images(12, 0, (28, 28, 3))), "a 2D colour MedMNIST set"),
        (_with(val_images=_images(6, 0, (2, SIDE, SIDE, SIDE))), "one 4D array (N, D, H, W)"),
        (_with(train_labels=_labels([0, 1] * 5 + [2])), "has 11 labels for 12 images"),
        (_with(val_labels=np.asarray([[0.5]] * 6)), "not integer class codes"),
        (_with(train_labels=np.zeros((12, 3), dtype=np.uint8)), "(a multi-label set)"),
        (_with(train_images=np.full((12, SIDE, SIDE, SIDE), "a")), "holds <U1 values; expected numbers"),
        (_with(val_images=_images(6, 1, (SIDE, SIDE, SIDE + 1))), "different sizes"),
        (_with(test_labels=np.array([None] * 6, dtype=object)), "test_labels cannot be read"),
    ],
    ids=[
        "missing-key", "test-half", "2d", "2d-colour", "5d", "length", "float-labels", "multi-label", "strings",
        "sizes", "pickled",
    ],
)  # fmt: skip
def test_files_that_are_no_3d_medmnist_set_are_refused(tmp_path, capsys, arrays, message):
    source = _npz(tmp_path / "odd.npz", arrays)
    data = tmp_path / "data"
    assert _import(data, source) == 2
    error = capsys.readouterr().err
    assert message in error and str(source) in error
    assert not data.exists()


def test_other_files_and_options_are_refused(tmp_path, capsys):
    data = tmp_path / "data"
    text = tmp_path / "notes.npz"
    text.write_text("train_images,train_labels\n")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as handle:
        np.save(handle, _images(2, 0))
    cases = [
        (text, [], "is not an .npz file"),
        (npy, [], "is a single NumPy array (.npy)"),
        (tmp_path / "missing.npz", [], "does not exist"),
        (_npz(tmp_path / "good.npz", _arrays()), ["--label_name", "label"], "--label_name 'label' is not allowed"),
        (tmp_path / "good.npz", ["--labels", "x.csv"], "--labels applies only to --from deepreg-h5 and --from folder"),
        (tmp_path / "good.npz", ["--spacing", "1", "1", "1"], "--spacing applies only to"),
    ]
    for source, args, message in cases:
        assert _import(data, source, *args) == 2
        error = capsys.readouterr().err
        assert message in error, (message, error)
    assert not data.exists()


@pytest.mark.skipif(not REAL_FILE.is_file(), reason=f"{REAL_FILE} is not here")
def test_real_adrenalmnist3d_cases(tmp_path):
    with np.load(REAL_FILE, allow_pickle=False) as real:
        train_codes = real["train_labels"][:, 0]
        picked = np.sort(np.concatenate([np.flatnonzero(train_codes == 1)[:3], np.flatnonzero(train_codes == 0)[:5]]))
        arrays = {
            "train_images": real["train_images"][picked],
            "train_labels": real["train_labels"][picked],
            "val_images": real["val_images"][:4],
            "val_labels": real["val_labels"][:4],
        }
    source = _npz(tmp_path / REAL_FILE.name, arrays)
    data = tmp_path / "data"
    assert _import(data, source, name=None) == 0
    task = data / "raw/nnUNet_raw_data/Task007_adrenalmnist3d_dev"
    validate_task(task, show_progress=False)
    dataset = _dataset(task)
    assert dataset["classification_labels"][0]["values"] == {"0": "normal", "1": "hyperplasia"}
    assert dataset["numTraining"] == 12
    assert [e["target"] for e in dataset["training"][:8]] == arrays["train_labels"][:, 0].tolist()
    array, geometry = read_image(task / "imagesTr" / "train_0002_0000.nii.gz")
    assert array.shape == (28, 28, 28) and np.array_equal(array, arrays["train_images"][2])
    assert geometry.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert json.loads((task / SPLITS_FILENAME).read_text()) == [
        {"train": [f"train_{i:04d}" for i in range(8)], "val": [f"val_{i:04d}" for i in range(4)]}
    ]
