"""Command-line entry points; expected user mistakes end with a short message and a non-zero exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from universalclassifier.checks import int_at_least
from universalclassifier.console import add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.importing.cli import import_main
from universalclassifier.paths import TRAINER

logger = logging.getLogger("universalclassifier")


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    from universalclassifier.preprocessing.preprocessor import InputLimits

    defaults = InputLimits()
    parser.add_argument(
        "--max_input_voxels", type=int_at_least(1), default=defaults.max_input_voxels, metavar="N",
        help=f"refuse image files with more voxels than this (default {defaults.max_input_voxels})",
    )
    parser.add_argument(
        "--max_resampled_voxels", type=int_at_least(1), default=defaults.max_resampled_voxels, metavar="N",
        help=f"refuse cases that would resample to more voxels than this (default {defaults.max_resampled_voxels})",
    )


def _limits(args: argparse.Namespace):
    from universalclassifier.preprocessing.preprocessor import InputLimits

    return InputLimits(args.max_input_voxels, args.max_resampled_voxels)


def plan_and_preprocess_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_plan_and_preprocess",
        description="Validate a raw task, plan spacing/crop/normalization/input size, and preprocess the training "
        "cases into DATA/preprocessed/TaskXXX_Name.",
    )
    parser.add_argument("data_root", help="data root holding raw/ (created: preprocessed/)")
    parser.add_argument("-t", "--task", required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument(
        "-tf", type=int_at_least(1), default=2, metavar="N", help="worker processes for preprocessing (default 2)"
    )
    parser.add_argument(
        "-tl", type=int, default=None, metavar="N", help="accepted for nnU-Net compatibility; unused (one stage only)"
    )
    parser.add_argument(
        "-no_pp", action="store_true", help="plan only: write fingerprint and plans, skip preprocessing"
    )
    parser.add_argument(
        "--verify_dataset_integrity",
        action="store_true",
        help="accepted for nnU-Net compatibility; the task is always validated before planning",
    )
    _add_limit_options(parser)
    add_common_options(parser)
    return parser


def _plan_and_preprocess(args: argparse.Namespace) -> None:
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess

    plan_and_preprocess(
        args.data_root, args.task, num_workers=args.tf, preprocess=not args.no_pp, show_progress=not args.quiet,
        limits=_limits(args),
    )


def plan_and_preprocess_main(argv: Sequence[str] | None = None) -> int:
    """`uc_plan_and_preprocess DATA -t ID [-tf N] [-no_pp]`."""
    args = plan_and_preprocess_parser().parse_args(argv)
    return run_command(args, _plan_and_preprocess)


def train_main(argv: Sequence[str] | None = None) -> int:
    """`uc_train DATA 3d_fullres ClassifierTrainer TASK FOLD [options]`."""
    from universalclassifier.training.run_training import main

    return main(argv)


def predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_predict",
        description="Predict every case of a flat folder (CASE_XXXX.<ext> images, CASE.<ext> ROIs) with the trained "
        "ensemble in DATA/trained_models; writes OUT/CASE.json per case and OUT/summary.csv.",
    )
    parser.add_argument("data_root", help="data root holding trained_models/ (or a trained_models folder itself)")
    parser.add_argument("-i", "--input", required=True, help="folder with the cases' images")
    parser.add_argument("-o", "--output", required=True, help="folder for the results")
    parser.add_argument(
        "-s", "--seg", default=None, help="folder with the ROI segmentations (models trained with ROIs)"
    )
    parser.add_argument("-t", "--task", default=None, help="task id or name (needed when several tasks are trained)")
    parser.add_argument(
        "-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: every trained fold)"
    )
    parser.add_argument("--tta", action="store_true", help="also average over all mirrorings")
    parser.add_argument("--overwrite_existing", action="store_true", help="predict cases whose JSON already exists")
    parser.add_argument(
        "--covariates", default=None, metavar="CSV",
        help="covariate values of the cases (columns case_id and one per covariate; empty = unknown), for models "
        "trained with covariates",
    )
    parser.add_argument(
        "--impute_missing_covariates", action="store_true",
        help="impute unknown covariate values (or all of them, without --covariates) as in training",
    )
    _add_limit_options(parser)
    add_common_options(parser)
    return parser


def _predict(args: argparse.Namespace) -> None:
    from pathlib import Path

    from universalclassifier.inference.predict_folder import predict_folder

    root = Path(args.data_root)
    artifact = root / "trained_models" if (root / "trained_models").is_dir() else root
    failed = predict_folder(
        artifact,
        Path(args.input),
        Path(args.output),
        None if args.seg is None else Path(args.seg),
        task=args.task,
        folds=args.folds,
        tta=args.tta,
        overwrite=args.overwrite_existing,
        show_progress=not args.quiet,
        limits=_limits(args),
        covariates_file=None if args.covariates is None else Path(args.covariates),
        impute_missing_covariates=args.impute_missing_covariates,
    )
    if failed:
        raise UserInputError(f"{len(failed)} case(s) failed: {', '.join(failed)} (see the log above).")


def predict_main(argv: Sequence[str] | None = None) -> int:
    """`uc_predict DATA -i IN -o OUT [-s SEG] [-t ID] [-f 0 1 2 3 4] [--tta] [--overwrite_existing]`."""
    args = predict_parser().parse_args(argv)
    return run_command(args, _predict)


def summarize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_summarize",
        description="Pool the out-of-fold validation predictions of every trained fold of a task and write "
        "cv_summary.json, cv_report.md and cv_plots/ next to the folds: AUC with a 95% bootstrap interval, "
        "balanced accuracy, confusion matrix and calibration per head.",
    )
    parser.add_argument("data_root", help="data root holding raw/ and trained_models/")
    parser.add_argument("-t", "--task", required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument(
        "-tr", "--trainer", default=TRAINER, help=f"trainer (recipe) whose folds to pool (default {TRAINER})"
    )
    parser.add_argument(
        "--num_resamples",
        type=int_at_least(1),
        default=1000,
        metavar="N",
        help="bootstrap resamples for the AUC interval (default 1000)",
    )
    add_common_options(parser)
    return parser


def _summarize(args: argparse.Namespace) -> None:
    from universalclassifier.evaluation.summarize import format_summary_table, summarize_cross_validation
    from universalclassifier.paths import TaskPaths

    trainer_folder = TaskPaths.find(args.data_root, args.task).trainer_folder(trainer=args.trainer)
    summary = summarize_cross_validation(trainer_folder, num_resamples=args.num_resamples)
    logger.info(
        "Cross-validation of %s over %s:\n%s",
        summary["task"],
        ", ".join(summary["folds"]),
        format_summary_table(summary),
    )


def summarize_main(argv: Sequence[str] | None = None) -> int:
    """`uc_summarize DATA -t ID [-tr TRAINER] [--num_resamples N]`."""
    args = summarize_parser().parse_args(argv)
    return run_command(args, _summarize)


def radiomics_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_radiomics",
        description="Cross-validate a classical reference on the deep model's folds: mirp radiomics features inside "
        "the ROI (first-order, shape, texture) and a logistic regression per head. Writes "
        "DATA/trained_models/nnUNet/3d_fullres/TaskXXX_Name/RadiomicsReference/, which uc_summarize reports beside "
        "the deep model. Needs the optional dependency mirp: pip install 'universalclassifier[radiomics]'.",
    )
    parser.add_argument("data_root", help="data root holding raw/ (written: preprocessed/ and trained_models/)")
    parser.add_argument("-t", "--task", required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument(
        "--num_workers",
        type=int_at_least(1),
        default=2,
        metavar="N",
        help="worker processes for feature extraction (default 2)",
    )
    parser.add_argument(
        "--folds",
        type=int_at_least(0),
        nargs="+",
        default=None,
        metavar="F",
        help="folds to run (default: every fold of the splits)",
    )
    add_common_options(parser)
    return parser


def _radiomics(args: argparse.Namespace) -> None:
    from universalclassifier.radiomics.reference import run_radiomics_reference

    run_radiomics_reference(
        args.data_root, args.task, folds=args.folds, num_workers=args.num_workers, show_progress=not args.quiet
    )


def radiomics_main(argv: Sequence[str] | None = None) -> int:
    """`uc_radiomics DATA -t ID [--num_workers N] [--folds 0 1 2 3 4]`."""
    args = radiomics_parser().parse_args(argv)
    return run_command(args, _radiomics)


COMMANDS = {
    "plan_and_preprocess": plan_and_preprocess_main,
    "train": train_main,
    "predict": predict_main,
    "summarize": summarize_main,
    "radiomics": radiomics_main,
    "import": import_main,
}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m universalclassifier.cli COMMAND ...` dispatches to one entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m universalclassifier.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
