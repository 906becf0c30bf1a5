"""The training progress plot: losses, validation AUC per head and the learning rates per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from universalclassifier.training.training_log import TrainingLog

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_progress(
    log: TrainingLog, out_file: Path, head_learning_rate_factor: float = 1.0, backbone_frozen: Sequence[bool] = ()
) -> Figure:
    """Write progress.png from a training log and return the figure: losses, validation AUC per head and the
    learning rates of the backbone and of the heads (`head_learning_rate_factor` times the backbone's; a log axis,
    since they differ by orders of magnitude). Epochs in `backbone_frozen` (True per epoch) have no backbone rate:
    the backbone does not learn then. The epoch axis has whole-number ticks."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, log.num_epochs + 1)
    figure = Figure(figsize=(8, 9), dpi=100, layout="constrained")
    loss_axes, auc_axes, lr_axes = figure.subplots(3, 1, sharex=True)
    loss_axes.plot(epochs, log.train_loss, label="train loss")
    loss_axes.plot(epochs, log.val_loss, label="validation loss")
    loss_axes.plot(epochs, log.val_loss_ma, label="validation loss (moving average)", linestyle="--")
    loss_axes.set_yscale("log")  # early validation losses of a fresh network can be orders of magnitude larger
    loss_axes.set_ylabel("summed cross-entropy")
    loss_axes.legend()
    for head, values in log.val_auc.items():
        auc_axes.plot(epochs, [np.nan if v is None else v for v in values], marker=".", label=head)
    auc_axes.set_ylim(0, 1)
    auc_axes.set_ylabel("validation AUC")
    auc_axes.legend()
    backbone = np.asarray(log.lr, dtype=np.float64)
    frozen = np.zeros(len(backbone), dtype=bool)
    frozen[: len(backbone_frozen)] = np.asarray(backbone_frozen, dtype=bool)[: len(backbone)]
    lr_axes.plot(epochs, np.where(frozen, np.nan, backbone), marker=".", label="backbone (none while frozen)")
    lr_axes.plot(epochs, backbone * head_learning_rate_factor, marker=".", label="heads")
    lr_axes.set_yscale("log")
    lr_axes.set_ylabel("learning rate")
    lr_axes.set_xlabel("epoch")
    lr_axes.legend()
    lr_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
    return figure
