"""ClassifierTrainer: trains one fold of the multi-head I3D classifier, validates it and writes its model folder."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeGuard

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from universalclassifier.artifact.checkpoint import (
    checkpoint_byte_limit,
    load_checkpoint,
    metadata_file,
    save_checkpoint,
)
from universalclassifier.artifact.loading import load_weights_into
from universalclassifier.checks import checked_int
from universalclassifier.covariates import encode_covariates
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.head_summary import headline, plot_head
from universalclassifier.evaluation.metrics import macro_auc
from universalclassifier.evaluation.validation_files import write_validation_files
from universalclassifier.json_files import read_json_file
from universalclassifier.names import file_name_for
from universalclassifier.network.heads import head_predictions
from universalclassifier.network.i3d import network_for
from universalclassifier.paths import PLANS_IDENTIFIER, TRAINER, ArtifactLayout, TaskPaths, fold_folder_name
from universalclassifier.planning.stage import read_preprocessed_cases, rerun_command
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.preprocessor import to_network_input
from universalclassifier.training.augmentation import BatchGenerator, class_balanced_weights, make_batch_generator
from universalclassifier.training.distributed import DistributedContext, max_weight_difference
from universalclassifier.training.losses import summed_loss
from universalclassifier.training.optimization import Optimizers
from universalclassifier.training.pretrained import initialize_from_pretrained, pretrained_checkpoint
from universalclassifier.training.prior_correction import sampling_prior_shifts, shift_head_biases
from universalclassifier.training.progress import plot_progress
from universalclassifier.training.recipes import Recipe, recipe_for
from universalclassifier.training.splits import fold_cases, load_or_create_splits
from universalclassifier.training.tensorboard_log import TensorBoardLog, require_tensorboard
from universalclassifier.training.training_log import TrainingLog, TrainResult, ValidationResult

logger = logging.getLogger(__name__)



def default_num_workers() -> int:
    """Augmentation worker processes: the CPU count, capped at 8."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class TrainingOptions:
    """What the command line can change about a training run."""

    max_num_epochs: int = 200
    num_batches_per_epoch: int = 250
    num_val_batches_per_epoch: int = 50
    num_workers: int = field(default_factory=default_num_workers)
    seed: int = 12345
    fp32: bool = False
    bf16: bool = False  # CPU only: bfloat16 autocast (about 1.3x faster on AVX-512 BF16 CPUs); not yet the default
    save_every: int = 5
    show_progress: bool = True
    pretrained_weights: str | None = None  # a trained fold folder or its final checkpoint: the backbone starts from it
    tensorboard: bool = False  # also write TensorBoard event files into fold_X/tensorboard/ (optional extra)

    def __post_init__(self) -> None:
        if isinstance(self.pretrained_weights, Path):  # kept as text: the options go into the JSON metadata
            self.pretrained_weights = str(self.pretrained_weights)

    def check(self) -> None:
        for name in ("max_num_epochs", "num_batches_per_epoch", "num_val_batches_per_epoch", "save_every"):
            checked_int(getattr(self, name), f"--{name}", 1, UserInputError)
        checked_int(self.num_workers, "--num_workers", 0, UserInputError)
        if self.pretrained_weights is not None:
            if not isinstance(self.pretrained_weights, str):
                raise UserInputError(f"pretrained_weights must be a path, got {self.pretrained_weights!r}.")
            pretrained_checkpoint(self.pretrained_weights)
        if self.tensorboard:
            require_tensorboard()


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _training_state(metadata: dict, checkpoint: Path) -> tuple[int, int | None, float]:
    """The epoch, best epoch (None: none yet) and best validation-loss moving average (inf: none yet) of a
    checkpoint's metadata, refused with a UserInputError naming the checkpoint unless they are usable numbers."""
    epoch, best_epoch, best = metadata.get("epoch"), metadata.get("best_epoch"), metadata.get("best_val_loss_ma")
    finite = isinstance(best, (int, float)) and not isinstance(best, bool) and math.isfinite(best)
    if _is_count(epoch) and (best_epoch is None or _is_count(best_epoch)) and (best is None or finite):
        return epoch, best_epoch, math.inf if best is None else float(best)
    raise UserInputError(
        f"The metadata of {checkpoint} holds no usable epoch, best_epoch and best_val_loss_ma (whole numbers >= 0, a "
        "finite number or null); it is damaged: train this fold from the start (without -c)."
    )


def _format_auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class ClassifierTrainer:
    """One fold of training: data, network, optimizer, checkpoints, logs and validation."""

    def __init__(
        self,
        paths: TaskPaths,
        fold: int | str,
        options: TrainingOptions,
        plans_identifier: str = PLANS_IDENTIFIER,
        context: DistributedContext | None = None,
        trainer_name: str = TRAINER,
        recipe: Recipe | None = None,
    ) -> None:
        options.check()
        self.trainer_name = trainer_name
        self.recipe = recipe or recipe_for(trainer_name)
        self.recipe.check()
        self.paths = paths
        self.fold = fold
        self.options = options
        self.context = context or DistributedContext()
        self.plans = self._load_plans()
        self.layout = ArtifactLayout(paths.trainer_folder(plans_identifier, trainer_name))
        self.output_folder = self.layout.fold_folder(fold)
        self.plans_identifier = plans_identifier
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.context.local_rank)
        else:
            self.device = torch.device("cpu")
        self.use_amp = self.device.type == "cuda" and not options.fp32
        # fp16 with a gradient scaler on CUDA; bfloat16 (no scaler needed) on the CPU when asked for
        self.autocast_dtype = torch.float16 if self.use_amp else torch.bfloat16
        self.use_autocast = self.use_amp or (self.device.type == "cpu" and options.bf16 and not options.fp32)
        stage = read_preprocessed_cases(self.paths, self.plans)
        self.case_targets, self.case_groups = stage.targets, stage.groups
        self.case_covariates = {
            case: encode_covariates(self.plans.covariates, values) for case, values in stage.covariates.items()
        }
        self.case_zooms = stage.zooms
        self.train_ids, self.val_ids = self._split()
        self.batch_size = max(2, math.ceil(self.plans.batch_size / self.context.world_size))
        torch.manual_seed(options.seed)
        self.network = network_for(self.plans, self.recipe.to_dict()).to(self.device)
        self.pretrained_weights: dict | None = None  # the record of the model the backbone started from
        self.model = self._parallel_model()
        self.backbone_frozen = False
        self.optimizers = Optimizers(self.recipe, self.network)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0
        self.log = TrainingLog.for_heads(self.plans.head_names)
        self.best_val_loss_ma = math.inf
        self.best_epoch: int | None = None
        self.max_weight_difference: float | None = None
        self.prior_shifts: dict[str, list[float]] = {}
        self.tensorboard: TensorBoardLog | None = None

    # ----------------------------------------------------------------- set-up
    def _load_plans(self) -> Plans:
        if not self.paths.plans_file.is_file() or not self.paths.stage_folder.is_dir():
            raise UserInputError(
                f"No preprocessed data for {self.paths.task_name} in {self.paths.preprocessed}; run "
                f"'{rerun_command(self.paths)}' first."
            )
        return Plans.load(self.paths.plans_file)

    def _split(self) -> tuple[list[str], list[str]]:
        case_ids = sorted(self.case_targets)
        per_head = {head: [self.case_targets[c][i] for c in case_ids] for i, head in enumerate(self.plans.head_names)}
        regression = [head.name for head in self.plans.classification_labels if head.is_regression]

        def splits() -> list[dict[str, list[str]]]:
            return load_or_create_splits(
                self.paths.splits_file, case_ids, per_head, regression_labels=regression, groups=self.case_groups
            )

        if self.context.is_main:
            folds = splits()
        self.context.barrier()
        if not self.context.is_main:
            folds = splits()
        train, val = fold_cases(folds, self.fold, case_ids)
        logger.info("Fold %s: %d training and %d validation cases", self.fold, len(train), len(val))
        return train, val

    def _first_head_is_a_class(self) -> bool:
        """Balanced sampling balances the first head's values; a regression head has none to balance."""
        return not self.plans.classification_labels[0].is_regression

    def _covariates(self, case_ids: list[str]) -> np.ndarray | None:
        """The encoded covariates of `case_ids` (one row each), or None when the task has none."""
        return np.stack([self.case_covariates[c] for c in case_ids]) if self.plans.covariates else None

    def _array_file(self, case_id: str) -> Path:
        return self.paths.stage_folder / f"{file_name_for(case_id)}.npy"

    def _batches(self, case_ids: list[str], train: bool) -> BatchGenerator:
        targets = np.array([self.case_targets[c] for c in case_ids], dtype=np.float32)  # None becomes NaN
        return make_batch_generator(
            [self._array_file(c) for c in case_ids],
            targets,
            self.plans,
            self.batch_size,
            train=train,
            num_workers=self.options.num_workers if train else 0,
            seed=self.options.seed + 1000 * self.context.rank + (0 if train else 500) + self.epoch,
            case_ids=case_ids,
            augmentation=self.recipe.augmentation,
            balanced_sampling=train and self.recipe.balanced_sampling and self._first_head_is_a_class(),
            covariates=self._covariates(case_ids),
            zooms=np.array([self.case_zooms[c] for c in case_ids]),
        )

    # ----------------------------------------------------------- checkpoints
    def _metadata(self) -> dict:
        return {
            "epoch": self.epoch,
            "fold": str(self.fold),
            "task_name": self.paths.task_name,
            "plans_identifier": self.plans_identifier,
            "plans_hash": self.plans.content_hash(),
            "trainer": self.trainer_name,
            "recipe": self.recipe.to_dict(),
            "network": "I3D",
            "num_input_channels": self.plans.num_modalities + 1,
            "head_names": self.plans.head_names,
            "head_sizes": self.plans.head_sizes,
            "batch_size_per_process": self.batch_size,
            "world_size": self.context.world_size,
            "max_weight_difference_across_processes": self.max_weight_difference,
            "mixed_precision": self.use_amp,
            "autocast": str(self.autocast_dtype).removeprefix("torch.") if self.use_autocast else None,
            "options": asdict(self.options),
            "best_val_loss_ma": None if math.isinf(self.best_val_loss_ma) else self.best_val_loss_ma,
            "best_epoch": self.best_epoch,
            "prior_shifts": self.prior_shifts,
            "pretrained_weights": self.pretrained_weights,
            "log": self.log.to_dict(),
        }

    def save(self, name: str, with_optimizer: bool) -> None:
        """Write a checkpoint into the fold folder (rank 0 only)."""
        if not self.context.is_main:
            return
        tensors = {"network": self.network.state_dict()}
        if with_optimizer:
            tensors["optimizer"] = self.optimizers.state_dict()
            tensors["grad_scaler"] = self.scaler.state_dict()
        save_checkpoint(self.output_folder / name, tensors, self._metadata())

    def load(self, name: str, with_optimizer: bool) -> None:
        """Restore network (and optimizer, scaler, epoch, logs, best-metric state) from a checkpoint."""
        path = self.output_folder / name
        if not path.is_file():
            raise UserInputError(f"No checkpoint {path}; train this fold first (without -c / --validation_only).")
        limit = checkpoint_byte_limit(self.plans.network_parameter_bound)
        tensors, metadata = load_checkpoint(path, self.device, limit)
        trained_with = metadata.get("plans_hash")
        if trained_with is not None and trained_with != self.plans.content_hash():
            raise UserInputError(
                f"{path} was trained with other plans than {self.paths.plans_file} (the task was planned again since). "
                "Train this fold from the start (without -c), or restore the plans it was trained with."
            )
        load_weights_into(self.network, tensors.get("network"), path)
        self.epoch, best_epoch, best = _training_state(metadata, path)
        source = metadata.get("pretrained_weights")  # what the resumed or validated training started from
        self.pretrained_weights = source if isinstance(source, dict) else None
        if with_optimizer:
            self.optimizers.load_state_dict(tensors.get("optimizer") or {}, str(path))
            if tensors.get("grad_scaler"):
                self.scaler.load_state_dict(tensors["grad_scaler"])
            self.log = TrainingLog.from_dict(metadata.get("log", {}), str(path))
            self.best_epoch, self.best_val_loss_ma = best_epoch, best
        logger.info("Loaded %s (epoch %s)", path, self.epoch)

    def _stored_plans_hash(self) -> str | None:
        """Hash of the trainer folder's plans.json, or None when it is missing or unreadable."""
        try:
            return Plans.load(self.layout.plans_file).content_hash()
        except UserInputError:
            return None

    @staticmethod
    def _checkpoint_plans_hash(checkpoint: Path, default: str | None) -> str | None:
        """The plans hash in a checkpoint's metadata; `default` if it has none (format 2), None if unreadable."""
        try:
            metadata = read_json_file(metadata_file(checkpoint), "checkpoint metadata")
        except UserInputError:
            return None
        return metadata.get("plans_hash", default) if isinstance(metadata, dict) else None

    def _check_trainer_folder_plans(self) -> None:
        """Refuse to train into a trainer folder whose other folds were trained with other plans than the current.

        When the folder's plans.json differs from the current plans, it is replaced only if no other fold there
        has a checkpoint made with other plans (a checkpoint without a recorded hash counts as made with the
        folder's plans.json); otherwise the ensemble would mix two preprocessings.
        """
        stored, current = self._stored_plans_hash(), self.plans.content_hash()
        if stored == current:
            return
        trainer_folder = self.output_folder.parent
        other_folds = [p for p in trainer_folder.glob("*") if p.is_dir() and p != self.output_folder]
        conflicting = [
            folder.name
            for folder in sorted(other_folds)
            if any(
                self._checkpoint_plans_hash(folder / name, stored) != current
                for name in (ArtifactLayout.FINAL, ArtifactLayout.LATEST, ArtifactLayout.BEST)
                if (folder / name).is_file()
            )
        ]
        if conflicting:
            raise UserInputError(
                f"{self.layout.plans_file} differs from the current plans {self.paths.plans_file}, and "
                f"{', '.join(conflicting)} there were trained with the old plans: training {self.output_folder.name} "
                "with the new plans would mix two preprocessings in one ensemble. Move that trainer folder away and "
                "train every fold again, or re-run plan & preprocess on the data the old folds were trained with."
            )

    # -------------------------------------------------------------- training
    def _parallel_model(self) -> torch.nn.Module:
        """The network, wrapped for DDP when several processes train (DDP syncs the parameters that need gradients
        when it is built)."""
        if not self.context.enabled:
            return self.network
        return DistributedDataParallel(
            self.network, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )

    def _freeze_backbone(self, frozen: bool) -> None:
        """Train the heads alone (no gradients, so no backward pass, for the backbone) or every layer."""
        if frozen != self.backbone_frozen:
            self.network.set_backbone_trainable(not frozen)
            self.backbone_frozen = frozen
            self.model = self._parallel_model()

    def _train_step(self, batch: dict) -> float:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        covariates = batch["covariates"].to(self.device) if "covariates" in batch else None
        zoom = batch["zoom"].to(self.device) if "zoom" in batch else None  # none: no case was zoomed
        self.optimizers.zero_grad()
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.use_autocast):
            outputs = self.model(data, covariates, zoom)
            loss = summed_loss(self.plans.classification_labels, outputs, target, self.recipe.label_smoothing)
        self.scaler.scale(loss).backward()
        for optimizer in self.optimizers.all:
            self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.recipe.gradient_clip)
        for optimizer in self.optimizers.all:
            self.scaler.step(optimizer)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def _outputs(
        self, data: torch.Tensor, covariates: torch.Tensor | None, zoom: torch.Tensor | None
    ) -> list[torch.Tensor]:
        covariates = None if covariates is None else covariates.to(self.device)
        zoom = None if zoom is None else zoom.to(self.device)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.use_autocast):
            outputs = self.network(data.to(self.device, non_blocking=True), covariates, zoom)
            return [output.float() for output in outputs]

    def _mean_over_ranks(self, value: float) -> float:
        if not self.context.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item()) / self.context.world_size

    def train_epoch(self, batches: Iterator[dict]) -> TrainResult:
        """Hook: set this epoch's learning rates and take `num_batches_per_epoch` optimizer steps."""
        start = time.perf_counter()
        learning_rate = self.recipe.learning_rate_at(self.epoch, self.options.max_num_epochs)
        frozen = self.recipe.backbone_frozen_at(self.epoch, self.options.max_num_epochs)
        self.optimizers.set_learning_rate(learning_rate, frozen)
        self._freeze_backbone(frozen)
        self.model.train()
        losses, waited = [], 0.0
        steps = tqdm(
            range(self.options.num_batches_per_epoch),
            desc=f"epoch {self.epoch + 1}/{self.options.max_num_epochs}",
            leave=False,
            disable=not (self.options.show_progress and self.context.is_main),
        )
        for _ in steps:
            fetch = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - fetch
            losses.append(self._train_step(batch))
            steps.set_postfix(loss=f"{losses[-1]:.3f}")
        loss = self._mean_over_ranks(float(np.mean(losses)))
        return TrainResult(loss, learning_rate, frozen, time.perf_counter() - start, waited)

    def validate_epoch(self, batches: Iterator[dict]) -> ValidationResult:
        """Hook: loss and per-head AUC of the network in evaluation mode on `num_val_batches_per_epoch` batches.

        The AUC is over the cases with a known target; a regression head has none (None).
        """
        self.network.eval()
        labels = self.plans.classification_labels
        losses: list[float] = []
        predictions: list[list[np.ndarray]] = [[] for _ in labels]
        targets: list[np.ndarray] = []
        for _ in range(self.options.num_val_batches_per_epoch):
            batch = next(batches)
            outputs = self._outputs(batch["data"], batch.get("covariates"), batch.get("zoom"))
            losses.append(float(summed_loss(labels, outputs, batch["target"].to(self.device))))
            for i, prediction in enumerate(head_predictions(labels, outputs)):
                predictions[i].append(prediction.cpu().numpy())
            targets.append(batch["target"].numpy())
        all_targets = np.concatenate(targets)
        aucs: dict[str, float | None] = {}
        for i, label in enumerate(labels):
            known = ~np.isnan(all_targets[:, i])
            aucs[label.name] = (
                None if label.is_regression
                else macro_auc(all_targets[known, i].astype(np.int64), np.concatenate(predictions[i])[known])
            )
        return ValidationResult(self._mean_over_ranks(float(np.mean(losses))), aucs)

    def end_epoch(self, train: TrainResult, validation: ValidationResult, epoch_seconds: float) -> None:
        """Hook: record the epoch in the log, report it, save the best and latest checkpoints and plot progress."""
        moving_average = self.log.record(train, validation, epoch_seconds)
        self.epoch += 1
        if self.tensorboard is not None:
            self.tensorboard.write_epoch(
                self.epoch, train, validation, moving_average, self.optimizers.learning_rates(), epoch_seconds
            )
        aucs = ", ".join(f"{head} {_format_auc(auc)}" for head, auc in validation.aucs.items())
        logger.info(
            "epoch %d/%d: train loss %.4f, val loss %.4f (MA %.4f), val AUC %s, lr %.5f%s, %.1f s "
            "(waiting for data %.1f s)",
            self.epoch, self.options.max_num_epochs, train.loss, validation.loss, moving_average, aucs,
            train.learning_rate, " (heads only)" if train.backbone_frozen else "", epoch_seconds,
            train.data_wait_seconds,
        )
        if moving_average < self.best_val_loss_ma:
            self.best_val_loss_ma, self.best_epoch = moving_average, self.epoch
            self.save(ArtifactLayout.BEST, with_optimizer=False)
        if self.epoch % self.options.save_every == 0 or self.epoch == self.options.max_num_epochs:
            self.save(ArtifactLayout.LATEST, with_optimizer=True)
        if self.context.is_main:
            max_epochs = self.options.max_num_epochs
            frozen = [self.recipe.backbone_frozen_at(e, max_epochs) for e in range(self.log.num_epochs)]
            plot_progress(
                self.log, self.output_folder / "progress.png", self.recipe.head_learning_rate_factor, frozen
            )

    def run_epoch(self, train_batches: Iterator[dict], val_batches: Iterator[dict]) -> None:
        """One epoch: the train, validate and end-of-epoch hooks in turn."""
        start = time.perf_counter()
        train = self.train_epoch(train_batches)
        validation = self.validate_epoch(val_batches)
        self.end_epoch(train, validation, time.perf_counter() - start)

    def run_training(self, resume: bool = False) -> None:
        """Train until max_num_epochs (continuing from model_latest with `resume`), then validate the fold."""
        self._check_trainer_folder_plans()
        if resume:
            self.load(ArtifactLayout.LATEST, with_optimizer=True)
        elif self.options.pretrained_weights is not None:
            source = self.options.pretrained_weights
            self.pretrained_weights = initialize_from_pretrained(self.network, source, self.plans)
        if self.context.is_main:
            self.output_folder.mkdir(parents=True, exist_ok=True)
            if self._stored_plans_hash() != self.plans.content_hash():
                self.plans.save(self.layout.plans_file)
        precision = "fp16 mixed precision" if self.use_amp else "bf16 autocast" if self.use_autocast else "fp32"
        logger.info(
            "Training %s fold %s on %s (%s) for epochs %d..%d, %d batches of %d per epoch, %d worker(s), "
            "%d process(es)",
            self.paths.task_name, self.fold, self.device, precision,
            self.epoch + 1, self.options.max_num_epochs, self.options.num_batches_per_epoch, self.batch_size,
            self.options.num_workers, self.context.world_size,
        )
        train_batches = self._batches(self.train_ids, train=True)
        val_batches = self._batches(self.val_ids, train=False)
        if self.options.tensorboard and self.context.is_main:
            self.tensorboard = TensorBoardLog(self.output_folder, self.epoch)
        try:
            while self.epoch < self.options.max_num_epochs:
                self.run_epoch(train_batches, val_batches)
        finally:
            train_batches.shutdown()
            val_batches.shutdown()
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None
        self.max_weight_difference = max_weight_difference(self.network, self.context)
        if self.max_weight_difference > 0:
            raise RuntimeError(
                f"Weights differ across the {self.context.world_size} processes by up to {self.max_weight_difference}."
            )
        self._correct_sampling_prior()
        self.save(ArtifactLayout.FINAL, with_optimizer=False)
        if self.context.is_main:
            self.validate()

    def _correct_sampling_prior(self) -> None:
        """Shift the nominal heads' logits from the balanced sampling's class frequencies back to the training cases'
        (see training/prior_correction.py); recorded in the final checkpoint's metadata."""
        balanced = self.recipe.balanced_sampling and self._first_head_is_a_class()
        if not (balanced and self.recipe.prior_correction):
            return
        targets = np.array([self.case_targets[c] for c in self.train_ids], dtype=np.float64)
        self.prior_shifts = sampling_prior_shifts(
            self.plans.classification_labels, targets, class_balanced_weights(targets[:, 0])
        )
        shift_head_biases(self.network.heads, self.plans.classification_labels, self.prior_shifts)
        logger.info("Logit shifts undoing the balanced sampling: %s", {
            name: [round(v, 3) for v in shift] for name, shift in self.prior_shifts.items()
        })

    # ------------------------------------------------------------ validation
    def validate(self) -> dict:
        """Predict every validation case as a whole image and write validation/ (predictions, summary, ROC plots)."""
        self.network.eval()
        labels = self.plans.classification_labels
        predictions: dict[str, list[np.ndarray]] = {label.name: [] for label in labels}
        for case_id in tqdm(self.val_ids, desc="Validation", disable=not self.options.show_progress):
            array = to_network_input(np.load(self._array_file(case_id)), self.plans.num_roi_classes)
            covariates = self._covariates([case_id])
            case_covariates = None if covariates is None else torch.from_numpy(covariates)
            zoom = torch.tensor([[self.case_zooms[case_id]]], dtype=torch.float32)
            outputs = self._outputs(torch.from_numpy(array[None]), case_covariates, zoom)
            for label, prediction in zip(labels, head_predictions(labels, outputs), strict=True):
                predictions[label.name].append(prediction[0].cpu().numpy())
        stacked = {head: np.stack(values) for head, values in predictions.items()}
        targets = {
            head: [self.case_targets[c][i] for c in self.val_ids] for i, head in enumerate(self.plans.head_names)
        }
        folder = self.layout.validation_folder(self.fold)
        summary = write_validation_files(
            folder, self.val_ids, labels, targets, stacked, {"fold": str(self.fold), "epoch": self.epoch}
        )
        for label in labels:
            title = f"{self.paths.task_name} {fold_folder_name(self.fold)}: {label.name}"
            plot_head(label, targets[label.name], stacked[label.name], title, folder)
        logger.info(
            "Validation of %d cases: %s",
            len(self.val_ids),
            "; ".join(f"{label.name} {headline(label, summary[label.name])}" for label in labels),
        )
        return summary

    def validation_only(self) -> dict:
        """Recompute validation/ from the final checkpoint."""
        self.load(ArtifactLayout.FINAL, with_optimizer=False)
        return self.validate()
