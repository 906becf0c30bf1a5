"""`universalclassifier.train`: train one fold of a preprocessed task from Python; `uc_train` calls it too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

from universalclassifier.errors import UserInputError
from universalclassifier.paths import PLANS_IDENTIFIER, TRAINER, TaskPaths
from universalclassifier.training.distributed import init_distributed, shutdown_distributed
from universalclassifier.training.fold_lock import fold_lock
from universalclassifier.training.recipes import recipe_for
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

PACKAGE_LOGGER = "universalclassifier"
_MAX_FOLD = 99  # a fold is an index of splits_final.json (0-4 as written by plan & preprocess)


def train(
    data_root: str | Path,
    task: str | int,
    fold: int | str,
    trainer: str = TRAINER,
    *,
    continue_training: bool = False,
    validation_only: bool = False,
    plans_identifier: str = PLANS_IDENTIFIER,
    **options: Any,
) -> Path:
    """Train one fold of a preprocessed task, as `uc_train` does, and return the fold's output folder.

    Args:
        data_root: the data root holding ``preprocessed/`` (``trained_models/`` is written).
        task: task id (``1``) or full name (``"Task001_Name"``, ``"Dataset001_Name"``).
        fold: ``0``-``4`` (an index of ``splits_final.json``) or ``"all"`` to train on every case.
        trainer: the training recipe, ``"ClassifierTrainer"`` (default) or ``"ClassifierTrainerAUC23"``.
        continue_training: resume from the fold's ``model_latest`` (``uc_train -c``).
        validation_only: only recompute ``validation/`` from the final checkpoint (``--validation_only``).
        plans_identifier: the plans to train with (default ``UniversalClassifierPlansv1.0``).
        **options: any field of ``TrainingOptions``, defaults as for ``uc_train``: ``max_num_epochs``,
            ``num_batches_per_epoch``, ``num_val_batches_per_epoch``, ``num_workers``, ``seed``, ``fp32``, ``bf16``,
            ``save_every``, ``show_progress``, ``pretrained_weights`` (a trained fold folder or its final checkpoint:
            the backbone starts from it, the heads are new; only for a training from the start) and ``tensorboard``
            (also write TensorBoard event files into ``tensorboard/`` of the fold folder; needs the package).

    Returns:
        ``DATA/trained_models/nnUNet/3d_fullres/<task>/<trainer>__<plans>/fold_N`` (or ``all``), holding
        ``model_final_checkpoint.model``, ``validation/`` and ``training_log.txt``.

    One run per fold at a time: a second one is refused while another process trains that fold. Every INFO log
    line of the run also goes to ``training_log.txt`` (the package logger is set to INFO meanwhile if it was
    quieter). Under ``torchrun`` every process calls this and only rank 0 writes. Raises ``UserInputError`` for a
    bad fold, trainer or option, a task that is not preprocessed, both ``continue_training`` and
    ``validation_only``, or ``pretrained_weights`` with either of them.
    """
    checked_fold = _checked_fold(fold)
    if continue_training and validation_only:
        raise UserInputError("Use either -c (continue_training) or --validation_only, not both.")
    training_options = _training_options(options)
    if training_options.pretrained_weights is not None and (continue_training or validation_only):
        raise UserInputError(
            "--pretrained_weights starts a new training; -c and --validation_only read the fold's own checkpoints, "
            "which record the weights that training started from: drop --pretrained_weights."
        )
    recipe_for(trainer)  # refuse an unknown trainer before any work
    paths = TaskPaths.find(data_root, task)
    context = init_distributed()
    if not context.is_main:
        logging.getLogger(PACKAGE_LOGGER).setLevel(logging.WARNING)
    try:
        model = ClassifierTrainer(paths, checked_fold, training_options, plans_identifier, context, trainer)
        # the lock is taken before the log file is opened: a refused second run writes nothing into the fold
        with fold_lock(model.output_folder) if context.is_main else nullcontext():
            with _log_to_file(model.output_folder / "training_log.txt") if context.is_main else nullcontext():
                if not validation_only:
                    model.run_training(resume=continue_training)
                elif context.is_main:
                    model.validation_only()
        return model.output_folder
    finally:
        shutdown_distributed(context)


def _checked_fold(fold: int | str) -> int | str:
    """`"all"` or the fold index (a whole number, also as text), else a UserInputError."""
    if fold == "all":
        return "all"
    number: int | None = None
    if isinstance(fold, str):
        number = int(fold) if fold.isascii() and fold.isdigit() else None
    elif isinstance(fold, int) and not isinstance(fold, bool):
        number = fold
    if number is None or not 0 <= number <= _MAX_FOLD:
        raise UserInputError(
            f"Fold {fold!r} is not valid: use 0-4 (or another index of splits_final.json) or 'all'."
        )
    return number


def _training_options(options: dict[str, Any]) -> TrainingOptions:
    """TrainingOptions from keyword options, refusing unknown names, non-bool flags and out-of-range counts."""
    known = {field.name: field for field in fields(TrainingOptions)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UserInputError(
            f"Unknown training option(s) {', '.join(unknown)}: the options are {', '.join(known)}, "
            "continue_training, validation_only and plans_identifier."
        )
    for name, value in options.items():
        if isinstance(known[name].default, bool) and not isinstance(value, bool):
            raise UserInputError(f"{name} must be True or False, got {value!r}.")
    training_options = TrainingOptions(**options)
    training_options.check()
    return training_options


@contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Copy the package's log records of INFO and above into `path` while the body runs."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
