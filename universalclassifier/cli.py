"""Command-line entry points; expected user mistakes end with a short message and a non-zero exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from universalclassifier.checks import int_at_least
from universalclassifier.console import TASK_FLAGS, add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.find_best_cli import find_best_main
from universalclassifier.explain.cli import explain_main
from universalclassifier.importing.cli import import_main
from universalclassifier.paths import TRAINER
from universalclassifier.sharing.cli import export_main, install_model_main

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
        description="Validate raw tasks, plan spacing/crop/normalization/input size, and preprocess the training "
        "cases into DATA/preprocessed/TaskXXX_Name (DatasetXXX_Name for nnU-Net v2 datasets). With several tasks, "
        "all are validated before any is preprocessed.",
    )
    parser.add_argument("data_root", help="data root holding raw/ (created: preprocessed/)")
    parser.add_argument(
        *TASK_FLAGS, required=True, nargs="+", metavar="TASK",
        help="task id(s) (e.g. 1, or 17 18 for several) or full name(s) (e.g. Task001_Name, Dataset001_Name)",
    )
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
        "--size_rule",
        choices=("percentile", "max"),
        default="percentile",
        help="network input size: hold --size_percentile %% of the cases per axis and zoom larger ones down to fit "
        "(default), or hold the largest case and pad the others (max: the AUC23 planning)",
    )
    parser.add_argument(
        "--size_percentile", type=float, default=None, metavar="P",
        help="with --size_rule percentile: the percentile of the cases' extents the input holds (default 90)",
    )
    parser.add_argument(
        "--roi_margin_mm", type=float, default=0.0, metavar="MM",
        help="context kept around the ROI per side, in mm, on top of 5%% of its extent (default 0)",
    )
    parser.add_argument(
        "--no_body_roi", action="store_true",
        help="tasks without ROI files: use the whole crop as the ROI (AUC23) instead of the body (nonzero mask)",
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
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess_tasks
    from universalclassifier.planning.planner import DEFAULT_SIZE_PERCENTILE, PlanningOptions

    if args.size_rule == "max" and args.size_percentile is not None:
        raise UserInputError("--size_percentile applies to --size_rule percentile only.")
    percentile = 100.0 if args.size_rule == "max" else args.size_percentile or DEFAULT_SIZE_PERCENTILE
    planning = PlanningOptions(
        args.size_rule, percentile, roi_margin_mm=args.roi_margin_mm, body_roi=not args.no_body_roi
    )
    plan_and_preprocess_tasks(
        args.data_root, args.task, num_workers=args.tf, preprocess=not args.no_pp, show_progress=not args.quiet,
        limits=_limits(args), planning=planning,
    )


def plan_and_preprocess_main(argv: Sequence[str] | None = None) -> int:
    """`uc_plan_and_preprocess DATA -t ID [ID ...] [-tf N] [-no_pp]`."""
    args = plan_and_preprocess_parser().parse_args(argv)
    return run_command(args, _plan_and_preprocess)


def train_main(argv: Sequence[str] | None = None) -> int:
    """`uc_train DATA 3d_fullres TRAINER TASK FOLD [options]` or `uc_train DATA TASK 3d_fullres FOLD [-tr TRAINER]`."""
    from universalclassifier.training.run_training import main

    return main(argv)


def predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_predict",
        description="Predict every case of a flat folder (CASE_XXXX.<ext> images, CASE.<ext> ROIs) with the trained "
        "ensemble in DATA/trained_models; writes OUT/CASE.json per case and OUT/summary.csv (per head the "
        "probabilities, the predicted value and its name).",
    )
    parser.add_argument(
        "data_root",
        help="data root holding trained_models/ (or a trained_models folder itself, or a model zip of uc_export)",
    )
    parser.add_argument("-i", "--input", required=True, help="folder with the cases' images")
    parser.add_argument("-o", "--output", required=True, help="folder for the results")
    parser.add_argument(
        "-s", "--seg", default=None, help="folder with the ROI segmentations (models trained with ROIs)"
    )
    parser.add_argument(*TASK_FLAGS, default=None, help="task id or name (needed when several tasks are trained)")
    parser.add_argument(
        "-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: every trained fold)"
    )
    parser.add_argument("--tta", action="store_true", help="also average over all mirrorings")
    parser.add_argument(
        "--overwrite_existing", action="store_true",
        help="predict every case again (without it, only cases whose JSON is missing, incomplete or made with other "
        "folds, checkpoints, --tta, calibration or covariates)",
    )
    parser.add_argument(
        "--covariates", default=None, metavar="CSV",
        help="covariate values of the cases (columns case_id and one per covariate; empty = unknown), for models "
        "trained with covariates",
    )
    parser.add_argument(
        "--impute_missing_covariates", action="store_true",
        help="impute unknown covariate values (or all of them, without --covariates) as in training",
    )
    parser.add_argument(
        "--no_calibration", action="store_true", help="do not apply calibration.json (temperature scaling)"
    )
    parser.add_argument(
        "--engine", choices=("torch", "onnx"), default="torch",
        help="run the folds' networks with torch (default) or with ONNX Runtime from their model.onnx files "
        "(uc_export_onnx; needs the onnx extra, not torch)",
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
        calibrate=not args.no_calibration,
        engine=args.engine,
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
        "cv_summary.json, cv_report.md, cv_report.html (the report as one page with the plots) and cv_plots/ next to "
        "the folds: AUC with a 95% bootstrap interval, balanced accuracy, confusion matrix and calibration per head.",
    )
    parser.add_argument("data_root", help="data root holding raw/ and trained_models/")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
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
    from universalclassifier.evaluation.pooling import planned_folds
    from universalclassifier.evaluation.summarize import summarize_cross_validation
    from universalclassifier.evaluation.summary_report import format_summary_table
    from universalclassifier.paths import TaskPaths

    paths = TaskPaths.find(args.data_root, args.task)
    summary = summarize_cross_validation(
        paths.trainer_folder(trainer=args.trainer),
        num_resamples=args.num_resamples,
        planned=planned_folds(paths.splits_file),
    )
    logger.info(
        "Cross-validation of %s (%s) over %s:\n%s",
        summary["task"],
        summary["trainer"],
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
        "the ROI (first-order, shape, texture) and a logistic (regression heads: ridge) regression per head. Writes "
        "DATA/trained_models/nnUNet/3d_fullres/TaskXXX_Name/RadiomicsReference/, which uc_summarize reports beside "
        "the deep model. Needs the optional dependency mirp: pip install 'universalclassifier[radiomics]'.",
    )
    parser.add_argument("data_root", help="data root holding raw/ (written: preprocessed/ and trained_models/)")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
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


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_evaluate",
        description="Predict a labelled test set with the trained ensemble and write the same report as uc_summarize "
        "(evaluation_summary.json, evaluation_report.md and .html, plots/) plus the worst-predicted cases per head.",
    )
    parser.add_argument("data_root", help="data root holding raw/ and trained_models/")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id or name")
    parser.add_argument("-o", "--output", required=True, help="folder for the report")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", "--input", help="folder of test images (CASE_XXXX.<ext>), needs --labels")
    source.add_argument(
        "--use_dataset_test", action="store_true",
        help="the task's own test cases: dataset.json test entries with values, or test_targets.json",
    )
    parser.add_argument("-s", "--seg", default=None, help="folder of the test ROIs (models trained with ROIs)")
    parser.add_argument("--labels", default=None, metavar="CSV", help="case_id and one column per head (empty: none)")
    parser.add_argument("--covariates", default=None, metavar="CSV", help="test cases' covariates (as for uc_predict)")
    parser.add_argument("--impute_missing_covariates", action="store_true", help="impute unknown covariate values")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: every fold)")
    parser.add_argument("--tta", action="store_true", help="also average over all mirrorings")
    parser.add_argument("--no_calibration", action="store_true", help="do not apply calibration.json")
    parser.add_argument("--compare", default=None, metavar="OTHER_ARTIFACT", help="a second model to compare with")
    parser.add_argument("--num_resamples", type=int_at_least(10), default=1000, help="bootstrap resamples")
    add_common_options(parser)
    return parser


def _evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from universalclassifier.evaluation.external import dataset_test_cases, evaluate, folder_cases
    from universalclassifier.evaluation.pooling import planned_folds
    from universalclassifier.evaluation.summary_report import format_summary_table
    from universalclassifier.inference.predict import get_predictor
    from universalclassifier.paths import TaskPaths

    paths = TaskPaths.find(args.data_root, args.task)
    artifact = Path(args.data_root) / "trained_models"
    plans = get_predictor(artifact, args.folds, paths.task_name).plans
    if args.use_dataset_test:
        if args.labels or args.seg or args.covariates:
            raise UserInputError("--use_dataset_test reads the task's test cases: drop -s, --labels, --covariates.")
        cases = dataset_test_cases(paths.raw, plans)
    else:
        if args.labels is None:
            raise UserInputError("-i needs --labels CSV (case_id and one column per head).")
        covariates = None if args.covariates is None else Path(args.covariates)
        seg = None if args.seg is None else Path(args.seg)
        cases = folder_cases(Path(args.input), seg, Path(args.labels), plans, covariates)
    summary = evaluate(
        artifact, cases, Path(args.output), task=paths.task_name, folds=args.folds, tta=args.tta,
        calibrate=not args.no_calibration, impute_missing_covariates=args.impute_missing_covariates,
        compare=None if args.compare is None else Path(args.compare), num_resamples=args.num_resamples,
        show_progress=not args.quiet, planned=planned_folds(paths.splits_file),
    )
    print(format_summary_table({"heads": summary["heads"]}))


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """`uc_evaluate DATA -t ID -o OUT (-i IN [-s SEG] --labels CSV | --use_dataset_test) [--compare OTHER]`."""
    args = evaluate_parser().parse_args(argv)
    return run_command(args, _evaluate)


COMMANDS = {
    "plan_and_preprocess": plan_and_preprocess_main,
    "train": train_main,
    "predict": predict_main,
    "summarize": summarize_main,
    "radiomics": radiomics_main,
    "import": import_main,
    "evaluate": evaluate_main,
    "explain": explain_main,
    "export": export_main,
    "install_model": install_model_main,
    "find_best": find_best_main,
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
