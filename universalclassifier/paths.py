"""The data-root layout: raw task folders, preprocessed folders and the trained-model artifact."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from universalclassifier.errors import UserInputError

PLANS_IDENTIFIER = "UniversalClassifierPlansv1.0"
PLANS_FILENAME = f"{PLANS_IDENTIFIER}_plans_3D.json"
STAGE_FOLDER = "universal_classifier_plans_v1.0_stage0"
NETWORK = "3d_fullres"
TRAINER = "ClassifierTrainer"
REFERENCE_FOLDER = "RadiomicsReference"  # sibling of the trainer folder: the radiomics reference's cross-validation
# nnU-Net v1 tasks are TaskXXX_Name, nnU-Net v2 datasets DatasetXXX_Name; both keep their own name in every folder
_TASK_PATTERN = re.compile(r"^(?:Task|Dataset)(\d{3})_\S+$")
TASK_PREFIXES = ("Task", "Dataset")
_FOLD_PATTERN = re.compile(r"^fold_(\d+)$")


@dataclass(frozen=True)
class ArtifactLayout:
    """The file names inside a trainer folder (`<trainer>__<plans>`), spelled only here.

    ``plans.json`` beside ``fold_0`` ... ``fold_4`` (or ``all``), each holding the checkpoints and ``validation/``
    with ``predictions.json``, ``predictions.csv`` and ``summary.json``.
    """

    folder: Path

    PLANS = "plans.json"
    FINAL = "model_final_checkpoint.model"
    LATEST = "model_latest.model"
    BEST = "model_best.model"
    VALIDATION = "validation"
    PREDICTIONS_JSON = "predictions.json"
    PREDICTIONS_CSV = "predictions.csv"
    SUMMARY = "summary.json"

    @property
    def plans_file(self) -> Path:
        return self.folder / self.PLANS

    def fold_folder(self, fold: int | str) -> Path:
        return self.folder / fold_folder_name(fold)

    def validation_folder(self, fold: int | str) -> Path:
        return self.fold_folder(fold) / self.VALIDATION


def fold_folder_name(fold: int | str) -> str:
    """`fold_0` ... `fold_4`, or `all`."""
    return "all" if str(fold) == "all" else f"fold_{int(fold)}"


def fold_of_folder(name: str) -> int | str | None:
    """The fold a folder name stands for (N for `fold_N`, "all"), or None for any other name."""
    if name == "all":
        return "all"
    match = _FOLD_PATTERN.match(name)
    return int(match.group(1)) if match else None


def _raw_parents(data_root: Path) -> list[Path]:
    """Where raw task folders live: nnU-Net v1's and v2's raw folders, then DATA/raw itself."""
    return [data_root / "raw" / "nnUNet_raw_data", data_root / "raw" / "nnUNet_raw", data_root / "raw"]


def _task_parents(data_root: Path) -> list[Path]:
    """Where task folders are looked up: the raw layouts, then preprocessed (raw data may have been moved)."""
    return _raw_parents(data_root) + [data_root / "preprocessed"]


def is_nnunet_v2_folder(folder: Path) -> bool:
    """Whether a raw task folder is laid out as an nnU-Net v2 dataset (DatasetXXX_Name, or below nnUNet_raw)."""
    return (folder.name.startswith("Dataset") and _TASK_PATTERN.match(folder.name) is not None) or (
        folder.parent.name == "nnUNet_raw"
    )


def resolve_data_root(data_root: Path | str) -> Path:
    """The data root as an absolute path; refuses one that does not exist."""
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise UserInputError(f"Data root {root} does not exist; pass the folder that holds raw/.")
    return root


def task_name_from_id(data_root: Path, task: str | int) -> str:
    """Resolve `1`, `"1"`, `"001"`, `"Task001_Name"` or `"Dataset001_Name"` to the task folder name found under
    `DATA/raw` (or preprocessed). An id finds `Task001_*` (nnU-Net v1) and `Dataset001_*` (nnU-Net v2) alike."""
    text = str(task).strip()
    if _TASK_PATTERN.match(text):
        wanted = lambda name: name == text  # noqa: E731
    elif text.isdigit():
        prefixes = tuple(f"{prefix}{int(text):03d}_" for prefix in TASK_PREFIXES)
        wanted = lambda name: name.startswith(prefixes)  # noqa: E731
    else:
        raise UserInputError(
            f"Task '{task}' is neither a task id (e.g. 1) nor a task name (e.g. Task001_Name or Dataset001_Name)."
        )
    found: dict[str, Path] = {}
    for parent in _task_parents(data_root):
        if parent.is_dir():
            for p in sorted(parent.iterdir()):
                if p.is_dir() and wanted(p.name):
                    found.setdefault(p.name, p)
    if not found:
        searched = ", ".join(str(p) for p in _raw_parents(data_root))
        raise UserInputError(
            f"No task folder for '{task}' in {searched}; put the task at {_raw_parents(data_root)[0]}/TaskXXX_Name "
            f"(nnU-Net v1) or {_raw_parents(data_root)[1]}/DatasetXXX_Name (nnU-Net v2)."
        )
    if len(found) > 1:
        names = sorted(found)
        listing = ", ".join(f"{name} ({found[name]})" for name in names)
        kinds = {name.split("_", 1)[0].rstrip("0123456789") for name in names}
        both = " (an nnU-Net v1 task and an nnU-Net v2 dataset share this id)" if kinds == set(TASK_PREFIXES) else ""
        raise UserInputError(
            f"Task id '{task}' matches several folders{both}: {listing}; pass the full name instead "
            f"(e.g. -t {names[0]}), or rename or move one of them."
        )
    return next(iter(found))


@dataclass(frozen=True)
class TaskPaths:
    """Every folder of one task below a data root."""

    data_root: Path
    task_name: str

    @classmethod
    def find(cls, data_root: Path | str, task: str | int) -> "TaskPaths":
        """Locate a task under `data_root` by id or full name (TaskXXX_Name or DatasetXXX_Name)."""
        root = resolve_data_root(data_root)
        return cls(root, task_name_from_id(root, task))

    @property
    def raw(self) -> Path:
        """The raw task folder (read-only to us)."""
        for parent in _raw_parents(self.data_root):
            if (parent / self.task_name).is_dir():
                return parent / self.task_name
        return _raw_parents(self.data_root)[1 if self.task_name.startswith("Dataset") else 0] / self.task_name

    @property
    def preprocessed(self) -> Path:
        return self.data_root / "preprocessed" / self.task_name

    @property
    def plans_file(self) -> Path:
        return self.preprocessed / PLANS_FILENAME

    @property
    def stage_folder(self) -> Path:
        return self.preprocessed / STAGE_FOLDER

    @property
    def splits_file(self) -> Path:
        return self.preprocessed / "splits_final.json"

    @property
    def radiomics_features_folder(self) -> Path:
        """Where the radiomics reference caches its per-case feature table."""
        return self.preprocessed / "radiomics"

    def trainer_folder(self, plans_identifier: str = PLANS_IDENTIFIER, trainer: str = TRAINER) -> Path:
        """Where trained folds of this task live: the artifact's fixed folder chain (`<trainer>__<plans>`)."""
        return (
            self.data_root / "trained_models" / "nnUNet" / NETWORK / self.task_name / f"{trainer}__{plans_identifier}"
        )

    def reference_folder(self, plans_identifier: str = PLANS_IDENTIFIER) -> Path:
        """The radiomics reference's folds, next to the deep model's trainer folder (never a model for predict())."""
        return self.trainer_folder(plans_identifier).parent / REFERENCE_FOLDER
