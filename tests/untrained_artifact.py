"""A small artifact for prediction tests that need a model but not a trained one (weights at initialisation).

It is made by the trainer itself (plans.json and a final checkpoint with the trainer's metadata), without
running an epoch, so it costs seconds instead of a training run. One artifact is shared by every test module
of a session that asks for it; tests must not write into it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from universalclassifier.paths import ArtifactLayout, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

TASK_ID = 31
_SHARED: dict[str, TaskPaths] = {}


def make_untrained_artifact(root: Path, task_id: int = TASK_ID) -> TaskPaths:
    """A 6-case CT task with ROIs (about 8x12x12 voxels, 2 test cases), planned, with an untrained fold `all`."""
    generate_task(root, task_id, "TinyUntrained", num_cases=6, base_size=(8, 12, 12), num_test=2, seed=3)
    plan_and_preprocess(root, task_id, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, task_id)
    save_untrained_fold(paths)
    return paths


def save_untrained_fold(paths: TaskPaths, fold: int | str = "all", seed: int = TrainingOptions.seed) -> None:
    """A fold of a planned task at its initial weights (drawn with `seed`): the trainer's plans.json and final
    checkpoint."""
    options = TrainingOptions(
        max_num_epochs=1,
        num_batches_per_epoch=1,
        num_val_batches_per_epoch=1,
        num_workers=0,
        show_progress=False,
        seed=seed,
    )
    trainer = ClassifierTrainer(paths, fold, options)
    trainer.output_folder.mkdir(parents=True)
    trainer.plans.save(trainer.output_folder.parent / "plans.json")
    trainer.save(ArtifactLayout.FINAL, with_optimizer=False)


def shared_untrained_artifact(tmp_path_factory: pytest.TempPathFactory) -> TaskPaths:
    """The session's untrained artifact, made on first use."""
    if "artifact" not in _SHARED:
        _SHARED["artifact"] = make_untrained_artifact(tmp_path_factory.mktemp("untrained_artifact"))
    return _SHARED["artifact"]


def held_out_case(paths: TaskPaths, index: int = 6) -> tuple[list[Path], Path]:
    """The image files and ROI of one generated test case (indices 6 and 7)."""
    raw = paths.raw
    return [raw / "imagesTs" / f"case_{index:04d}_0000.nii.gz"], raw / "labelsTs" / f"case_{index:04d}.nii.gz"
