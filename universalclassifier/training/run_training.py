"""Entry point of `uc_train.sh` and of `torchrun -m universalclassifier.training.run_training` (DDP)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from universalclassifier.checks import int_at_least
from universalclassifier.console import add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.paths import NETWORK, PLANS_IDENTIFIER, TRAINER, TaskPaths

logger = logging.getLogger(__name__)


def train_parser() -> argparse.ArgumentParser:
    from universalclassifier.training.recipes import RECIPES
    from universalclassifier.training.trainer import TrainingOptions

    defaults = TrainingOptions()
    parser = argparse.ArgumentParser(
        prog="uc_train",
        description="Train one fold of the classifier on a preprocessed task. Distributed: "
        "torchrun --nproc_per_node N -m universalclassifier.training.run_training "
        "DATA 3d_fullres ClassifierTrainer TASK FOLD",
    )
    parser.add_argument("data_root", help="data root holding preprocessed/ (writes trained_models/)")
    parser.add_argument("network", help=f"network configuration; only '{NETWORK}' exists")
    parser.add_argument(
        "trainer", help=f"trainer (training recipe): {TRAINER} (the default recipe) or {', '.join(list(RECIPES)[1:])}"
    )
    parser.add_argument("task", help="task id (e.g. 1) or full name (Task001_Name)")
    parser.add_argument("fold", help="fold 0-4 of splits_final.json, or 'all' to train on every case")
    parser.add_argument(
        "-c", "--continue_training", action="store_true", help="continue from model_latest of this fold"
    )
    parser.add_argument(
        "--validation_only", action="store_true", help="only recompute validation/ from the final checkpoint"
    )
    parser.add_argument("--fp32", action="store_true", help="no mixed precision on CUDA (and no --bf16 on the CPU)")
    parser.add_argument(
        "--bf16", action="store_true", help="CPU: bfloat16 autocast (faster on CPUs with AVX-512 BF16; default fp32)"
    )
    parser.add_argument(
        "-p", "--plans_identifier", default=PLANS_IDENTIFIER, help=f"plans identifier (default {PLANS_IDENTIFIER})"
    )
    parser.add_argument(
        "--max_num_epochs",
        type=int_at_least(1),
        default=defaults.max_num_epochs,
        help=f"epochs (default {defaults.max_num_epochs})",
    )
    parser.add_argument(
        "--num_batches_per_epoch",
        type=int_at_least(1),
        default=defaults.num_batches_per_epoch,
        help=f"training batches per epoch (default {defaults.num_batches_per_epoch})",
    )
    parser.add_argument(
        "--num_val_batches_per_epoch",
        type=int_at_least(1),
        default=defaults.num_val_batches_per_epoch,
        help=f"validation batches per epoch (default {defaults.num_val_batches_per_epoch})",
    )
    parser.add_argument(
        "--num_workers",
        type=int_at_least(0),
        default=defaults.num_workers,
        help=f"augmentation worker processes (default: CPU count capped at 8, here {defaults.num_workers})",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    parser.add_argument(
        "--save_every",
        type=int_at_least(1),
        default=defaults.save_every,
        help=f"write model_latest every N epochs (default {defaults.save_every})",
    )
    add_common_options(parser)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.network != NETWORK:
        raise UserInputError(f"Unknown network '{args.network}': universalclassifier plans one stage, use '{NETWORK}'.")
    if args.fold != "all" and not (args.fold.isdigit() and 0 <= int(args.fold) < 100):
        raise UserInputError(
            f"Fold '{args.fold}' is not valid: use 0-4 (or another index of splits_final.json) or 'all'."
        )
    if args.continue_training and args.validation_only:
        raise UserInputError("Use either -c or --validation_only, not both.")


def _train(args: argparse.Namespace) -> None:
    _check_arguments(args)
    from universalclassifier.training.distributed import init_distributed, shutdown_distributed
    from universalclassifier.training.fold_lock import fold_lock
    from universalclassifier.training.recipes import recipe_for
    from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

    recipe_for(args.trainer)  # refuse an unknown trainer before any work

    paths = TaskPaths.find(args.data_root, args.task)
    options = TrainingOptions(
        max_num_epochs=args.max_num_epochs,
        num_batches_per_epoch=args.num_batches_per_epoch,
        num_val_batches_per_epoch=args.num_val_batches_per_epoch,
        num_workers=args.num_workers,
        seed=args.seed,
        fp32=args.fp32,
        bf16=args.bf16,
        save_every=args.save_every,
        show_progress=not args.quiet,
    )
    context = init_distributed()
    if not context.is_main:
        logging.getLogger("universalclassifier").setLevel(logging.WARNING)
    try:
        fold = args.fold if args.fold == "all" else int(args.fold)
        trainer = ClassifierTrainer(paths, fold, options, args.plans_identifier, context, args.trainer)
        # the lock is taken before the log file is opened: a refused second run writes nothing into the fold
        with fold_lock(trainer.output_folder) if context.is_main else nullcontext():
            handler = _log_to_file(trainer.output_folder / "training_log.txt") if context.is_main else None
            try:
                if args.validation_only:
                    if context.is_main:
                        trainer.validation_only()
                else:
                    trainer.run_training(resume=args.continue_training)
            finally:
                if handler is not None:
                    logging.getLogger("universalclassifier").removeHandler(handler)
                    handler.close()
    finally:
        shutdown_distributed(context)


def _log_to_file(path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("universalclassifier").addHandler(handler)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """`uc_train DATA 3d_fullres ClassifierTrainer TASK FOLD [options]`."""
    args = train_parser().parse_args(argv)
    return run_command(args, _train)


if __name__ == "__main__":
    sys.exit(main())
