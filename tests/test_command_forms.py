"""nnU-Net v2 command habits beside the AUC23 (v1) forms: -d for -t, uc_train's v2 argument order, fold_all.

Parse-level only: nothing is trained or preprocessed here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from universalclassifier.cli import (
    evaluate_parser,
    plan_and_preprocess_parser,
    predict_parser,
    radiomics_parser,
    summarize_parser,
    train_main,
)
from universalclassifier.explain.cli import explain_parser
from universalclassifier.importing.cli import import_parser
from universalclassifier.training.run_training import V1_FORM, V2_FORM, resolve_order, train_parser


def _train_args(*argv: str) -> argparse.Namespace:
    return resolve_order(train_parser().parse_intermixed_args(["DATA", *argv]))


@pytest.mark.parametrize(
    ("parser", "rest"),
    [
        (plan_and_preprocess_parser, ["DATA"]),
        (predict_parser, ["DATA", "-i", "IN", "-o", "OUT"]),
        (summarize_parser, ["DATA"]),
        (evaluate_parser, ["DATA", "-o", "OUT", "--use_dataset_test"]),
        (explain_parser, ["DATA", "-i", "IN", "-o", "OUT"]),
        (radiomics_parser, ["DATA"]),
        (import_parser, ["DATA", "--from", "medmnist", "set.npz"]),
    ],
)
def test_d_is_a_synonym_of_t_on_every_command_that_takes_a_task(
    parser: Callable[[], argparse.ArgumentParser], rest: list[str]
):
    with_t = parser().parse_args([*rest, "-t", "3"])
    assert parser().parse_args([*rest, "-d", "3"]) == with_t
    assert parser().parse_args([*rest, "--task", "3"]) == with_t
    assert str(with_t.task) in ("3", "['3']")


def test_d_takes_several_tasks_in_plan_and_preprocess():
    args = plan_and_preprocess_parser().parse_args(["DATA", "-d", "3", "Dataset004_X", "-tf", "1"])
    assert args.task == ["3", "Dataset004_X"] and args.tf == 1


@pytest.mark.parametrize(
    ("v2", "v1"),
    [
        (["5", "3d_fullres", "0"], ["3d_fullres", "ClassifierTrainer", "5", "0"]),
        (["5", "3d_fullres", "0", "-tr", "ClassifierTrainer"], ["3d_fullres", "ClassifierTrainer", "5", "0"]),
        (
            ["Dataset005_X", "3d_fullres", "3", "-tr", "ClassifierTrainerAUC23"],
            ["3d_fullres", "ClassifierTrainerAUC23", "Dataset005_X", "3"],
        ),
        (["5", "3d_fullres", "fold_all"], ["3d_fullres", "ClassifierTrainer", "5", "all"]),
        (["5", "3d_fullres", "all"], ["3d_fullres", "ClassifierTrainer", "5", "all"]),
        (["5", "3d_fullres", "1", "--c"], ["3d_fullres", "ClassifierTrainer", "5", "1", "-c"]),
        (["5", "3d_fullres", "1", "--val"], ["3d_fullres", "ClassifierTrainer", "5", "1", "--validation_only"]),
        # options anywhere, as nnU-Net v2 users write them: -tr before the fold, -p (plans) as in v2
        (
            ["5", "-tr", "ClassifierTrainerAUC23", "3d_fullres", "2", "-p", "Other", "--max_num_epochs", "3"],
            ["3d_fullres", "ClassifierTrainerAUC23", "5", "2", "-p", "Other", "--max_num_epochs", "3"],
        ),
    ],
)
def test_each_v2_form_parses_to_the_arguments_of_its_v1_form(v2, v1):
    assert _train_args(*v2) == _train_args(*v1)


def test_parsed_train_arguments_are_named():
    args = _train_args("7", "3d_fullres", "fold_all", "-tr", "ClassifierTrainerAUC23")
    assert (args.network, args.trainer, args.task, args.fold) == ("3d_fullres", "ClassifierTrainerAUC23", "7", "all")
    assert not hasattr(args, "arguments")


def test_the_v1_form_is_unchanged():
    args = _train_args("3d_fullres", "ClassifierTrainer", "Task005_X", "4", "-c", "--fp32", "--seed", "7")
    assert (args.network, args.trainer, args.task, args.fold) == ("3d_fullres", "ClassifierTrainer", "Task005_X", "4")
    assert args.continue_training and args.fp32 and args.seed == 7 and not args.validation_only


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["3d_fullres", "ClassifierTrainer", "5"], "3 argument(s) after DATA fit neither order"),  # v1, fold missing
        (["3d_fullres", "5", "0", "-tr", "ClassifierTrainer"], "fit neither order"),  # configuration first
        (["5", "ClassifierTrainer", "0"], "fit neither order"),  # no configuration second and no -tr
        (["3d_fullres", "ClassifierTrainer", "5", "0", "-tr", "ClassifierTrainer"], "-tr belongs to the v2 order"),
        (["5", "0"], "2 argument(s) after DATA"),
        (["3d_fullres", "ClassifierTrainer", "5", "0", "1"], "5 argument(s) after DATA"),
    ],
)
def test_ambiguous_train_forms_are_refused_with_both_forms_on_one_line(tmp_path, capsys, argv, reason):
    assert train_main([str(tmp_path), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot read") and err.count("\n") == 1 and "Traceback" not in err
    assert reason in err and V1_FORM in err and V2_FORM in err
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["5", "2d", "0"], "Unknown network '2d'"),  # the v2 order with a configuration we do not plan
        (["5", "3d_fullres", "fold_x"], "Fold 'fold_x' is not valid"),
        (["5", "3d_fullres", "0", "-tr", "nnUNetTrainer"], "Unknown trainer 'nnUNetTrainer'"),
    ],
)
def test_v2_forms_reach_the_usual_checks(tmp_path, capsys, argv, message):
    assert train_main([str(tmp_path), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
