"""Crash safety and consistency checks: complete preprocessed data, race-free splits, plans hashes, atomic files."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import universalclassifier.atomic as atomic_module
import universalclassifier.training.splits as splits_module
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from universalclassifier.artifact.checkpoint import load_checkpoint, metadata_file, save_checkpoint
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.evaluation.validation_files import write_validation_files
from universalclassifier.inference.predict_folder import predict_folder
from universalclassifier.inference.predictor import Predictor
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import FINGERPRINT_FILENAME, plan_and_preprocess
from universalclassifier.planning.stage import COMPLETION_MARKER
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.synthetic import generate_task
from universalclassifier.training.splits import load_or_create_splits
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

TINY = TrainingOptions(
    max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
)
TASK = 21


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> TaskPaths:
    root = tmp_path_factory.mktemp("reliability")
    generate_task(root, TASK, "Reliable", num_cases=6, with_roi=True, base_size=(8, 16, 16), num_test=2, seed=2)
    plan_and_preprocess(root, TASK, num_workers=1, show_progress=False)
    return TaskPaths.find(root, TASK)


@pytest.fixture(scope="module")
def trained(planned, tmp_path_factory) -> TaskPaths:
    """A copy of the planned task with folds 0 and 1 trained for one tiny epoch."""
    root = tmp_path_factory.mktemp("reliability_trained")
    shutil.copytree(planned.data_root, root, dirs_exist_ok=True)
    paths = TaskPaths.find(root, TASK)
    for fold in (0, 1):
        ClassifierTrainer(paths, fold, TINY).run_training()
    return paths


# model_latest (with optimizer state) and model_best are most of a fold's bytes; most copies need neither
WITHOUT_RESUME_STATE = shutil.ignore_patterns("model_latest.model", "model_best.model")


def _copy(paths: TaskPaths, destination: Path, ignore=WITHOUT_RESUME_STATE) -> TaskPaths:
    shutil.copytree(paths.data_root, destination, ignore=ignore)
    return TaskPaths.find(destination, TASK)


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _use_modality(paths: TaskPaths, name: str) -> None:
    """Edit the task's dataset.json (as a user would) so that planning gives other plans for the same cases."""
    dataset_file = paths.raw / "dataset.json"
    dataset = json.loads(dataset_file.read_text())
    dataset["modality"] = {"0": name}
    dataset_file.write_text(json.dumps(dataset))


# ---------------------------------------------------------------- finding 1: complete, current preprocessed data
def test_interrupted_preprocessing_keeps_the_previous_plans_and_arrays(planned, tmp_path, monkeypatch):
    paths = _copy(planned, tmp_path / "data")
    before = _digest(paths.preprocessed)
    _use_modality(paths, "T1")  # the next run makes other plans
    import universalclassifier.planning.plan_and_preprocess as module

    real, calls = module.preprocess_case, []

    def dies_on_the_third_case(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "preprocess_case", dies_on_the_third_case)
    with pytest.raises(KeyboardInterrupt):
        plan_and_preprocess(paths.data_root, TASK, num_workers=1, show_progress=False)
    after = _digest(paths.preprocessed)
    stage = paths.stage_folder.name
    for name in (paths.plans_file.name, f"{stage}/case_0000.npy", f"{stage}/{COMPLETION_MARKER}"):
        assert after[name] == before[name], f"{name} changed although the run did not finish"
    assert sorted(p.name for p in paths.stage_folder.iterdir()) == sorted(
        p.name for p in planned.stage_folder.iterdir()
    )
    ClassifierTrainer(paths, 0, TINY)  # the old, complete data is still usable

    monkeypatch.setattr(module, "preprocess_case", real)
    plans = plan_and_preprocess(paths.data_root, TASK, num_workers=1, show_progress=False)
    marker = json.loads((paths.stage_folder / COMPLETION_MARKER).read_text())
    assert plans.normalization_schemes == ["zscore"] and marker["plans_hash"] == plans.content_hash()
    assert marker["case_ids"] == [f"case_{i:04d}" for i in range(6)]
    assert not [p for p in paths.preprocessed.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def _without_marker(paths: TaskPaths) -> None:
    (paths.stage_folder / COMPLETION_MARKER).unlink()


def _missing_case(paths: TaskPaths) -> None:
    (paths.stage_folder / "case_0003.npy").unlink()


def _wrong_shape(paths: TaskPaths) -> None:
    np.save(paths.stage_folder / "case_0002.npy", np.zeros((2, 3, 3, 3), dtype=np.float32))


def _fewer_cases_than_planned(paths: TaskPaths) -> None:
    marker_file = paths.stage_folder / COMPLETION_MARKER
    marker = json.loads(marker_file.read_text())
    marker["case_ids"] = marker["case_ids"][:4]
    marker_file.write_text(json.dumps(marker))


def _planned_again_without_preprocessing(paths: TaskPaths) -> None:
    _use_modality(paths, "T2")
    plan_and_preprocess(paths.data_root, TASK, num_workers=1, preprocess=False, show_progress=False)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_without_marker, "has no completion marker"),
        (_missing_case, "case case_0003: case_0003.npy or case_0003.json is missing"),
        (_wrong_shape, r"case case_0002: case_0002.npy has shape \[2, 3, 3, 3\], the plans expect"),
        (_fewer_cases_than_planned, "lists 4 case.* but the plans have 6 training cases"),
        (_planned_again_without_preprocessing, "were made with other plans than"),
    ],
)
def test_training_refuses_incomplete_or_stale_preprocessed_data(planned, tmp_path, damage, message):
    paths = _copy(planned, tmp_path / "data")
    damage(paths)
    with pytest.raises(UserInputError, match=message) as error:
        ClassifierTrainer(paths, 0, TINY)
    assert "uc_plan_and_preprocess.sh" in str(error.value) and str(paths.data_root) in str(error.value)
    assert not paths.splits_file.exists(), "splits must not be made from incomplete data"


# ------------------------------------------------------------------------- finding 6: race-free splits creation
def test_folds_starting_at_once_create_one_splits_file(tmp_path, monkeypatch):
    ids = [f"case_{i:03d}" for i in range(20)]
    targets = {"a": [i % 2 for i in range(20)]}
    real = splits_module.make_splits

    def slow_make_splits(*args, **kwargs):
        time.sleep(0.05)  # every fold sees no file yet, as when five folds start together
        return real(*args, **kwargs)

    monkeypatch.setattr(splits_module, "make_splits", slow_make_splits)
    splits_file = tmp_path / "splits_final.json"
    start = threading.Barrier(6)
    results, errors = [], []

    def fold() -> None:
        start.wait()
        try:
            results.append(load_or_create_splits(splits_file, ids, targets))
        except Exception as exc:  # collected: the test reports every failure
            errors.append(exc)

    threads = [threading.Thread(target=fold) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = real(ids, targets)
    assert len(results) == 6 and all(r == expected for r in results)
    assert json.loads(splits_file.read_text()) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["splits_final.json"]


def test_splits_are_created_without_hard_links(tmp_path, monkeypatch):
    def no_links(source, destination):
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(splits_module.os, "link", no_links)
    ids = [f"case_{i:03d}" for i in range(10)]
    splits = load_or_create_splits(tmp_path / "splits_final.json", ids, {"a": [i % 2 for i in range(10)]})
    assert json.loads((tmp_path / "splits_final.json").read_text()) == splits
    assert [p.name for p in tmp_path.iterdir()] == ["splits_final.json"]


# ------------------------------------------------------- finding 7: checkpoints are tied to the plans they used
def test_checkpoints_record_the_plans_hash(trained):
    current = Plans.load(trained.plans_file).content_hash()
    for fold in ("fold_0", "fold_1"):
        for name in ("model_final_checkpoint.model", "model_latest.model", "model_best.model"):
            metadata = json.loads(metadata_file(trained.trainer_folder() / fold / name).read_text())
            assert metadata["plans_hash"] == current and metadata["checkpoint_format_version"] == 3


def test_prediction_refuses_folds_trained_with_other_plans(trained, tmp_path):
    artifact = tmp_path / "artifact"
    shutil.copytree(trained.data_root / "trained_models", artifact, ignore=WITHOUT_RESUME_STATE)
    trainer_folder = next(artifact.glob("**/plans.json")).parent
    Predictor(artifact)  # consistent: loads
    final = metadata_file(trainer_folder / "fold_1" / "model_final_checkpoint.model")
    final.write_text(json.dumps({**json.loads(final.read_text()), "plans_hash": "0" * 64}))
    with pytest.raises(UserInputError, match=r"^fold_1 in .* retrain fold_1 with the current plans"):
        Predictor(artifact)
    assert len(Predictor(artifact, folds=[0]).networks) == 1

    plans = Plans.load(trainer_folder / "plans.json")
    plans.batch_size += 1  # plans.json replaced by a re-plan: now every fold is stale
    plans.save(trainer_folder / "plans.json")
    with pytest.raises(UserInputError, match="^fold_0, fold_1 in"):
        Predictor(artifact)


def test_checkpoints_of_format_2_still_load(trained, tmp_path):
    artifact = tmp_path / "artifact"
    shutil.copytree(trained.data_root / "trained_models", artifact, ignore=WITHOUT_RESUME_STATE)
    images = sorted((trained.raw / "imagesTs").glob("case_0006_*"))
    roi = trained.raw / "labelsTs" / "case_0006.nii.gz"
    expected = Predictor(artifact).predict_case(images, roi)
    for fold in ("fold_0", "fold_1"):
        checkpoint = next(artifact.glob(f"**/{fold}/model_final_checkpoint.model"))
        tensors = torch.load(checkpoint, weights_only=True)
        del tensors["checkpoint_id"]
        torch.save(tensors, checkpoint)
        metadata = json.loads(metadata_file(checkpoint).read_text())
        for key in ("checkpoint_id", "plans_hash"):
            del metadata[key]
        metadata_file(checkpoint).write_text(json.dumps({**metadata, "checkpoint_format_version": 2}))
    got = Predictor(artifact).predict_case(images, roi)
    assert got[0] == pytest.approx(expected[0]) and got[1] == pytest.approx(expected[1])


def test_training_into_a_folder_of_folds_with_other_plans_is_refused(trained, tmp_path):
    paths = _copy(trained, tmp_path / "data", ignore=None)
    plans_json = paths.trainer_folder() / "plans.json"
    old_plans = plans_json.read_bytes()
    _use_modality(paths, "T1")
    plan_and_preprocess(paths.data_root, TASK, num_workers=1, show_progress=False)

    with pytest.raises(UserInputError, match="fold_0, fold_1 there were trained with the old plans"):
        ClassifierTrainer(paths, 2, TINY).run_training()
    with pytest.raises(UserInputError, match="fold_1 there were trained with the old plans"):
        ClassifierTrainer(paths, 0, TINY).run_training(resume=True)
    assert plans_json.read_bytes() == old_plans

    shutil.rmtree(paths.trainer_folder() / "fold_1")
    with pytest.raises(UserInputError, match=r"was trained with other plans .*\(without -c\)"):
        ClassifierTrainer(paths, 0, TINY).run_training(resume=True)
    assert plans_json.read_bytes() == old_plans
    ClassifierTrainer(paths, 0, TINY).run_training()  # only this fold had checkpoints: it is retrained, plans replaced
    assert Plans.load(plans_json) == Plans.load(paths.plans_file)
    assert len(Predictor(paths.data_root / "trained_models").networks) == 1


# ------------------------------------------------------------------------------ finding 8: atomic artifact files
def test_checkpoint_interrupted_between_weights_and_metadata(tmp_path, monkeypatch):
    checkpoint = tmp_path / "model_latest.model"
    save_checkpoint(checkpoint, {"network": {"w": torch.tensor([1.0])}}, {"epoch": 1})
    real_replace = os.replace

    def killed_before_metadata(source, destination):
        if str(destination).endswith(".model.json"):
            raise KeyboardInterrupt("simulated kill")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", killed_before_metadata)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, {"network": {"w": torch.tensor([2.0])}}, {"epoch": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    tensors, metadata = load_checkpoint(checkpoint)
    assert float(tensors["network"]["w"]) == 2.0 and metadata["epoch"] == 2, "weights paired with stale metadata"

    save_checkpoint(checkpoint, {"network": {"w": torch.tensor([3.0])}}, {"epoch": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_latest.model", "model_latest.model.json"]
    stale = json.loads(metadata_file(checkpoint).read_text())
    save_checkpoint(checkpoint, {"network": {"w": torch.tensor([4.0])}}, {"epoch": 4})
    metadata_file(checkpoint).write_text(json.dumps(stale))  # a pair that was never written together
    with pytest.raises(UserInputError, match="belongs to another save"):
        load_checkpoint(checkpoint)


def test_resumed_folder_prediction_predicts_a_truncated_case_again(trained, tmp_path):
    inputs, seg, out = tmp_path / "in", trained.raw / "labelsTs", tmp_path / "out"
    shutil.copytree(trained.raw / "imagesTs", inputs)
    artifact = trained.data_root / "trained_models"
    assert predict_folder(artifact, inputs, out, seg, show_progress=False) == []
    complete = json.loads((out / "case_0007.json").read_text())
    text = (out / "case_0007.json").read_text()
    (out / "case_0007.json").write_text(text[: len(text) // 2])  # as left by a kill in the middle of a write
    assert predict_folder(artifact, inputs, out, seg, show_progress=False) == []
    again = json.loads((out / "case_0007.json").read_text())
    assert again["case_id"] == "case_0007" and again["lesion_contrast"] == pytest.approx(complete["lesion_contrast"])
    assert again["lesion_size"] == pytest.approx(complete["lesion_size"])
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["case_0006", "case_0007"]


def _plans_file(paths: TaskPaths) -> Path:
    target = paths.preprocessed / "plans_copy.json"
    Plans.load(paths.plans_file).save(target)
    return target


def _fingerprint(paths: TaskPaths) -> Path:
    plan_and_preprocess(paths.data_root, TASK, num_workers=1, show_progress=False)
    return paths.preprocessed / FINGERPRINT_FILENAME


def _validation_predictions(paths: TaskPaths) -> Path:
    ClassifierTrainer(paths, 0, TINY).validation_only()
    return paths.trainer_folder() / "fold_0" / "validation" / "predictions.json"


def _cv_summary(paths: TaskPaths) -> Path:
    summarize_cross_validation(paths.trainer_folder(), num_resamples=10)
    return paths.trainer_folder() / "cv_summary.json"


def _radiomics_fold(paths: TaskPaths) -> Path:
    folder = paths.reference_folder() / "fold_0" / "validation"
    probabilities = {"a": np.array([[0.8, 0.2], [0.3, 0.7]])}
    labels = [ClassificationLabel("a", "nominal", ("no", "yes"))]
    write_validation_files(folder, ["x", "y"], labels, {"a": [0, 1]}, probabilities, {"fold": "0"})
    return folder / "predictions.json"


@pytest.mark.parametrize("write", [_plans_file, _fingerprint, _validation_predictions, _cv_summary, _radiomics_fold])
def test_a_write_killed_before_it_completes_leaves_the_old_file(trained, tmp_path, monkeypatch, write):
    paths = _copy(trained, tmp_path / "data")
    target = write(paths)  # a complete write first, to learn which file it is
    target.write_text("old content\n")

    def killed(source, destination):
        raise KeyboardInterrupt("simulated kill before the new file is complete")

    monkeypatch.setattr(atomic_module.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write(paths)
    assert target.read_text() == "old content\n"
