"""ROI segmentations given as DICOM Segmentation (DICOM-SEG) files, read with highdicom (extra `dicomseg`).

A SEG is rasterized onto the grid of the case's first image: every frame must lie on one of the image's slices (same
rows and columns, pixel spacing and orientation, a position on the slice axis), so that no resampling is involved.
The label map holds the segment numbers as ROI labels: for BINARY segmentations a voxel takes the number of its
segment, the highest one where segments overlap; for FRACTIONAL ones a voxel belongs to a segment when its fraction
is at least 0.5; LABELMAP segmentations store the numbers directly. Voxels of slices without frames are 0.

`read_roi` is the one reader of ROIs: a DICOM-SEG file, else any image `image_io.read_image` reads.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import SimpleITK as sitk

from universalclassifier.dataset.image_io import (
    MAX_INPUT_VOXELS,
    Geometry,
    is_existing_file,
    read_image,
    within_tolerance,
)
from universalclassifier.errors import UserInputError

logger = logging.getLogger(__name__)

# Segmentation Storage and Label Map Segmentation Storage
SEG_SOP_CLASS_UIDS = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
_ROI_LABEL_MAX = int(np.iinfo(np.int16).max)
_INSTALL_HINT = 'pip install "universalclassifier[dicomseg]"'
_ON_GRID_HINT = "make the SEG from this image's own series (a SEG is never resampled)"


def is_dicom_seg(path: Path) -> bool:
    """Whether `path` is a DICOM Segmentation file (from its header; False for folders, non-DICOM files and files that
    cannot be read, which the image reader then reports)."""
    if not is_existing_file(path):
        return False
    try:
        with open(path, "rb") as file:
            if file.read(132)[128:] != b"DICM":
                return False
    except OSError:
        return False
    return _sop_class_uid(path) in SEG_SOP_CLASS_UIDS


def _sop_class_uid(path: Path) -> str | None:
    """The SOP Class UID of a DICOM file (None if unreadable): with pydicom where installed (highdicom brings it),
    else from SimpleITK's header reading."""
    try:
        from pydicom import dcmread
    except ImportError:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return None
        return reader.GetMetaData("0008|0016").strip(" \0") if reader.HasMetaDataKey("0008|0016") else None
    try:
        uid = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).get("SOPClassUID")
    except Exception:  # a damaged header, reported by the image reader that then reads the file
        return None
    return None if uid is None else str(uid)


def read_roi(
    path: Path,
    reference: Geometry,
    dtype: type = np.float32,
    max_voxels: int = MAX_INPUT_VOXELS,
    reference_name: str = "the first image",
) -> tuple[np.ndarray, Geometry]:
    """Read an ROI as an array (z, y, x) plus its geometry: a DICOM-SEG file rasterized onto `reference` (the grid of
    the case's first image, named `reference_name` in errors; the geometry returned is `reference`), else an image
    read with `read_image` (its own geometry, for the caller to compare with the images; `max_voxels` as there)."""
    if is_dicom_seg(path):
        return read_dicom_seg(path, reference, reference_name).astype(dtype, copy=False), reference
    return read_image(path, dtype=dtype, max_voxels=max_voxels)


def read_dicom_seg(path: Path, reference: Geometry, reference_name: str = "the first image") -> np.ndarray:
    """Rasterize a DICOM-SEG file onto the 3D grid `reference` as an int16 label map (z, y, x) of segment numbers.

    See the module docstring for how segments become labels. Refused with a UserInputError naming the file: highdicom
    missing, an unreadable SEG, and frames that do not lie on a slice of the grid (`reference_name` names it).
    """
    highdicom = _import_highdicom(path)
    try:
        seg = highdicom.seg.segread(path)
    except Exception as exc:  # pydicom and highdicom raise many types on a malformed file
        detail = f"missing DICOM attribute {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UserInputError(f"Cannot read DICOM-SEG {path}: {detail}. Is it a valid DICOM Segmentation file?") from exc
    if (int(seg.Rows), int(seg.Columns)) != reference.size[1:]:
        raise UserInputError(
            f"DICOM-SEG {path} has frames of {seg.Rows} x {seg.Columns} pixels (rows x columns) but the slices of "
            f"{reference_name} are {reference.size[1]} x {reference.size[2]}; {_ON_GRID_HINT}."
        )
    seg_type = str(seg.SegmentationType)
    slices = [_slice_of_frame(seg, index, reference, path, reference_name) for index in range(seg.number_of_frames)]
    padding = seg.get("PixelPaddingValue")  # the background value of a LABELMAP segmentation
    labels = np.zeros(reference.size, dtype=np.int32)
    for index, slice_index in enumerate(slices):
        try:
            frame = seg.get_stored_frame(index, as_index=True)
        except Exception as exc:  # truncated or undecodable pixel data
            raise UserInputError(
                f"Cannot read DICOM-SEG {path}: the pixels of frame {index + 1}: {exc}. Is the file complete?"
            ) from exc
        if seg_type == "LABELMAP":
            values = frame if padding is None else np.where(frame == padding, 0, frame)
        else:
            segment = int(
                _frame_values(seg, index, "SegmentIdentificationSequence", "ReferencedSegmentNumber", 1, path)[0]
            )
            if seg_type == "FRACTIONAL":
                member = frame.astype(np.float64) >= 0.5 * float(seg.MaximumFractionalValue)
            else:
                member = frame != 0
            values = np.where(member, segment, 0)
        np.maximum(labels[slice_index], values, out=labels[slice_index])
    if labels.max(initial=0) > _ROI_LABEL_MAX:
        raise UserInputError(
            f"DICOM-SEG {path} has segment number {labels.max()}, above {_ROI_LABEL_MAX}, the largest ROI label; "
            "renumber its segments."
        )
    logger.debug("DICOM-SEG %s: %d frame(s) on %d slice(s).", path, len(slices), len(set(slices)))
    return labels.astype(np.int16)


def _import_highdicom(path: Path) -> ModuleType:
    try:
        import highdicom
    except ImportError as exc:
        raise UserInputError(f"ROI {path} is a DICOM-SEG file, which needs highdicom: {_INSTALL_HINT}.") from exc
    return highdicom


def _frame_values(seg: Any, index: int, sequence: str, keyword: str, count: int, path: Path) -> tuple[float, ...]:
    """The `count` numbers of `keyword` in the functional group `sequence` of frame `index`: its own (per-frame)
    group if that has them, else the shared one."""
    groups = []
    per_frame = seg.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and index < len(per_frame):
        groups.append(per_frame[index])
    shared = seg.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(sequence)
        if items and keyword in items[0]:
            value = getattr(items[0], keyword)
            try:
                numbers = tuple(float(v) for v in ([value] if count == 1 else value))
            except (TypeError, ValueError):
                numbers = ()
            if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
                raise UserInputError(
                    f"DICOM-SEG {path}: frame {index + 1} has {keyword} {value!r}, expected {count} number(s)."
                )
            return numbers
    raise UserInputError(
        f"DICOM-SEG {path}: frame {index + 1} has no {keyword} ({sequence}); only segmentations of images in patient "
        "coordinates (CT, MR, PET, ...) with a position per frame are read."
    )


def _slice_of_frame(seg: Any, index: int, reference: Geometry, path: Path, reference_name: str) -> int:
    """The slice of `reference` on which frame `index` lies; refused unless its spacing, orientation and position fit
    (within image_io's GEOMETRY_TOLERANCE, as for the grids of two images)."""
    frame = index + 1
    spacing = _frame_values(seg, index, "PixelMeasuresSequence", "PixelSpacing", 2, path)
    if not within_tolerance(spacing, reference.spacing[1:]):
        raise UserInputError(
            f"DICOM-SEG {path}: frame {frame} has pixel spacing {list(spacing)} (rows, columns) but {reference_name} "
            f"has {list(reference.spacing[1:])}; {_ON_GRID_HINT}."
        )
    direction = np.asarray(reference.direction, dtype=np.float64).reshape(3, 3)
    expected_orientation = tuple(float(v) for v in (*direction[:, 0], *direction[:, 1]))  # row (x), column (y) axes
    orientation = _frame_values(seg, index, "PlaneOrientationSequence", "ImageOrientationPatient", 6, path)
    if not within_tolerance(orientation, expected_orientation):
        raise UserInputError(
            f"DICOM-SEG {path}: frame {frame} has orientation {[round(v, 6) for v in orientation]} but the slices of "
            f"{reference_name} have {[round(v, 6) for v in expected_orientation]}; {_ON_GRID_HINT}."
        )
    position = np.array(_frame_values(seg, index, "PlanePositionSequence", "ImagePositionPatient", 3, path))
    origin = np.asarray(reference.origin, dtype=np.float64)
    to_physical = direction @ np.diag(list(reversed(reference.spacing)))
    index_xyz = np.linalg.solve(to_physical, position - origin)
    slice_index = int(round(index_xyz[2]))
    on_grid = origin + to_physical @ np.array([0.0, 0.0, slice_index])
    if not (0 <= slice_index < reference.size[0] and within_tolerance(tuple(position), tuple(on_grid))):
        at = [round(float(v), 3) + 0.0 for v in index_xyz]  # + 0.0: no -0.0
        raise UserInputError(
            f"DICOM-SEG {path}: frame {frame} lies at voxel index {at} (x, y, z) of the grid of {reference_name}, "
            f"expected [0, 0, a slice 0..{reference.size[0] - 1}]: every frame must lie on a slice; {_ON_GRID_HINT}."
        )
    return slice_index
