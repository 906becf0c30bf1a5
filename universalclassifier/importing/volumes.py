"""Source volumes: 3D arrays that are read only when the task writer asks for them, from image files, `.npy` files
or HDF5 datasets, with the grid they are written with.

Arrays without a header (`.npy`, HDF5) have their axes taken as (z, y, x) and get the spacing the user gives
(`--spacing`, default 1 mm), origin 0 and the identity direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from universalclassifier.dataset.image_io import IMAGE_EXTENSIONS, Geometry, read_image, split_extension
from universalclassifier.errors import UserInputError

NUMPY_EXTENSION = ".npy"
HDF5_EXTENSIONS = (".h5", ".hdf5")
# Every file extension a source may use for an image: the formats SimpleITK reads here, .npy and HDF5.
SOURCE_EXTENSIONS = IMAGE_EXTENSIONS + (NUMPY_EXTENSION,) + HDF5_EXTENSIONS
IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
H5PY_MISSING = "Reading HDF5 (.h5) files needs the package h5py, which is not installed: pip install h5py"


@dataclass(frozen=True)
class Volume:
    """One 3D volume of a source, read on demand: `load()` gives the array (z, y, x) and its grid.

    `source` names where it comes from in messages (a file, or `file.h5[key]`). `load` raises UserInputError (or
    OSError / ValueError for a damaged file) when the volume cannot be read; the writer then skips the case.
    """

    source: str
    load: Callable[[], tuple[np.ndarray, Geometry]]


def array_geometry(shape: Sequence[int], spacing: Sequence[float]) -> Geometry:
    """The grid of a headerless 3D array: its shape, `spacing` (z, y, x), origin 0 and the identity direction."""
    return Geometry(
        size=tuple(int(s) for s in shape),
        spacing=tuple(float(s) for s in spacing),
        origin=(0.0, 0.0, 0.0),
        direction=IDENTITY_DIRECTION,
    )


def source_extension(path: Path) -> str:
    """The extension of a source image file among SOURCE_EXTENSIONS (lower case), or ''."""
    ext = split_extension(path)[1]
    if ext:
        return ext.lower()
    suffix = path.suffix.lower()
    return suffix if suffix in (NUMPY_EXTENSION,) + HDF5_EXTENSIONS else ""


def source_stem(path: Path) -> str:
    """The file name without its source extension."""
    ext = source_extension(path)
    return path.name[: -len(ext)] if ext else path.name


def require_h5py() -> Any:
    """The h5py module, or a UserInputError saying how to install it (h5py is not a dependency)."""
    try:
        import h5py
    except ImportError as exc:
        raise UserInputError(H5PY_MISSING + ".") from exc
    return h5py


def _array_3d(array: np.ndarray, source: str) -> np.ndarray:
    if array.ndim != 3:
        raise UserInputError(f"{source} holds an array of shape {list(array.shape)}; expected a 3D array (z, y, x).")
    if array.dtype.kind not in "biuf":
        raise UserInputError(f"{source} holds {array.dtype} values; expected numbers.")
    return array


def load_npy(path: Path, spacing: Sequence[float]) -> tuple[np.ndarray, Geometry]:
    """A 3D array from a .npy file (never unpickled), with the grid `array_geometry` gives it."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"Cannot read {path} as a NumPy array: {exc}.") from exc
    array = _array_3d(np.asarray(array), str(path))
    return array, array_geometry(array.shape, spacing)


def first_3d_dataset(h5file: Any, name: str | None = None) -> str:
    """The name of dataset `name` in an open HDF5 file, or of its first 3D dataset in h5py's visiting order."""
    h5py = require_h5py()
    if name is not None:
        if not isinstance(h5file.get(name), h5py.Dataset):
            raise UserInputError(f"{h5file.filename} has no dataset named {name!r}.")
        return name
    found: list[tuple[str, tuple[int, ...]]] = []

    def visit(item_name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            found.append((item_name, tuple(item.shape)))

    h5file.visititems(visit)
    for item_name, shape in found:
        if len(shape) == 3:
            return item_name
    shapes = ", ".join(f"{n} {list(s)}" for n, s in found) or "none"
    raise UserInputError(f"{h5file.filename} holds no 3D dataset (datasets: {shapes}).")


def load_h5_volume(path: Path, spacing: Sequence[float], dataset: str | None = None) -> tuple[np.ndarray, Geometry]:
    """The first 3D dataset of an HDF5 file (or the one named `dataset`), with the grid `array_geometry` gives it."""
    h5py = require_h5py()
    try:
        with h5py.File(path, "r") as h5file:
            name = first_3d_dataset(h5file, dataset)
            array = np.asarray(h5file[name][()])
    except OSError as exc:
        raise UserInputError(f"Cannot read {path} as an HDF5 file: {exc}.") from exc
    array = _array_3d(array, f"{path}[{name}]")
    return array, array_geometry(array.shape, spacing)


def load_image_file(path: Path) -> tuple[np.ndarray, Geometry]:
    """An image file SimpleITK reads, as an array (z, y, x) in its own integer or float type, and its grid."""
    array, geometry = read_image(path, dtype=np.float64)
    return compact_image(array), geometry


def file_volume(path: Path, spacing: Sequence[float], h5_dataset: str | None = None) -> Volume:
    """A volume read from a file by its extension: an image format, `.npy` or HDF5."""
    ext = source_extension(path)
    if ext == NUMPY_EXTENSION:
        return Volume(str(path), lambda: load_npy(path, spacing))
    if ext in HDF5_EXTENSIONS:
        return Volume(str(path), lambda: load_h5_volume(path, spacing, h5_dataset))
    if ext:
        return Volume(str(path), lambda: load_image_file(path))
    raise UserInputError(f"{path} is not an image file this import reads (extensions: {', '.join(SOURCE_EXTENSIONS)}).")


def compact_image(array: np.ndarray) -> np.ndarray:
    """An image array in a type SimpleITK writes, losslessly where it can.

    Booleans become uint8 and integers keep their type; floats holding only integers within int16 (CT numbers, most
    MR) become int16, all other floats float32.
    """
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu":
        return array
    info = np.iinfo(np.int16)
    if (
        array.size
        and np.all(np.isfinite(array))
        and array.min() >= info.min
        and array.max() <= info.max
        and np.array_equal(array, np.round(array))
    ):
        return array.astype(np.int16)
    return array.astype(np.float32)
