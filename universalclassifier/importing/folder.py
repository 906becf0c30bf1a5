"""`--from folder`: a flat folder of images plus a labels CSV (`labels_csv`), ROIs optionally in a second folder.

Images are the files SimpleITK reads here (.nii.gz, .nii, .mha, .mhd, .nrrd) named `CASE.<ext>` (one modality) or
`CASE_XXXX.<ext>` (modality XXXX = 0000, 0001, ...); the labels CSV's case ids say which is which, so a case id may
itself end in `_0001`. ROIs are `ROI_DIR/CASE.<ext>`. Other files are listed as ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.dataset.image_io import split_extension
from universalclassifier.errors import UserInputError
from universalclassifier.importing.labels_csv import read_label_table
from universalclassifier.importing.task_writer import ImportedCase, ImportedSource, SkippedCase
from universalclassifier.importing.volumes import Volume, load_image_file

KIND = "folder"
_MODALITY_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<modality>\d{4})$")
_COMPANION_EXTENSIONS = (".raw", ".zraw")  # pixel data of .mhd headers


def _image_files(folder: Path, what: str) -> tuple[list[Path], list[str]]:
    """The image files in `folder` (sorted) and the names of its other visible files."""
    if not folder.is_dir():
        raise UserInputError(f"{what} {folder} is not a folder.")
    images, ignored = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if split_extension(path)[1]:
            images.append(path)
        elif path.suffix.lower() not in _COMPANION_EXTENSIONS:
            ignored.append(str(path))
    return images, ignored


def _volume(path: Path) -> Volume:
    return Volume(str(path), lambda: load_image_file(path))


def _group_images(
    files: list[Path], known: set[str]
) -> tuple[dict[str, dict[int | None, list[Path]]], dict[str, list[Path]]]:
    """Image files per case id of the CSV (modality index, None for `CASE.<ext>`), and files of other cases."""
    cases: dict[str, dict[int | None, list[Path]]] = {}
    strangers: dict[str, list[Path]] = {}
    for path in files:
        stem = split_extension(path)[0]
        match = _MODALITY_SUFFIX.match(stem)
        if stem in known:
            cases.setdefault(stem, {}).setdefault(None, []).append(path)
        elif match and match.group("case") in known:
            cases.setdefault(match.group("case"), {}).setdefault(int(match.group("modality")), []).append(path)
        else:
            strangers.setdefault(match.group("case") if match else stem, []).append(path)
    return cases, strangers


def _case_images(
    case_id: str, found: dict[int | None, list[Path]], num_channels: int
) -> tuple[Path, ...] | SkippedCase:
    twice = [paths for paths in found.values() if len(paths) > 1]
    if twice:
        return SkippedCase(case_id, "duplicate file", f"several files for one image: {[p.name for p in twice[0]]}.")
    if None in found and len(found) > 1:
        names = sorted(p.name for paths in found.values() for p in paths)
        return SkippedCase(case_id, "duplicate file", f"both CASE.<ext> and CASE_XXXX.<ext> files: {names}.")
    by_index = {0 if index is None else index: paths[0] for index, paths in found.items()}
    extra = sorted(i for i in by_index if i >= num_channels)
    if extra:
        return SkippedCase(
            case_id,
            "extra modality",
            f"a file {case_id}_{extra[0]:04d}.<ext>; most cases have {num_channels} modalities.",
        )
    missing = [i for i in range(num_channels) if i not in by_index]
    if missing:
        return SkippedCase(
            case_id,
            "missing modality",
            f"no file {case_id}_{missing[0]:04d}.<ext>; most cases have {num_channels} modalities.",
        )
    return tuple(by_index[i] for i in range(num_channels))


def read_folder(
    images_dir: Path,
    labels_csv: Path,
    rois_dir: Path | None = None,
    regression_columns: Sequence[str] = (),
    nominal_columns: Sequence[str] = (),
    ordinal_columns: Sequence[str] = (),
) -> ImportedSource:
    """Read an image folder, the labels CSV and an optional ROI folder (module docstring)."""
    images_dir = Path(images_dir).expanduser().resolve()
    rois_dir = None if rois_dir is None else Path(rois_dir).expanduser().resolve()
    table = read_label_table(
        Path(labels_csv).expanduser().resolve(), regression_columns, nominal_columns, ordinal_columns
    )
    files, ignored = _image_files(images_dir, "Image folder")
    grouped, strangers = _group_images(files, set(table.targets))
    if not grouped:
        raise UserInputError(
            f"No image in {images_dir} belongs to a case of {table.path}: name them CASE.<ext> or CASE_XXXX.<ext> "
            f"with a CASE from its case_id column (e.g. {next(iter(table.targets), 'case_001')})."
        )
    counts = Counter(max(0 if i is None else i for i in found) + 1 for found in grouped.values())
    num_channels = counts.most_common(1)[0][0]
    rois: dict[str, list[Path]] = {}
    if rois_dir is not None:
        roi_files, roi_ignored = _image_files(rois_dir, "ROI folder")
        ignored += roi_ignored
        for path in roi_files:
            rois.setdefault(split_extension(path)[0], []).append(path)
    skipped = list(table.skipped)
    cases = []
    for case_id, targets in table.targets.items():
        if case_id not in grouped:
            skipped.append(
                SkippedCase(
                    case_id, "missing file", f"no image {case_id}.<ext> or {case_id}_XXXX.<ext> in {images_dir}."
                )
            )
            continue
        images = _case_images(case_id, grouped[case_id], num_channels)
        if isinstance(images, SkippedCase):
            skipped.append(images)
            continue
        roi = None
        if rois_dir is not None:
            roi_paths = rois.get(case_id, [])
            if len(roi_paths) != 1:
                detail = (
                    f"no file {case_id}.<ext> in {rois_dir}."
                    if not roi_paths
                    else (f"several ROI files: {[p.name for p in roi_paths]}.")
                )
                skipped.append(SkippedCase(case_id, "missing ROI" if not roi_paths else "duplicate file", detail))
                continue
            roi = _volume(roi_paths[0])
        cases.append(
            ImportedCase(
                case_id, tuple(_volume(p) for p in images), targets, roi=roi, patient_id=table.patients[case_id]
            )
        )
    skipped += [
        SkippedCase(case_id, "missing row", f"{table.path} has no row for it (files: {[p.name for p in paths]}).")
        for case_id, paths in strangers.items()
        if case_id not in {s.case_id for s in table.skipped}
    ]
    options = {
        "labels": str(table.path),
        "rois": None if rois_dir is None else str(rois_dir),
        "regression_columns": list(regression_columns),
        "nominal_columns": list(nominal_columns),
        "ordinal_columns": list(ordinal_columns),
    }
    paths = (images_dir, table.path) if rois_dir is None else (images_dir, rois_dir, table.path)
    return ImportedSource(
        KIND,
        paths,
        table.heads,
        num_channels,
        cases,
        skipped,
        options=options,
        ignored_files=ignored,
        value_maps=table.value_maps,
    )
