"""Which trainer folder a prediction uses when none is named: the one `uc_find_best` chose for the task, if any.

`uc_find_best` writes `best_configuration.json` into the task's trained_models folder
(`trained_models/nnUNet/3d_fullres/TaskXXX_Name/`), beside the trainer folders it compared. An artifact path that
is a trainer folder names its trainer and always wins; a path above it (trained_models, the task folder) follows
the file. A file that cannot be read, or whose chosen folder is gone (the variant was deleted since), is warned
about once per process and ignored: the lookup then behaves as without it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from universalclassifier.artifact.folders import only_trainer_folder, trainer_folder_candidates
from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import ArtifactLayout

logger = logging.getLogger(__name__)

BEST_CONFIGURATION_FILE = "best_configuration.json"
_LOGGED: set[tuple[str, str]] = set()  # (file, message) already logged in this process: predict() runs per case
_LOGGED_LOCK = threading.Lock()


def _log_once(level: int, path: Path, message: str, *args: object) -> None:
    key = (str(path), message % args)
    with _LOGGED_LOCK:
        if key in _LOGGED:
            return
        _LOGGED.add(key)
    logger.log(level, message, *args)


def chosen_trainer_name(path: Path) -> str:
    """The trainer folder name a best_configuration.json chose; a UserInputError names the file when it is not one
    that uc_find_best wrote."""
    content = read_json_file(path, "best configuration")
    chosen = content.get("chosen") if isinstance(content, dict) else None
    name = chosen.get("trainer_folder") if isinstance(chosen, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise UserInputError(
            f"{path} names no trainer folder under chosen.trainer_folder; run uc_find_best again or delete the file."
        )
    return name


def configured_trainer_folder(task_folder: Path, candidates: list[Path]) -> Path | None:
    """The trainer folder of `task_folder`'s best_configuration.json among `candidates` (the task's trainer folders),
    or None when there is no such file, or (with a warning) when it is unreadable or its choice is not there."""
    path = task_folder / BEST_CONFIGURATION_FILE
    if not path.exists():
        return None
    try:
        name = chosen_trainer_name(path)
    except UserInputError as exc:
        _log_once(logging.WARNING, path, "%s Choosing the trainer folder as if it were not there.", exc)
        return None
    chosen = task_folder / name
    if chosen not in candidates:
        _log_once(
            logging.WARNING, path,
            "%s chose %s, which is no longer a trained model there (stale: it was moved or deleted); choosing the "
            "trainer folder as if the file were not there. Run uc_find_best again to refresh it.",
            path, name,
        )
        return None
    _log_once(logging.INFO, path, "Using %s, the trainer folder that %s chose.", name, path)
    return chosen


def preferred_trainer_folder(artifact_path: Path | str, task: str | int | None = None) -> Path:
    """`find_trainer_folder`, except that an artifact path above the trainer folders of one task follows that task's
    best_configuration.json (see the module docstring)."""
    root = Path(artifact_path).expanduser()
    candidates = trainer_folder_candidates(root, task)
    task_folders = {candidate.parent for candidate in candidates}
    if len(task_folders) == 1 and not ArtifactLayout(root).plans_file.is_file():
        chosen = configured_trainer_folder(task_folders.pop(), candidates)
        if chosen is not None:
            return chosen
    return only_trainer_folder(candidates, root, task)
