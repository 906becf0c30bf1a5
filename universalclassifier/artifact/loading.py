"""Loading an artifact's plans and fold weights (never unpickling) and checking that they belong together."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from universalclassifier.errors import UserInputError
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import Plans

if TYPE_CHECKING:
    import torch


def load_plans(trainer_folder: Path) -> Plans:
    """The plans stored next to the trained folds (format version checked)."""
    return Plans.load(ArtifactLayout(trainer_folder).plans_file)


def load_network_weights(fold_folder: Path, device: "torch.device") -> tuple[dict[str, "torch.Tensor"], dict]:
    """The network state dict and metadata of a fold's final checkpoint (weights_only=True: never unpickles)."""
    from universalclassifier.artifact.checkpoint import (  # loads torch: only when weights are read
        CHECKPOINT_FORMAT_VERSION,
        READABLE_CHECKPOINT_FORMAT_VERSIONS,
        load_checkpoint,
    )

    checkpoint = fold_folder / ArtifactLayout.FINAL
    try:
        tensors, metadata = load_checkpoint(checkpoint, device)
    except UserInputError:
        raise
    except Exception as exc:  # torch raises several types for damaged or unsafe files
        raise UserInputError(f"Cannot load {checkpoint} safely (weights only): {exc}") from exc
    version = metadata.get("checkpoint_format_version")
    if version not in READABLE_CHECKPOINT_FORMAT_VERSIONS:
        raise UserInputError(
            f"{checkpoint} has checkpoint format {version!r}; this universalclassifier reads "
            f"{list(READABLE_CHECKPOINT_FORMAT_VERSIONS)} (writes {CHECKPOINT_FORMAT_VERSION}). "
            "Use the version that trained it, or retrain."
        )
    return tensors["network"], metadata


def check_folds_match_plans(trainer_folder: Path, plans: Plans, fold_metadata: dict[str, dict]) -> None:
    """Refuse folds whose checkpoint records a hash of other plans than the artifact's plans.json.

    `fold_metadata` maps fold folder names to their final checkpoint's metadata. Checkpoints of format 2 record no
    hash and are accepted as they are.
    """
    current = plans.content_hash()
    stale = sorted(name for name, metadata in fold_metadata.items() if metadata.get("plans_hash", current) != current)
    if stale:
        raise UserInputError(
            f"{', '.join(stale)} in {trainer_folder} were trained with other plans than its plans.json (the task was "
            f"planned again and only some folds retrained): retrain {', '.join(stale)} with the current plans, or "
            "choose the other folds (folds=... / -f)."
        )
