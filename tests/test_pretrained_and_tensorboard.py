"""`uc_train --pretrained_weights` (fine-tuning from another trained model) and `--tensorboard` (event files), on two
tiny generated tasks: a source task with 2 heads and a target task with 5 heads, covariates and another ROI map."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import sys
from pathlib import Path

import pytest
import torch

import universalclassifier
from universalclassifier.artifact.loading import load_plans
from universalclassifier.cli import train_main
from universalclassifier.errors import UserInputError
from universalclassifier.network.i3d import network_for
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.pretrained import TASK_PARTS, initialize_from_pretrained
from universalclassifier.training.recipes import recipe_for
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

QUICK = {"max_num_epochs": 2, "num_batches_per_epoch": 2, "num_val_batches_per_epoch": 1, "num_workers": 0}
QUICK_ARGS = [f"--{name}={value}" for name, value in QUICK.items()]
FINAL = "model_final_checkpoint.model"
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(
    not HAS_TENSORBOARD, reason="tensorboard is not installed (universalclassifier[tensorboard])"
)


def _shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(TASK_PARTS)}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> tuple[TaskPaths, TaskPaths]:
    root = tmp_path_factory.mktemp("fine_tuning")
    shape = {"base_size": (8, 24, 24), "spacing": (2.0, 1.0, 1.0)}
    generate_task(root, 5, "Source", num_cases=6, with_roi=True, seed=3, **shape)
    generate_task(root, 6, "Target", num_cases=10, with_roi=True, seed=4, label_types=True, **shape)
    for task in (5, 6):
        plan_and_preprocess(root, task, num_workers=1, show_progress=False)
    return TaskPaths.find(root, 5), TaskPaths.find(root, 6)


@pytest.fixture(scope="module")
def source(tasks) -> Path:
    """A trained fold of the source task, with TensorBoard logs where the package is installed; another seed than the
    target's default, so that its weights differ from the target's random start."""
    return universalclassifier.train(
        tasks[0].data_root, 5, 0, seed=7, show_progress=False, tensorboard=HAS_TENSORBOARD, **QUICK
    )


@pytest.fixture(scope="module")
def fine_tuned(tasks, source) -> tuple[ClassifierTrainer, dict[str, torch.Tensor]]:
    """The target task's fold 0 trained from the source with the backbone frozen throughout (so that it must still
    be the source's at the end), and the network's random start."""
    options = TrainingOptions(**QUICK, show_progress=False, pretrained_weights=str(source))
    recipe = dataclasses.replace(recipe_for("ClassifierTrainer"), backbone_frozen_fraction=1.0)
    trainer = ClassifierTrainer(tasks[1], 0, options, recipe=recipe)
    start = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.run_training()
    return trainer, start


def _record(source: Path) -> dict[str, str]:
    checkpoint = source / FINAL
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    return {"path": str(checkpoint.resolve()), "sha256": sha256, "task_name": "Task005_Source"}


def test_the_backbone_comes_from_the_source_and_the_heads_are_new(source, fine_tuned):
    trainer, start = fine_tuned
    source_weights = torch.load(source / FINAL, weights_only=True)["network"]
    stem = "backbone.Conv3d_1a_7x7.conv.weight"
    assert not torch.equal(start[stem], source_weights[stem])  # the random start differs from the source
    trained = trainer.network.state_dict()
    assert _shared(trained).keys() == _shared(source_weights).keys()
    for name, tensor in _shared(source_weights).items():
        assert torch.equal(trained[name], tensor), name
    # the target's five heads (the source has two), trained from their random start
    assert {k.split(".")[1] for k in source_weights if k.startswith("heads.")} == {"0", "1"}
    assert [len(head.bias) for head in trainer.network.heads if isinstance(head, torch.nn.Linear)] == [2, 1, 2, 2]
    assert len(trainer.network.heads) == 5 and not torch.equal(trained["heads.0.weight"], start["heads.0.weight"])


def test_the_checkpoints_record_the_source_and_its_hash(source, fine_tuned):
    folder = fine_tuned[0].output_folder
    for name in (FINAL, "model_latest.model", "model_best.model"):
        metadata = json.loads((folder / f"{name}.json").read_text())
        assert metadata["pretrained_weights"] == _record(source), name
        assert metadata["head_names"][-1] == "high_risk" and metadata["options"]["pretrained_weights"] == str(source)
    assert "pretrained_weights" in json.loads((source / f"{FINAL}.json").read_text())  # null: a random start


def test_inputs_that_differ_are_said_and_the_source_logged(tasks, source, caplog):
    plans = load_plans(tasks[1].trainer_folder())
    network = network_for(plans, recipe_for("ClassifierTrainer").to_dict())
    with caplog.at_level(logging.INFO, logger="universalclassifier"):
        assert initialize_from_pretrained(network, source, plans) == _record(source)
    assert "ROI labels 2 -> 3" in caplog.text  # the target's ROI map has a lesion label too
    assert f"Backbone from {(source / FINAL).resolve()} (Task005_Source, sha256 " in caplog.text


@needs_tensorboard
def test_tensorboard_holds_every_epoch(source):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list((source / "tensorboard").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(source / "tensorboard"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    log = json.loads((source / f"{FINAL}.json").read_text())["log"]
    aucs = {f"validation_auc/{head}" for head, values in log["val_auc"].items() if any(v is not None for v in values)}
    assert tags == {
        "loss/train", "loss/validation", "loss/validation_moving_average", "backbone_frozen", "learning_rate/backbone",
        "learning_rate/heads", "time/epoch_seconds", "time/train_seconds", "time/data_wait_seconds", *aucs,
    }

    def steps(tag: str) -> list[int]:
        return [s.step for s in accumulator.Scalars(tag)]

    def values(tag: str) -> list[float]:
        return [s.value for s in accumulator.Scalars(tag)]

    assert all(steps(tag) == [1, 2] for tag in tags - aucs)
    assert values("loss/train") == pytest.approx(log["train_loss"])
    assert values("loss/validation") == pytest.approx(log["val_loss"])
    assert values("time/epoch_seconds") == pytest.approx(log["epoch_seconds"])
    for tag in aucs:  # an epoch whose validation batches hold one class only has no AUC
        known = [(epoch, auc) for epoch, auc in enumerate(log["val_auc"][tag.partition("/")[2]], 1) if auc is not None]
        assert steps(tag) == [e for e, _ in known] and values(tag) == pytest.approx([a for _, a in known])
    recipe = recipe_for("ClassifierTrainer")
    rates = [recipe.learning_rate_at(epoch, 2) for epoch in range(2)]
    assert values("learning_rate/heads") == pytest.approx([r * recipe.head_learning_rate_factor for r in rates])
    assert values("learning_rate/backbone") == pytest.approx([0.0, rates[1]])  # frozen for the first half
    assert values("backbone_frozen") == [1.0, 0.0]


def test_a_source_with_other_modalities_or_layers_is_refused(tasks, source):
    plans = load_plans(tasks[1].trainer_folder())
    two = dataclasses.replace(
        plans, modalities=["CT", "T2"], normalization_schemes=["CT", "zscore"], use_mask_for_norm=[False, False]
    )
    recipe = recipe_for("ClassifierTrainer").to_dict()
    with pytest.raises(UserInputError) as error:
        initialize_from_pretrained(network_for(two, recipe), source, two)
    assert f"--pretrained_weights {source / FINAL}" in str(error.value)
    assert "modalities: the pretrained model has 1 (CT), this task 2 (CT, T2)" in str(error.value)

    batch_norm = network_for(plans, recipe_for("ClassifierTrainerAUC23").to_dict())
    with pytest.raises(UserInputError, match="normalization layers .*'group', this trainer's 'batch'"):
        initialize_from_pretrained(batch_norm, source, plans)
    fine = network_for(plans, {**recipe, "fine_roi_features": True})
    with pytest.raises(UserInputError, match="fine ROI branch .* has none, this training one"):
        initialize_from_pretrained(fine, source, plans)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda source: source.parent / "fold_4", "does not exist: pass a trained fold folder"),
        (lambda source: source.parent, "is a trainer folder, not one fold of it"),
        (lambda source: source / "validation", "holds no model_final_checkpoint.model"),
        (lambda source: source / "model_latest.model", "is not a final checkpoint"),
    ],
)
def test_a_path_without_a_trained_model_is_refused_before_any_work(tasks, source, where, message):
    with pytest.raises(UserInputError, match=message):
        universalclassifier.train(tasks[1].data_root, 6, 1, pretrained_weights=where(source), **QUICK)
    assert not (tasks[1].trainer_folder() / "fold_1").exists()


def test_a_checkpoint_outside_its_model_folder_is_refused(tmp_path, tasks, source):
    alone = tmp_path / "copied" / FINAL
    alone.parent.mkdir()
    alone.write_bytes((source / FINAL).read_bytes())
    plans = load_plans(tasks[1].trainer_folder())
    with pytest.raises(UserInputError, match="has no plans.json in .*: pass the fold folder inside the trained model"):
        initialize_from_pretrained(network_for(plans, recipe_for("ClassifierTrainer").to_dict()), alone, plans)


@pytest.mark.parametrize("mode", ["continue_training", "validation_only"])
def test_pretrained_weights_only_start_a_training(tasks, source, mode):
    with pytest.raises(UserInputError, match="--pretrained_weights starts a new training; -c and --validation_only"):
        universalclassifier.train(tasks[1].data_root, 6, 0, pretrained_weights=source, **{mode: True})


def test_tensorboard_without_the_package_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it now raises ImportError
    with pytest.raises(UserInputError, match=r"--tensorboard needs the tensorboard package .*\[tensorboard\]"):
        universalclassifier.train(tmp_path / "missing", 5, 0, tensorboard=True)
    assert not (tmp_path / "missing").exists()


def test_uc_train_passes_both_options_on(tasks, source, monkeypatch, capsys):
    args = [str(tasks[1].data_root), "6", "3d_fullres", "1", *QUICK_ARGS, "--quiet"]
    assert train_main([*args, "--pretrained_weights", str(source.parent)]) == 2
    assert "is a trainer folder, not one fold of it" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert train_main([*args, "--tensorboard"]) == 2
    assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
    assert not (tasks[1].trainer_folder() / "fold_1").exists()


@needs_tensorboard
def test_a_resumed_run_keeps_the_record_and_continues_the_curves(tasks, source, fine_tuned):
    """Last in this file: it trains the fine-tuned fold one more epoch (-c), after a stale event of an interrupted
    run at that epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    folder = fine_tuned[0].output_folder
    with SummaryWriter(str(folder / "tensorboard")) as stale:
        stale.add_scalar("loss/train", 99.0, 3)
    options = TrainingOptions(**{**QUICK, "max_num_epochs": 3}, show_progress=False, tensorboard=True)
    recipe = dataclasses.replace(recipe_for("ClassifierTrainer"), backbone_frozen_fraction=1.0)
    ClassifierTrainer(tasks[1], 0, options, recipe=recipe).run_training(resume=True)
    metadata = json.loads((folder / f"{FINAL}.json").read_text())
    assert metadata["epoch"] == 3 and metadata["pretrained_weights"] == _record(source)
    accumulator = EventAccumulator(str(folder / "tensorboard"))
    accumulator.Reload()
    scalars = accumulator.Scalars("loss/train")
    assert [s.step for s in scalars] == [3] and scalars[0].value == pytest.approx(metadata["log"]["train_loss"][2])
