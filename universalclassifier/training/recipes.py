"""Training recipes: every choice around the I3D backbone, as a typed record, and the registry of named trainers.

A trainer name on the command line (`uc_train DATA 3d_fullres ClassifierTrainer ...`) picks a recipe from
`RECIPES`; the recipe is saved in every checkpoint's metadata, and its network fields (normalization layers,
dropout) are what inference rebuilds the network from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from universalclassifier.errors import UserInputError
from universalclassifier.paths import TRAINER


@dataclass(frozen=True)
class Recipe:
    """How a fold is trained. See docs/benchmarks.md, "Training recipe", for the measurements behind the defaults."""

    optimizer: str  # the backbone's: "sgd" (Nesterov) or "adamw"
    learning_rate: float
    head_optimizer: str  # the heads' own optimizer: "sgd" or "adamw"
    head_learning_rate_factor: float  # the heads train at this multiple of the backbone's learning rate
    head_weight_decay: float
    backbone_frozen_fraction: float  # the first such fraction of the epochs trains the heads only (1: never the rest)
    momentum: float  # SGD only (backbone or heads)
    weight_decay: float
    warmup_epochs: int  # linear warm-up from lr/10 over these epochs, then the decay
    schedule: str  # "poly" (exponent 0.9) or "cosine"
    gradient_clip: float
    normalization: str  # "batch" or "group" (network layers)
    dropout: float  # before the heads
    roi_pooling: bool  # heads also see early features averaged inside each ROI label (see network/i3d.py)
    fine_roi_features: bool  # with roi_pooling: a learned full-resolution ROI branch, pooled per label
    roi_descriptors: bool  # with roi_pooling: input mean and SD, size and outline per ROI label (no learned layers)
    roi_volume: bool  # with roi_descriptors: each ROI label's volume fraction too (linear in ml, for regression heads)
    roi_extremes: bool  # with roi_descriptors: each channel's highest and lowest local mean in each ROI label too
    standardize_features: bool  # batch-normalize (no affine) the features the heads read
    label_smoothing: float
    augmentation: str  # "nnunet" (nnU-Net v1 3D defaults), "light" (spatial, mirroring, intensity) or "mirror"
    balanced_sampling: bool  # draw training cases with inverse class frequency (first head)
    prior_correction: bool = True  # after training, shift nominal heads' logits back to the real class frequencies

    def check(self) -> None:
        """Refuse unknown choices and out-of-range numbers."""
        choices = {
            "optimizer": ("sgd", "adamw"),
            "head_optimizer": ("sgd", "adamw"),
            "schedule": ("poly", "cosine"),
            "normalization": ("batch", "group"),
            "augmentation": ("nnunet", "light", "mirror"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserInputError(f"Recipe {name} must be one of {allowed}, got {getattr(self, name)!r}.")
        positive = self.learning_rate > 0 and self.head_learning_rate_factor > 0
        fractions = 0 <= self.dropout < 1 and 0 <= self.label_smoothing < 1 and 0 <= self.backbone_frozen_fraction <= 1
        if not (positive and fractions):
            raise UserInputError(f"Recipe numbers out of range: {self}.")
        if self.warmup_epochs < 0 or self.gradient_clip <= 0 or self.weight_decay < 0 or self.head_weight_decay < 0:
            raise UserInputError(f"Recipe numbers out of range: {self}.")

    def learning_rate_at(self, epoch: int, max_epochs: int) -> float:
        """The learning rate of an epoch: linear warm-up, then poly or cosine decay to (almost) zero."""
        warmup = min(self.warmup_epochs, max_epochs - 1)
        if epoch < warmup:
            return self.learning_rate * (0.1 + 0.9 * epoch / warmup)
        progress = (epoch - warmup) / max(1, max_epochs - warmup)
        if self.schedule == "poly":
            return self.learning_rate * (1 - progress) ** 0.9
        return self.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))

    def backbone_frozen_at(self, epoch: int, max_epochs: int) -> bool:
        """Whether only the heads (not the backbone, ROI branch or normalization layers) learn in this epoch."""
        return epoch < round(self.backbone_frozen_fraction * max_epochs)

    def to_dict(self) -> dict:
        return asdict(self)


# The AUC23 baseline's recipe (nnU-Net's segmentation defaults), kept for reproduction.
AUC23 = Recipe(
    optimizer="sgd",
    learning_rate=1e-2,
    head_optimizer="sgd",
    head_learning_rate_factor=1.0,
    head_weight_decay=3e-5,
    backbone_frozen_fraction=0.0,
    momentum=0.99,
    weight_decay=3e-5,
    warmup_epochs=0,
    schedule="poly",
    gradient_clip=12.0,
    normalization="batch",
    dropout=0.5,
    roi_pooling=False,
    fine_roi_features=False,
    roi_descriptors=False,
    roi_volume=False,
    roi_extremes=False,
    standardize_features=False,
    label_smoothing=0.0,
    augmentation="nnunet",
    balanced_sampling=False,
    prior_correction=False,
)

# The default: what won on the quality suite (benchmarks/bench_quality.py; docs/benchmarks.md). The heads
# first learn alone on the random backbone's features and the ROI descriptors (SGD, features standardized in
# equal-variance groups); the backbone joins for the second half of the epochs with AdamW at a low learning rate.
DEFAULT = Recipe(
    optimizer="adamw",
    learning_rate=1e-4,
    head_optimizer="sgd",
    head_learning_rate_factor=1000.0,
    head_weight_decay=0.0,
    backbone_frozen_fraction=0.5,
    momentum=0.9,
    weight_decay=0.05,
    warmup_epochs=3,
    schedule="cosine",
    gradient_clip=5.0,
    normalization="group",
    dropout=0.3,
    roi_pooling=True,
    fine_roi_features=False,
    roi_descriptors=True,
    roi_volume=True,
    roi_extremes=False,  # no gain where it was meant to help (ct_lesion) nor on LIDC: docs/benchmarks.md
    standardize_features=True,
    label_smoothing=0.0,
    augmentation="light",
    balanced_sampling=True,
)

RECIPES: dict[str, Recipe] = {TRAINER: DEFAULT, f"{TRAINER}AUC23": AUC23}


def recipe_for(trainer: str) -> Recipe:
    """The recipe registered under a trainer name, or a clear error listing the names."""
    if trainer not in RECIPES:
        raise UserInputError(f"Unknown trainer '{trainer}': choose one of {', '.join(RECIPES)}.")
    return RECIPES[trainer]
