"""The properties of one preprocessed case: its geometry and what cropping, resampling and padding did to it.

Plan-and-preprocess stores them beside each training array as CASE.json (with the case's classification targets and
group); training reads them back from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.cropping import BoundingBox

TARGETS_KEY = "classification_targets"
GROUP_KEY = "group"
COVARIATES_KEY = "covariates"
ZOOM_KEY = "zoom"
OPTIONAL_KEYS = (TARGETS_KEY, GROUP_KEY, COVARIATES_KEY)


def require_keys(raw: object, keys: list[str], source: str) -> dict:
    """`raw` if it is a JSON object holding every one of `keys`, else a UserInputError naming `source`."""
    if not isinstance(raw, dict):
        raise UserInputError(
            f"{source} must be a JSON object; it was not written by this tool or is damaged: re-run plan & preprocess."
        )
    missing = [key for key in keys if key not in raw]
    if missing:
        raise UserInputError(
            f"{source} lacks the key(s) {missing}; it was not written by this tool or is damaged: re-run plan & "
            "preprocess."
        )
    return raw


@dataclass(frozen=True)
class CaseProperties:
    """One case as preprocessing saw it; sizes and spacings are per axis, bounding boxes [[start, stop), ...].

    The original and cropped values are in original axis order, the resampled ones in the plans' transposed order.
    `classification_targets` (head name -> value, None when unknown) is set for training cases only, `group` (the
    patient) and `covariates` (name -> value) for training cases that have them.
    """

    case_id: str
    original_size: list[int]
    original_spacing: list[float]
    origin: list[float]
    direction: list[float]
    nonzero_bbox: BoundingBox
    roi_bbox_in_nonzero_crop: BoundingBox | None
    size_after_cropping: list[int]
    spacing_after_resampling: list[float]
    size_after_resampling: list[int]
    separate_z_axis: int | None
    pad_offsets: list[list[int]]
    roi_classes_present: list[int]
    classification_targets: dict[str, int | float | None] | None = None
    group: str | None = None
    covariates: dict[str, float | str | None] | None = None
    zoom: float = 1.0  # below 1: the case was larger than the plans' image size and was resampled down by this factor

    def to_dict(self) -> dict:
        """The JSON-ready form CASE.json stores, keys in field order; without the OPTIONAL_KEYS that are None."""
        values = asdict(self)
        for key in OPTIONAL_KEYS:
            if values[key] is None:
                del values[key]
        return values

    @classmethod
    def from_dict(cls, raw: object, source: str) -> CaseProperties:
        """Read the form `to_dict` writes; a missing key or malformed targets raise a UserInputError naming `source`."""
        required = [f.name for f in fields(cls) if f.name not in OPTIONAL_KEYS and f.name != ZOOM_KEY]
        values = require_keys(raw, required, source)
        targets, group, covariates = (values.get(key) for key in OPTIONAL_KEYS)
        zoom = values.get(ZOOM_KEY, 1.0)  # cases preprocessed before zooming existed were never zoomed
        malformed = (
            not isinstance(zoom, (int, float))
            or isinstance(zoom, bool)
            or not 0 < zoom <= 1
            or (targets is not None and not isinstance(targets, dict))
            or (group is not None and not isinstance(group, str))
            or (covariates is not None and not isinstance(covariates, dict))
        )
        if malformed:
            raise UserInputError(
                f"{source}: '{TARGETS_KEY}' and '{COVARIATES_KEY}' must be objects, '{GROUP_KEY}' a string and "
                f"'{ZOOM_KEY}' a number in (0, 1]; it was "
                "not written by this tool or is damaged: re-run plan & preprocess."
            )
        return cls(
            **{name: values[name] for name in required},
            classification_targets=targets,
            group=group,
            covariates=covariates,
            zoom=zoom,
        )
