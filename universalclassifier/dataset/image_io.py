"""Reading and writing images with SimpleITK, with axes and spacing in (z, y, x) order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from universalclassifier.errors import UserInputError

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


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


def read_geometry(path: Path) -> Geometry:
    """Read only the header of an image file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc
    return _geometry_of(reader, int(reader.GetNumberOfComponents()))


def read_image(path: Path, dtype: type = np.float32) -> tuple[np.ndarray, Geometry]:
    """Read a 3D single-channel image as an array (z, y, x) plus its geometry."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise UserInputError(f"Cannot read image {path}: {_first_line(exc)}. Is it a valid image file?") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise UserInputError(
            f"Image {path} is {image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} component(s); "
            "expected a 3D single-channel image (store each modality as its own 3D file)."
        )
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
