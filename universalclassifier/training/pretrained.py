"""Fine-tuning: start a new training from another trained model (`uc_train ... --pretrained_weights PATH`).

Everything of the source network but the task's own parts is copied: the I3D backbone and, when the recipe has
one, the fine ROI branch. The heads are made fresh for the new task, and so is the standardization of the features
they read (`feature_norm`): its width follows the task's ROI labels and covariates, and its running statistics
describe the task's own features. The source is read like any artifact (size-bounded, weights only, every tensor
finite; see `artifact/loading.py`), and must build the same layers: as many modalities, the same normalization
layers, a fine ROI branch on both sides or neither. The checkpoints record its path, SHA-256 and task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from universalclassifier.artifact.loading import check_folds_match_plans, load_network_weights, load_plans
from universalclassifier.errors import UserInputError
from universalclassifier.network.i3d import I3DClassifier
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import Plans
from universalclassifier.sharing.manifest import sha256_of_file

logger = logging.getLogger(__name__)

# state dict entries that belong to the new task: made fresh, never copied
TASK_PARTS = ("heads.", "feature_norm.")
FINE_BRANCH = "fine_branch."
_LISTED = 5


def pretrained_checkpoint(path: str | Path) -> Path:
    """The final checkpoint that `path` names: the file itself, or the one in a trained fold folder."""
    source = Path(path).expanduser()
    usage = f"pass a trained fold folder (.../fold_0) or the {ArtifactLayout.FINAL} file in it"
    if source.is_dir():
        checkpoint = source / ArtifactLayout.FINAL
        if checkpoint.is_file():
            return checkpoint
        if ArtifactLayout(source).plans_file.is_file():
            raise UserInputError(f"--pretrained_weights {source} is a trainer folder, not one fold of it: {usage}.")
        raise UserInputError(f"--pretrained_weights {source} holds no {ArtifactLayout.FINAL}: {usage}.")
    if not source.exists():
        raise UserInputError(f"--pretrained_weights {source} does not exist: {usage}.")
    if source.name != ArtifactLayout.FINAL:
        raise UserInputError(
            f"--pretrained_weights {source} is not a final checkpoint ({ArtifactLayout.FINAL}): {usage}."
        )
    return source


def _modalities(plans: Plans) -> str:
    return f"{plans.num_modalities} ({', '.join(plans.modalities)})"


def _layer_differences(
    weights: Mapping[str, torch.Tensor], source_plans: Plans, source_recipe: Mapping, network: I3DClassifier,
    plans: Plans,
) -> list[str]:
    """What makes the source's shared layers unfit for `network`, each said in the terms of plans and recipe."""
    differences = []
    if source_plans.num_modalities != plans.num_modalities:
        differences.append(
            f"modalities: the pretrained model has {_modalities(source_plans)}, this task {_modalities(plans)}"
        )
    if source_recipe["normalization"] != network.normalization:
        differences.append(
            f"normalization layers (recipe field normalization): the pretrained model's are "
            f"{source_recipe['normalization']!r}, this trainer's {network.normalization!r}"
        )
    source_fine = any(name.startswith(FINE_BRANCH) for name in weights)
    if source_fine != (network.fine_branch is not None):
        differences.append(
            "fine ROI branch (recipe field fine_roi_features): the pretrained model has "
            f"{'one' if source_fine else 'none'}, this training {'one' if network.fine_branch is not None else 'none'}"
        )
    if differences:
        return differences
    expected = {k: v for k, v in network.state_dict().items() if not k.startswith(TASK_PARTS)}
    given = {k: v for k, v in weights.items() if not k.startswith(TASK_PARTS)}
    differences += [f"{k} is missing" for k in expected if k not in given]
    differences += [f"{k} is not part of this network" for k in given if k not in expected]
    differences += [
        f"{k} has shape {list(given[k].shape)}, this network {list(v.shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    return differences


def _input_differences(source_plans: Plans, plans: Plans) -> list[str]:
    """What the backbone's first layer reads differently in this task (allowed: fine-tuning adapts to it)."""
    differences = []
    if source_plans.modalities != plans.modalities:
        differences.append(f"modalities {source_plans.modalities} -> {plans.modalities}")
    if source_plans.normalization_schemes != plans.normalization_schemes:
        differences.append(
            f"intensity normalization {source_plans.normalization_schemes} -> {plans.normalization_schemes}"
        )
    if source_plans.num_roi_classes != plans.num_roi_classes:
        differences.append(
            f"ROI labels {source_plans.num_roi_classes} -> {plans.num_roi_classes} (the ROI channel holds label / "
            "number of labels)"
        )
    return differences


def initialize_from_pretrained(network: I3DClassifier, path: str | Path, plans: Plans) -> dict[str, str]:
    """Copy the backbone (and fine ROI branch) of the trained model at `path` into `network`, built for `plans`.

    Returns the record the checkpoints keep (`pretrained_weights` in their metadata): the checkpoint's path, its
    SHA-256 and the task it was trained on. Raises UserInputError naming the source for a missing or unreadable
    source and for layers that differ, saying which.
    """
    checkpoint = pretrained_checkpoint(path)
    fold_folder = checkpoint.parent
    trainer_folder = fold_folder.parent
    if not ArtifactLayout(trainer_folder).plans_file.is_file():
        raise UserInputError(
            f"--pretrained_weights {checkpoint} has no {ArtifactLayout.PLANS} in {trainer_folder}: pass the fold "
            "folder inside the trained model folder it came from (as training or uc_install_model wrote it)."
        )
    source_plans = load_plans(trainer_folder)
    weights, metadata = load_network_weights(fold_folder, torch.device("cpu"), source_plans)
    check_folds_match_plans(trainer_folder, source_plans, {fold_folder.name: metadata})
    differences = _layer_differences(weights, source_plans, metadata["recipe"], network, plans)
    if differences:
        listed = "; ".join(differences[:_LISTED]) + ("; ..." if len(differences) > _LISTED else "")
        raise UserInputError(
            f"Cannot start from --pretrained_weights {checkpoint}: its network differs from the one this training "
            f"builds ({listed}). Use a model trained on as many modalities with a trainer of the same network layers, "
            "or train without --pretrained_weights."
        )
    adapted = _input_differences(source_plans, plans)
    if adapted:
        logger.warning("The pretrained model saw other inputs; fine-tuning adapts to them: %s", "; ".join(adapted))
    network.load_state_dict({k: v for k, v in weights.items() if not k.startswith(TASK_PARTS)}, strict=False)
    record = {
        "path": str(checkpoint.resolve()),
        "sha256": sha256_of_file(checkpoint)[0],
        "task_name": source_plans.task_name,
    }
    logger.info(
        "Backbone%s from %s (%s, sha256 %s); heads new for this task",
        " and fine ROI branch" if network.fine_branch is not None else "", record["path"], record["task_name"],
        record["sha256"],
    )
    return record
