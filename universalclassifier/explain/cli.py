"""`uc_explain`: saliency maps for every case of a flat folder; user mistakes end with a one-line error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.console import TASK_FLAGS, add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.explain.methods import METHOD_CHOICES


def explain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_explain",
        description="Saliency maps (Grad-CAM and/or occlusion, averaged over the ensemble's folds) of every case of a "
        "flat folder (CASE_XXXX.<ext> images, CASE.<ext> ROIs) for the trained ensemble in DATA/trained_models. "
        "Writes OUT/CASE_<head>_<method>.<input extension> on the input's grid and OUT/CASE_<head>_<method>.png "
        "(three slices through the map's peak). Needs captum: pip install 'universalclassifier[explain]'.",
    )
    parser.add_argument("data_root", help="data root holding trained_models/ (or a trained_models folder itself)")
    parser.add_argument("-i", "--input", required=True, help="folder with the cases' images")
    parser.add_argument("-o", "--output", required=True, help="folder for the maps")
    parser.add_argument(
        "-s", "--seg", default=None, help="folder with the ROI segmentations (models trained with ROIs)"
    )
    parser.add_argument(
        "--method",
        default="gradcam",
        choices=METHOD_CHOICES,
        help="gradcam (fast: one backward pass per fold and head), occlusion (343 forward passes per fold) or both "
        "(default gradcam)",
    )
    parser.add_argument(
        "--head", nargs="+", default=None, metavar="NAME", help="classification label(s) to explain (default: all)"
    )
    parser.add_argument(*TASK_FLAGS, default=None, help="task id or name (needed when several tasks are trained)")
    parser.add_argument(
        "-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: every trained fold)"
    )
    parser.add_argument(
        "--covariates",
        default=None,
        metavar="CSV",
        help="covariate values of the cases (as for uc_predict), for models trained with covariates",
    )
    parser.add_argument(
        "--impute_missing_covariates",
        action="store_true",
        help="impute unknown covariate values (or all of them, without --covariates) as in training",
    )
    parser.add_argument(
        "--gradcam_layer",
        default=None,
        metavar="LAYER",
        help="backbone layer Grad-CAM reads (default: the ROI pooling layer Conv3d_1a_7x7 for networks with ROI "
        "pooling, else Mixed_4f)",
    )
    add_common_options(parser)
    return parser


def _explain(args: argparse.Namespace) -> None:
    from universalclassifier.explain.folder import explain_folder

    root = Path(args.data_root)
    artifact = root / "trained_models" if (root / "trained_models").is_dir() else root
    failed = explain_folder(
        artifact,
        Path(args.input),
        Path(args.output),
        None if args.seg is None else Path(args.seg),
        method=args.method,
        heads=args.head,
        task=args.task,
        folds=args.folds,
        covariates_file=None if args.covariates is None else Path(args.covariates),
        impute_missing_covariates=args.impute_missing_covariates,
        gradcam_layer=args.gradcam_layer,
        show_progress=not args.quiet,
    )
    if failed:
        raise UserInputError(f"{len(failed)} case(s) failed: {', '.join(failed)} (see the log above).")


def explain_main(argv: Sequence[str] | None = None) -> int:
    """`uc_explain DATA -i IN -o OUT [-s SEG] [--method gradcam|occlusion|both] [--head NAME] [-t ID] [-f FOLDS]`."""
    args = explain_parser().parse_args(argv)
    return run_command(args, _explain)


if __name__ == "__main__":
    sys.exit(explain_main())
