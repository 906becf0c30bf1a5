"""The dataset.json model: modalities, classification heads, ROI labels and training cases."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from universalclassifier.dataset.image_io import split_extension
from universalclassifier.errors import TaskValidationError
from universalclassifier.plans import ClassificationLabel  # defined there: plans.json stores the heads too

REQUIRED_KEYS = ("modality", "classification_labels", "training")
# Head names, modality names and case ids become parts of file names (CASE.npy, roc_<head>.png, ...), so they are
# limited to characters that are safe in a file name on every platform and can never form a path.
SAFE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SAFE_NAME_RULE = (
    "1 to 100 characters from A-Z, a-z, 0-9, '_', '-' and '.', starting with a letter or digit"
)
# Modality names are only shown (logs, reports, radiomics columns), never used in a path: any printable text will do.
MODALITY_NAME_RULE = "1 to 100 printable characters without '/' or '\\'"
# ROI label maps are stored as int16 and every label costs one full-volume resampling per case; 256 labels is all
# an 8-bit label map holds (TotalSegmentator, one of the largest label sets in use, has 117).
MAX_ROI_LABELS = 256


@dataclass(frozen=True)
class TrainingEntry:
    """One `training` entry of dataset.json."""

    case_id: str
    image: str
    label: str | None
    targets: dict[str, int]


@dataclass
class DatasetDescription:
    """What dataset.json says about a task."""

    name: str
    modalities: tuple[str, ...]
    classification_labels: tuple[ClassificationLabel, ...]
    roi_labels: dict[int, str] | None
    training: list[TrainingEntry]
    raw: dict = field(repr=False)

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)


def is_safe_name(name: object) -> bool:
    """Whether `name` is a string that may be used as a file-name component (see SAFE_NAME_RULE)."""
    return isinstance(name, str) and SAFE_NAME_PATTERN.fullmatch(name) is not None


def is_modality_name(name: object) -> bool:
    """Whether `name` is a usable modality name (see MODALITY_NAME_RULE)."""
    return (
        isinstance(name, str) and 0 < len(name) <= 100 and name.isprintable() and not any(c in name for c in "/\\")
    )


def _is_inside_task(path_text: str) -> bool:
    """Whether a dataset.json path is relative and stays inside the task folder (no '..', not absolute)."""
    path = PurePath(path_text)
    return bool(path_text.strip()) and not path.is_absolute() and not path.drive and ".." not in path.parts


def _consecutive_int_keys(mapping: object, what: str, minimum: int, problems: list[str]) -> list | None:
    """Values of a {"0": ..., "1": ...} map in key order, or None after recording a problem."""
    if not isinstance(mapping, dict) or len(mapping) < minimum:
        problems.append(f"{what} must be an object with at least {minimum} entries like {{\"0\": ..., \"1\": ...}}.")
        return None
    try:
        by_index = {int(k): v for k, v in mapping.items()}
    except (TypeError, ValueError):
        problems.append(f"{what} has non-integer keys {sorted(mapping)}; use \"0\", \"1\", ... as keys.")
        return None
    if sorted(by_index) != list(range(len(mapping))):
        problems.append(
            f"{what} keys {sorted(mapping, key=int)} are not consecutive from 0; renumber them as "
            f"{[str(i) for i in range(len(mapping))]}."
        )
        return None
    return [by_index[i] for i in range(len(mapping))]


def _parse_heads(raw: object, problems: list[str]) -> list[ClassificationLabel]:
    if not isinstance(raw, list) or not raw:
        problems.append("'classification_labels' must be a non-empty list of {name, ordinal, values}.")
        return []
    heads: list[ClassificationLabel] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item.get("name"):
            problems.append(f"classification_labels[{i}] needs a non-empty string 'name'.")
            continue
        name = item["name"]
        if not is_safe_name(name):
            problems.append(
                f"classification label name {name!r} is not allowed: names become file names, so use {SAFE_NAME_RULE}."
            )
            continue
        if not isinstance(item.get("ordinal", False), bool):
            problems.append(
                f"classification label '{name}': 'ordinal' is {item['ordinal']!r}; use true or false (JSON booleans)."
            )
            continue
        values = _consecutive_int_keys(item.get("values"), f"classification label '{name}' 'values'", 2, problems)
        if values is None:
            continue
        if any(h.name == name for h in heads):
            problems.append(f"classification label name '{name}' appears twice; names must be unique.")
            continue
        ordinal = item.get("ordinal", False)
        heads.append(ClassificationLabel(name=name, ordinal=ordinal, values=tuple(str(v) for v in values)))
    return heads


def _parse_entry(
    index: int, item: object, heads: list[ClassificationLabel], problems: list[str]
) -> TrainingEntry | None:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str):
        problems.append(f"training[{index}] needs an 'image' path such as \"./imagesTr/case_0001.nii.gz\".")
        return None
    if not _is_inside_task(item["image"]):
        problems.append(
            f"training[{index}]: 'image' {item['image']!r} must be a relative path inside the task folder such as "
            "\"./imagesTr/case_0001.nii.gz\" (no absolute path, no '..')."
        )
        return None
    case_id = split_extension(item["image"])[0]
    if not is_safe_name(case_id):
        problems.append(
            f"training[{index}]: case id {case_id!r} (the file name in 'image' {item['image']!r}) is not allowed: case "
            f"ids become file names, so use {SAFE_NAME_RULE}; rename the files and the entry."
        )
        return None
    targets: dict[str, int] = {}
    for head in heads:
        if head.name not in item:
            problems.append(
                f"case {case_id}: no value for classification label '{head.name}'; add \"{head.name}\": <value> "
                f"to its training entry (one of {list(range(head.num_values))})."
            )
            continue
        value = item[head.name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < head.num_values:
            problems.append(
                f"case {case_id}: '{head.name}' = {value!r} is not one of the label's values "
                f"{list(range(head.num_values))}; use an integer key of its 'values'."
            )
            continue
        targets[head.name] = value
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or not _is_inside_task(label)):
        problems.append(
            f"case {case_id}: 'label' {label!r} must be a relative path inside the task folder such as "
            f"\"./labelsTr/{case_id}.nii.gz\" (no absolute path, no '..')."
        )
        label = None
    return TrainingEntry(case_id=case_id, image=item["image"], label=label, targets=targets)


def read_dataset_json(path: Path) -> tuple[DatasetDescription, list[str]]:
    """Parse a dataset.json; returns the description and the problems found in it.

    Raises at once only when the file cannot be understood at all (missing, invalid JSON, required keys absent).
    """
    task_folder = str(path.parent)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise TaskValidationError(
            task_folder, [f"{path} does not exist; every task folder needs a dataset.json."]
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TaskValidationError(task_folder, [f"{path} is not valid JSON ({exc}); fix its syntax."]) from exc
    except OSError as exc:
        raise TaskValidationError(task_folder, [f"{path} cannot be read ({exc}); make it a readable file."]) from exc
    if not isinstance(raw, dict):
        raise TaskValidationError(task_folder, [f"{path} must hold a JSON object."])
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise TaskValidationError(
            task_folder, [f"{path.name} is missing the key(s) {missing}; add them (see README, 'dataset.json')."]
        )
    problems: list[str] = []
    modalities = _consecutive_int_keys(raw["modality"], "'modality'", 1, problems) or []
    unsafe = [name for name in modalities if not is_modality_name(name)]
    if unsafe:
        problems.append(f"'modality' names {unsafe} are not allowed: use {MODALITY_NAME_RULE} (e.g. \"CT\", \"T2\").")
    heads = _parse_heads(raw["classification_labels"], problems)
    roi_labels = None
    if raw.get("labels") is not None:
        names = _consecutive_int_keys(raw["labels"], "'labels' (ROI map)", 2, problems)
        if names is not None and len(names) > MAX_ROI_LABELS:
            problems.append(
                f"'labels' (ROI map) has {len(names)} labels, more than MAX_ROI_LABELS = {MAX_ROI_LABELS}; merge "
                "labels (the classifier only needs the regions that matter for the classification)."
            )
            names = None
        roi_labels = {i: str(n) for i, n in enumerate(names)} if names is not None else None
    if not isinstance(raw["training"], list) or not raw["training"]:
        problems.append("'training' must be a non-empty list of cases.")
        entries = []
    else:
        entries = [e for i, item in enumerate(raw["training"]) if (e := _parse_entry(i, item, heads, problems))]
    seen: set[str] = set()
    for entry in entries:
        if entry.case_id in seen:
            problems.append(f"case {entry.case_id} appears more than once in 'training'; keep one entry per case.")
        seen.add(entry.case_id)
    for head in heads:
        occurring = sorted({e.targets[head.name] for e in entries if head.name in e.targets})
        if entries and len(occurring) < 2:
            problems.append(
                f"classification label '{head.name}': only value(s) {occurring} occur in training; a head needs at "
                "least two different values among the training cases to be trained."
            )
    description = DatasetDescription(
        name=str(raw.get("name", path.parent.name)),
        modalities=tuple(modalities),
        classification_labels=tuple(heads),
        roi_labels=roi_labels,
        training=entries,
        raw=raw,
    )
    return description, problems
