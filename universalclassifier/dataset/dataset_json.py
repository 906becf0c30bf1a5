"""The dataset.json model: modalities, classification heads, ROI labels and training cases."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

from universalclassifier.checks import MAX_ABS_NUMBER, finite_number, shown_value
from universalclassifier.covariates import COVARIATE_TYPES, Covariate, CovariateValue, check_case_covariates
from universalclassifier.dataset.image_io import IMAGE_EXTENSIONS, split_extension
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.names import NAME_RULE, file_name_clashes, is_name
from universalclassifier.paths import is_nnunet_v2_folder
from universalclassifier.plans import (  # defined there: plans.json stores the heads too
    HEAD_TYPES,
    MAX_HEAD_VALUES,
    ClassificationLabel,
)

REQUIRED_KEYS = ("modality", "classification_labels", "training")
# An nnU-Net v2 dataset.json names its channels in "channel_names" (v1: "modality"), maps ROI label names to values
# ("labels": {"background": 0, ...}; v1: values to names) and gives the image files' "file_ending".
REQUIRED_KEYS_V2 = ("channel_names", "classification_labels", "training")
V2_LABELS_EXAMPLE = '{"background": 0, "organ": 1}'
# Head names, covariate names and case ids are the user's words (see universalclassifier/names.py): any name that
# follows NAME_RULE is accepted, and the files made from one (CASE.npy, roc_<head>.png, ...) use its file_name_for.
# A head or covariate may not take a name the pipeline uses itself: the keys of a dataset.json training entry that
# are not heads, and "case_id", the case column of every CSV and per-case JSON it reads and writes.
RESERVED_ENTRY_KEYS = ("image", "label", "patient_id", "group", "covariates")
RESERVED_NAMES = (*RESERVED_ENTRY_KEYS, "case_id")
# Modality names are only shown (logs, reports, radiomics columns), never used in a path: any printable text will do.
MODALITY_NAME_RULE = "1 to 100 printable characters without '/' or '\\'"
# ROI label maps are stored as int16 and every label costs one full-volume resampling per case; 256 labels is all
# an 8-bit label map holds (TotalSegmentator, one of the largest label sets in use, has 117).
MAX_ROI_LABELS = 256
# A regression head is standardized with its training cases' mean and SD and reported with R² and correlations: fewer
# known values than this say nothing.
MIN_REGRESSION_VALUES = 5


@dataclass(frozen=True)
class TrainingEntry:
    """One `training` entry of dataset.json; a head's target is None where the case has no value for it."""

    case_id: str
    image: str
    label: str | None
    targets: dict[str, int | float | None]
    group: str | None = None  # the patient (or other unit) the case belongs to: one group never spans folds
    covariates: dict[str, CovariateValue] = field(default_factory=dict)


@dataclass
class DatasetDescription:
    """What dataset.json says about a task."""

    name: str
    modalities: tuple[str, ...]
    classification_labels: tuple[ClassificationLabel, ...]
    roi_labels: dict[int, str] | None
    training: list[TrainingEntry]
    raw: dict = field(repr=False)  # dataset.json in the nnU-Net v1 form ('modality', 'labels' value -> name)
    covariates: tuple[Covariate, ...] = ()  # with the training cases' statistics
    nnunet_version: int = 1  # the form dataset.json was written in: 1 ('modality') or 2 ('channel_names')

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)


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


def _head_type(item: dict, name: str, problems: list[str]) -> str | None:
    """The head's type: "type" if given, else "ordinal" for `"ordinal": true`, else "nominal"."""
    ordinal = item.get("ordinal", False)
    if not isinstance(ordinal, bool):
        problems.append(f"classification label '{name}': 'ordinal' is {ordinal!r}; use true or false (JSON booleans).")
        return None
    kind = item.get("type", "ordinal" if ordinal else "nominal")
    if kind not in HEAD_TYPES:
        problems.append(f"classification label '{name}': 'type' is {kind!r}; use one of {list(HEAD_TYPES)}.")
        return None
    if ordinal and kind != "ordinal":
        problems.append(f"classification label '{name}': 'ordinal' is true but 'type' is '{kind}'; drop one of them.")
        return None
    return kind


def _parse_heads(raw: object, problems: list[str]) -> list[ClassificationLabel]:
    if not isinstance(raw, list) or not raw:
        problems.append("'classification_labels' must be a non-empty list of {name, type, values}.")
        return []
    heads: list[ClassificationLabel] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item.get("name"):
            problems.append(f"classification_labels[{i}] needs a non-empty string 'name'.")
            continue
        name = item["name"]
        if not _check_name(name, f"classification_labels[{i}]: name", problems):
            continue
        kind = _head_type(item, name, problems)
        if kind is None:
            continue
        if kind == "regression":
            if item.get("values"):
                problems.append(
                    f"classification label '{name}' is a regression head and has 'values'; a regression target is a "
                    "number, so remove 'values' (or make the head nominal or ordinal)."
                )
                continue
            values: list | None = []
        else:
            values = _consecutive_int_keys(item.get("values"), f"classification label '{name}' 'values'", 2, problems)
        if values is None:
            continue
        if len(values) > MAX_HEAD_VALUES:
            problems.append(
                f"classification label '{name}' has {len(values)} values, more than MAX_HEAD_VALUES = "
                f"{MAX_HEAD_VALUES}; merge values (a head has one network output per value), or make it a regression "
                "head if its values are measurements."
            )
            continue
        if any(h.name == name for h in heads):
            problems.append(f"classification label name '{name}' appears twice; names must be unique.")
            continue
        heads.append(ClassificationLabel(name=name, type=kind, values=tuple(str(v) for v in values)))
    for first, second, form in file_name_clashes([h.name for h in heads], ignore_case=True):
        problems.append(
            f"classification labels '{first}' and '{second}' would share the file name '{form}' (in plots such as "
            f"roc_{form}.png; letter case does not tell files apart on Windows and macOS); rename one of them."
        )
    return heads


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a head or covariate (see NAME_RULE and RESERVED_NAMES), e.g. "'image' is not allowed:
    ...", or None when it can."""
    if not is_name(name):
        return f"{shown_value(name, 120)} is not allowed: use {NAME_RULE}"
    if name in RESERVED_NAMES:
        return (
            f"'{name}' is not allowed: the pipeline uses {list(RESERVED_NAMES)} for other things (keys of a training "
            "entry, the case column of CSV files); rename it"
        )
    return None


def _check_name(name: object, what: str, problems: list[str]) -> bool:
    """Whether a head or covariate name is usable (`name_problem`); records the problem if not."""
    problem = name_problem(name)
    if problem is not None:
        problems.append(f"{what} {problem}.")
    return problem is None


def _target(case_id: str, head: ClassificationLabel, value: object, problems: list[str]) -> int | float | None:
    """A case's value for a head (None: unknown), or None after recording a problem."""
    if value is None:
        return None
    if head.is_regression:
        number = finite_number(value)
        if number is not None:
            return number
        problems.append(
            f"case {case_id}: '{head.name}' = {shown_value(value)} is not a finite number of magnitude at most "
            f"{MAX_ABS_NUMBER:g}; a regression head needs a number (or null when unknown)."
        )
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < head.num_values:
        return value
    else:
        problems.append(
            f"case {case_id}: '{head.name}' = {shown_value(value)} is not one of the label's values "
            f"{list(range(head.num_values))}; use an integer key of its 'values' (or null when unknown)."
        )
    return None


def _group(case_id: str, item: dict, problems: list[str]) -> str | None:
    """The case's "patient_id" (or "group"): a non-empty string or integer, or None."""
    given = {key: item[key] for key in ("patient_id", "group") if item.get(key) is not None}
    if len(given) == 2:
        problems.append(f"case {case_id} has both 'patient_id' and 'group'; keep one of them.")
        return None
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            problems.append(f"case {case_id}: '{key}' = {value!r} must be a non-empty string or an integer.")
            return None
        return str(value)
    return None


def _parse_covariates(raw: object, problems: list[str]) -> list[Covariate]:
    """The top-level "covariates" declarations (see universalclassifier/covariates.py)."""
    if raw is None:
        return []
    example = '[{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical", "values": ["F", "M"]}]'
    if not isinstance(raw, list):
        problems.append(f"'covariates' must be a list such as {example}.")
        return []
    covariates: list[Covariate] = []
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        values = item.get("values") if isinstance(item, dict) else None
        if name is None or kind not in COVARIATE_TYPES:
            problems.append(
                f"covariates[{i}] needs a 'name' ({NAME_RULE}) and a 'type' among {list(COVARIATE_TYPES)}, e.g. "
                f"{example}."
            )
        elif not _check_name(name, f"covariates[{i}]: name", problems):
            continue
        elif kind == "categorical" and (
            not isinstance(values, list) or len(set(values)) != len(values) or len(values) < 2
            or not all(isinstance(v, str) and v for v in values)
        ):
            problems.append(f"covariate '{name}' is categorical: give its 'values' as 2 or more distinct strings.")
        elif kind == "numeric" and values is not None:
            problems.append(f"covariate '{name}' is numeric and has 'values'; remove them or make it categorical.")
        elif any(c.name == name for c in covariates):
            problems.append(f"covariate name '{name}' appears twice; names must be unique.")
        else:
            covariates.append(Covariate(name, kind, tuple(values or ())))
    return covariates


def _case_covariates(
    case_id: str, item: dict, covariates: list[Covariate], problems: list[str]
) -> dict[str, CovariateValue]:
    if not covariates and "covariates" in item:
        problems.append(f"case {case_id} has 'covariates' but the task declares none; declare them at the top level.")
        return {}
    try:
        return check_case_covariates(covariates, item.get("covariates"), f"case {case_id}")
    except UserInputError as exc:
        problems.append(str(exc))
        return {}


def _with_covariate_statistics(
    covariates: list[Covariate], entries: list[TrainingEntry], problems: list[str]
) -> tuple[Covariate, ...]:
    fitted = []
    for covariate in covariates:
        known = [v for e in entries if (v := e.covariates.get(covariate.name)) is not None]
        if entries and not known:
            problems.append(f"covariate '{covariate.name}' has no known value in any training case.")
        fitted.append(covariate.fit(known) if known else covariate)
    return tuple(fitted)


def _parse_entry(
    index: int, item: object, heads: list[ClassificationLabel], covariates: list[Covariate], problems: list[str]
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
    if not is_name(case_id):
        problems.append(
            f"training[{index}]: case id {shown_value(case_id, 120)} (the file name in 'image' "
            f"{shown_value(item['image'], 160)}) is not allowed: use {NAME_RULE}; rename the files and the entry."
        )
        return None
    targets = {head.name: _target(case_id, head, item.get(head.name), problems) for head in heads}
    if heads and all(item.get(head.name) is None for head in heads):
        problems.append(
            f"case {case_id}: no value for any classification label ({[h.name for h in heads]}); a training case "
            "needs at least one known value: add one, or remove the case from 'training'."
        )
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or not _is_inside_task(label)):
        problems.append(
            f"case {case_id}: 'label' {label!r} must be a relative path inside the task folder such as "
            f"\"./labelsTr/{case_id}.nii.gz\" (no absolute path, no '..')."
        )
        label = None
    return TrainingEntry(
        case_id=case_id,
        image=item["image"],
        label=label,
        targets=targets,
        group=_group(case_id, item, problems),
        covariates=_case_covariates(case_id, item, covariates, problems),
    )


def _check_known_values(heads: list[ClassificationLabel], entries: list[TrainingEntry], problems: list[str]) -> None:
    """Every head needs two different known values (a regression head: MIN_REGRESSION_VALUES that vary)."""
    for head in heads:
        known = [value for e in entries if (value := e.targets.get(head.name)) is not None]
        if not entries:
            continue
        if head.is_regression and (len(known) < MIN_REGRESSION_VALUES or len(set(known)) < 2):
            problems.append(
                f"regression head '{head.name}': {len(known)} training case(s) have a value"
                f"{', all equal' if known and len(set(known)) < 2 else ''}; it needs at least {MIN_REGRESSION_VALUES} "
                "known values that differ."
            )
        elif not head.is_regression and len(set(known)) < 2:
            problems.append(
                f"classification label '{head.name}': only value(s) {sorted(set(known))} occur in training; a head "
                "needs at least two different values among the training cases to be trained."
            )


def _with_regression_statistics(
    heads: list[ClassificationLabel], entries: list[TrainingEntry]
) -> tuple[ClassificationLabel, ...]:
    """The heads with each regression head's target mean and SD over its known training values."""
    result = []
    for head in heads:
        known = [float(v) for e in entries if (v := e.targets.get(head.name)) is not None]
        if head.is_regression and known:
            mean = math.fsum(known) / len(known)
            sd = math.sqrt(math.fsum((v - mean) ** 2 for v in known) / len(known))
            head = replace(head, target_mean=mean, target_sd=sd if sd > 0 else 1.0)
        result.append(head)
    return tuple(result)


def _v2_roi_labels(labels: object, problems: list[str]) -> dict[str, str] | None:
    """nnU-Net v2 "labels" (name -> value, with "background": 0) as the v1 map {"0": "background", ...}.

    Returns None after recording a problem, and an empty map for a background-only map (a task without ROIs).
    """
    if not isinstance(labels, dict) or not labels:
        problems.append(
            f"'labels' must map ROI label names to integer values with \"background\": 0 (the nnU-Net v2 form), "
            f"e.g. {V2_LABELS_EXAMPLE}."
        )
        return None
    regions = [name for name, value in labels.items() if isinstance(value, (list, tuple))]
    if regions:
        problems.append(
            f"'labels' {regions} are regions (lists of values, nnU-Net v2 region-based training); ROI labels must be "
            f"single integer values, e.g. {V2_LABELS_EXAMPLE}."
        )
        return None
    not_integer = {name: v for name, v in labels.items() if isinstance(v, bool) or not isinstance(v, int)}
    if not_integer:
        problems.append(
            f"'labels' values {not_integer} are not integers; the nnU-Net v2 form maps each ROI label name to its "
            f"integer value, e.g. {V2_LABELS_EXAMPLE}."
        )
        return None
    if labels.get("background") != 0:
        found = (
            f"maps 'background' to {labels['background']}" if "background" in labels else "has no 'background' entry"
        )
        problems.append(
            f"'labels' {found}; nnU-Net v2 labels map names to values and need \"background\": 0, e.g. "
            f"{V2_LABELS_EXAMPLE}."
        )
        return None
    by_value: dict[int, list[str]] = {}
    for name, value in labels.items():
        by_value.setdefault(value, []).append(str(name))
    shared = {value: names for value, names in by_value.items() if len(names) > 1}
    if shared:
        problems.append(f"'labels' gives one value to several names {shared}; give every ROI label its own value.")
        return None
    if sorted(by_value) != list(range(len(by_value))):
        problems.append(
            f"'labels' values {sorted(by_value)} are not consecutive from 0; renumber them as "
            f"{list(range(len(by_value)))} (and the ROI files accordingly)."
        )
        return None
    if len(by_value) == 1:
        return {}
    return {str(value): by_value[value][0] for value in sorted(by_value)}


def _v2_training(raw: object, file_ending: object, problems: list[str]) -> object:
    """The training entries with `file_ending` added to images given without an extension; records images whose
    extension differs from it."""
    if not isinstance(raw, list) or not isinstance(file_ending, str):
        return raw
    entries = []
    for index, item in enumerate(raw):
        image = item.get("image") if isinstance(item, dict) else None
        if isinstance(image, str):
            ext = split_extension(image)[1]
            if not ext:
                item = {**item, "image": image + file_ending}
            elif ext.lower() != file_ending.lower():
                problems.append(
                    f"training[{index}]: 'image' {image!r} ends in '{ext}' but 'file_ending' is '{file_ending}'; "
                    "the images of an nnU-Net v2 dataset are CASE_XXXX<file_ending>: make them agree."
                )
        entries.append(item)
    return entries


def _v1_form(raw: dict, problems: list[str]) -> tuple[dict, bool]:
    """An nnU-Net v2 dataset.json in the v1 form the rest of the pipeline reads: 'modality' from 'channel_names',
    'labels' as value -> name (left out for a background-only map), images with their file ending.

    Also returns whether 'labels' could be converted (if not, it is kept as given and a problem is recorded).
    """
    converted = {key: value for key, value in raw.items() if key != "channel_names"}
    converted["modality"] = raw["channel_names"]
    file_ending = raw.get("file_ending")
    if file_ending is not None and (not isinstance(file_ending, str) or file_ending.lower() not in IMAGE_EXTENSIONS):
        problems.append(f"'file_ending' is {file_ending!r}; use one of {list(IMAGE_EXTENSIONS)}.")
        file_ending = None
    converted["training"] = _v2_training(raw["training"], file_ending, problems)
    labels = None if raw.get("labels") is None else _v2_roi_labels(raw["labels"], problems)
    if labels == {}:
        del converted["labels"]  # background only: no ROI map
    elif labels is not None:
        converted["labels"] = labels
    return converted, raw.get("labels") is None or labels is not None


def _looks_like_v2_labels(labels: object) -> bool:
    """Whether a v1 file's 'labels' is written in the v2 form (names -> integer values)."""
    return (
        isinstance(labels, dict)
        and bool(labels)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values())
        and not all(str(k).lstrip("-").isdigit() for k in labels)
    )


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
    except (ValueError, RecursionError) as exc:  # also integers beyond Python's digit limit
        raise TaskValidationError(task_folder, [f"{path} is not valid JSON ({exc}); fix its syntax."]) from exc
    except OSError as exc:
        raise TaskValidationError(task_folder, [f"{path} cannot be read ({exc}); make it a readable file."]) from exc
    if not isinstance(raw, dict):
        raise TaskValidationError(task_folder, [f"{path} must hold a JSON object."])
    if "modality" in raw and "channel_names" in raw:
        raise TaskValidationError(
            task_folder,
            [
                f"{path.name} has both 'modality' (nnU-Net v1) and 'channel_names' (nnU-Net v2); keep one of them: "
                f"'modality' with 'labels' as value -> name, or 'channel_names' with 'labels' as name -> value "
                f"(e.g. {V2_LABELS_EXAMPLE}) and 'file_ending'."
            ],
        )
    # the keys decide the form; only a file with neither channel key is judged by its folder (DatasetXXX_Name)
    v2 = "channel_names" in raw or ("modality" not in raw and is_nnunet_v2_folder(path.parent))
    missing = [k for k in (REQUIRED_KEYS_V2 if v2 else REQUIRED_KEYS) if k not in raw]
    if missing:
        form = " (an nnU-Net v2 dataset.json)" if v2 else ""
        raise TaskValidationError(
            task_folder,
            [f"{path.name}{form} is missing the key(s) {missing}; add them (see README, 'dataset.json')."],
        )
    problems: list[str] = []
    channel_key = "channel_names" if v2 else "modality"
    labels_understood = True
    if v2:
        raw, labels_understood = _v1_form(raw, problems)
    elif _looks_like_v2_labels(raw.get("labels")):
        problems.append(
            f"'labels' maps names to values (the nnU-Net v2 form, e.g. {V2_LABELS_EXAMPLE}) but the file names its "
            "channels in 'modality' (nnU-Net v1, 'labels' as value -> name); write 'labels' as "
            "{\"0\": \"background\", \"1\": ...}, or use 'channel_names' instead of 'modality'."
        )
        raw = {**raw, "labels": {str(v): k for k, v in raw["labels"].items()}}  # one message, not two
    modalities = _consecutive_int_keys(raw["modality"], f"'{channel_key}'", 1, problems) or []
    unsafe = [name for name in modalities if not is_modality_name(name)]
    if unsafe:
        problems.append(
            f"'{channel_key}' names {unsafe} are not allowed: use {MODALITY_NAME_RULE} (e.g. \"CT\", \"T2\")."
        )
    heads = _parse_heads(raw["classification_labels"], problems)
    covariates = _parse_covariates(raw.get("covariates"), problems)
    roi_labels = None
    if raw.get("labels") is not None and labels_understood:
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
        entries = [
            e for i, item in enumerate(raw["training"]) if (e := _parse_entry(i, item, heads, covariates, problems))
        ]
    seen: set[str] = set()
    for entry in entries:
        if entry.case_id in seen:
            problems.append(f"case {entry.case_id} appears more than once in 'training'; keep one entry per case.")
        seen.add(entry.case_id)
    for first, second, form in file_name_clashes(entry.case_id for entry in entries):
        problems.append(
            f"cases '{first}' and '{second}' would share the file name '{form}' (of their preprocessed arrays "
            f"{form}.npy); rename one of them (its files and its entry)."
        )
    _check_known_values(heads, entries, problems)
    description = DatasetDescription(
        name=str(raw.get("name", path.parent.name)),
        modalities=tuple(modalities),
        classification_labels=_with_regression_statistics(heads, entries),
        roi_labels=roi_labels,
        training=entries,
        raw=raw,
        covariates=_with_covariate_statistics(covariates, entries, problems),
        nnunet_version=2 if v2 else 1,
    )
    return description, problems
