"""Entry point of `uc_train.sh` and of `torchrun -m universalclassifier.training.run_training` (DDP).

Arguments come in the AUC23 (nnU-Net v1) order, `DATA 3d_fullres TRAINER TASK FOLD`, or in nnU-Net v2's,
`DATA TASK 3d_fullres FOLD [-tr TRAINER]`; `resolve_order` tells them apart and refuses what fits neither.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from universalclassifier.checks import int_at_least
from universalclassifier.console import add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.paths import NETWORK, PLANS_IDENTIFIER, TRAINER

V1_FORM = "uc_train DATA 3d_fullres TRAINER TASK FOLD"
V2_FORM = "uc_train DATA TASK 3d_fullres FOLD [-tr TRAINER]"
# nnU-Net's configuration names: one of them second of three arguments marks the v2 order (only 3d_fullres exists here)
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def train_parser() -> argparse.ArgumentParser:
    from universalclassifier.training.recipes import RECIPES
    from universalclassifier.training.trainer import TrainingOptions

    defaults = TrainingOptions()
    parser = argparse.ArgumentParser(
        prog="uc_train",
        usage=f"{V1_FORM} [options]   (AUC23, nnU-Net v1 order)\n       {V2_FORM} [options]   (nnU-Net v2 order)",
        description="Train one fold of the classifier on a preprocessed task. Distributed: "
        "torchrun --nproc_per_node N -m universalclassifier.training.run_training DATA 3d_fullres ClassifierTrainer "
        "TASK FOLD (or the v2 order)",
    )
    parser.add_argument("data_root", metavar="DATA", help="data root holding preprocessed/ (writes trained_models/)")
    parser.add_argument(
        "arguments",
        nargs="+",
        metavar="ARG",
        help=f"v1 order: 3d_fullres TRAINER TASK FOLD; v2 order: TASK 3d_fullres FOLD. '{NETWORK}' is the only "
        f"configuration; TRAINER (the training recipe): {TRAINER} (the default recipe) or "
        f"{', '.join(list(RECIPES)[1:])}; TASK: id (e.g. 1) or full name (Task001_Name); FOLD: 0-4 of "
        "splits_final.json, or 'all' (also 'fold_all') to train on every case",
    )
    parser.add_argument(
        "-tr", "--trainer", default=None, metavar="TRAINER", help=f"v2 order: the trainer (default {TRAINER})"
    )
    parser.add_argument(
        "-c", "--c", "--continue_training", dest="continue_training", action="store_true",
        help="continue from model_latest of this fold",
    )
    parser.add_argument(
        "--val", "--validation_only", dest="validation_only", action="store_true",
        help="only recompute validation/ from the final checkpoint",
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
    parser.add_argument(
        "--pretrained_weights",
        metavar="PATH",
        help="start the backbone (and fine ROI branch) from a trained model: its fold folder or its "
        "model_final_checkpoint.model; same number of modalities and network layers, heads new for this task; "
        "not with -c or --validation_only",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files (losses, validation AUC, learning rates, epoch time) into "
        "fold_X/tensorboard/; needs pip install 'universalclassifier[tensorboard]'",
    )
    add_common_options(parser)
    return parser


def resolve_order(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed command line with its positional arguments named, whichever order they came in.

    Four arguments after DATA are the v1 order (and take no -tr). Three are the v2 order when the first is not a
    configuration name and the second is one or -tr is given; the trainer is then -tr's, else the default. Anything
    else is refused, showing both orders. `fold_all` (nnU-Net v2's folder name) reads as `all`. The result holds
    network, trainer, task and fold instead of `arguments`; an unknown network is refused.
    """
    values = list(args.arguments)
    given = " ".join(values + ([] if args.trainer is None else ["-tr", args.trainer]))
    if len(values) == 4 and args.trainer is None:
        network, trainer, task, fold = values
    elif len(values) == 3 and values[0] not in CONFIGURATIONS and (
        values[1] in CONFIGURATIONS or args.trainer is not None
    ):
        task, network, fold = values
        trainer = TRAINER if args.trainer is None else args.trainer
    else:
        if len(values) == 4:
            reason = "-tr belongs to the v2 order, which has 3 arguments after DATA"
        else:
            reason = f"{len(values)} argument(s) after DATA fit neither order"
        raise UserInputError(
            f"Cannot read '{given}': {reason}; write `{V1_FORM}` (AUC23, nnU-Net v1 order) or `{V2_FORM}` "
            "(nnU-Net v2 order)."
        )
    if network != NETWORK:
        raise UserInputError(f"Unknown network '{network}': universalclassifier plans one stage, use '{NETWORK}'.")
    named = {key: value for key, value in vars(args).items() if key not in ("arguments", "trainer")}
    return argparse.Namespace(
        **named, network=network, trainer=trainer, task=task, fold="all" if fold == "fold_all" else fold
    )


def _train(args: argparse.Namespace) -> None:
    from universalclassifier.training.train_fold import train

    args = resolve_order(args)
    train(
        args.data_root,
        args.task,
        args.fold,
        args.trainer,
        continue_training=args.continue_training,
        validation_only=args.validation_only,
        plans_identifier=args.plans_identifier,
        max_num_epochs=args.max_num_epochs,
        num_batches_per_epoch=args.num_batches_per_epoch,
        num_val_batches_per_epoch=args.num_val_batches_per_epoch,
        num_workers=args.num_workers,
        seed=args.seed,
        fp32=args.fp32,
        bf16=args.bf16,
        save_every=args.save_every,
        show_progress=not args.quiet,
        pretrained_weights=args.pretrained_weights,
        tensorboard=args.tensorboard,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`uc_train DATA 3d_fullres TRAINER TASK FOLD [options]` or `uc_train DATA TASK 3d_fullres FOLD [-tr TRAINER]`."""
    args = train_parser().parse_intermixed_args(argv)
    return run_command(args, _train)


if __name__ == "__main__":
    sys.exit(main())
