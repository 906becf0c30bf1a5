"""uc_import: InnerEye, DeepReg and plain-folder sources written as validated raw task folders, never changing the
source, refusing taken task ids and leaving nothing behind on failure."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from helpers import run_script
from universalclassifier.dataset.image_io import Geometry, read_image, write_image
from universalclassifier.dataset.validation import validate_task
from universalclassifier.errors import UserInputError
from universalclassifier.importing.cli import import_main
from universalclassifier.importing.labels_csv import read_label_table
from universalclassifier.importing.volumes import require_h5py

needs_h5py = pytest.mark.skipif(find_spec("h5py") is None, reason="h5py (for HDF5 sources) is not installed")

SHAPE = (8, 12, 12)
SPACING = (2.0, 0.8, 0.8)
GEOMETRY = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
TASK = "raw/nnUNet_raw_data/Task007_Imported"


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` with the SHA-256 of its bytes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _volume(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-100, 400, SHAPE).astype(np.int16)


def _roi(seed: int, labels: int = 1) -> np.ndarray:
    roi = np.zeros(SHAPE, dtype=np.uint8)
    roi[2:6, 3 + seed % 3 : 9, 3:9] = 1
    if labels > 1:
        roi[2:6, 3 + seed % 3 : 9, 9:11] = 2
    return roi


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _import(data: Path, *args: str) -> int:
    return import_main([str(data), *args, "-t", "7", "--name", "Imported", "--quiet"])


def _dataset(data: Path) -> dict:
    return json.loads((data / TASK / "dataset.json").read_text())


def _report(data: Path) -> dict:
    return json.loads((data / TASK / "import_report.json").read_text())


def _targets(dataset: dict, head: str) -> dict[str, object]:
    return {Path(e["image"]).name.removesuffix(".nii.gz"): e.get(head) for e in dataset["training"]}


def _skips(report: dict) -> dict[str, str]:
    return {item["case"]: item["reason"] for item in report["skipped"]}


def _assert_round_trip(written: Path, source: np.ndarray, spacing: tuple[float, ...]) -> None:
    array, geometry = read_image(written)
    assert np.array_equal(array, source)
    assert np.allclose(geometry.spacing, spacing)


def _error(capsys) -> str:
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------- InnerEye


def _innereye_source(root: Path, labels: list[str]) -> Path:
    """An InnerEye dataset: channel ct (.nii.gz), channel pet (.npy), features in the ct row; subject s5's pet file is
    missing. Returns the CSV."""
    source = root / "innereye"
    source.mkdir()
    rows = []
    for index, label in enumerate(labels):
        subject = f"s{index}"
        (source / subject).mkdir()
        write_image(_volume(index), GEOMETRY, source / subject / "ct.nii.gz")
        if subject != "s5":
            np.save(source / subject / "pet.npy", _volume(100 + index).astype(np.float32) / 4)
        age = "" if index == 1 else 40 + index
        rows.append([subject, "ct", f"{subject}/ct.nii.gz", label, age, "F" if index % 2 else "M"])
        rows.append([subject, "pet", f"{subject}/pet.npy", "", "", ""])
    return _write_csv(source / "dataset.csv", ["subject", "channel", "filePath", "label", "age", "sex"], rows)


def test_innereye_binary_labels_covariates_and_skipped_subjects(tmp_path):
    labels = ["true", "False", "TRUE", "false", "maybe", "true", "false", "true"]
    csv_path = _innereye_source(tmp_path, labels)
    before = _snapshot(csv_path.parent)
    data = tmp_path / "data"
    code = _import(
        data, "--from", "innereye", str(csv_path), "--image_channels", "ct", "pet",
        "--numerical_columns", "age", "--categorical_columns", "sex", "--spacing", *map(str, SPACING),
    )  # fmt: skip
    assert code == 0
    assert _snapshot(csv_path.parent) == before
    task = validate_task(data / TASK, show_progress=False)
    assert [c.case_id for c in task.cases] == ["s0", "s1", "s2", "s3", "s6", "s7"]
    dataset = _dataset(data)
    assert dataset["modality"] == {"0": "ct", "1": "pet"}
    assert dataset["classification_labels"] == [
        {"name": "target", "type": "nominal", "values": {"0": "false", "1": "true"}}
    ]
    assert _targets(dataset, "target") == {"s0": 1, "s1": 0, "s2": 1, "s3": 0, "s6": 0, "s7": 1}
    assert dataset["covariates"] == [
        {"name": "age", "type": "numeric"},
        {"name": "sex", "type": "categorical", "values": ["F", "M"]},
    ]
    covariates = {Path(e["image"]).name.removesuffix(".nii.gz"): e["covariates"] for e in dataset["training"]}
    assert covariates["s0"] == {"age": 40.0, "sex": "M"}
    assert covariates["s1"] == {"age": None, "sex": "F"}
    report = _report(data)
    assert _skips(report) == {"s4": "unparseable label", "s5": "missing file"}
    assert "'maybe'" in next(item["detail"] for item in report["skipped"] if item["case"] == "s4")
    assert report["num_imported"] == 6 and report["source"]["kind"] == "innereye"
    _assert_round_trip(data / TASK / "imagesTr" / "s2_0000.nii.gz", _volume(2), SPACING)
    _assert_round_trip(data / TASK / "imagesTr" / "s2_0001.nii.gz", _volume(102).astype(np.float32) / 4, SPACING)
    assert not list((data / "raw" / "nnUNet_raw_data").glob(".*")), "the temporary folder is left behind"


@needs_h5py
def test_innereye_multi_label_splits_into_binary_heads_from_h5_images(tmp_path):
    import h5py

    source = tmp_path / "innereye"
    source.mkdir()
    labels = ["0|2|3", "", "2", "0", "3|0", "2|3"]
    rows = []
    for index, label in enumerate(labels):
        with h5py.File(source / f"s{index}.h5", "w") as h5file:
            h5file["aaa_meta"] = np.arange(4)  # not 3D: the first 3D dataset is the image
            h5file["volume"] = _volume(index)
        rows.append([f"s{index}", "mr", f"s{index}.h5", label])
    csv_path = _write_csv(source / "dataset.csv", ["subject", "channel", "filePath", "label"], rows)
    before = _snapshot(source)
    data = tmp_path / "data"
    code = _import(data, "--from", "innereye", str(csv_path), "--image_channels", "mr", "--label_name", "finding")
    assert code == 0
    assert _snapshot(source) == before
    validate_task(data / TASK, show_progress=False)
    dataset = _dataset(data)
    assert [h["name"] for h in dataset["classification_labels"]] == ["finding_0", "finding_2", "finding_3"]
    assert all(h["type"] == "nominal" and len(h["values"]) == 2 for h in dataset["classification_labels"])
    assert _targets(dataset, "finding_0") == {"s0": 1, "s1": 0, "s2": 0, "s3": 1, "s4": 1, "s5": 0}
    assert _targets(dataset, "finding_2") == {"s0": 1, "s1": 0, "s2": 1, "s3": 0, "s4": 0, "s5": 1}
    assert _targets(dataset, "finding_3") == {"s0": 1, "s1": 0, "s2": 0, "s3": 0, "s4": 1, "s5": 1}
    _assert_round_trip(data / TASK / "imagesTr" / "s4_0000.nii.gz", _volume(4), (1.0, 1.0, 1.0))


def test_innereye_numbers_need_regression(tmp_path, capsys):
    source = tmp_path / "innereye"
    source.mkdir()
    rows = []
    for index in range(6):
        np.save(source / f"s{index}.npy", _volume(index))
        rows.append([f"s{index}", "ct", f"s{index}.npy", 1.5 * index + 0.25])
    csv_path = _write_csv(source / "dataset.csv", ["subject", "channel", "filePath", "label"], rows)
    data = tmp_path / "data"
    assert _import(data, "--from", "innereye", str(csv_path), "--image_channels", "ct") == 2
    assert "--regression" in _error(capsys)
    assert not (data / "raw").exists()
    assert _import(data, "--from", "innereye", str(csv_path), "--image_channels", "ct", "--regression") == 0
    validate_task(data / TASK, show_progress=False)
    dataset = _dataset(data)
    assert dataset["classification_labels"] == [{"name": "target", "type": "regression"}]
    assert _targets(dataset, "target")["s3"] == pytest.approx(4.75)
    _assert_round_trip(data / TASK / "imagesTr" / "s3_0000.nii.gz", _volume(3), (1.0, 1.0, 1.0))


# ---------------------------------------------------------------------------------- DeepReg


@needs_h5py
def test_deepreg_h5_channels_rois_and_label_csv(tmp_path):
    import h5py

    source = tmp_path / "deepreg"
    source.mkdir()
    keys = [f"case{i:02d}" for i in range(8)]
    with h5py.File(source / "images.h5", "w") as images, h5py.File(source / "labels.h5", "w") as rois:
        for index, key in enumerate(keys):
            if key == "case06":
                images[key] = _volume(index)  # one channel where the others have two
            else:
                images[key] = np.stack([_volume(index), _volume(50 + index)], axis=-1)
            if key != "case05":
                rois[key] = _roi(index, labels=2) if index % 2 else np.stack([_roi(index), 0 * _roi(index)], -1)
    rows = [[key, f"p{i // 2}", i % 3, i * 1.5] for i, key in enumerate(keys)]
    rows[3][2] = "abc"
    rows.append(["nokey", "p9", 1, 2.0])
    csv_path = _write_csv(source / "labels.csv", ["case_id", "patient_id", "grade", "volume"], rows)
    before = _snapshot(source)
    data = tmp_path / "data"
    code = _import(
        data, "--from", "deepreg-h5", str(source / "images.h5"), str(source / "labels.h5"), "--labels", str(csv_path),
        "--spacing", *map(str, SPACING), "--regression_columns", "volume", "--ordinal_columns", "grade",
        "--modalities", "T1", "T2",
    )  # fmt: skip
    assert code == 0
    assert _snapshot(source) == before
    task = validate_task(data / TASK, show_progress=False)
    assert task.uses_roi
    assert [c.case_id for c in task.cases] == ["case00", "case01", "case02", "case04", "case07"]
    assert [c.group for c in task.cases] == ["p0", "p0", "p1", "p2", "p3"]
    dataset = _dataset(data)
    assert dataset["modality"] == {"0": "T1", "1": "T2"}
    assert dataset["labels"] == {"0": "background", "1": "roi_1", "2": "roi_2"}
    assert dataset["classification_labels"] == [
        {"name": "grade", "type": "ordinal", "values": {"0": "0", "1": "1", "2": "2"}},
        {"name": "volume", "type": "regression"},
    ]
    assert _targets(dataset, "grade") == {"case00": 0, "case01": 1, "case02": 2, "case04": 1, "case07": 1}
    assert _targets(dataset, "volume")["case07"] == pytest.approx(10.5)
    assert _skips(_report(data)) == {
        "case03": "unparseable label",
        "case05": "missing ROI",
        "case06": "missing modality",
        "nokey": "missing image",
    }
    _assert_round_trip(data / TASK / "imagesTr" / "case01_0001.nii.gz", _volume(51), SPACING)
    _assert_round_trip(data / TASK / "labelsTr" / "case01.nii.gz", _roi(1, labels=2), SPACING)
    _assert_round_trip(data / TASK / "labelsTr" / "case02.nii.gz", _roi(2), SPACING)  # from 4D masks


# ---------------------------------------------------------------------------------- folder


def test_folder_images_rois_and_unusable_files(tmp_path):
    images, rois = tmp_path / "images", tmp_path / "rois"
    images.mkdir()
    rois.mkdir()
    geometry = Geometry(SHAPE, SPACING, (5.0, -3.0, 1.0), GEOMETRY.direction)
    ids = [f"c{i}" for i in range(8)]
    for index, case in enumerate(ids):
        write_image(_volume(index), geometry, images / f"{case}_0000.nii.gz")
        if case != "c6":
            write_image(_volume(20 + index), geometry, images / f"{case}_0001.mha")
        write_image(_roi(index), geometry, rois / f"{case}.nii.gz")
    (images / "c7_0001.mha").write_bytes(b"not an image at all")
    write_image(_volume(9), geometry, images / "stranger_0000.nii.gz")
    (images / "notes.txt").write_text("scanner settings\n")
    rows = [[case, 5.0 + i if i != 2 else "", i % 2] for i, case in enumerate(ids)]
    labels = _write_csv(tmp_path / "labels.csv", ["case_id", "size", "malignant"], rows)
    before = _snapshot(tmp_path)
    data = tmp_path / "out"
    code = _import(data, "--from", "folder", str(images), "--labels", str(labels), "--rois", str(rois))
    assert code == 0
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == before
    task = validate_task(data / TASK, show_progress=False)
    assert [c.case_id for c in task.cases] == ["c0", "c1", "c2", "c3", "c4", "c5"]
    dataset = _dataset(data)
    assert dataset["modality"] == {"0": "MR0", "1": "MR1"}
    assert dataset["labels"] == {"0": "background", "1": "roi"}
    assert [h["name"] for h in dataset["classification_labels"]] == ["size", "malignant"]
    # the codes 5..12 (7 unused) become the values 0..7 named by their codes
    assert _targets(dataset, "size") == {"c0": 0, "c1": 1, "c2": None, "c3": 3, "c4": 4, "c5": 5}
    assert dataset["classification_labels"][0]["values"] == {str(i): str(5 + i) for i in range(8)}
    report = _report(data)
    assert report["value_maps"] == {"size": {str(5 + i): i for i in range(8)}}
    assert _skips(report) == {"c6": "missing modality", "c7": "unreadable image", "stranger": "missing row"}
    assert report["ignored_files"] == [str(images / "notes.txt")]
    _assert_round_trip(data / TASK / "imagesTr" / "c3_0001.nii.gz", _volume(23), SPACING)
    _, written = read_image(data / TASK / "imagesTr" / "c3_0001.nii.gz")
    assert written.origin == pytest.approx(geometry.origin)


def test_single_modality_folder_with_ids_that_look_like_modalities(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ids = [f"case_{i:04d}" for i in range(6)]  # case_0001.nii.gz is a case, not modality 1 of "case"
    for index, case in enumerate(ids):
        write_image(_volume(index), GEOMETRY, images / f"{case}.nii.gz")
    labels = _write_csv(tmp_path / "labels.csv", ["case_id", "y"], [[c, i % 2] for i, c in enumerate(ids)])
    data = tmp_path / "out"
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels)) == 0
    task = validate_task(data / TASK, show_progress=False)
    assert [c.case_id for c in task.cases] == ids
    assert _dataset(data)["modality"] == {"0": "CT"}
    _assert_round_trip(data / TASK / "imagesTr" / "case_0001_0000.nii.gz", _volume(1), SPACING)


def test_integer_codes_not_starting_at_zero_become_values_named_by_their_codes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    ids = [f"n{i}" for i in range(10)]
    for index, case in enumerate(ids):
        write_image(_volume(index), GEOMETRY, images / f"{case}.nii.gz")
    rows = [
        [case, 1 + i % 5, [1, 2, 5][i % 3], 3.5 + i, i % 2 + 1 if i != 4 else ""] for i, case in enumerate(ids)
    ]
    header = ["case_id", "malignancy_score", "gapped", "diameter_mm", "binary"]
    labels = _write_csv(tmp_path / "labels.csv", header, rows)
    data = tmp_path / "data"
    code = _import(
        data, "--from", "folder", str(images), "--labels", str(labels),
        "--ordinal_columns", "malignancy_score", "gapped", "--regression_columns", "diameter_mm",
    )  # fmt: skip
    assert code == 0
    validate_task(data / TASK, show_progress=False)
    dataset = _dataset(data)
    assert dataset["classification_labels"] == [
        {"name": "malignancy_score", "type": "ordinal", "values": {str(i): str(i + 1) for i in range(5)}},
        # {1, 2, 5}: the whole range 1..5 is kept, the unused grades 3 and 4 included
        {"name": "gapped", "type": "ordinal", "values": {str(i): str(i + 1) for i in range(5)}},
        {"name": "diameter_mm", "type": "regression"},
        {"name": "binary", "type": "nominal", "values": {"0": "1", "1": "2"}},
    ]
    assert _targets(dataset, "malignancy_score") == {c: i % 5 for i, c in enumerate(ids)}
    assert _targets(dataset, "gapped") == {c: [0, 1, 4][i % 3] for i, c in enumerate(ids)}
    assert _targets(dataset, "diameter_mm") == {c: 3.5 + i for i, c in enumerate(ids)}  # never shifted
    assert _targets(dataset, "binary") == {c: None if i == 4 else i % 2 for i, c in enumerate(ids)}
    assert _report(data)["value_maps"] == {
        "malignancy_score": {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4},
        "gapped": {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4},
        "binary": {"1": 0, "2": 1},
    }


def test_label_table_code_range_limit_applies_after_the_shift(tmp_path):
    rows = [[f"c{i}", 2000 + i % 4, [0, 150][i % 2]] for i in range(8)]
    path = _write_csv(tmp_path / "labels.csv", ["case_id", "year", "wide"], rows)
    with pytest.raises(UserInputError, match=r"column 'wide' would need 151 values for the codes 0\.\.150"):
        read_label_table(path)
    table = read_label_table(path, regression_columns=["wide"])
    assert table.heads[0].values == ("2000", "2001", "2002", "2003")
    assert table.targets["c3"]["year"] == 3
    assert table.value_maps == {"year": {"2000": 0, "2001": 1, "2002": 2, "2003": 3}}


# ---------------------------------------------------------------------------------- refusals and failures


def _folder_source(root: Path, values: list[int]) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir()
    for index in range(len(values)):
        write_image(_volume(index), GEOMETRY, images / f"c{index}.nii.gz")
    rows = [[f"c{i}", v] for i, v in enumerate(values)]
    return images, _write_csv(root / "labels.csv", ["case_id", "y"], rows)


@pytest.mark.parametrize(
    "existing, message",
    [
        ("raw/nnUNet_raw_data/Task007_Imported", "already exists"),
        ("raw/nnUNet_raw_data/Task007_Other", "already used by"),
        ("preprocessed/Task007_Old", "already used by"),
    ],
)
def test_taken_task_id_is_refused_before_anything_is_written(tmp_path, capsys, existing, message):
    images, labels = _folder_source(tmp_path, [0, 1, 0, 1, 0, 1])
    data = tmp_path / "data"
    (data / existing).mkdir(parents=True)
    (data / existing / "keep.txt").write_text("mine\n")
    before = _snapshot(data), sorted(data.rglob("*"))
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels)) == 2
    error = _error(capsys)
    assert message in error and "Task007" in error
    assert (_snapshot(data), sorted(data.rglob("*"))) == before


def test_invalid_result_leaves_nothing_behind(tmp_path, capsys):
    images, labels = _folder_source(tmp_path, [1, 1, 1, 1, 1, 1])  # one value only: no head to train
    data = tmp_path / "data"
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels)) == 2
    error = _error(capsys)
    assert "would not be a valid task" in error and "only value(s) [1]" in error
    assert list((data / "raw" / "nnUNet_raw_data").iterdir()) == []


def test_no_importable_case_and_misused_options_are_refused(tmp_path, capsys):
    images, labels = _folder_source(tmp_path, [0, 1, 0, 1, 0, 1])
    data = tmp_path / "data"
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels), "--spacing", "1", "1", "1") == 2
    assert "--spacing applies only to --from innereye and --from deepreg-h5" in _error(capsys)
    assert _import(data, "--from", "innereye", str(labels), "--image_channels", "ct", "--rois", str(images)) == 2
    assert "--rois applies only to --from folder" in _error(capsys)
    assert _import(data, "--from", "folder", str(images)) == 2
    assert "needs --labels" in _error(capsys)
    assert _import(tmp_path / "images", "--from", "folder", str(images), "--labels", str(labels)) == 2
    assert "inside the source folder" in _error(capsys)
    assert not data.exists() and not (images / "raw").exists()


def test_true_false_label_cells_are_named_as_not_numbers(tmp_path, capsys):
    images, _ = _folder_source(tmp_path, [0, 1, 0, 1, 0, 1])
    rows = [[f"c{i}", ["true", "false"][i % 2]] for i in range(6)]
    labels = _write_csv(tmp_path / "bools.csv", ["case_id", "y"], rows)
    data = tmp_path / "data"
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels)) == 2
    error = _error(capsys)
    assert f"{labels}: column 'y' holds no numbers (its values include 'false', 'true')" in error, error
    assert "No image" not in error and not data.exists()


def test_folder_head_names_are_the_csv_columns_as_written(tmp_path, capsys):
    images, _ = _folder_source(tmp_path, [0, 1, 0, 1, 0, 1])
    head = "Severe COVID-19 (≥ 1 month)"
    labels = tmp_path / "labels.csv"
    labels.write_text(f"case_id,{head}\n" + "".join(f"c{i},{i % 2}\n" for i in range(6)), encoding="utf-8")
    data = tmp_path / "data"
    assert _import(data, "--from", "folder", str(images), "--labels", str(labels)) == 0
    assert [h["name"] for h in _dataset(data)["classification_labels"]] == [head]
    assert _targets(_dataset(data), head) == {f"c{i}": i % 2 for i in range(6)}
    labels.write_text("case_id,image\n" + "".join(f"c{i},{i % 2}\n" for i in range(6)), encoding="utf-8")
    assert _import(tmp_path / "other", "--from", "folder", str(images), "--labels", str(labels)) == 2
    assert f"{labels}: column 'image' is not allowed: the pipeline uses" in _error(capsys)


# ---------------------------------------------------------------------------------- pieces


def test_label_table_column_types(tmp_path):
    rows = [[f"c{i}", i % 3, 0.37 * i, i * 7, "", i % 2] for i in range(12)]
    rows[4][4] = 1
    path = _write_csv(tmp_path / "labels.csv", ["case_id", "grade", "score", "count", "sparse", "flag"], rows)
    table = read_label_table(path, ordinal_columns=["flag"])
    kinds = {h.name: (h.type, len(h.values)) for h in table.heads}
    assert kinds == {
        "grade": ("nominal", 3),
        "score": ("regression", 0),  # more than 10 distinct values
        "count": ("regression", 0),
        "sparse": ("nominal", 2),
        "flag": ("ordinal", 2),
    }
    assert table.targets["c4"] == {"grade": 1, "score": pytest.approx(1.48), "count": 28.0, "sparse": 1, "flag": 0}
    assert table.targets["c5"]["sparse"] is None
    few = _write_csv(tmp_path / "few.csv", ["case_id", "ratio"], [["a", 0.5], ["b", 1.5], ["c", 0]])
    with pytest.raises(UserInputError, match="--regression_columns ratio"):
        read_label_table(few)
    assert read_label_table(few, regression_columns=["ratio"]).heads[0].is_regression


def test_missing_h5py_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UserInputError, match="pip install h5py"):
        require_h5py()


def test_uc_import_script_runs_the_command(tmp_path):
    result = run_script("uc_import.sh", "--help")
    assert result.returncode == 0, result.stderr
    assert "uc_import DATA --from {innereye,deepreg-h5,folder,medmnist} SOURCE" in result.stdout
    assert "--image_channels" in result.stdout and "--labels" in result.stdout
