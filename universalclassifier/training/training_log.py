"""The per-epoch records of a training run: what the train and validation hooks report, and the log they build."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from universalclassifier.errors import UserInputError

# The validation loss is noisy on a few batches: the best checkpoint follows its exponential moving average.
MOVING_AVERAGE_ALPHA = 0.9


@dataclass(frozen=True)
class TrainResult:
    """What the train hook reports: mean loss over the epoch's steps, its learning rate, timings."""

    loss: float
    learning_rate: float
    backbone_frozen: bool
    seconds: float
    data_wait_seconds: float


@dataclass(frozen=True)
class ValidationResult:
    """What the validation hook reports: mean loss and each head's AUC (None where undefined)."""

    loss: float
    aucs: dict[str, float | None]


@dataclass
class TrainingLog:
    """Per-epoch lists, one entry per finished epoch; saved in every checkpoint's metadata as a plain dict."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_loss_ma: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    data_wait_seconds: list[float] = field(default_factory=list)
    val_auc: dict[str, list[float | None]] = field(default_factory=dict)

    @classmethod
    def for_heads(cls, head_names: list[str]) -> TrainingLog:
        """An empty log with one AUC list per head."""
        return cls(val_auc={head: [] for head in head_names})

    @property
    def num_epochs(self) -> int:
        return len(self.train_loss)

    def record(self, train: TrainResult, validation: ValidationResult, epoch_seconds: float) -> float:
        """Append one epoch and return the validation loss's new moving average."""
        previous = self.val_loss_ma[-1] if self.val_loss_ma else validation.loss
        moving_average = MOVING_AVERAGE_ALPHA * previous + (1 - MOVING_AVERAGE_ALPHA) * validation.loss
        self.train_loss.append(train.loss)
        self.val_loss.append(validation.loss)
        self.val_loss_ma.append(moving_average)
        self.lr.append(train.learning_rate)
        for head, auc in validation.aucs.items():
            self.val_auc[head].append(auc)
        self.train_seconds.append(train.seconds)
        self.data_wait_seconds.append(train.data_wait_seconds)
        self.epoch_seconds.append(epoch_seconds)
        return moving_average

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, source: str) -> TrainingLog:
        """The log saved in a checkpoint's metadata; refuses one with missing lists or lists of unequal length."""
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict) or any(name not in raw for name in names):
            raise UserInputError(f"{source} holds no complete training log; train this fold from the start.")
        log = cls(**{name: raw[name] for name in names})
        lengths = {len(getattr(log, name)) for name in names if name != "val_auc"}
        lengths |= {len(values) for values in log.val_auc.values()}
        if len(lengths) > 1:
            raise UserInputError(f"{source} holds a training log with lists of unequal length; it is damaged.")
        return log
