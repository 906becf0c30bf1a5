"""The demo deletes only what it created: a marker in its own data root, and there only its own task folders."""

from __future__ import annotations

import pytest

from universalclassifier.demo import DEMO_MARKER, demo_created_paths, main, prepare_output
from universalclassifier.errors import UserInputError

DEMO_TASK = "Task001_Demo"


def _fill(root, relative_files: list[str]) -> None:
    for relative in relative_files:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)


USER_DATA = [
    "raw/nnUNet_raw_data/Task002_Real/dataset.json",
    "preprocessed/Task002_Real/plans.json",
    "trained_models/nnUNet/3d_fullres/Task002_Real/ClassifierTrainer__UniversalClassifierPlansv1.0/plans.json",
    "notes.txt",
]
DEMO_DATA = [
    f"raw/nnUNet_raw_data/{DEMO_TASK}/dataset.json",
    f"preprocessed/{DEMO_TASK}/plans.json",
    f"trained_models/nnUNet/3d_fullres/{DEMO_TASK}/ClassifierTrainer__UniversalClassifierPlansv1.0/plans.json",
    "test_predictions/case_0040.json",
]


def test_a_data_root_holding_a_demo_task_but_no_marker_is_refused_untouched(tmp_path, capsys):
    # the old check took any folder with raw/nnUNet_raw_data/Task001_Demo for its own and deleted all of it
    _fill(tmp_path, USER_DATA + DEMO_DATA)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["--output", str(tmp_path), "--cases", "10", "--epochs", "1", "--batches", "1", "--quiet"]) == 2
    assert f"is not a demo folder (it has no {DEMO_MARKER}" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_rerun_removes_only_the_demo_task_folders(tmp_path):
    output = tmp_path / "demo"
    prepare_output(output)
    assert (output / DEMO_MARKER).is_file() and [p.name for p in output.iterdir()] == [DEMO_MARKER]
    _fill(output, USER_DATA + DEMO_DATA)
    prepare_output(output)
    left = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    assert left == sorted([DEMO_MARKER, *USER_DATA])
    assert not any(path.exists() for path in demo_created_paths(output))


def test_a_symlinked_demo_folder_is_unlinked_not_followed(tmp_path):
    output = tmp_path / "demo"
    prepare_output(output)
    elsewhere = tmp_path / "precious"
    _fill(elsewhere, ["keep.txt"])
    (output / "test_predictions").symlink_to(elsewhere, target_is_directory=True)
    prepare_output(output)
    assert (elsewhere / "keep.txt").read_text() == "keep.txt" and not (output / "test_predictions").exists()


def test_an_empty_folder_becomes_a_demo_root_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    prepare_output(tmp_path / "empty")
    assert (tmp_path / "empty" / DEMO_MARKER).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        prepare_output(tmp_path / "file")
