"""Command-line entry points `uc_export` and `uc_install_model`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.console import TASK_FLAGS, add_common_options, run_command
from universalclassifier.paths import TRAINER


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_export",
        description="Write a trained model as one zip: plans.json, each fold's final checkpoint, calibration.json and "
        "the cross-validation report and plots (when present), a model card (MODEL_CARD.md, model_card.json) and a "
        "manifest with the SHA-256 of every file. Install it elsewhere with uc_install_model, or pass the zip to "
        "predict() / uc_predict directly.",
    )
    parser.add_argument("data_root", help="data root holding raw/, preprocessed/ and trained_models/")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument("-tr", "--trainer", default=TRAINER, help=f"trainer (recipe) to export (default {TRAINER})")
    parser.add_argument(
        "-f", "--folds", nargs="+", default=None, help="folds to export (default: every trained fold, else all)"
    )
    parser.add_argument("-o", "--output", required=True, help="the zip file to write (e.g. model.zip)")
    parser.add_argument(
        "--intended_use", default=None, metavar="FILE",
        help="markdown file with the model card's 'Intended use' section (without it: a placeholder to fill in)",
    )
    parser.add_argument(
        "--onnx", action="store_true",
        help="also export each fold to model.onnx and ship it, for predict(..., engine='onnx') without torch "
        "(needs the onnx extra)",
    )
    add_common_options(parser)
    return parser


def _export(args: argparse.Namespace) -> None:
    from universalclassifier.sharing.export import export_model, read_intended_use

    intended_use = None if args.intended_use is None else read_intended_use(Path(args.intended_use))
    export_model(args.data_root, args.task, args.output, args.trainer, args.folds, intended_use, args.onnx)


def export_main(argv: Sequence[str] | None = None) -> int:
    """`uc_export DATA -t ID [-tr TRAINER] [-f FOLDS ...] -o model.zip [--intended_use FILE] [--onnx]`."""
    args = export_parser().parse_args(argv)
    return run_command(args, _export)


def install_model_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_install_model",
        description="Install a model zip written by uc_export into DATA/trained_models, after checking every file "
        "against its manifest (SHA-256), so that uc_predict DATA -t ID uses it.",
    )
    parser.add_argument("zip", help="the model zip")
    parser.add_argument("data_root", help="data root to install into (created if missing)")
    parser.add_argument(
        "--force", action="store_true", help="replace an installed model of the same task and trainer that differs"
    )
    add_common_options(parser)
    return parser


def _install(args: argparse.Namespace) -> None:
    from universalclassifier.sharing.install import install_model

    install_model(Path(args.zip), Path(args.data_root), force=args.force)


def install_model_main(argv: Sequence[str] | None = None) -> int:
    """`uc_install_model model.zip DATA [--force]`."""
    args = install_model_parser().parse_args(argv)
    return run_command(args, _install)
