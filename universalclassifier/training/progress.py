"""The training progress plot: losses, validation AUC per head and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from universalclassifier.training.training_log import TrainingLog


def plot_progress(log: TrainingLog, out_file: Path) -> None:
    """Write progress.png from a training log: losses, validation AUC per head and learning rate per epoch."""
    from matplotlib.figure import Figure

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
    lr_axes.plot(epochs, log.lr)
    lr_axes.set_ylabel("learning rate")
    lr_axes.set_xlabel("epoch")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")
