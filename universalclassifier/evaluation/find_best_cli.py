"""Command-line entry point `uc_find_best`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from universalclassifier.checks import int_at_least
from universalclassifier.console import TASK_FLAGS, add_common_options, run_command


def find_best_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_find_best",
        description="Compare the trained variants (trainer folders) of a task on their pooled out-of-fold "
        "predictions, the radiomics reference included when present, and choose the one predict() and uc_predict "
        "use when no trainer folder is named. Score: the mean over heads of AUC (classification) or R² (regression); "
        "only variants with every planned fold validated are eligible; a difference to the default ClassifierTrainer "
        "that a paired bootstrap cannot tell from 0 keeps the default. Writes best_configuration.json and "
        "best_configuration.md into DATA/trained_models/nnUNet/3d_fullres/TaskXXX_Name/.",
    )
    parser.add_argument("data_root", help="data root holding raw/ (or preprocessed/) and trained_models/")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument(
        "--num_resamples", type=int_at_least(10), default=1000, metavar="N",
        help="bootstrap resamples for the paired intervals (default 1000)",
    )
    add_common_options(parser)
    return parser


def _find_best(args: argparse.Namespace) -> None:
    from universalclassifier.evaluation.find_best import find_best_configuration

    find_best_configuration(args.data_root, args.task, num_resamples=args.num_resamples)


def find_best_main(argv: Sequence[str] | None = None) -> int:
    """`uc_find_best DATA -t ID [--num_resamples N]`."""
    args = find_best_parser().parse_args(argv)
    return run_command(args, _find_best)
