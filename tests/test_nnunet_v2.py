"""nnU-Net v2 datasets (DatasetXXX_Name, channel_names, labels as name -> value, file_ending) read natively, and
several tasks planned by one uc_plan_and_preprocess command."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_in, load_json, make_task, one_torch_thread, validate, validation_error, write_json  # noqa: F401
from universalclassifier.artifact.folders import find_trainer_folder
from universalclassifier.cli import plan_and_preprocess_main
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict import predict
from universalclassifier.paths import PLANS_FILENAME, STAGE_FOLDER, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess, plan_and_preprocess_tasks
from universalclassifier.plans import Plans
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

TINY = TrainingOptions(
    max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
)
V2_NAME = "Dataset003_Vtwo"


def to_v2(v1_folder: Path, target: Path, file_ending: str = ".mha") -> Path:
    """Copy a generated (v1) task to `target` and rewrite its dataset.json in the nnU-Net v2 form."""
    shutil.copytree(v1_folder, target)
    dataset = load_json(target)
    dataset["channel_names"] = dataset.pop("modality")
    if "labels" in dataset:
        dataset["labels"] = {name: int(value) for value, name in dataset["labels"].items()}
    dataset["file_ending"] = file_ending
    dataset.pop("test", None)
    dataset.pop("numTest", None)
    write_json(target, dataset)
    return target


def v2_task(root: Path, name: str = V2_NAME, **kwargs) -> Path:
    """A tiny synthetic task (.mha) as an nnU-Net v2 dataset at DATA/raw/nnUNet_raw/<name>."""
    kwargs.setdefault("extension", ".mha")
    v1 = make_task(root / "v1_source", task_id=int(name[7:10]), task_name=name.partition("_")[2], **kwargs)
    return to_v2(v1, root / "raw" / "nnUNet_raw" / name)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _plans_without_name(plans: Plans) -> dict:
    content = plans.to_dict()
    content.pop("task_name")
    return content


# ---------------------------------------------------------------------------------- one v2 dataset end to end


@pytest.fixture(scope="module")
def v1_original(tmp_path_factory) -> tuple[Path, Plans]:
    """The v1 task the v2 dataset is converted from, planned and preprocessed as it is."""
    root = tmp_path_factory.mktemp("v1")
    generate_task(root, 3, "Vtwo", num_cases=6, base_size=(10, 20, 20), num_test=1, extension=".mha", seed=5)
    return root, plan_and_preprocess(root, 3, num_workers=1, show_progress=False)


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory, v1_original) -> tuple[Path, dict[str, str], int]:
    """The same task as raw/nnUNet_raw/Dataset003_Vtwo, planned with `-t 3`; returns the root, the raw folder's
    digest before planning and the exit code."""
    root = tmp_path_factory.mktemp("v2")
    raw = to_v2(v1_original[0] / "raw" / "nnUNet_raw_data" / "Task003_Vtwo", root / "raw" / "nnUNet_raw" / V2_NAME)
    before = _tree_digest(raw)
    code = plan_and_preprocess_main([str(root), "-t", "3", "-tf", "1", "--quiet"])
    return root, before, code


def test_v2_dataset_plans_and_arrays_equal_the_v1_originals(v1_original, v2_root):
    v1_root, v1_plans = v1_original
    root, before, code = v2_root
    assert code == 0
    raw = root / "raw" / "nnUNet_raw" / V2_NAME
    dataset = load_json(raw)
    assert "modality" not in dataset and dataset["labels"] == {"background": 0, "organ": 1}  # really the v2 form
    assert validate(raw).description.nnunet_version == 2
    assert sorted(p.name for p in (root / "preprocessed").iterdir()) == [V2_NAME]
    plans = Plans.load(root / "preprocessed" / V2_NAME / PLANS_FILENAME)
    assert plans.task_name == V2_NAME and v1_plans.task_name == "Task003_Vtwo"
    assert plans.uses_roi and plans.num_roi_classes == 2 and plans.modalities == ["CT"]
    assert _plans_without_name(plans) == _plans_without_name(v1_plans)
    v1_arrays = sorted((v1_root / "preprocessed" / "Task003_Vtwo" / STAGE_FOLDER).glob("*.npy"))
    v2_arrays = sorted((root / "preprocessed" / V2_NAME / STAGE_FOLDER).glob("*.npy"))
    assert [p.name for p in v2_arrays] == [p.name for p in v1_arrays] and len(v2_arrays) == 6
    for v1_array, v2_array in zip(v1_arrays, v2_arrays, strict=True):
        np.testing.assert_array_equal(np.load(v2_array), np.load(v1_array))
    effective = load_json(root / "preprocessed" / V2_NAME)
    assert effective["labels"] == {"0": "background", "1": "organ"} and effective["modality"] == {"0": "CT"}
    assert _tree_digest(raw) == before, "the raw dataset folder must never be modified"


def test_v2_dataset_trains_and_predicts_under_its_own_name(v2_root):
    root, _, code = v2_root
    assert code == 0
    paths = TaskPaths.find(root, V2_NAME)
    assert paths == TaskPaths.find(root, 3) and paths.raw == root / "raw" / "nnUNet_raw" / V2_NAME
    ClassifierTrainer(paths, 0, TINY).run_training()
    trainer_folder = (
        root / "trained_models" / "nnUNet" / "3d_fullres" / V2_NAME / "ClassifierTrainer__UniversalClassifierPlansv1.0"
    )
    assert (trainer_folder / "fold_0" / "model_final_checkpoint.model").is_file()
    assert Plans.load(trainer_folder / "plans.json").task_name == V2_NAME
    assert find_trainer_folder(root / "trained_models") == trainer_folder
    assert find_trainer_folder(root / "trained_models", task=V2_NAME) == trainer_folder
    image, roi = paths.raw / "imagesTs" / "case_0006_0000.mha", paths.raw / "labelsTs" / "case_0006.mha"
    probabilities = predict(root / "trained_models", [image], roi_segmentation_file=roi, task=V2_NAME, device="cpu")
    assert len(probabilities) == 2
    assert isinstance(probabilities[0], float) and 0 <= probabilities[0] <= 1
    assert len(probabilities[1]) == 3 and sum(probabilities[1]) == pytest.approx(1, abs=1e-5)


# ---------------------------------------------------------------------------------- finding v2 datasets


def test_dataset_in_the_short_raw_layout_and_by_full_name(tmp_path):
    folder = v2_task(tmp_path, "Dataset004_Short")
    short = tmp_path / "raw" / "Dataset004_Short"
    folder.rename(short)
    for task in (4, "4", "004", "Dataset004_Short"):
        paths = TaskPaths.find(tmp_path, task)
        assert paths.task_name == "Dataset004_Short" and paths.raw == short
        assert paths.preprocessed == tmp_path / "preprocessed" / "Dataset004_Short"
    assert validate(short).description.nnunet_version == 2


def test_a_task_and_a_dataset_with_one_id_are_refused_naming_both(tmp_path, capsys):
    (tmp_path / "raw" / "nnUNet_raw_data" / "Task003_Vone").mkdir(parents=True)
    (tmp_path / "raw" / "nnUNet_raw" / V2_NAME).mkdir(parents=True)
    with pytest.raises(UserInputError) as info:
        TaskPaths.find(tmp_path, 3)
    assert_in(
        str(info.value),
        "Task id '3' matches several folders (an nnU-Net v1 task and an nnU-Net v2 dataset share this id)",
        "Task003_Vone (",
        V2_NAME + " (",
        "pass the full name instead",
    )
    assert TaskPaths.find(tmp_path, "Task003_Vone").raw == tmp_path / "raw" / "nnUNet_raw_data" / "Task003_Vone"
    assert TaskPaths.find(tmp_path, V2_NAME).raw == tmp_path / "raw" / "nnUNet_raw" / V2_NAME
    assert plan_and_preprocess_main([str(tmp_path), "-t", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Task id '3' matches several folders") and "Task003_Vone" in err and V2_NAME in err


def test_missing_task_names_both_layouts(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserInputError) as info:
        TaskPaths.find(tmp_path, 8)
    assert_in(str(info.value), "No task folder for '8'", "nnUNet_raw_data/TaskXXX_Name", "nnUNet_raw/DatasetXXX_Name")


# ---------------------------------------------------------------------------------- v2 dataset.json errors


@pytest.fixture
def v2_folder(tmp_path) -> Path:
    return v2_task(tmp_path)


def _edit(folder: Path, **changes) -> None:
    dataset = load_json(folder)
    for key, value in changes.items():
        if value is None:
            dataset.pop(key, None)
        else:
            dataset[key] = value
    write_json(folder, dataset)


def test_valid_v2_dataset(v2_folder):
    task = validate(v2_folder)
    assert task.description.nnunet_version == 2 and task.uses_roi
    assert task.description.modalities == ("CT",) and task.description.roi_labels == {0: "background", 1: "organ"}
    assert all(image.suffix == ".mha" for case in task.cases for image in case.images)


def test_modality_and_channel_names_together_are_refused(v2_folder):
    _edit(v2_folder, modality={"0": "CT"})
    error = validation_error(v2_folder)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "has both 'modality' (nnU-Net v1) and 'channel_names' (nnU-Net v2); keep one of them")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            {"organ": 1},
            "'labels' has no 'background' entry; nnU-Net v2 labels map names to values and need \"background\": 0",
        ),
        ({"background": 1, "organ": 0}, "'labels' maps 'background' to 1; nnU-Net v2 labels map names to values"),
        ({"background": 0, "organ": 2}, "'labels' values [0, 2] are not consecutive from 0; renumber them as [0, 1]"),
        (
            {"background": 0, "organ": 1, "lesion": 1},
            "'labels' gives one value to several names {1: ['organ', 'lesion']}",
        ),
        ({"background": 0, "organ": [1, 2]}, "'labels' ['organ'] are regions"),
        ({"background": 0, "organ": "1"}, "'labels' values {'organ': '1'} are not integers"),
    ],
)
def test_v2_labels_errors(v2_folder, labels, message):
    _edit(v2_folder, labels=labels)
    error = validation_error(v2_folder)
    assert error.problems == [error.problems[0]] and message in error.problems[0], error.problems


def test_v2_labels_with_background_only_mean_no_rois(v2_folder):
    dataset = load_json(v2_folder)
    for item in dataset["training"]:
        del item["label"]
    dataset["labels"] = {"background": 0}
    write_json(v2_folder, dataset)
    shutil.rmtree(v2_folder / "labelsTr")
    task = validate(v2_folder)
    assert not task.uses_roi and task.description.roi_labels is None


def test_file_ending_completes_and_checks_image_paths(v2_folder):
    dataset = load_json(v2_folder)
    dataset["training"][0]["image"] = "./imagesTr/case_0000"
    write_json(v2_folder, dataset)
    task = validate(v2_folder)
    assert task.cases[0].images == (v2_folder / "imagesTr" / "case_0000_0000.mha",)
    _edit(v2_folder, file_ending=".nii.gz")
    error = validation_error(v2_folder)
    assert_in(
        str(error),
        "training[1]: 'image' './imagesTr/case_0001.mha' ends in '.mha' but 'file_ending' is '.nii.gz'",
    )
    _edit(v2_folder, file_ending=".png")
    assert_in(str(validation_error(v2_folder)), "'file_ending' is '.png'; use one of")


def test_v2_folder_without_channel_names_asks_for_them(v2_folder):
    _edit(v2_folder, channel_names=None)
    error = validation_error(v2_folder)
    assert_in(str(error), "(an nnU-Net v2 dataset.json) is missing the key(s) ['channel_names']")


def test_v1_file_with_v2_labels_gets_a_hint(tmp_path):
    folder = make_task(tmp_path, extension=".mha")
    _edit(folder, labels={"background": 0, "organ": 1})
    error = validation_error(folder)
    assert len(error.problems) == 1
    assert_in(error.problems[0], "'labels' maps names to values (the nnU-Net v2 form", "use 'channel_names' instead")


# ---------------------------------------------------------------------------------- several tasks per command


def test_two_tasks_in_one_command(tmp_path):
    make_task(tmp_path, task_id=1, task_name="One", seed=1)
    v2_task(tmp_path, "Dataset002_Two", seed=2)
    assert plan_and_preprocess_main([str(tmp_path), "-t", "1", "2", "-tf", "1", "--quiet"]) == 0
    for name in ("Task001_One", "Dataset002_Two"):
        plans = Plans.load(tmp_path / "preprocessed" / name / PLANS_FILENAME)
        assert plans.task_name == name
        assert len(list((tmp_path / "preprocessed" / name / STAGE_FOLDER).glob("*.npy"))) == 6


def test_an_invalid_task_stops_every_task_before_preprocessing(tmp_path, capsys):
    make_task(tmp_path, task_id=1, task_name="Good", seed=1)
    broken = make_task(tmp_path, task_id=2, task_name="Broken", seed=2)
    (broken / "imagesTr" / "case_0001_0000.nii.gz").unlink()
    bad_labels = v2_task(tmp_path, "Dataset003_BadLabels", seed=3)
    _edit(bad_labels, labels={"organ": 1})
    code = plan_and_preprocess_main([str(tmp_path), "-t", "1", "2", "3", "9", "-tf", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert_in(
        err,
        "error: 3 of 4 tasks failed validation (Task002_Broken, Dataset003_BadLabels, task '9')",
        "nothing was planned or preprocessed (not even the valid Task001_Good)",
        "Task002_Broken: Task folder",
        "case case_0001: missing modality 0 (CT)",
        "Dataset003_BadLabels: Task folder",
        "'labels' has no 'background' entry",
        "task '9': No task folder for '9'",
    )
    assert not (tmp_path / "preprocessed").exists()


def test_a_task_failing_in_preprocessing_does_not_stop_the_others(tmp_path, capsys):
    # both pass validation; only the larger one resamples to more voxels than allowed, which preprocessing refuses
    make_task(tmp_path, task_id=1, task_name="Large", with_roi=False, base_size=(24, 32, 32), seed=1)
    make_task(tmp_path, task_id=2, task_name="Small", with_roi=False, base_size=(8, 10, 10), seed=2)
    arguments = [str(tmp_path), "-t", "1", "2", "-tf", "1", "--max_resampled_voxels", "3000", "--quiet"]
    assert plan_and_preprocess_main(arguments) == 2
    err = capsys.readouterr().err
    assert_in(
        err,
        "error: 1 of 2 tasks failed: Task001_Large (",
        "more than max_resampled_voxels = 3,000",
        "Succeeded: Task002_Small.",
    )
    assert not (tmp_path / "preprocessed" / "Task001_Large" / PLANS_FILENAME).exists()
    small = tmp_path / "preprocessed" / "Task002_Small"
    assert (small / PLANS_FILENAME).is_file() and len(list((small / STAGE_FOLDER).glob("*.npy"))) == 6


def test_one_task_given_twice_is_planned_once(tmp_path, monkeypatch):
    make_task(tmp_path, task_id=1, task_name="Once", seed=1)
    import universalclassifier.planning.plan_and_preprocess as module

    planned = []
    original = module._plan_validated

    def plan_validated(paths, *args):
        planned.append(paths.task_name)
        return original(paths, *args)

    monkeypatch.setattr(module, "_plan_validated", plan_validated)
    result = plan_and_preprocess_tasks(
        tmp_path, [1, "Task001_Once"], num_workers=1, preprocess=False, show_progress=False
    )
    assert list(result) == ["Task001_Once"] and planned == ["Task001_Once"]
