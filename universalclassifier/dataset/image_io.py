"""Reading and writing images with SimpleITK, with axes and spacing in (z, y, x) order.

An image is a file in a format SimpleITK reads, or a folder holding the files of exactly one DICOM series (read with
SimpleITK's `ImageSeriesReader`, slices in the order GDCM sorts them). Every reader here goes through `_open_image`,
so files and series folders share one code path: the header first (size limits are checked on it), pixels after.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
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
_CHUNK_BYTES = 2**16  # decompressed at a time when a .nii.gz file's length is counted


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


def is_existing_image(path: Path | str) -> bool:
    """Whether `path` can be an image: a file, or a folder (read as one DICOM series); False rather than an error for
    a path the system cannot look up."""
    return is_existing_file(path) or is_existing_folder(path)


def is_existing_folder(path: Path | str) -> bool:
    """Whether `path` is a folder; False rather than an error for a path the system cannot look up."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def dicom_series_files(folder: Path) -> tuple[str, ...]:
    """The files of the one DICOM series in `folder`, in slice order (as GDCM sorts them, along the slice normal).

    Refused with a UserInputError naming the folder: an empty folder, a folder without a DICOM series (sub-folders are
    not searched) and a folder holding several series (the message lists their series instance UIDs).
    """
    try:
        entries = sorted(p.name for p in folder.iterdir())
    except OSError as exc:
        raise UserInputError(f"Cannot read image folder {folder}: {exc.strerror or exc}.") from exc
    if not entries:
        raise UserInputError(
            f"Image folder {folder} is empty; a folder given as an image must hold the files of one DICOM series."
        )
    try:
        series_ids = tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read DICOM series in image folder {folder}: {_first_line(exc)}.") from exc
    if not series_ids:
        raise UserInputError(
            f"Image folder {folder} holds no DICOM series (none of its {len(entries)} file(s) and folder(s) is a DICOM "
            "image; sub-folders are not searched); a folder given as an image must hold the files of one DICOM series."
        )
    if len(series_ids) > 1:
        raise UserInputError(
            f"Image folder {folder} holds {len(series_ids)} DICOM series (series instance UIDs "
            f"{', '.join(series_ids)}); a folder given as an image must hold exactly one series: move each series "
            "into a folder of its own."
        )
    try:
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read DICOM series in image folder {folder}: {_first_line(exc)}.") from exc
    if not files:
        raise UserInputError(f"Image folder {folder}: DICOM series {series_ids[0]} lists no files.")
    return files


@dataclass(frozen=True)
class _ImageSource:
    """An image whose header has been read: what the header says, and how to read its pixels."""

    dimension: int
    components: int
    geometry: Geometry  # as the header gives it: `components` is that of the header
    read_pixels: Callable[[], sitk.Image]  # raises UserInputError


def _open_image(path: Path) -> _ImageSource:
    """Read the header of an image file, or of the DICOM series in a folder, without any pixel."""
    if is_existing_folder(path):
        return _open_series(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc
    _check_nifti_length(path, reader)
    components = int(reader.GetNumberOfComponents())

    def read_pixels() -> sitk.Image:
        try:
            return reader.Execute()
        except RuntimeError as exc:
            raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc

    return _ImageSource(int(reader.GetDimension()), components, _geometry_of(reader, components), read_pixels)


def _nifti_data_end(reader: sitk.ImageFileReader) -> int | None:
    """Where a NIfTI file's voxels end (its vox_offset plus the voxels' bytes), from the header a reader has read;
    None when the header does not say."""
    keys = set(reader.GetMetaDataKeys())
    if not {"dim[0]", "bitpix", "vox_offset"} <= keys:
        return None
    try:
        rank = int(reader.GetMetaData("dim[0]"))
        dims = [int(reader.GetMetaData(f"dim[{axis}]")) for axis in range(1, rank + 1)]
        return int(float(reader.GetMetaData("vox_offset"))) + math.prod(dims) * int(reader.GetMetaData("bitpix")) // 8
    except (RuntimeError, ValueError, OverflowError):
        return None


def _gzip_length(path: Path, needed: int) -> int:
    """How many bytes the gzip file `path` decompresses to, counted up to `needed` (a cut or damaged stream ends the
    count). Cheap in the usual case: the trailer's ISIZE field (the length mod 2^32) already says `needed`."""
    with path.open("rb") as stream:
        stream.seek(-4, os.SEEK_END)
        if int.from_bytes(stream.read(4), "little") == needed % 2**32:
            return needed
    count = 0
    try:
        with gzip.open(path, "rb") as stream:
            while count < needed and (chunk := stream.read1(_CHUNK_BYTES)):
                count += len(chunk)
    except (OSError, EOFError, zlib.error):  # the count so far is exact up to the last chunk
        pass
    return count


def _check_nifti_length(path: Path, reader: sitk.ImageFileReader) -> None:
    """Refuse a .nii or .nii.gz file shorter than its header says: SimpleITK reads one without an error, the missing
    voxels set to 0."""
    if split_extension(path)[1] not in (".nii", ".nii.gz"):
        return
    needed = _nifti_data_end(reader)
    if needed is None or needed <= 0:
        return
    try:
        with path.open("rb") as stream:
            compressed = stream.read(2) == b"\x1f\x8b"  # the gzip magic number (a .nii.gz may be stored plain)
        available = _gzip_length(path, needed) if compressed else path.stat().st_size
    except OSError as exc:
        raise UserInputError(f"Cannot read image {path}: {exc.strerror or exc}.") from exc
    if available < needed:
        holds = "decompresses to about" if compressed else "holds"
        raise UserInputError(
            f"Image {path} is truncated: its header describes {needed:,} bytes (header and voxels) but the file "
            f"{holds} {available:,}; copy or export it again."
        )


def _open_series(folder: Path) -> _ImageSource:
    """The header of the DICOM series in `folder` from the headers of its first and last slice files.

    The geometry is the one `ImageSeriesReader` gives (ITK's ImageSeriesReader::GenerateOutputInformation, with the
    orthogonal direction SimpleITK forces by default): size and in-plane spacing, origin and direction of the first
    slice, the number of slices along the slice axis, and as slice spacing the distance between the first and last
    slice positions over the number of slices - 1 (1 when they coincide).
    """
    files = dicom_series_files(folder)

    def header(file: str) -> sitk.ImageFileReader:
        reader = sitk.ImageFileReader()
        reader.SetFileName(file)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise UserInputError(
                f"Cannot read DICOM file {file} of the series in image folder {folder}: {_first_line(exc)}."
            ) from exc
        return reader

    first = header(files[0])
    components = int(first.GetNumberOfComponents())
    size = list(first.GetSize())
    spacing = list(first.GetSpacing())
    dimension = int(first.GetDimension())
    if len(files) > 1:
        if dimension != 3 or size[2] != 1:
            raise UserInputError(
                f"Image folder {folder} holds a DICOM series of {len(files)} files of size {list(size)} (x, y, z); "
                "expected one 2D slice per file, or a single multi-frame file."
            )
        last = header(files[-1])
        step = [b - a for a, b in zip(first.GetOrigin(), last.GetOrigin(), strict=True)]
        distance = math.sqrt(sum(d * d for d in step))
        size[2] = len(files)
        spacing[2] = 1.0 if distance == 0.0 else distance / (len(files) - 1)
    geometry = Geometry(
        size=tuple(int(s) for s in reversed(size)),
        spacing=tuple(float(s) for s in reversed(spacing)),
        origin=tuple(float(o) for o in first.GetOrigin()),
        direction=tuple(float(d) for d in first.GetDirection()),
        components=components,
    )

    def read_pixels() -> sitk.Image:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        try:
            return reader.Execute()
        except RuntimeError as exc:
            raise UserInputError(f"Cannot read the DICOM series in image folder {folder}: {_first_line(exc)}.") from exc

    return _ImageSource(dimension, components, geometry, read_pixels)


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


def within_tolerance(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two geometry values (spacing, origin, direction, a position) agree within GEOMETRY_TOLERANCE, relative
    to their magnitude (at least 1)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    scale = np.maximum(np.maximum(np.abs(a_arr), np.abs(b_arr)), 1.0)
    return bool(np.all(np.abs(a_arr - b_arr) <= GEOMETRY_TOLERANCE * scale))


def compare_geometry(reference: Geometry, other: Geometry, other_name: str) -> list[str]:
    """Differences between two 3D grids beyond tolerance, as readable sentences ([] when they match)."""
    if reference.size != other.size:
        return [f"{other_name} has size {list(other.size)} (z, y, x) but the first image has {list(reference.size)}"]
    problems = []
    for what in ("spacing", "origin", "direction"):
        if not within_tolerance(getattr(reference, what), getattr(other, what)):
            problems.append(
                f"{other_name} has {what} {[round(v, 6) for v in getattr(other, what)]} but the first image has "
                f"{[round(v, 6) for v in getattr(reference, what)]}"
            )
    return problems


def read_geometry(path: Path) -> Geometry:
    """Read only the header of an image file, or of the DICOM series in a folder."""
    return _open_image(path).geometry


def read_image(path: Path, dtype: type = np.float32, max_voxels: int = MAX_INPUT_VOXELS) -> tuple[np.ndarray, Geometry]:
    """Read a 3D single-channel image (a file, or a folder holding one DICOM series) as an array (z, y, x) plus its
    geometry.

    The header is checked first (3D, one component, see `grid_problems`), so that no pixel of an unusable or
    oversized image is read.
    """
    source = _open_image(path)
    if source.dimension != 3 or source.components != 1:
        raise UserInputError(
            f"Image {path} is {source.dimension}D with {source.components} component(s); "
            "expected a 3D single-channel image (store each modality as its own 3D file)."
        )
    problems = grid_problems(source.geometry, max_voxels)
    if problems:
        raise UserInputError(f"Image {path} {'; '.join(problems)}.")
    image = source.read_pixels()
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
