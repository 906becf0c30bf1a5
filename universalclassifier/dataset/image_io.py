"""Reading and writing images with SimpleITK, with axes and spacing in (z, y, x) order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from universalclassifier.errors import UserInputError

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")
# The largest image (voxels per file) that is read at all: 512 x 512 x 1024, a thin-slice trunk CT and about twice
# the largest routine CT. Loading one costs about 1 GiB per float32 channel (plus scipy's float64 spline prefilter
# when it is resampled), so a header claiming more (a damaged or hostile file, a wrong format) is refused before
# any pixel is read.
MAX_INPUT_VOXELS = 512 * 512 * 1024
# Spacing, origin and direction of two images count as equal within this relative tolerance.
GEOMETRY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Geometry:
    """Image grid in array order: size and spacing are (z, y, x); origin and direction as SimpleITK gives them."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    components: int = 1

    @property
    def dimension(self) -> int:
        return len(self.size)


def split_extension(path: str | Path) -> tuple[str, str]:
    """Split a file name into (stem, extension) for the supported image extensions ('' if none matches)."""
    name = Path(path).name
    for ext in IMAGE_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def _geometry_of(source: sitk.Image | sitk.ImageFileReader, components: int) -> Geometry:
    """The grid of an image or of a reader that has read an image's header."""
    return Geometry(
        size=tuple(int(s) for s in reversed(source.GetSize())),
        spacing=tuple(float(s) for s in reversed(source.GetSpacing())),
        origin=tuple(float(o) for o in source.GetOrigin()),
        direction=tuple(float(d) for d in source.GetDirection()),
        components=components,
    )


def is_existing_file(path: Path | str) -> bool:
    """Whether `path` is a file; False rather than an error for a path the system cannot look up (too long, ...)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def grid_problems(geometry: Geometry, max_voxels: int = MAX_INPUT_VOXELS) -> list[str]:
    """What makes a grid unusable, as sentences ([] when fine): an empty axis, more than `max_voxels` voxels, or a
    spacing that is not finite and positive (origin and direction must be finite too)."""
    problems = []
    voxels = math.prod(geometry.size)
    if min(geometry.size, default=0) < 1:
        problems.append(f"has size {list(geometry.size)} (z, y, x): every axis needs at least one voxel")
    elif voxels > max_voxels:
        problems.append(
            f"has {voxels:,} voxels (size {list(geometry.size)}, z, y, x), more than max_input_voxels = "
            f"{max_voxels:,}; crop or downsample it, or raise max_input_voxels if the image really is this large"
        )
    if not all(math.isfinite(s) and s > 0 for s in geometry.spacing):
        problems.append(f"has spacing {list(geometry.spacing)} (z, y, x): every spacing must be a finite number > 0")
    if not all(math.isfinite(v) for v in geometry.origin + geometry.direction):
        problems.append("has a non-finite origin or direction in its header")
    return problems


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    scale = np.maximum(np.maximum(np.abs(a_arr), np.abs(b_arr)), 1.0)
    return bool(np.all(np.abs(a_arr - b_arr) <= GEOMETRY_TOLERANCE * scale))


def compare_geometry(reference: Geometry, other: Geometry, other_name: str) -> list[str]:
    """Differences between two 3D grids beyond tolerance, as readable sentences ([] when they match)."""
    if reference.size != other.size:
        return [f"{other_name} has size {list(other.size)} (z, y, x) but the first image has {list(reference.size)}"]
    problems = []
    for what in ("spacing", "origin", "direction"):
        if not _close(getattr(reference, what), getattr(other, what)):
            problems.append(
                f"{other_name} has {what} {[round(v, 6) for v in getattr(other, what)]} but the first image has "
                f"{[round(v, 6) for v in getattr(reference, what)]}"
            )
    return problems


def read_geometry(path: Path) -> Geometry:
    """Read only the header of an image file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc
    return _geometry_of(reader, int(reader.GetNumberOfComponents()))


def read_image(
    path: Path, dtype: type = np.float32, max_voxels: int = MAX_INPUT_VOXELS
) -> tuple[np.ndarray, Geometry]:
    """Read a 3D single-channel image as an array (z, y, x) plus its geometry.

    The header is checked first (3D, one component, see `grid_problems`), so that no pixel of an unusable or
    oversized image is read.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        dimension, components = reader.GetDimension(), reader.GetNumberOfComponents()
        if dimension != 3 or components != 1:
            raise UserInputError(
                f"Image {path} is {dimension}D with {components} component(s); "
                "expected a 3D single-channel image (store each modality as its own 3D file)."
            )
        problems = grid_problems(_geometry_of(reader, components), max_voxels)
        if problems:
            raise UserInputError(f"Image {path} {'; '.join(problems)}.")
        image = reader.Execute()
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc
    return sitk.GetArrayFromImage(image).astype(dtype, copy=False), _geometry_of(image, 1)


def write_image(array: np.ndarray, reference: Geometry, path: Path) -> None:
    """Write an array (z, y, x) with the geometry of a reference image (compressed where the format allows)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(reference.spacing)))
    image.SetOrigin(reference.origin)
    image.SetDirection(reference.direction)
    sitk.WriteImage(image, str(path), True)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1].strip() if text else type(exc).__name__
