"""`universalclassifier.train`: the Python API that `uc_train` calls, on a tiny generated task."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import universalclassifier
from universalclassifier.cli import train_main
from universalclassifier.errors import UserInputError
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.fold_lock import fold_lock

QUICK = {"max_num_epochs": 2, "num_batches_per_epoch": 2, "num_val_batches_per_epoch": 1, "num_workers": 0}


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> TaskPaths:
    root = tmp_path_factory.mktemp("train_api")
    generate_task(
        root, 5, "Train", num_cases=10, with_roi=True, base_size=(10, 40, 40), spacing=(2.0, 1.0, 1.0), seed=3
    )
    plan_and_preprocess(root, 5, num_workers=1, show_progress=False)
    return TaskPaths.find(root, 5)


@pytest.fixture(scope="module")
def trained(task) -> Path:
    package_logger = logging.getLogger("universalclassifier")
    level, handlers = package_logger.level, list(package_logger.handlers)
    folder = universalclassifier.train(str(task.data_root), "5", 0, show_progress=False, **QUICK)
    # the log file handler is gone afterwards and the logger's level is as it was
    assert package_logger.level == level and package_logger.handlers == handlers
    return folder


def test_train_returns_the_fold_folder_with_the_final_checkpoint(task, trained):
    assert trained == task.trainer_folder() / "fold_0"
    final = json.loads((trained / "model_final_checkpoint.model.json").read_text())
    assert (trained / "model_final_checkpoint.model").is_file() and final["epoch"] == 2
    assert final["trainer"] == "ClassifierTrainer" and final["world_size"] == 1
    assert (trained / "validation" / "summary.json").is_file()
    # without the command line's logging set-up, every epoch still reaches training_log.txt
    log_text = (trained / "training_log.txt").read_text()
    assert "epoch 1/2" in log_text and "epoch 2/2" in log_text and "Validation of" in log_text


def test_train_holds_the_fold_lock(task, trained):
    log = (trained / "training_log.txt").read_text()
    with fold_lock(trained, command="another run"), pytest.raises(UserInputError, match="in use by another training"):
        universalclassifier.train(task.data_root, 5, 0, validation_only=True, show_progress=False)
    assert (trained / "training_log.txt").read_text() == log


def test_uc_train_in_the_v2_order_goes_through_the_api(task, trained):
    validation = trained / "validation" / "summary.json"
    validation.unlink()
    assert train_main([str(task.data_root), "Task005_Train", "3d_fullres", "0", "--val", "--quiet"]) == 0
    assert validation.is_file() and "epoch 2/2" in (trained / "training_log.txt").read_text()


@pytest.mark.parametrize(
    ("arguments", "options", "message"),
    [
        ({"fold": "x"}, {}, "Fold 'x' is not valid"),
        ({"fold": -1}, {}, "Fold -1 is not valid"),
        ({"fold": 100}, {}, "Fold 100 is not valid"),
        ({"fold": True}, {}, "Fold True is not valid"),
        ({"fold": "fold_all"}, {}, "Fold 'fold_all' is not valid"),
        ({"fold": "\u00b2"}, {}, "is not valid: use 0-4"),  # a digit to str.isdigit, not to int()
        ({"trainer": "nnUNetTrainer"}, {}, "Unknown trainer 'nnUNetTrainer': choose one of ClassifierTrainer"),
        ({}, {"epochs": 2}, "Unknown training option(s) epochs: the options are max_num_epochs"),
        ({}, {"fp32": "no"}, "fp32 must be True or False, got 'no'"),
        ({}, {"max_num_epochs": 0}, "--max_num_epochs must be an integer >= 1, got 0"),
        ({}, {"continue_training": True, "validation_only": True}, "Use either -c (continue_training) or"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, arguments, options, message):
    call = {"data_root": tmp_path / "missing", "task": 5, "fold": 0, **arguments}
    with pytest.raises(UserInputError) as error:
        universalclassifier.train(**call, **options)
    assert message in str(error.value)
    assert not tmp_path.joinpath("missing").exists()


def test_a_task_that_is_not_there_is_named(tmp_path):
    with pytest.raises(UserInputError, match="No task folder for '5'"):
        universalclassifier.train(tmp_path, 5, "all")
