"""`--from medmnist`: one `.npz` file of a MedMNIST v2 3D set, with its official train/val/test split.

The file holds `train_images`, `train_labels`, `val_images`, `val_labels` and, optionally, `test_images` and
`test_labels`. Images are (N, D, H, W) arrays (uint8, 28³ or 64³), each taken as one (z, y, x) volume at 1 mm
isotropic spacing with origin 0 and the identity direction; labels are (N, 1) integer class codes.

- The train and val cases become the training cases `train_0000`, ..., `val_0000`, ...; one modality, no ROIs.
- The test cases (when the file has them) become the task's test set: `imagesTs/test_0000_0000.nii.gz`, ... and
  dataset.json `test` entries carrying their values, which `uc_evaluate --use_dataset_test` reads.
- The official split is written as `splits_official.json` (task_writer.SPLITS_FILENAME): one fold, train = the
  train cases, val = the val cases, in the form of `splits_final.json`.
- One nominal head named `label_name` (default DEFAULT_LABEL_NAME). Codes that do not start at 0 are shifted as
  for a labels CSV (`labels_csv.integer_scale`). The value names are MedMNIST's class names when the file name starts
  with the name of one of its six 3D sets (`adrenalmnist3d_64.npz`: "normal", "hyperplasia"), else the codes.
- The intensities are rescaled to 0-255, not Hounsfield units, so the default modality name is DEFAULT_MODALITY,
  which is normalized per image (z-score) rather than with CT statistics; `--modalities` names it otherwise.

Multi-label sets ((N, k) labels, k > 1) and the 2D sets ((N, H, W) or (N, H, W, 3) images) are refused.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np

from universalclassifier.dataset.dataset_json import name_problem
from universalclassifier.dataset.image_io import Geometry
from universalclassifier.errors import UserInputError
from universalclassifier.importing.labels_csv import MAX_NOMINAL_VALUE, integer_scale, value_map
from universalclassifier.importing.task_writer import ImportedCase, ImportedSource
from universalclassifier.importing.volumes import Volume, array_geometry
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

KIND = "medmnist"
DEFAULT_LABEL_NAME = "target"  # not "label": a dataset.json entry's "label" is its ROI file
DEFAULT_MODALITY = "image"  # any name but CT (and noNorm) is z-scored per image
SPACING = (1.0, 1.0, 1.0)
SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
# The class names of MedMNIST v2's 3D sets (Yang et al., Scientific Data 10, 41, 2023), by code.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "organmnist3d": (
        "liver",
        "kidney-right",
        "kidney-left",
        "femur-right",
        "femur-left",
        "bladder",
        "heart",
        "lung-right",
        "lung-left",
        "spleen",
        "pancreas",
    ),
    "nodulemnist3d": ("benign", "malignant"),
    "adrenalmnist3d": ("normal", "hyperplasia"),
    "fracturemnist3d": ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
    "vesselmnist3d": ("vessel", "aneurysm"),
    "synapsemnist3d": ("inhibitory synapse", "excitatory synapse"),
}
_THREE_D_SETS = ", ".join(CLASS_NAMES)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (an .npz), or an empty one
_NPY_MAGIC = b"\x93NUMPY"


def _expected_keys() -> str:
    return "train_images, train_labels, val_images, val_labels (and optionally test_images, test_labels)"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The image and label arrays of the file, by key; refuses a file that is no MedMNIST .npz."""
    if not path.is_file():
        raise UserInputError(f"MedMNIST file {path} does not exist (or is not a file).")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(_NPY_MAGIC):
        raise UserInputError(
            f"{path} is a single NumPy array (.npy), not an .npz archive; --from medmnist takes a MedMNIST .npz "
            f"file with the keys {_expected_keys()}."
        )
    if not magic.startswith(_ZIP_MAGIC):
        raise UserInputError(
            f"{path} is not an .npz file (a zip archive of NumPy arrays); --from medmnist takes a MedMNIST .npz file "
            "such as adrenalmnist3d.npz or adrenalmnist3d_64.npz."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [f"{s}_{part}" for s in REQUIRED_SPLITS for part in ("images", "labels")]
            missing = [key for key in missing if key not in keys]
            if "test_images" in keys and "test_labels" not in keys:
                missing.append("test_labels")
            elif "test_labels" in keys and "test_images" not in keys:
                missing.append("test_images")
            wanted = [f"{s}_{part}" for s in SPLITS for part in ("images", "labels") if f"{s}_images" in keys]
            arrays = {} if missing else {key: _array(npz, key, path) for key in wanted}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserInputError(f"Cannot read {path} as an .npz file ({exc}); is it damaged?") from exc
    if missing:
        raise UserInputError(
            f"{path} has no key(s) {missing}; a MedMNIST .npz holds {_expected_keys()}, and this file holds "
            f"{sorted(keys)}. Pass the .npz of a MedMNIST v2 3D set ({_THREE_D_SETS})."
        )
    return arrays


def _array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One array of an open .npz; an object array (which only unpickling could read) is refused."""
    try:
        return np.asarray(npz[key])
    except ValueError as exc:
        raise UserInputError(
            f"{path}: {key} cannot be read ({exc}); MedMNIST arrays hold numbers (object arrays, which only unpickling "
            "could read, are never loaded)."
        ) from exc


def _check_images(images: np.ndarray, path: Path, key: str) -> None:
    shape = list(images.shape)
    if images.ndim == 3:
        raise UserInputError(
            f"{path}: {key} has the shape {shape} (N, H, W): a 2D MedMNIST set; this tool takes the 3D sets "
            f"({_THREE_D_SETS}), whose images are (N, D, H, W)."
        )
    if images.ndim == 4 and shape[3] == 3 and shape[1] == shape[2] != 3:
        raise UserInputError(
            f"{path}: {key} has the shape {shape} (N, H, W, 3): a 2D colour MedMNIST set; this tool takes the 3D sets "
            f"({_THREE_D_SETS}), whose images are (N, D, H, W)."
        )
    if images.ndim != 4:
        raise UserInputError(
            f"{path}: {key} has the shape {shape}; MedMNIST 3D images are one 4D array (N, D, H, W) per split."
        )
    if images.dtype.kind not in "biuf":
        raise UserInputError(f"{path}: {key} holds {images.dtype} values; expected numbers (uint8).")
    if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
        raise UserInputError(f"{path}: {key} holds NaN or inf values.")


def _codes(labels: np.ndarray, num_images: int, path: Path, key: str) -> np.ndarray:
    """The labels of one split as a 1D int64 array of class codes; refuses anything else."""
    shape = list(labels.shape)
    if labels.ndim == 2 and shape[1] > 1:
        raise UserInputError(
            f"{path}: {key} has the shape {shape}: {shape[1]} labels per case (a multi-label set); --from medmnist "
            "takes one class per case, labels of shape (N, 1)."
        )
    if labels.ndim not in (1, 2):
        raise UserInputError(f"{path}: {key} has the shape {shape}; MedMNIST labels are (N, 1), one class per case.")
    labels = labels.reshape(-1)
    if labels.shape[0] != num_images:
        raise UserInputError(
            f"{path}: {key} has {labels.shape[0]} labels for {num_images} images; every image needs one label."
        )
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    odd = labels
    if labels.dtype.kind == "f":
        odd = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if odd.size == 0:
            return labels.astype(np.int64)
    shown = np.unique(odd)[:5].tolist() if odd.dtype.kind in "biuf" else str(labels.dtype)
    raise UserInputError(
        f"{path}: {key} holds {shown}, which are not integer class codes; MedMNIST labels are integers (0, 1, ...)."
    )


def class_names(path: Path, offset: int, count: int) -> tuple[tuple[str, ...], str | None]:
    """The names of the values 0..count-1 (codes offset..offset+count-1) and the MedMNIST set they come from: the
    set's class names when the file name starts with the set's name and they name every code, else the codes."""
    codes = range(offset, offset + count)
    stem = path.name.lower()
    for dataset, names in CLASS_NAMES.items():
        if stem.startswith(dataset) and offset >= 0 and offset + count <= len(names):
            return tuple(names[c] for c in codes), dataset
    return tuple(str(c) for c in codes), None


def _image_volume(images: np.ndarray, index: int, source: str) -> Volume:
    def load() -> tuple[np.ndarray, Geometry]:
        array = images[index]
        return array, array_geometry(array.shape, SPACING)

    return Volume(source, load)


def read_medmnist(path: Path, label_name: str = DEFAULT_LABEL_NAME) -> ImportedSource:
    """Read a MedMNIST v2 3D `.npz` file (module docstring)."""
    path = Path(path).expanduser().resolve()
    problem = name_problem(label_name)
    if problem is not None:
        raise UserInputError(f"--label_name {problem} (it becomes the head name).")
    arrays = _read_npz(path)
    splits = [s for s in SPLITS if f"{s}_images" in arrays]
    codes: dict[str, np.ndarray] = {}
    for split in splits:
        _check_images(arrays[f"{split}_images"], path, f"{split}_images")
        codes[split] = _codes(arrays[f"{split}_labels"], len(arrays[f"{split}_images"]), path, f"{split}_labels")
    shapes = {tuple(arrays[f"{s}_images"].shape[1:]) for s in splits if len(arrays[f"{s}_images"])}
    if len(shapes) > 1:
        raise UserInputError(f"{path}: the splits' images have different sizes {sorted(shapes)}; one set has one size.")
    offset, code_names = integer_scale(np.unique(np.concatenate([codes[s] for s in splits])).tolist())
    count = len(code_names)
    if count > MAX_NOMINAL_VALUE + 1:
        raise UserInputError(
            f"{path}: the labels span the codes {offset}..{offset + count - 1}; a head has one output per code in "
            "that range, which is not a set of classes."
        )
    names, named_by = class_names(path, offset, count)
    head = ClassificationLabel(name=label_name, type="nominal", values=names)
    cases: dict[str, list[ImportedCase]] = {}
    for split in splits:
        images = arrays[f"{split}_images"]
        width = max(4, len(str(len(images) - 1)))
        cases[split] = [
            ImportedCase(
                f"{split}_{index:0{width}d}",
                (_image_volume(images, index, f"{path}[{split}_images][{index}]"),),
                {label_name: int(code) - offset},
            )
            for index, code in enumerate(codes[split])
        ]
    value_maps = {label_name: value_map(offset, code_names)} if offset else {}
    if offset:
        logger.info(
            "%s: the labels hold the codes %d..%d; they become the values 0..%d (value_maps in the import report).",
            path, offset, offset + count - 1, count - 1,
        )  # fmt: skip
    logger.debug(
        "MedMNIST intensities are rescaled to 0-255, not Hounsfield units: the default modality name is %r, which is "
        "normalized per image.",
        DEFAULT_MODALITY,
    )
    options = {
        "label_name": label_name,
        "spacing": list(SPACING),
        "class_names": named_by or "codes",
        "num_cases": {split: len(codes[split]) for split in splits},
    }
    return ImportedSource(
        KIND,
        (path,),
        (head,),
        1,
        cases["train"] + cases["val"],
        default_modalities=(DEFAULT_MODALITY,),
        options=options,
        test_cases=cases.get("test", []),
        official_split={part: [c.case_id for c in cases[part]] for part in ("train", "val")},
        value_maps=value_maps,
    )
