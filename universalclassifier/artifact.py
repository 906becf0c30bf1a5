"""The trained-model artifact: finding the trainer folder and its folds, and loading them without pickles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from universalclassifier.errors import UserInputError
from universalclassifier.paths import TRAINER
from universalclassifier.plans import Plans

if TYPE_CHECKING:
    import torch

FINAL_CHECKPOINT = "model_final_checkpoint.model"
_FOLD_PATTERN = re.compile(r"^fold_(\d+)$")


def _task_matches(task_name: str, task: str | int) -> bool:
    text = str(task).strip()
    return task_name == text or (text.isdigit() and task_name.startswith(f"Task{int(text):03d}_"))


def find_trainer_folder(artifact_path: Path | str, task: str | int | None = None) -> Path:
    """The `ClassifierTrainer__<plans>` folder inside an artifact (the trained_models folder or any folder below it)."""
    root = Path(artifact_path).expanduser()
    if not root.is_dir():
        raise UserInputError(f"Artifact folder {root} does not exist; pass the trained_models folder of a training run.")
    if (root / "plans.json").is_file():
        candidates = [root]
    else:
        candidates = sorted(
            p.parent for p in root.glob("**/plans.json") if p.parent.name.partition("__")[0].startswith(TRAINER)
        )
    if task is not None:
        candidates = [c for c in candidates if _task_matches(c.parent.name, task)]
    if not candidates:
        what = f" for task '{task}'" if task is not None else ""
        raise UserInputError(
            f"No trained model{what} under {root}: expected .../{TRAINER}<variant>__<plans>/plans.json with fold folders."
        )
    if len(candidates) > 1:
        names = sorted({c.parent.name for c in candidates})
        if len(names) > 1:
            raise UserInputError(f"The artifact {root} holds several tasks {names}; say which one with task=...")
        raise UserInputError(
            f"The artifact {root} holds several trainers/plans {[c.name for c in candidates]}; pass the one to use."
        )
    return candidates[0]


def numbered_fold_folders(trainer_folder: Path) -> list[Path]:
    """The `fold_N` folders of a trainer folder, in fold order."""
    folders = [p for p in trainer_folder.iterdir() if p.is_dir() and _FOLD_PATTERN.match(p.name)]
    return sorted(folders, key=lambda p: int(_FOLD_PATTERN.match(p.name).group(1)))


def find_fold_folders(trainer_folder: Path, folds: list[int | str] | None = None) -> list[Path]:
    """Fold folders holding a final checkpoint: the requested folds, else fold_0..fold_N, else `all`."""
    if folds is not None:
        folders = [trainer_folder / ("all" if str(f) == "all" else f"fold_{int(f)}") for f in folds]
        missing = [f.name for f in folders if not (f / FINAL_CHECKPOINT).is_file()]
        if missing:
            raise UserInputError(f"{trainer_folder} has no trained {missing} (no {FINAL_CHECKPOINT}); train them or choose other folds.")
        return folders
    numbered = [p for p in numbered_fold_folders(trainer_folder) if (p / FINAL_CHECKPOINT).is_file()]
    if numbered:
        return numbered
    if (trainer_folder / "all" / FINAL_CHECKPOINT).is_file():
        return [trainer_folder / "all"]
    raise UserInputError(f"{trainer_folder} holds no trained fold (no fold_N/{FINAL_CHECKPOINT}); finish training first.")


def load_plans(trainer_folder: Path) -> Plans:
    """The plans stored next to the trained folds (format version checked)."""
    return Plans.load(trainer_folder / "plans.json")


def load_network_weights(fold_folder: Path, device: "torch.device") -> tuple[dict[str, "torch.Tensor"], dict]:
    """The network state dict and metadata of a fold's final checkpoint (weights_only=True: never unpickles)."""
    from universalclassifier.training.checkpoint import (
        CHECKPOINT_FORMAT_VERSION,
        READABLE_CHECKPOINT_FORMAT_VERSIONS,
        load_checkpoint,
    )

    checkpoint = fold_folder / FINAL_CHECKPOINT
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
