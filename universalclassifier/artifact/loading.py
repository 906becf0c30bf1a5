"""Loading an artifact's plans and fold weights (never unpickling) and checking that they belong together.

Everything read from an artifact is checked before it is used: the plans field by field (see `Plans.from_dict`),
the checkpoint's size and archive (see `checkpoint.load_checkpoint`), its metadata's recipe, and its weights, which
must be finite and have exactly the shapes of the network the plans and recipe describe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from universalclassifier.errors import UserInputError
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import Plans

if TYPE_CHECKING:
    import torch

    from universalclassifier.network.i3d import I3DClassifier

# The recipe fields the network is rebuilt from (network/i3d.py `network_for`); the flags came in later versions.
_RECIPE_FLAGS = ("fine_roi_features", "roi_descriptors", "roi_volume", "roi_extremes", "standardize_features")
_LISTED = 5


def load_plans(trainer_folder: Path) -> Plans:
    """The plans stored next to the trained folds (format version and every field checked)."""
    return Plans.load(ArtifactLayout(trainer_folder).plans_file)


def _check_metadata(metadata: dict, checkpoint: Path) -> None:
    """Refuse metadata of another checkpoint format, or without a usable recipe or plans hash."""
    from universalclassifier.artifact.checkpoint import CHECKPOINT_FORMAT_VERSION, READABLE_CHECKPOINT_FORMAT_VERSIONS
    from universalclassifier.network.i3d import NORMALIZATIONS

    version = metadata.get("checkpoint_format_version")
    if isinstance(version, bool) or version not in READABLE_CHECKPOINT_FORMAT_VERSIONS:
        raise UserInputError(
            f"{checkpoint} has checkpoint format {version!r}; this universalclassifier reads "
            f"{list(READABLE_CHECKPOINT_FORMAT_VERSIONS)} (writes {CHECKPOINT_FORMAT_VERSION}). "
            "Use the version that trained it, or retrain."
        )
    recipe = metadata.get("recipe")
    dropout = recipe.get("dropout") if isinstance(recipe, dict) else None
    usable = (
        isinstance(recipe, dict)
        and isinstance(recipe.get("roi_pooling"), bool)
        and recipe.get("normalization") in NORMALIZATIONS
        and isinstance(dropout, (int, float))
        and not isinstance(dropout, bool)
        and math.isfinite(dropout)
        and 0 <= dropout < 1
        and all(isinstance(recipe.get(flag, False), bool) for flag in _RECIPE_FLAGS)
    )
    hash_ok = version == 2 or isinstance(metadata.get("plans_hash"), str)
    if not usable or not hash_ok:
        raise UserInputError(
            f"The metadata of {checkpoint} lacks a usable training recipe (roi_pooling and the flags {_RECIPE_FLAGS} "
            f"true or false, normalization one of {NORMALIZATIONS}, dropout in [0, 1)) or the hash of its plans; it is "
            "damaged or was edited: train this fold again, or use the artifact exactly as its training wrote it."
        )


def _state_dict(weights: object, checkpoint: Path) -> dict[str, "torch.Tensor"]:
    """`weights` if it is a state dict (names to tensors), else a UserInputError naming the checkpoint."""
    import torch

    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise UserInputError(f"{checkpoint} holds no network state dict (names to tensors); train this fold again.")
    return weights


def load_network_weights(
    fold_folder: Path, device: "torch.device", plans: Plans
) -> tuple[dict[str, "torch.Tensor"], dict]:
    """The network state dict and metadata of a fold's final checkpoint (weights_only=True: never unpickles).

    Refused with a UserInputError naming the checkpoint: a file larger than a network of these plans can need (see
    `Plans.network_parameter_bound`), metadata without a usable recipe, and tensors that are not finite.
    """
    import torch

    from universalclassifier.artifact.checkpoint import checkpoint_byte_limit, load_checkpoint

    checkpoint = fold_folder / ArtifactLayout.FINAL
    tensors, metadata = load_checkpoint(checkpoint, device, checkpoint_byte_limit(plans.network_parameter_bound))
    _check_metadata(metadata, checkpoint)
    weights = _state_dict(tensors.get("network"), checkpoint)
    damaged = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if damaged:
        raise UserInputError(
            f"{checkpoint} holds NaN or infinite weights ({', '.join(damaged[:_LISTED])}"
            f"{', ...' if len(damaged) > _LISTED else ''}): the training diverged or the file is damaged; train this "
            "fold again."
        )
    return weights, metadata


def load_weights_into(network: "torch.nn.Module", weights: object, checkpoint: Path) -> None:
    """Load a checkpoint's network state dict into `network`, refusing with a UserInputError naming the file a state
    dict whose names or shapes differ from the network's (instead of torch's size-mismatch RuntimeError)."""
    weights = _state_dict(weights, checkpoint)
    expected = network.state_dict()
    problems = [f"{k} is missing" for k in expected if k not in weights]
    problems += [f"{k} is not part of the network" for k in weights if k not in expected]
    problems += [
        f"{k} has shape {list(weights[k].shape)}, the network {list(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if problems:
        raise UserInputError(
            f"The weights in {checkpoint} do not fit the network its plans and recipe describe ({len(problems)} "
            f"problem(s): {'; '.join(problems[:_LISTED])}): the checkpoint belongs to another model or is damaged; "
            "train this fold again, or use the artifact exactly as its training wrote it."
        )
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied into the parameter
        raise UserInputError(f"The weights in {checkpoint} cannot be loaded into the network ({exc}).") from None


def network_from_weights(plans: Plans, weights: dict, metadata: dict, fold_folder: Path) -> "I3DClassifier":
    """The network that `plans` and the checkpoint's recipe describe, with the fold's weights (see
    `load_network_weights` and `load_weights_into`)."""
    from universalclassifier.network.i3d import network_for

    network = network_for(plans, metadata["recipe"])
    load_weights_into(network, weights, fold_folder / ArtifactLayout.FINAL)
    return network


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
