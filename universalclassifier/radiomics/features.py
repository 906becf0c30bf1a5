"""Radiomics features of one case, computed with mirp: per modality and per ROI label, inside the ROI.

Families: first-order statistics, morphology (shape), intensity histogram and the texture matrices GLCM, GLRLM,
GLSZM, GLDZM, NGTDM and NGLDM, on a fixed number of grey-level bins (right for MR in arbitrary units, fine for
CT) at the image's own spacing (no resampling). Columns are named `m<modality>_label<L>_<mirp feature>`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from universalclassifier.dataset.image_io import split_extension
from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.cropping import bounding_box, nonzero_mask
from universalclassifier.preprocessing.preprocessor import load_case

logger = logging.getLogger(__name__)

FEATURE_FAMILIES = (
    "statistics",
    "morphology",
    "intensity_histogram",
    "glcm",
    "glrlm",
    "glszm",
    "gldzm",
    "ngtdm",
    "ngldm",
)
NUM_BINS = 32
# Moran's I and Geary's C cost mirp a Monte Carlo loop of several seconds per ROI (over 90% of the extraction
# time) and describe the same spatial heterogeneity the texture families already measure; they are left out.
SKIPPED_FEATURES = ("morph_moran_i", "morph_geary_c")
MISSING_MIRP = (
    "The radiomics reference needs the optional dependency mirp: pip install 'universalclassifier[radiomics]' "
    "(mirp needs Python >= 3.11)."
)
_FEATURE_PREFIXES = ("stat_", "morph_", "ih_", "cm_", "rlm_", "szm_", "dzm_", "ngt_", "ngl_")
_MODALITY_SUFFIX = re.compile(r"_\d{4}$")


def require_mirp() -> None:
    """Raise a UserInputError that says how to install mirp when it cannot be imported."""
    try:
        import mirp  # noqa: F401
    except ImportError as exc:
        raise UserInputError(MISSING_MIRP) from exc


def feature_settings() -> dict:
    """What determines the feature values besides the images: recorded next to cached features."""
    from importlib.metadata import version

    return {
        "mirp_version": version("mirp"),
        "families": list(FEATURE_FAMILIES),
        "discretisation": {"method": "fixed_bin_number", "bins": NUM_BINS},
        "skipped_features": list(SKIPPED_FEATURES),
        "mask": "each ROI label > 0; without an ROI the filled nonzero region of the images (else the whole image)",
    }


class _DropMirpRecords(logging.Filter):
    """Drops the records that mirp logs on the root logger (it calls logging.info/warning directly)."""

    def __init__(self, mirp_folder: str) -> None:
        super().__init__()
        self.mirp_folder = mirp_folder

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(self.mirp_folder)


@contextmanager
def _quiet_mirp() -> Iterator[None]:
    """Silence mirp: its root-logger messages and its warnings (absent or tiny ROIs are handled by the caller).

    mirp also calls logging.basicConfig(); a temporary NullHandler keeps that from installing a stdout handler in a
    process whose logging is not configured (worker processes).
    """
    import mirp

    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    drop = _DropMirpRecords(str(Path(mirp.__file__).parent))
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)
        if placeholder is not None:
            root.removeHandler(placeholder)


@contextmanager
def _without_skipped_features() -> Iterator[None]:
    """Leave SKIPPED_FEATURES out of mirp's morphology family for the duration of the block."""
    from mirp._features import morph_3d_features

    original = morph_3d_features.get_morphology_3d_class_dict

    def reduced() -> dict:
        return {name: cls for name, cls in original().items() if name not in SKIPPED_FEATURES}

    morph_3d_features.get_morphology_3d_class_dict = reduced
    try:
        yield
    finally:
        morph_3d_features.get_morphology_3d_class_dict = original


def _mirp_features(image: np.ndarray, labels: np.ndarray, spacing: Sequence[float]) -> dict[int, dict[str, float]]:
    """{label: {mirp feature: value}} for every label > 0 present in `labels` (same grid as `image`)."""
    from mirp import extract_features
    from mirp._data_import.numpy_file import ImageNumpyFile, MaskNumpyFile

    grid = {
        "image_spacing": tuple(float(s) for s in spacing),
        "image_origin": (0.0, 0.0, 0.0),
        "image_orientation": np.eye(3),
        "image_dimensions": tuple(image.shape),
    }
    with _quiet_mirp(), _without_skipped_features():
        tables = extract_features(
            image=ImageNumpyFile(image_data=image.astype(np.float32, copy=False), **grid),
            mask=MaskNumpyFile(image_data=labels, **grid),
            base_feature_families=list(FEATURE_FAMILIES),
            base_discretisation_method="fixed_bin_number",
            base_discretisation_n_bins=NUM_BINS,
            export_features=True,
        )
    result: dict[int, dict[str, float]] = {}
    for table in tables:
        columns = [c for c in table.columns if c.startswith(_FEATURE_PREFIXES)]
        for _, row in table.iterrows():
            label = int(str(row["image_mask_label"]).removeprefix("region_"))
            values = {c: float(row[c]) for c in columns}
            result[label] = {c: (v if np.isfinite(v) else float("nan")) for c, v in values.items()}
    return result


def case_features(image_files: Sequence[Path], roi_file: Path | None) -> dict[str, float]:
    """Radiomics features of one case: `m<modality>_label<L>_<feature>` for every modality and ROI label L > 0.

    `image_files` holds one file per modality (dataset.json order); `roi_file` an integer label map on the same grid,
    or None, in which case the filled nonzero region of the images (any modality) is label 1, or the whole image when
    that is empty. Labels absent from this case get no entries (the feature table fills them with NaN). Non-finite
    feature values (e.g. texture of a one-voxel region) are NaN.
    """
    require_mirp()
    if not image_files:
        raise UserInputError("case_features needs at least one image file (one per modality).")
    case_id = _MODALITY_SUFFIX.sub("", split_extension(image_files[0])[0])
    roi_file = None if roi_file is None else Path(roi_file)
    data, roi, geometry = load_case(case_id, [Path(f) for f in image_files], roi_file)
    if roi_file is None:
        body = nonzero_mask(data)
        roi = body.astype(np.int16) if body.any() else np.ones(roi.shape, dtype=np.int16)
    roi = np.where(roi > 0, roi, 0).astype(np.int16)
    box = bounding_box(roi > 0)
    if box is None:
        logger.warning("case %s: ROI %s has no label > 0; its radiomics features are all missing.", case_id, roi_file)
        return {}
    # one voxel of margin keeps the ROI off the array border; mirp only ever looks inside the mask
    window = tuple(
        slice(max(0, start - 1), min(size, stop + 1)) for (start, stop), size in zip(box, roi.shape, strict=True)
    )
    features: dict[str, float] = {}
    for modality, image in enumerate(data):
        per_label = _mirp_features(image[window], roi[window], geometry.spacing)
        for label in sorted(per_label):
            for name, value in per_label[label].items():
                features[f"m{modality}_label{label}_{name}"] = value
    return features
