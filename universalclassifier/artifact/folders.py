"""Where an artifact keeps its parts: the trainer folder (`ClassifierTrainer__<plans>`) and its fold folders."""

from __future__ import annotations

from pathlib import Path

from universalclassifier.errors import UserInputError
from universalclassifier.paths import TRAINER, ArtifactLayout, fold_folder_name, fold_of_folder


def _task_matches(task_name: str, task: str | int) -> bool:
    text = str(task).strip()
    prefixes = (f"Task{int(text):03d}_", f"Dataset{int(text):03d}_") if text.isdigit() else ()
    return task_name == text or (bool(prefixes) and task_name.startswith(prefixes))


def trainer_folder_candidates(artifact_path: Path | str, task: str | int | None = None) -> list[Path]:
    """Every `ClassifierTrainer*__<plans>` folder with a plans.json inside an artifact (of `task` when named), sorted;
    the artifact itself when it is a trainer folder."""
    root = Path(artifact_path).expanduser()
    if not root.is_dir():
        raise UserInputError(
            f"Artifact folder {root} does not exist; pass the trained_models folder of a training run."
        )
    if ArtifactLayout(root).plans_file.is_file():
        candidates = [root]
    else:
        plans_files = root.glob(f"**/{ArtifactLayout.PLANS}")
        candidates = sorted(p.parent for p in plans_files if p.parent.name.partition("__")[0].startswith(TRAINER))
    if task is not None:
        candidates = [c for c in candidates if _task_matches(c.parent.name, task)]
    return candidates


def only_trainer_folder(candidates: list[Path], artifact_path: Path | str, task: str | int | None = None) -> Path:
    """The single trainer folder among `trainer_folder_candidates(artifact_path, task)`; refuses none or several."""
    root = Path(artifact_path).expanduser()
    if not candidates:
        what = f" for task '{task}'" if task is not None else ""
        raise UserInputError(
            f"No trained model{what} under {root}: expected .../{TRAINER}<variant>__<plans>/{ArtifactLayout.PLANS} "
            "with fold folders."
        )
    if len(candidates) > 1:
        names = sorted({c.parent.name for c in candidates})
        if len(names) > 1:
            raise UserInputError(f"The artifact {root} holds several tasks {names}; say which one with task=...")
        raise UserInputError(
            f"The artifact {root} holds several trainers/plans {[c.name for c in candidates]}; pass the one to use "
            "(its folder), or choose one with uc_find_best."
        )
    return candidates[0]


def find_trainer_folder(artifact_path: Path | str, task: str | int | None = None) -> Path:
    """The `ClassifierTrainer__<plans>` folder inside an artifact (the trained_models folder or any folder below it)."""
    return only_trainer_folder(trainer_folder_candidates(artifact_path, task), artifact_path, task)


def numbered_fold_folders(trainer_folder: Path) -> list[Path]:
    """The `fold_N` folders of a trainer folder, in fold order."""
    numbered = []
    for path in trainer_folder.iterdir():
        fold = fold_of_folder(path.name)
        if isinstance(fold, int) and path.is_dir():
            numbered.append((fold, path))
    return [path for _, path in sorted(numbered, key=lambda item: item[0])]


def find_fold_folders(trainer_folder: Path, folds: list[int | str] | None = None) -> list[Path]:
    """Fold folders holding a final checkpoint: the requested folds, else fold_0..fold_N, else `all`."""
    if folds is not None:
        folders = [trainer_folder / fold_folder_name(f) for f in folds]
        missing = [f.name for f in folders if not (f / ArtifactLayout.FINAL).is_file()]
        if missing:
            raise UserInputError(
                f"{trainer_folder} has no trained {missing} (no {ArtifactLayout.FINAL}); train them or choose other "
                "folds."
            )
        return folders
    numbered = [p for p in numbered_fold_folders(trainer_folder) if (p / ArtifactLayout.FINAL).is_file()]
    if numbered:
        return numbered
    if (trainer_folder / fold_folder_name("all") / ArtifactLayout.FINAL).is_file():
        return [trainer_folder / fold_folder_name("all")]
    raise UserInputError(
        f"{trainer_folder} holds no trained fold (no fold_N/{ArtifactLayout.FINAL}); finish training first."
    )
