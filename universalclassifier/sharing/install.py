"""uc_install_model: put an exported model zip into a data root's `trained_models` layout, so that
`uc_predict DATA -t ID` (and predict() on DATA/trained_models) finds it.

The zip is extracted into a staging folder `DATA/.uc_install-<random>` (beside `trained_models`, where no artifact
search looks, and on the same file system) with every member checked (see `sharing/safe_zip.py`), its plans are read
(format and fields checked), and only then is its trainer folder moved into place with one rename. An existing
trainer folder with exactly the zip's files is left as it is; a different one is kept unless `force`, which replaces
it.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path, PurePosixPath

from universalclassifier.artifact import load_plans
from universalclassifier.errors import UserInputError
from universalclassifier.sharing.manifest import differing_files
from universalclassifier.sharing.safe_zip import DEFAULT_LIMITS, ZipLimits, extract_model_zip

logger = logging.getLogger(__name__)

_LISTED = 5


def _warn_same_task_id(target: Path) -> None:
    """Warn when another task of the same id is installed beside the new one: `-t ID` then needs the full name."""
    task_folder = target.parent
    prefix = task_folder.name.split("_", 1)[0]
    siblings = task_folder.parent.iterdir()
    others = sorted(p.name for p in siblings if p.name.startswith(prefix + "_") and p != task_folder)
    if others:
        logger.warning(
            "%s holds %s with the same task id as %s; name the task in full (-t %s) when predicting.",
            task_folder.parent, ", ".join(others), task_folder.name, task_folder.name,
        )


def install_model(
    zip_path: Path | str, data_root: Path | str, force: bool = False, limits: ZipLimits = DEFAULT_LIMITS
) -> Path:
    """Install the model zip `zip_path` (written by uc_export) into `data_root`/trained_models; returns the installed
    trainer folder. `data_root` is created if it does not exist.

    Refused with a UserInputError naming the zip (and the member): anything `extract_model_zip` refuses, plans this
    version cannot read, and (without `force`) an existing trainer folder of the same task and trainer whose files
    differ from the zip's.
    """
    zip_path = Path(zip_path).expanduser()
    trained_models = Path(data_root).expanduser().resolve() / "trained_models"
    trained_models.mkdir(parents=True, exist_ok=True)
    staging = trained_models.parent / f".uc_install-{uuid.uuid4().hex}"
    try:
        manifest = extract_model_zip(zip_path, staging / "extracted", limits)
        new_folder = staging / "extracted" / manifest.trainer_folder
        plans = load_plans(new_folder)
        if plans.task_name != manifest.task_name:
            raise UserInputError(
                f"{zip_path}: its plans are of task {plans.task_name}, its folder chain names {manifest.task_name}; "
                "the zip was assembled by hand. Export the model again with uc_export."
            )
        target = trained_models / manifest.trainer_folder
        if target.exists() or target.is_symlink():
            below = PurePosixPath(manifest.trainer_folder)
            expected = {PurePosixPath(e.path).relative_to(below).as_posix(): e for e in manifest.files}
            is_folder = target.is_dir() and not target.is_symlink()
            differing = differing_files(target, expected) if is_folder else [target.name]
            if not differing:
                logger.info("%s already holds exactly this model; nothing to install.", target)
                return target
            if not force:
                listed = ", ".join(differing[:_LISTED]) + (", ..." if len(differing) > _LISTED else "")
                raise UserInputError(
                    f"{target} already holds a different model ({len(differing)} file(s) differ from {zip_path}: "
                    f"{listed}); pass --force to replace it, or install into another data root."
                )
            target.rename(staging / "replaced")  # removed with the staging folder
            new_folder.rename(target)
            logger.warning("Replaced the model in %s (--force).", target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            new_folder.rename(target)
        _warn_same_task_id(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "Installed %s into %s (%d files). Predict with: uc_predict %s -i IN -o OUT -t %s",
        zip_path, target, len(manifest.files), trained_models.parent, plans.task_name,
    )
    return target
