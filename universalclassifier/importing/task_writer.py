"""The shared writer of `uc_import`: imported cases in, a validated raw task folder out, or nothing at all.

Every source reader gives an `ImportedSource`: its cases (images per channel, an optional ROI, one value per head,
optional covariates and patient), the cases it skipped and why, and the heads. `write_task` reads each case's
volumes, skips the cases that cannot be used (unreadable, not 3D, channels on different grids, an ROI that is not
an integer label map on the image grid, no known value), writes the others as `.nii.gz` with `dataset.json` and
`import_report.json` into a temporary sibling of the task folder, validates it with `validate_task` and only then
renames it into place. A failure at any point removes the temporary folder: the data root never holds half a task.

A source may also bring labelled test cases, written to `imagesTs/` (and `labelsTs/` when the training cases have
ROIs) and listed with their values as dataset.json `test` entries, where `uc_evaluate --use_dataset_test` reads them;
and an official split, written as SPLITS_FILENAME: one fold in the form of `splits_final.json`, which a user copies
to `DATA/preprocessed/TaskXXX_NAME/splits_final.json` to train on it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from universalclassifier.covariates import Covariate, CovariateValue
from universalclassifier.dataset.dataset_json import MAX_ROI_LABELS, MODALITY_NAME_RULE, is_modality_name, name_problem
from universalclassifier.dataset.image_io import Geometry, compare_geometry, grid_problems, write_image
from universalclassifier.dataset.validation import validate_task
from universalclassifier.errors import TaskValidationError, UserInputError
from universalclassifier.importing.volumes import Volume, compact_image
from universalclassifier.names import SAFE_NAME_RULE, is_safe_name
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

REPORT_FILENAME = "import_report.json"
# The source's own train/val split as one fold in the form of preprocessed/TaskXXX/splits_final.json.
SPLITS_FILENAME = "splits_official.json"
SPLIT_PARTS = ("train", "val")
IMAGE_EXTENSION = ".nii.gz"
COVARIATE_TYPES = ("numeric", "categorical")
# Where `-t ID` looks a task up (see paths.py): a task id used in any of these folders is taken.
_TASK_PARENTS = (("raw", "nnUNet_raw_data"), ("raw", "nnUNet_raw"), ("raw",), ("preprocessed",))
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")

Target = int | float | None


@dataclass(frozen=True)
class SkippedCase:
    """A case of the source that was not imported: `reason` is a short category, `detail` says what was found."""

    case_id: str
    reason: str
    detail: str

    def to_dict(self) -> dict:
        return {"case": self.case_id, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class ImportedCase:
    """One case of a source: one volume per channel (in modality order), its ROI, head values (None: unknown),
    covariates and patient. `case_id` is the source's id; the writer makes it safe for a file name."""

    case_id: str
    images: tuple[Volume, ...]
    targets: dict[str, Target]
    roi: Volume | None = None
    covariates: dict[str, CovariateValue] = field(default_factory=dict)
    patient_id: str | None = None


@dataclass
class ImportedSource:
    """What a source reader found: the cases to import, those it skipped, the heads and covariates they use."""

    kind: str
    paths: tuple[Path, ...]
    heads: tuple[ClassificationLabel, ...]
    num_channels: int
    cases: list[ImportedCase]
    skipped: list[SkippedCase] = field(default_factory=list)
    covariates: tuple[Covariate, ...] = ()
    default_modalities: tuple[str, ...] | None = None  # modality names the source itself gives, if any
    options: dict = field(default_factory=dict)  # the settings that shaped the import, for the report
    ignored_files: list[str] = field(default_factory=list)  # files of the source that are no case's image
    test_cases: list[ImportedCase] = field(default_factory=list)  # labelled test cases (imagesTs/, `test` entries)
    # The source's official split, {"train": [case ids], "val": [case ids]} of `cases`, written as SPLITS_FILENAME.
    official_split: dict[str, list[str]] | None = None
    # Heads whose integer codes were shifted to the values 0..K-1: {head: {original code: value}}, for the report.
    value_maps: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    """The written task folder and the content of its import_report.json."""

    folder: Path
    report: dict


class CaseSkipped(Exception):
    """A case cannot be imported: `reason` is the category, `detail` what was found (see SkippedCase)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def default_modality_names(num_channels: int) -> tuple[str, ...]:
    """`CT` for one channel, `MR0`, `MR1`, ... for several (CT is normalized with dataset-wide statistics, any
    other name per image)."""
    return ("CT",) if num_channels == 1 else tuple(f"MR{i}" for i in range(num_channels))


def safe_name(text: str, fallback: str) -> str:
    """`text` with every run of characters a file name may not hold replaced by '_' (see SAFE_NAME_RULE)."""
    name = _UNSAFE_CHARACTERS.sub("_", text).strip("_.-")[:100]
    return name if is_safe_name(name) else fallback


def task_folder(data_root: Path | str, task_id: int, name: str) -> Path:
    """The new task folder DATA/raw/nnUNet_raw_data/TaskXXX_NAME, refused when that folder or task id is taken."""
    if not 0 <= task_id <= 999:
        raise UserInputError(f"Task id {task_id} is not between 0 and 999 (task folders are named TaskXXX_Name).")
    if not is_safe_name(name):
        raise UserInputError(f"Task name {name!r} is not allowed: use {SAFE_NAME_RULE}.")
    root = Path(data_root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UserInputError(f"Data root {root} is a file; pass a folder (it is created if missing).")
    target = root / "raw" / "nnUNet_raw_data" / f"Task{task_id:03d}_{name}"
    if target.exists():
        raise UserInputError(
            f"Task folder {target} already exists; uc_import never changes an existing task: pick another id (-t) "
            "or remove that folder."
        )
    prefixes = (f"Task{task_id:03d}_", f"Dataset{task_id:03d}_")  # nnU-Net v1 tasks and v2 datasets share ids
    for parts in _TASK_PARENTS:
        parent = root.joinpath(*parts)
        taken = sorted(p.name for p in parent.iterdir() if p.name.startswith(prefixes)) if parent.is_dir() else []
        if taken:
            raise UserInputError(
                f"Task id {task_id} is already used by {parent / taken[0]}; pick another id (-t), since commands "
                "find a task by its id."
            )
    return target


def _check_declarations(source: ImportedSource, modalities: Sequence[str]) -> None:
    if len(modalities) != source.num_channels:
        raise UserInputError(
            f"{len(modalities)} modality name(s) {list(modalities)} given for {source.num_channels} image channel(s); "
            "pass one name per channel (--modalities)."
        )
    bad = [m for m in modalities if not is_modality_name(m)]
    if bad:
        raise UserInputError(f"Modality names {bad} are not allowed: use {MODALITY_NAME_RULE}.")
    if not source.heads:
        raise UserInputError("The source declares no classification head; nothing to import.")
    names = [h.name for h in source.heads]
    problems = [problem for name in names if (problem := name_problem(name)) is not None]
    if problems:
        raise UserInputError(f"Head name {problems[0]}.")
    if len(set(names)) != len(names):
        raise UserInputError(f"Head names {names} must be unique.")
    for covariate in source.covariates:
        if covariate.type not in COVARIATE_TYPES:
            raise ValueError(f"covariate {covariate.name}: type {covariate.type!r} is not one of {COVARIATE_TYPES}")


def _load(volume: Volume, what: str) -> tuple[np.ndarray, Geometry]:
    try:
        array, geometry = volume.load()
    except FileNotFoundError as exc:
        raise CaseSkipped("missing file", f"{what} {volume.source} does not exist.") from exc
    except (UserInputError, OSError, ValueError, KeyError) as exc:
        raise CaseSkipped("unreadable image", f"{what} {volume.source}: {exc}") from exc
    array = np.asarray(array)
    if array.ndim != 3 or tuple(array.shape) != tuple(geometry.size):
        raise CaseSkipped("not 3D", f"{what} {volume.source} has shape {list(array.shape)}; expected a 3D volume.")
    problems = grid_problems(geometry)
    if problems:
        raise CaseSkipped("unusable grid", f"{what} {volume.source} {'; '.join(problems)}.")
    return array, geometry


def _roi_array(array: np.ndarray, source: str) -> np.ndarray:
    """An ROI as a uint8 label map, or a skip when it is not one (non-integer, negative, too many labels)."""
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    values = np.unique(array)
    if array.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise CaseSkipped("bad ROI", f"ROI {source} holds NaN or inf; save it as an integer label map.")
    if np.any(values != np.round(values)) or (values.size and (values.min() < 0 or values.max() >= MAX_ROI_LABELS)):
        shown = values[(values != np.round(values)) | (values < 0) | (values >= MAX_ROI_LABELS)][:5].tolist()
        raise CaseSkipped(
            "bad ROI",
            f"ROI {source} holds values {shown}; an ROI is an integer label map with labels 0..{MAX_ROI_LABELS - 1}.",
        )
    return array.astype(np.uint8)


def _read_case(case: ImportedCase, num_channels: int) -> tuple[list[np.ndarray], Geometry, np.ndarray | None]:
    """The case's image arrays, their common grid and its ROI label map; raises CaseSkipped when it cannot be used."""
    if len(case.images) != num_channels:
        raise CaseSkipped(
            "missing modality", f"the case has {len(case.images)} image channel(s); the task has {num_channels}."
        )
    images: list[np.ndarray] = []
    reference: Geometry | None = None
    for index, volume in enumerate(case.images):
        array, geometry = _load(volume, f"image channel {index}")
        if reference is None:
            reference = geometry
        else:
            differences = compare_geometry(reference, geometry, volume.source)
            if differences:
                raise CaseSkipped("grid mismatch", f"{'; '.join(differences)} ({case.images[0].source}).")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise CaseSkipped("unreadable image", f"image {volume.source} holds NaN or inf values.")
        images.append(compact_image(array))
    assert reference is not None  # num_channels >= 1
    roi = None
    if case.roi is not None:
        array, geometry = _load(case.roi, "ROI")
        differences = compare_geometry(reference, geometry, f"ROI {case.roi.source}")
        if differences:
            raise CaseSkipped("grid mismatch", f"{'; '.join(differences)} ({case.images[0].source}).")
        roi = _roi_array(array, case.roi.source)
    return images, reference, roi


def _check_targets(case: ImportedCase, heads: Sequence[ClassificationLabel]) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for head in heads:
        value = case.targets.get(head.name)
        if value is not None and not head.is_regression:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < head.num_values:
                raise ValueError(f"case {case.case_id}: {head.name} = {value!r} is not one of {head.values}")
            value = int(value)
        elif value is not None:
            value = float(value)
        targets[head.name] = value
    if all(v is None for v in targets.values()):
        raise CaseSkipped("no known value", f"no value for any head {[h.name for h in heads]}.")
    return targets


def _head_json(head: ClassificationLabel) -> dict:
    if head.is_regression:
        return {"name": head.name, "type": "regression"}
    return {"name": head.name, "type": head.type, "values": {str(i): v for i, v in enumerate(head.values)}}


def _roi_names(max_label: int) -> dict[str, str]:
    if max_label <= 1:
        return {"0": "background", "1": "roi"}
    return {"0": "background", **{str(i): f"roi_{i}" for i in range(1, max_label + 1)}}


def _covariate_json(declarations: Sequence[Covariate], entries: list[dict]) -> list[dict]:
    result = []
    for covariate in declarations:
        item: dict = {"name": covariate.name, "type": covariate.type}
        if covariate.type == "categorical":
            seen = {e["covariates"].get(covariate.name) for e in entries} - {None}
            item["values"] = sorted(str(v) for v in seen)
        result.append(item)
    return result


def _describe_source(source: ImportedSource) -> str:
    return f"{source.kind} {' '.join(str(p) for p in source.paths)}"


def write_task(
    target: Path, source: ImportedSource, modalities: Sequence[str], show_progress: bool = True
) -> ImportResult:
    """Write `source` as the raw task folder `target` (see the module docstring); returns the folder and report.

    Raises UserInputError, with nothing written, when no case can be imported or the result fails validation.
    """
    _check_declarations(source, modalities)
    target = Path(target)
    if target.exists():
        raise UserInputError(f"Task folder {target} already exists; uc_import never changes an existing task.")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    # The task is written as .TaskXXX_NAME.importing-*/TaskXXX_NAME (hidden from task look-ups, validated under its
    # own name) and renamed into place, within one folder and so one file system, only when complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=parent))
    try:
        temporary = staging / target.name
        temporary.mkdir()
        report = _write_into(temporary, target.name, source, modalities, show_progress)
        try:
            validate_task(temporary, show_progress=show_progress)
        except TaskValidationError as exc:
            problems = "\n".join(f"  - {p}" for p in exc.problems)
            raise UserInputError(
                f"The imported task {target.name} would not be a valid task, so nothing was written; fix the source "
                f"(or the import options) and run again:\n{problems}"
            ) from exc
        (temporary / REPORT_FILENAME).write_text(json.dumps(report, indent=2) + "\n")
        if target.exists():
            raise UserInputError(f"Task folder {target} appeared while importing; nothing was written.")
        os.rename(temporary, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s", format_summary(report, target))
    return ImportResult(target, report)


@dataclass
class _Written:
    """The cases of one set (training or test) that were written: their dataset.json entries and report items."""

    entries: list[dict] = field(default_factory=list)
    imported: list[dict] = field(default_factory=list)
    max_label: int = 0


def _write_cases(
    folder: Path,
    cases: Sequence[ImportedCase],
    source: ImportedSource,
    test: bool,
    ids: dict[str, str],
    used: set[str],
    skipped: list[SkippedCase],
    show_progress: bool,
) -> _Written:
    """Write the usable `cases` into imagesTr/ and labelsTr/ (imagesTs/ and labelsTs/ for test cases); unusable
    ones are added to `skipped`. `ids` maps each file-name-safe id to the one source id that may use it, `used` holds
    the ids written so far (both sets share one namespace)."""
    images_dir, labels_dir = ("imagesTs", "labelsTs") if test else ("imagesTr", "labelsTr")
    for case in cases:
        ids.setdefault(safe_name(case.case_id, "case"), case.case_id)
    written = _Written()
    description = "Importing test cases" if test else "Importing"
    for case in tqdm(cases, desc=description, unit="case", disable=not show_progress):
        case_id = safe_name(case.case_id, "case")
        try:
            if case_id in used or ids[case_id] != case.case_id:
                raise CaseSkipped(
                    "duplicate case id",
                    f"its file-name-safe id {case_id!r} is that of case {ids[case_id]!r} too; rename one of them.",
                )
            targets = _check_targets(case, source.heads)
            images, geometry, roi = _read_case(case, source.num_channels)
        except CaseSkipped as skip:
            skipped.append(SkippedCase(case.case_id, skip.reason, skip.detail))
            continue
        used.add(case_id)
        (folder / images_dir).mkdir(exist_ok=True)
        entry: dict = {"image": f"./{images_dir}/{case_id}{IMAGE_EXTENSION}"}
        for index, array in enumerate(images):
            write_image(array, geometry, folder / images_dir / f"{case_id}_{index:04d}{IMAGE_EXTENSION}")
        if roi is not None:
            (folder / labels_dir).mkdir(exist_ok=True)
            write_image(roi, geometry, folder / labels_dir / f"{case_id}{IMAGE_EXTENSION}")
            entry["label"] = f"./{labels_dir}/{case_id}{IMAGE_EXTENSION}"
            written.max_label = max(written.max_label, int(roi.max(initial=0)))
        if case.patient_id is not None:
            entry["patient_id"] = case.patient_id
        entry.update(targets)
        if source.covariates:
            entry["covariates"] = {c.name: case.covariates.get(c.name) for c in source.covariates}
        written.entries.append(entry)
        written.imported.append({"case": case_id, "source_id": case.case_id})
    return written


def _test_cases(source: ImportedSource, with_roi: bool, skipped: list[SkippedCase]) -> list[ImportedCase]:
    """The test cases to write: with the training cases' ROIs they need one (else they are skipped), without them
    their ROIs are dropped (a model trained without ROIs takes none)."""
    if not with_roi:
        return [replace(c, roi=None) for c in source.test_cases]
    skipped += [
        SkippedCase(c.case_id, "missing ROI", "a test case needs an ROI when the training cases have them.")
        for c in source.test_cases
        if c.roi is None
    ]
    return [c for c in source.test_cases if c.roi is not None]


def _official_split(source: ImportedSource, imported: list[dict]) -> list[dict] | None:
    """The source's official split as one fold of written case ids (cases that were skipped left out), or None."""
    if source.official_split is None:
        return None
    written = {item["source_id"]: item["case"] for item in imported}
    fold = {part: [written[c] for c in source.official_split.get(part, ()) if c in written] for part in SPLIT_PARTS}
    empty = [part for part, ids in fold.items() if not ids]
    if empty:
        logger.warning("The official split has no %s case left; %s is not written.", empty[0], SPLITS_FILENAME)
        return None
    return [fold]


def _write_into(
    folder: Path, task_name: str, source: ImportedSource, modalities: Sequence[str], show_progress: bool
) -> dict:
    """Write the images, ROIs and dataset.json of every usable case into `folder`; returns the report."""
    (folder / "imagesTr").mkdir()
    skipped = list(source.skipped)
    with_roi = [c for c in source.cases if c.roi is not None]
    cases = source.cases
    if with_roi and len(with_roi) < len(cases):
        cases = with_roi
        skipped += [
            SkippedCase(c.case_id, "missing ROI", "other cases have an ROI, and ROIs are all or nothing.")
            for c in source.cases
            if c.roi is None
        ]
    if with_roi:
        (folder / "labelsTr").mkdir()
    ids: dict[str, str] = {}
    used: set[str] = set()
    training = _write_cases(folder, cases, source, False, ids, used, skipped, show_progress)
    entries, imported, max_label = training.entries, training.imported, training.max_label
    if not entries:
        reasons = "\n".join(f"  - {s.case_id}: {s.reason}: {s.detail}" for s in skipped[:20])
        raise UserInputError(
            f"No case of {_describe_source(source)} could be imported, so nothing was written:\n{reasons}"
        )
    dataset: dict = {
        "name": task_name.split("_", 1)[1],
        "description": f"Imported by uc_import from {_describe_source(source)}",
        "modality": {str(i): m for i, m in enumerate(modalities)},
        "classification_labels": [_head_json(h) for h in source.heads],
    }
    if with_roi:
        dataset["labels"] = _roi_names(max_label)
    if source.covariates:
        dataset["covariates"] = _covariate_json(source.covariates, entries)
    dataset.update(numTraining=len(entries), training=entries)
    test = _write_cases(
        folder, _test_cases(source, bool(with_roi), skipped), source, True, ids, used, skipped, show_progress
    )
    if test.entries:
        dataset.update(numTest=len(test.entries), test=test.entries)
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    split = _official_split(source, imported)
    if split is not None:
        (folder / SPLITS_FILENAME).write_text(json.dumps(split, indent=2) + "\n")
    return {
        "task": task_name,
        "source": {
            "kind": source.kind,
            "paths": [str(p) for p in source.paths],
            "options": source.options,
        },
        "modalities": list(modalities),
        "heads": dataset["classification_labels"],
        "rois": bool(with_roi),
        "value_maps": source.value_maps,
        "num_imported": len(imported),
        "num_test_imported": len(test.imported),
        "num_skipped": len(skipped),
        "imported": imported,
        "test_imported": test.imported,
        "official_split": None
        if split is None
        else {"file": SPLITS_FILENAME, "num_train": len(split[0]["train"]), "num_val": len(split[0]["val"])},
        "skipped": [s.to_dict() for s in skipped],
        "ignored_files": list(source.ignored_files),
    }


def format_summary(report: dict, folder: Path) -> str:
    """A human summary of an import: what was imported from where, and each reason cases were skipped for."""
    source = report["source"]
    lines = [
        f"Imported {report['num_imported']} case(s) from {source['kind']} {' '.join(source['paths'])} into {folder}: "
        f"modalities {report['modalities']}, heads {[h['name'] for h in report['heads']]}, "
        f"ROIs: {'yes' if report['rois'] else 'no'}."
    ]
    if report.get("num_test_imported"):
        lines.append(f"Test cases: {report['num_test_imported']} in imagesTs/, their values in dataset.json 'test'.")
    for head, codes in (report.get("value_maps") or {}).items():
        names = list(codes)
        lines.append(f"Head {head}: the codes {names[0]}..{names[-1]} became the values 0..{len(names) - 1}.")
    split = report.get("official_split")
    if split:
        lines.append(
            f"Official split: {split['num_train']} train / {split['num_val']} val cases in {folder / split['file']}; "
            f"copy it to DATA/preprocessed/{folder.name}/splits_final.json to train it as fold 0."
        )
    by_reason: dict[str, list[dict]] = defaultdict(list)
    for item in report["skipped"]:
        by_reason[item["reason"]].append(item)
    if by_reason:
        lines.append(f"Skipped {report['num_skipped']} case(s):")
        for reason, items in sorted(by_reason.items()):
            lines.append(f"  {reason} ({len(items)}):")
            lines += [f"    - {item['case']}: {item['detail']}" for item in items[:10]]
            if len(items) > 10:
                lines.append(f"    ... and {len(items) - 10} more (see {REPORT_FILENAME})")
    else:
        lines.append("No case was skipped.")
    if report["ignored_files"]:
        lines.append(
            f"Ignored {len(report['ignored_files'])} file(s) that are no case's image (see {REPORT_FILENAME})."
        )
    lines.append(f"Report: {folder / REPORT_FILENAME}")
    return "\n".join(lines)
