"""`--from deepreg-h5`: DeepReg's HDF5 layout, one dataset per case key, plus a labels CSV for the heads.

DeepReg stores each image as a top-level dataset of shape (dim1, dim2, dim3), or (dim1, dim2, dim3, channels) with
the channels last; each channel becomes a modality. Its label files use the same keys and shapes, a 4D label being
one binary mask per label: here the optional LABELS_H5 gives each case's ROI, a 3D integer label map, or 4D binary
masks that become labels 1, 2, ... (they must not overlap). The array axes are taken as (z, y, x) with the spacing
given (`--spacing`, default 1 mm), origin 0 and the identity direction. The heads come from a labels CSV
(`labels_csv`) with one row per key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from universalclassifier.errors import UserInputError
from universalclassifier.importing.labels_csv import LabelTable, read_label_table
from universalclassifier.importing.task_writer import CaseSkipped, ImportedCase, ImportedSource, SkippedCase
from universalclassifier.importing.volumes import Volume, array_geometry, require_h5py

KIND = "deepreg-h5"


def _datasets(path: Path) -> dict[str, tuple[int, ...] | None]:
    """Each top-level key of an HDF5 file with its dataset's shape (None for a group or other object)."""
    h5py = require_h5py()
    try:
        with h5py.File(path, "r") as h5file:
            return {
                key: tuple(item.shape) if isinstance(item := h5file[key], h5py.Dataset) else None
                for key in sorted(h5file.keys())
            }
    except FileNotFoundError as exc:
        raise UserInputError(f"HDF5 file {path} does not exist.") from exc
    except OSError as exc:
        raise UserInputError(f"Cannot read {path} as an HDF5 file: {exc}.") from exc


def _read(path: Path, key: str, channel: int | None) -> np.ndarray:
    h5py = require_h5py()
    with h5py.File(path, "r") as h5file:
        dataset: Any = h5file[key]
        return np.asarray(dataset[()] if channel is None else dataset[..., channel])


def _image_volume(path: Path, key: str, channel: int | None, spacing: Sequence[float]) -> Volume:
    source = f"{path}[{key}]" if channel is None else f"{path}[{key}][..., {channel}]"

    def load():
        array = _read(path, key, channel)
        return array, array_geometry(array.shape, spacing)

    return Volume(source, load)


def label_map(masks: np.ndarray, source: str) -> np.ndarray:
    """DeepReg's one-mask-per-label array (channels last) as one label map: mask k is label k + 1."""
    values = np.unique(masks)
    if not np.all(np.isin(values, (0, 1))):
        raise CaseSkipped(
            "bad ROI",
            f"ROI {source} holds values {values[~np.isin(values, (0, 1))][:5].tolist()}; 4D label masks "
            "must be binary (0 or 1).",
        )
    binary = masks.astype(bool)
    if np.any(binary.sum(axis=-1) > 1):
        raise CaseSkipped("bad ROI", f"ROI {source}: its label masks overlap; one voxel can carry only one ROI label.")
    result = np.zeros(masks.shape[:-1], dtype=np.uint8)
    for index in range(masks.shape[-1]):
        result[binary[..., index]] = index + 1
    return result


def _roi_volume(path: Path, key: str, spacing: Sequence[float]) -> Volume:
    source = f"{path}[{key}]"

    def load():
        array = _read(path, key, None)
        if array.ndim == 4:
            array = label_map(array, source)
        return array, array_geometry(array.shape, spacing)

    return Volume(source, load)


def read_deepreg(
    images_h5: Path,
    labels_h5: Path | None,
    labels_csv: Path,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    regression_columns: Sequence[str] = (),
    nominal_columns: Sequence[str] = (),
    ordinal_columns: Sequence[str] = (),
) -> ImportedSource:
    """Read a DeepReg image file, its optional label file and the labels CSV (module docstring)."""
    images_h5 = Path(images_h5).expanduser().resolve()
    labels_h5 = None if labels_h5 is None else Path(labels_h5).expanduser().resolve()
    table: LabelTable = read_label_table(
        Path(labels_csv).expanduser().resolve(), regression_columns, nominal_columns, ordinal_columns
    )
    images = _datasets(images_h5)
    rois = _datasets(labels_h5) if labels_h5 is not None else {}
    skipped = list(table.skipped)
    usable: dict[str, int] = {}  # key -> channels
    for key, shape in images.items():
        if shape is None or len(shape) not in (3, 4):
            what = "is not a dataset" if shape is None else f"has shape {list(shape)}"
            skipped.append(
                SkippedCase(key, "not 3D", f"{images_h5}[{key}] {what}; expected (dim1, dim2, dim3[, channels]).")
            )
        else:
            usable[key] = 1 if len(shape) == 3 else shape[3]
    if not usable:
        raise UserInputError(f"{images_h5} holds no 3D or 4D image dataset.")
    num_channels = Counter(usable.values()).most_common(1)[0][0]
    cases = []
    for key, channels in usable.items():
        if channels != num_channels:
            skipped.append(
                SkippedCase(key, "missing modality", f"{channels} channel(s), most cases have {num_channels}.")
            )
        elif key not in table.targets:
            if key not in {s.case_id for s in table.skipped}:
                skipped.append(SkippedCase(key, "missing row", f"{table.path} has no row with case_id {key!r}."))
        elif labels_h5 is not None and key not in rois:
            skipped.append(SkippedCase(key, "missing ROI", f"{labels_h5} has no key {key!r}."))
        else:
            volumes = tuple(
                _image_volume(images_h5, key, None if len(images[key] or ()) == 3 else m, spacing)
                for m in range(channels)
            )
            roi = _roi_volume(labels_h5, key, spacing) if labels_h5 is not None else None
            cases.append(ImportedCase(key, volumes, table.targets[key], roi=roi, patient_id=table.patients[key]))
    skipped += [
        SkippedCase(case_id, "missing image", f"{images_h5} has no key {case_id!r}.")
        for case_id in table.targets
        if case_id not in images
    ]
    options = {
        "labels": str(table.path),
        "spacing": [float(s) for s in spacing],
        "regression_columns": list(regression_columns),
        "nominal_columns": list(nominal_columns),
        "ordinal_columns": list(ordinal_columns),
    }
    paths = (images_h5,) if labels_h5 is None else (images_h5, labels_h5)
    return ImportedSource(
        KIND,
        paths + (table.path,),
        table.heads,
        num_channels,
        cases,
        skipped,
        options=options,
        value_maps=table.value_maps,
    )
