"""Training end to end on a tiny generated task: outputs, resume, validation-only, errors and DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, run_script
from universalclassifier.errors import UserInputError
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import Plans
from universalclassifier.synthetic import generate_task
from universalclassifier.training.recipes import recipe_for
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions
from universalclassifier.training.training_log import TrainingLog, TrainResult, ValidationResult

QUICK = [
    "--max_num_epochs", "2", "--num_batches_per_epoch", "2", "--num_val_batches_per_epoch", "1", "--num_workers", "1"
]


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> TaskPaths:
    root = tmp_path_factory.mktemp("train")
    generate_task(
        root, 5, "Train", num_cases=10, with_roi=True, base_size=(10, 40, 40), spacing=(2.0, 1.0, 1.0), seed=3
    )
    plan_and_preprocess(root, 5, num_workers=1, show_progress=False)
    return TaskPaths.find(root, 5)


@pytest.fixture(scope="module")
def trained(task) -> Path:
    result = run_script("uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "0", *QUICK)
    assert result.returncode == 0, result.stderr
    return task.trainer_folder() / "fold_0"


def _png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_writes_the_model_folder(task, trained):
    assert Plans.load(trained.parent / "plans.json") == Plans.load(task.plans_file)
    splits = json.loads(task.splits_file.read_text())
    val_ids = splits[0]["val"]
    assert len(splits) == 5 and sorted(sum((s["val"] for s in splits), [])) == [f"case_{i:04d}" for i in range(10)]
    for name in ("model_latest.model", "model_best.model", "model_final_checkpoint.model"):
        tensors = torch.load(trained / name, weights_only=True)
        assert "network" in tensors and any(k.startswith("heads") or "head" in k for k in tensors["network"])
        metadata = json.loads((trained / f"{name}.json").read_text())
        assert metadata["head_names"] == ["lesion_contrast", "lesion_size"] and metadata["head_sizes"] == [2, 3]
    assert "optimizer" in torch.load(trained / "model_latest.model", weights_only=True)
    final = json.loads((trained / "model_final_checkpoint.model.json").read_text())
    assert final["epoch"] == 2 and len(final["log"]["train_loss"]) == 2 and final["world_size"] == 1
    recipe = recipe_for("ClassifierTrainer")
    assert final["log"]["lr"] == pytest.approx([recipe.learning_rate_at(e, 2) for e in range(2)])
    assert final["trainer"] == "ClassifierTrainer" and final["recipe"] == recipe.to_dict()
    log_text = (trained / "training_log.txt").read_text()
    assert "epoch 1/2" in log_text and "epoch 2/2" in log_text and "Validation of" in log_text
    assert _png(trained / "progress.png")

    validation = trained / "validation"
    rows = (validation / "predictions.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == [
        "case_id", "lesion_contrast_target", "lesion_contrast_p0", "lesion_contrast_p1", "lesion_contrast_prediction",
        "lesion_contrast_prediction_name", "lesion_size_target", "lesion_size_p0", "lesion_size_p1", "lesion_size_p2",
        "lesion_size_prediction", "lesion_size_prediction_name",
    ]
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted(val_ids)
    predictions = json.loads((validation / "predictions.json").read_text())
    for case in predictions.values():
        assert len(case["lesion_size"]["probabilities"]) == 3
        assert sum(case["lesion_size"]["probabilities"]) == pytest.approx(1, abs=1e-5)
    summary = json.loads((validation / "summary.json").read_text())["heads"]
    assert set(summary["lesion_contrast"]) >= {"auc", "accuracy", "balanced_accuracy", "confusion_matrix"}
    # lesion_size is ordinal ("ordinal": true): threshold AUCs and the kappa beside the confusion matrix
    assert summary["lesion_size"]["type"] == "ordinal" and len(summary["lesion_size"]["confusion_matrix"]) == 3
    assert set(summary["lesion_size"]["auc_per_threshold"]) == {">=1", ">=2"}
    assert sum(map(sum, summary["lesion_contrast"]["confusion_matrix"])) == len(val_ids)
    assert _png(validation / "roc_lesion_contrast.png") and _png(validation / "roc_lesion_size.png")


def test_continue_training_resumes_from_latest(task, trained):
    before = json.loads((trained / "model_latest.model.json").read_text())
    args = [str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "0", "-c", *QUICK]
    args[args.index("--max_num_epochs") + 1] = "3"
    result = run_script("uc_train.sh", *args)
    assert result.returncode == 0, result.stderr
    after = json.loads((trained / "model_latest.model.json").read_text())
    assert after["epoch"] == 3
    assert after["log"]["train_loss"][:2] == before["log"]["train_loss"]
    assert after["log"]["lr"][2] == pytest.approx(recipe_for("ClassifierTrainer").learning_rate_at(2, 3))
    assert "Loaded" in (trained / "training_log.txt").read_text()


def test_validation_only_recomputes_validation(task, trained):
    validation = trained / "validation"
    expected = json.loads((validation / "predictions.json").read_text())
    shutil.rmtree(validation)
    result = run_script(
        "uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "0", "--validation_only"
    )
    assert result.returncode == 0, result.stderr
    got = json.loads((validation / "predictions.json").read_text())
    assert got.keys() == expected.keys()
    for case in got:
        np.testing.assert_allclose(
            got[case]["lesion_size"]["probabilities"], expected[case]["lesion_size"]["probabilities"], atol=1e-5
        )
    assert (validation / "summary.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["2d", "ClassifierTrainer", "5", "0"], "Unknown network '2d'"),
        (["3d_fullres", "nnUNetTrainerV2", "5", "0"], "Unknown trainer 'nnUNetTrainerV2'"),
        (["3d_fullres", "ClassifierTrainer", "5", "x"], "Fold 'x' is not valid"),
        (["3d_fullres", "ClassifierTrainer", "5", "7"], "Fold 7 does not exist"),
    ],
)
def test_bad_arguments_give_one_line_errors(task, args, message):
    result = run_script("uc_train.sh", str(task.data_root), *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_second_run_of_a_fold_in_training_is_refused_and_writes_nothing(task, trained):
    log = (trained / "training_log.txt").read_text()
    holder = subprocess.Popen(  # another process holds fold 0, as a running uc_train does
        [sys.executable, "-c", "import sys, time; from universalclassifier.training.fold_lock import fold_lock\n"
         "with fold_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(trained)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_script(
            "uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "0", "--validation_only"
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"is in use by another training run (uc_train, process {holder.pid} on" in result.stderr
    assert (trained / "training_log.txt").read_text() == log  # the refused run wrote nothing into the fold
    # the lock dies with its holder (here killed): the fold can be used again
    again = run_script(
        "uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "0", "--validation_only"
    )
    assert again.returncode == 0, again.stderr


def test_missing_preprocessed_data_says_what_to_run(tmp_path):
    generate_task(tmp_path, 6, "NotPlanned", num_cases=6, base_size=(8, 12, 12))
    result = run_script("uc_train.sh", str(tmp_path), "3d_fullres", "ClassifierTrainer", "6", "0")
    assert result.returncode == 2 and "uc_plan_and_preprocess.sh" in result.stderr


def test_validation_only_without_training_says_so(task):
    result = run_script(
        "uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5", "3", "--validation_only"
    )
    assert result.returncode == 2 and "train this fold first" in result.stderr


def test_auc23_trainer_trains_into_its_own_folder_and_predicts(task):
    result = run_script("uc_train.sh", str(task.data_root), "3d_fullres", "ClassifierTrainerAUC23", "5", "1", *QUICK)
    assert result.returncode == 0, result.stderr
    folder = task.trainer_folder(trainer="ClassifierTrainerAUC23")
    assert folder.name == "ClassifierTrainerAUC23__UniversalClassifierPlansv1.0"
    metadata = json.loads((folder / "fold_1" / "model_final_checkpoint.model.json").read_text())
    assert metadata["recipe"] == recipe_for("ClassifierTrainerAUC23").to_dict()
    assert metadata["recipe"]["optimizer"] == "sgd" and metadata["recipe"]["momentum"] == 0.99
    assert metadata["log"]["lr"] == pytest.approx([1e-2, 1e-2 * 0.5**0.9])
    from universalclassifier.inference.predict import predict

    images = sorted(task.raw.joinpath("imagesTr").glob("case_0000_*"))
    result = predict(folder, images, task.raw / "labelsTr" / "case_0000.nii.gz")
    assert 0 <= result[0] <= 1 and sum(result[1]) == pytest.approx(1, abs=1e-6)


def test_ddp_with_two_cpu_processes_keeps_weights_identical(task):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "universalclassifier.training.run_training", str(task.data_root), "3d_fullres", "ClassifierTrainer", "5",
        "all", "--max_num_epochs", "2", "--num_batches_per_epoch", "2", "--num_val_batches_per_epoch", "1",
        "--num_workers", "0", "--quiet",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((task.trainer_folder() / "all" / "model_final_checkpoint.model.json").read_text())
    assert metadata["world_size"] == 2
    assert metadata["max_weight_difference_across_processes"] == 0.0
    assert (task.trainer_folder() / "all" / "validation" / "summary.json").is_file()


def test_epoch_hooks_on_fake_batches(task, tmp_path):
    """One epoch, hook by hook, on hand-made batches: what each hook reports and what end_epoch records."""
    options = TrainingOptions(
        max_num_epochs=4, num_batches_per_epoch=3, num_val_batches_per_epoch=2, num_workers=0, show_progress=False
    )
    trainer = ClassifierTrainer(task, 2, options, trainer_name="ClassifierTrainer")
    trainer.output_folder = tmp_path / "fold_2"
    channels = trainer.plans.num_modalities + 1
    generator = torch.Generator().manual_seed(0)

    def batches(count: int, targets: list[list[int]]):
        for _ in range(count):
            data = torch.rand(len(targets), channels, 8, 16, 16, generator=generator)
            yield {"data": data, "target": torch.tensor(targets)}

    before = {name: p.detach().clone() for name, p in trainer.network.named_parameters()}
    train = trainer.train_epoch(batches(3, [[0, 1], [1, 0]]))
    assert train.learning_rate == pytest.approx(trainer.recipe.learning_rate_at(0, 4))
    assert train.backbone_frozen  # the default trains the heads alone in the first half of the epochs
    assert np.isfinite(train.loss) and train.seconds >= train.data_wait_seconds >= 0
    changed = {name for name, p in trainer.network.named_parameters() if not torch.equal(before[name], p)}
    assert changed == {name for name in before if name.startswith("heads.")}
    # no backward pass through the frozen backbone: its parameters never received a gradient
    assert all((p.grad is None) != name.startswith("heads.") for name, p in trainer.network.named_parameters())

    validation = trainer.validate_epoch(batches(2, [[0, 0], [1, 1]]))
    assert not trainer.network.training and np.isfinite(validation.loss)
    assert set(validation.aucs) == set(trainer.plans.head_names)
    assert all(auc is None or 0 <= auc <= 1 for auc in validation.aucs.values())

    heads = trainer.plans.head_names
    trainer.end_epoch(TrainResult(1.5, 1e-4, True, 2.0, 0.5), ValidationResult(0.7, dict.fromkeys(heads, 0.6)), 3.0)
    trainer.end_epoch(TrainResult(1.2, 1e-4, False, 2.0, 0.5), ValidationResult(0.9, dict.fromkeys(heads, 0.8)), 3.0)
    assert trainer.epoch == 2 and trainer.log.train_loss == [1.5, 1.2] and trainer.log.val_loss == [0.7, 0.9]
    assert trainer.log.val_loss_ma == pytest.approx([0.7, 0.72])  # 0.9 * 0.7 + 0.1 * 0.9
    assert all(values == [0.6, 0.8] for values in trainer.log.val_auc.values())
    assert trainer.best_epoch == 1  # the moving average rose in epoch 2
    assert (trainer.output_folder / "model_best.model").is_file() and _png(trainer.output_folder / "progress.png")
    assert not (trainer.output_folder / "model_latest.model").exists()  # save_every 5, and training not done


def test_bf16_autocast_on_the_cpu_trains_all_layers_and_keeps_float32_weights(task, tmp_path):
    options = TrainingOptions(
        max_num_epochs=2, num_batches_per_epoch=2, num_val_batches_per_epoch=1, num_workers=0, show_progress=False,
        bf16=True,
    )
    trainer = ClassifierTrainer(task, 2, options, trainer_name="ClassifierTrainer")
    assert trainer.use_autocast and trainer.autocast_dtype == torch.bfloat16 and not trainer.use_amp
    trainer.output_folder = tmp_path / "fold_2"
    trainer.epoch = 1  # the second half: every layer learns
    data = torch.rand(2, trainer.plans.num_modalities + 1, 8, 16, 16)
    batch = {"data": data, "target": torch.tensor([[0, 1], [1, 0]])}
    before = {name: p.detach().clone() for name, p in trainer.network.named_parameters()}
    result = trainer.train_epoch(iter([batch, batch]))
    assert np.isfinite(result.loss) and not result.backbone_frozen
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    assert sum(not torch.equal(before[name], p) for name, p in trainer.network.named_parameters()) > len(before) // 2
    assert trainer._metadata()["autocast"] == "bfloat16"
    fp32 = ClassifierTrainer(task, 2, TrainingOptions(bf16=True, fp32=True, show_progress=False))
    assert not fp32.use_autocast and fp32._metadata()["autocast"] is None  # --fp32 wins


def test_training_log_round_trip_and_damage():
    log = TrainingLog.for_heads(["a", "b"])
    log.record(TrainResult(1.0, 1e-3, False, 2.0, 0.1), ValidationResult(2.0, {"a": 0.5, "b": None}), 2.5)
    assert TrainingLog.from_dict(json.loads(json.dumps(log.to_dict())), "x") == log
    assert log.num_epochs == 1 and log.val_auc == {"a": [0.5], "b": [None]}
    damaged = log.to_dict()
    damaged["lr"] = []
    with pytest.raises(UserInputError, match="m.model holds a training log with lists of unequal length"):
        TrainingLog.from_dict(damaged, "m.model")
    with pytest.raises(UserInputError, match="m.model holds no complete training log"):
        TrainingLog.from_dict({"train_loss": []}, "m.model")
