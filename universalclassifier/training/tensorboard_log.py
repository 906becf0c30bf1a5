"""TensorBoard event files of a training run (`uc_train ... --tensorboard`): one step per epoch, in
`fold_X/tensorboard/`.

Opt-in with an explicit flag rather than "on when installed": a run's outputs then do not depend on what else happens
to be installed, and a missing package is said before any work. Needs the optional extra
`pip install 'universalclassifier[tensorboard]'`; view with `tensorboard --logdir DATA/trained_models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from universalclassifier.errors import UserInputError
from universalclassifier.training.training_log import TrainResult, ValidationResult

TENSORBOARD_FOLDER = "tensorboard"


def require_tensorboard() -> None:
    """Refuse `--tensorboard` with a UserInputError saying how to install the package when it cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        raise UserInputError(
            f"--tensorboard needs the tensorboard package ({exc}): install it with "
            "pip install 'universalclassifier[tensorboard]' (or pip install tensorboard), or train without "
            "--tensorboard."
        ) from None


class TensorBoardLog:
    """Writes each finished epoch's scalars, the epoch number (1, 2, ...) as the step.

    Tags: `loss/train`, `loss/validation`, `loss/validation_moving_average`, `validation_auc/<head>` (heads with an
    AUC), `learning_rate/<optimizer group>` (0 for the backbone while it is frozen), `backbone_frozen` (0 or 1),
    `time/epoch_seconds`, `time/train_seconds`, `time/data_wait_seconds`.
    """

    def __init__(self, fold_folder: Path, epochs_done: int) -> None:
        """Open `fold_folder/tensorboard/`; a resumed run (`epochs_done` > 0) hides the events an interrupted run
        wrote after its last checkpoint."""
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = fold_folder / TENSORBOARD_FOLDER
        self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=epochs_done + 1 if epochs_done else None)

    def write_epoch(
        self,
        epoch: int,
        train: TrainResult,
        validation: ValidationResult,
        moving_average: float,
        learning_rates: Mapping[str, float],
        epoch_seconds: float,
    ) -> None:
        """Record epoch `epoch` (1-based, as in the log) and flush, so that a running TensorBoard shows it."""
        scalars = {
            "loss/train": train.loss,
            "loss/validation": validation.loss,
            "loss/validation_moving_average": moving_average,
            "backbone_frozen": float(train.backbone_frozen),
            "time/epoch_seconds": epoch_seconds,
            "time/train_seconds": train.seconds,
            "time/data_wait_seconds": train.data_wait_seconds,
        }
        scalars.update({f"validation_auc/{head}": auc for head, auc in validation.aucs.items() if auc is not None})
        scalars.update({f"learning_rate/{group}": rate for group, rate in learning_rates.items()})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
