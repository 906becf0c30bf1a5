"""The plans: every decision the planner makes, as a typed object with a JSON round-trip."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from universalclassifier.atomic import write_json_atomic
from universalclassifier.checks import finite_number
from universalclassifier.covariates import Covariate, encoded_width
from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.preprocessing.cropping import ROI_MARGIN_FRACTION, RoiMargin
from universalclassifier.preprocessing.normalization import CT, NO_NORM, ZSCORE

FORMAT_VERSION = 1
SIZE_RULES = ("max", "percentile")  # see planning/planner.py
# The planning fields plans written before they existed imply (the AUC23 behaviour); plans equal to them leave them
# out, so that older plans keep their hash.
LEGACY_PLANNING = {"size_rule": "max", "size_percentile": 100.0, "roi_margin_fraction": ROI_MARGIN_FRACTION,
                   "roi_margin_mm": 0.0, "roi_from_body": False}


HEAD_TYPES = ("nominal", "ordinal", "regression")

# Bounds on what plans may describe, checked whenever plans are read: plans.json travels with an uploaded artifact,
# and the arrays, networks and matrices made from it grow with these numbers. Far above real tasks, low enough that
# a hostile file is refused before anything is allocated.
MAX_MODALITIES = 64
MAX_HEADS = 256
MAX_HEAD_VALUES = 1000  # one output each; the confusion matrix grows with the square (20 000 values: 3 GiB)
MAX_ROI_CLASSES = 256  # background included; dataset.json's MAX_ROI_LABELS
MAX_COVARIATES = 256
MAX_COVARIATE_CATEGORIES = 1000
MAX_IMAGE_VOXELS = 4 * 240**3  # four times the planner's VOXEL_BUDGET
MAX_TRAINING_CASES = 10**7
MAX_NETWORK_PARAMETERS = 2**28  # 1 GiB of float32 tensors; the I3D classifier of a typical task has 12.3 million
# Upper bounds on the I3D classifier's size (network/i3d.py; tests/test_artifact_limits.py compares them with the
# network): the backbone with its largest optional ROI branch, what each input channel adds (stem and ROI-branch
# kernels), the backbone's features, and the features each ROI label adds (pooled stem and branch features and the
# descriptors, plus four per input channel).
BACKBONE_PARAMETERS = 13_000_000
PARAMETERS_PER_INPUT_CHANNEL = 24_000
BACKBONE_FEATURES = 1024
FEATURES_PER_ROI_LABEL = 200
_DAMAGED = (
    "plans written by universalclassifier stay within these bounds, so the file is damaged or was edited: re-run "
    "plan & preprocess (and training), or use the artifact exactly as its training wrote it."
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """`value` as a float if it is an int or float (not a bool) with a finite float value, else None."""
    return finite_number(value, limit=math.inf)


def _is_finite(value: object) -> bool:
    return _finite(value) is not None


def _shown(value: object) -> str:
    """A short form of a field's value for an error message (long lists and objects by their length)."""
    if isinstance(value, (list, dict)) and len(value) > 8:
        return f"a {'list' if isinstance(value, list) else 'JSON object'} of {len(value):,} entries"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


@dataclass(frozen=True)
class ClassificationLabel:
    """One head: its name, type and value names (index = value; none for regression).

    Types: "nominal" (unordered values, softmax), "ordinal" (ordered grades, cumulative logits) and "regression" (a
    float target; `target_mean` and `target_sd` are the training cases' statistics, which the network's output is
    standardized with).
    """

    name: str
    type: str
    values: tuple[str, ...]
    target_mean: float = 0.0
    target_sd: float = 1.0

    @property
    def ordinal(self) -> bool:
        return self.type == "ordinal"

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"

    @property
    def num_values(self) -> int:
        """How many values the head has; a regression head has one (its prediction)."""
        return 1 if self.is_regression else len(self.values)

    @property
    def num_outputs(self) -> int:
        """The network outputs of the head: one logit per value (nominal), per threshold (ordinal), or one value."""
        return self.num_values - 1 if self.ordinal else self.num_values

    def to_dict(self) -> dict:
        """The head in its dataset.json form, plus the target statistics of a regression head.

        A nominal head keeps the form older versions wrote (no "type"), so their plans keep their hash.
        """
        result: dict = {
            "name": self.name,
            "ordinal": self.ordinal,
            "values": {str(i): v for i, v in enumerate(self.values)},
        }
        if self.type != "nominal":
            result["type"] = self.type
        if self.is_regression:
            result.update(target_mean=self.target_mean, target_sd=self.target_sd)
        return result

    @classmethod
    def from_dict(cls, raw: object, source: str) -> ClassificationLabel:
        """Build a head from the form `to_dict` writes; `source` names the entry in the error message."""
        fix = "it was not written by this tool or is damaged: re-run plan & preprocess."
        if not isinstance(raw, dict) or not {"name", "ordinal", "values"} <= raw.keys():
            raise UserInputError(f"{source} must be an object with 'name', 'ordinal' and 'values'; {fix}")
        name, ordinal, values = raw["name"], raw["ordinal"], raw["values"]
        kind = raw.get("type", "ordinal" if ordinal is True else "nominal")
        if isinstance(values, dict) and len(values) > MAX_HEAD_VALUES:
            raise UserInputError(
                f"{source} has {len(values):,} values, more than MAX_HEAD_VALUES = {MAX_HEAD_VALUES}; {fix}"
            )
        keys = [str(i) for i in range(len(values))] if isinstance(values, dict) else []
        if (
            not isinstance(name, str)
            or not isinstance(ordinal, bool)
            or kind not in HEAD_TYPES
            or not isinstance(values, dict)
            or set(values) != set(keys)
            or not all(isinstance(v, str) for v in values.values())
            or (kind != "regression" and len(values) < 2)
        ):
            raise UserInputError(
                f"{source} needs a string 'name', a boolean 'ordinal', a 'type' among {HEAD_TYPES} and 'values' "
                f"mapping \"0\"..\"K-1\" (K >= 2 unless it is a regression head) to value names; {fix}"
            )
        statistics = {}
        if kind == "regression":
            mean, sd = _finite(raw.get("target_mean")), _finite(raw.get("target_sd"))
            if mean is None or sd is None or sd <= 0:
                raise UserInputError(
                    f"{source}: a regression head needs target_mean and a positive target_sd, both finite; {fix}"
                )
            statistics = {"target_mean": mean, "target_sd": sd}
        return cls(name=name, type=kind, values=tuple(values[k] for k in keys), **statistics)


@dataclass
class Plans:
    """How to preprocess every case and what the network predicts. Axis-dependent lists are in transposed order."""

    task_name: str
    modalities: list[str]
    normalization_schemes: list[str]
    use_mask_for_norm: list[bool]
    intensity_properties: dict[str, dict[str, float]]
    transpose_forward: list[int]
    transpose_backward: list[int]
    target_spacing: list[float]
    image_size: list[int]
    batch_size: int
    do_dummy_2D_data_aug: bool
    num_roi_classes: int
    uses_roi: bool
    classification_labels: list[ClassificationLabel]
    num_training_cases: int
    format_version: int = FORMAT_VERSION
    covariates: list[Covariate] = field(default_factory=list)  # with their training statistics; none: no key
    size_rule: str = "max"  # "max": image_size holds every case; "percentile": larger cases are zoomed down to fit
    size_percentile: float = 100.0  # with "percentile": the per-axis percentile of the cases' extents
    roi_margin_fraction: float = ROI_MARGIN_FRACTION  # context kept around the ROI per side: this fraction of its
    roi_margin_mm: float = 0.0  # extent plus these millimetres
    roi_from_body: bool = False  # without ROI files: the ROI is the body (preprocessor.body_as_roi), not the whole crop

    @property
    def roi_margin(self) -> RoiMargin:
        return RoiMargin(self.roi_margin_fraction, self.roi_margin_mm)

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def head_names(self) -> list[str]:
        return [head.name for head in self.classification_labels]

    @property
    def covariate_width(self) -> int:
        """The length of the encoded covariate vector the network reads (0 without covariates)."""
        return encoded_width(self.covariates)

    @property
    def head_sizes(self) -> list[int]:
        """Per head, the width of its prediction: the number of values, or 1 for a regression head."""
        return [head.num_values for head in self.classification_labels]

    def to_dict(self) -> dict:
        """The plans as JSON-ready data, as plans.json stores them (the labels in their dataset.json form)."""
        result = {
            **asdict(self),
            "classification_labels": [head.to_dict() for head in self.classification_labels],
            "covariates": [covariate.to_dict() for covariate in self.covariates],
            "num_modalities": self.num_modalities,
        }
        if not self.covariates:  # plans of tasks without covariates keep the form (and hash) older versions wrote
            del result["covariates"]
        for key, legacy in LEGACY_PLANNING.items():
            if result[key] == legacy:
                del result[key]
        return result

    def content_hash(self) -> str:
        """SHA-256 of the plans' canonical JSON (sorted keys, no whitespace): equal plans give equal hashes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def save(self, path: Path) -> None:
        """Write the plans as indented JSON, atomically (a kill leaves the old file or the new one)."""
        write_json_atomic(path, self.to_dict())

    @property
    def network_parameter_bound(self) -> int:
        """An upper bound on the parameters and buffers of the I3D classifier these plans call for (any recipe)."""
        channels = self.num_modalities + 1
        per_label = FEATURES_PER_ROI_LABEL + 4 * channels
        features = BACKBONE_FEATURES + (self.num_roi_classes - 1) * per_label + self.covariate_width
        outputs = sum(head.num_outputs + 1 for head in self.classification_labels)
        return BACKBONE_PARAMETERS + PARAMETERS_PER_INPUT_CHANNEL * channels + (features + 1) * (outputs + 2)

    @classmethod
    def from_dict(cls, raw: object, source: str = "plans") -> "Plans":
        """Build plans from a dict, refusing other format versions, missing keys, and fields of the wrong type or
        beyond the MAX_* bounds (with a UserInputError naming `source`) before anything is built from them."""
        if not isinstance(raw, dict):
            raise UserInputError(f"{source} must hold a JSON object; {_DAMAGED}")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise UserInputError(
                f"{source} has format_version {_shown(version)}, this universalclassifier reads version "
                f"{FORMAT_VERSION}; re-run plan & preprocess (and training) with this version, or install the version "
                "that wrote it."
            )
        names = [f.name for f in fields(cls) if f.name != "covariates" and f.name not in LEGACY_PLANNING]
        missing = [n for n in names if n not in raw]
        if missing:
            raise UserInputError(f"{source} lacks the key(s) {missing}; it was not written by this tool or is damaged.")
        labels, covariates = raw["classification_labels"], raw.get("covariates", [])
        heads_ok = isinstance(labels, list) and 1 <= len(labels) <= MAX_HEADS
        _require(heads_ok, source, "classification_labels", labels, f"a list of 1 to MAX_HEADS = {MAX_HEADS} heads")
        covariates_ok = isinstance(covariates, list) and len(covariates) <= MAX_COVARIATES
        _require(covariates_ok, source, "covariates", covariates, f"a list of at most {MAX_COVARIATES} covariates")
        heads = [
            ClassificationLabel.from_dict(head, f"{source}: classification_labels[{i}]")
            for i, head in enumerate(labels)
        ]
        planning = {key: raw.get(key, legacy) for key, legacy in LEGACY_PLANNING.items()}
        check_planning_fields(planning, source)
        _check_raw_fields(raw, source)
        plans = cls(
            **{n: raw[n] for n in names if n != "classification_labels"},
            **planning,
            classification_labels=heads,
            covariates=[Covariate.from_dict(c, f"{source}: covariates[{i}]") for i, c in enumerate(covariates)],
        )
        _check_derived(plans, source)
        return plans

    @classmethod
    def load(cls, path: Path) -> "Plans":
        """Read plans written by `save` (a regular file of bounded size, every field checked, see `from_dict`)."""
        if not Path(path).exists():
            raise UserInputError(f"No plans at {path}; run uc_plan_and_preprocess.sh first.")
        return cls.from_dict(read_json_file(Path(path), "plans"), str(path))


def _require(condition: bool, source: str, key: str, value: object, expected: str) -> None:
    """Raise the UserInputError for a plans field `key` that is not `expected` (a phrase) unless `condition`."""
    if not condition:
        raise UserInputError(f"{source}: '{key}' is {_shown(value)}, expected {expected}; {_DAMAGED}")


def _int_list(value: object, length: int, minimum: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(_is_int(v) and v >= minimum for v in value)


def _check_raw_fields(raw: dict, source: str) -> None:
    """Type and range checks of the plans' own fields (heads, covariates and planning fields are checked where they
    are read), in an order that lets later checks rely on earlier ones."""

    def require(key: str, condition: bool, expected: str) -> None:
        _require(condition, source, key, raw.get(key), expected)

    modalities = raw["modalities"]
    require(
        "modalities",
        isinstance(modalities, list)
        and 1 <= len(modalities) <= MAX_MODALITIES
        and all(isinstance(m, str) for m in modalities),
        f"a list of 1 to MAX_MODALITIES = {MAX_MODALITIES} names",
    )
    count = len(modalities)
    require("num_modalities", raw.get("num_modalities", count) == count, f"the number of modalities, {count}")
    require("task_name", isinstance(raw["task_name"], str) and raw["task_name"] != "", "a name")
    schemes, masks = raw["normalization_schemes"], raw["use_mask_for_norm"]
    require(
        "normalization_schemes",
        isinstance(schemes, list) and len(schemes) == count and all(s in (CT, ZSCORE, NO_NORM) for s in schemes),
        f"one of {[CT, ZSCORE, NO_NORM]} per modality",
    )
    require(
        "use_mask_for_norm",
        isinstance(masks, list) and len(masks) == count and all(isinstance(m, bool) for m in masks),
        "one boolean per modality",
    )
    _check_intensity_properties(raw["intensity_properties"], schemes, source)
    forward, backward = raw["transpose_forward"], raw["transpose_backward"]
    require("transpose_forward", _int_list(forward, 3, 0) and sorted(forward) == [0, 1, 2], "a permutation of 0, 1, 2")
    require(
        "transpose_backward",
        _int_list(backward, 3, 0) and [forward.index(a) for a in range(3)] == backward,
        f"the inverse of transpose_forward {forward}",
    )
    spacing, size = raw["target_spacing"], raw["image_size"]
    require(
        "target_spacing",
        isinstance(spacing, list) and len(spacing) == 3 and all(_is_finite(s) and s > 0 for s in spacing),
        "three finite spacings > 0",
    )
    require(
        "image_size",
        _int_list(size, 3, 1) and math.prod(size) <= MAX_IMAGE_VOXELS,
        f"three whole numbers >= 1 with at most MAX_IMAGE_VOXELS = {MAX_IMAGE_VOXELS:,} voxels in all",
    )
    cases, batch, roi_classes = raw["num_training_cases"], raw["batch_size"], raw["num_roi_classes"]
    require(
        "num_training_cases",
        _is_int(cases) and 1 <= cases <= MAX_TRAINING_CASES,
        f"a whole number from 1 to {MAX_TRAINING_CASES:,}",
    )
    require(
        "batch_size",
        _is_int(batch) and 1 <= batch <= max(2, cases) and batch * math.prod(size) <= 2 * MAX_IMAGE_VOXELS,
        f"a whole number from 1 to the number of training cases (at least 2), for batches of at most "
        f"{2 * MAX_IMAGE_VOXELS:,} voxels",
    )
    require(
        "num_roi_classes",
        _is_int(roi_classes) and 1 <= roi_classes <= MAX_ROI_CLASSES,
        f"a whole number from 1 to MAX_ROI_CLASSES = {MAX_ROI_CLASSES}",
    )
    for key in ("uses_roi", "do_dummy_2D_data_aug"):
        require(key, isinstance(raw[key], bool), "true or false")


def _check_intensity_properties(properties: object, schemes: list[str], source: str) -> None:
    """Statistics per CT channel: finite, sd >= 0, p0.5 <= p99.5, and normalized values within float32."""
    channels = [str(c) for c in range(len(schemes))]
    _require(
        isinstance(properties, dict) and set(properties) <= set(channels),
        source,
        "intensity_properties",
        properties,
        f"an object of statistics per CT channel (channels {channels})",
    )
    assert isinstance(properties, dict)
    needed = ("mean", "sd", "percentile_00_5", "percentile_99_5")
    for channel, scheme in zip(channels, schemes, strict=True):
        stats = properties.get(channel)
        if scheme != CT and stats is None:
            continue
        key = f"intensity_properties.{channel}"
        usable = isinstance(stats, dict) and set(needed) <= set(stats) and all(_is_finite(v) for v in stats.values())
        _require(usable, source, key, stats, f"finite numbers {list(needed)} (CT normalization)")
        assert isinstance(stats, dict)
        low, high, mean, sd = (float(stats[k]) for k in ("percentile_00_5", "percentile_99_5", "mean", "sd"))
        widest = max(abs(low - mean), abs(high - mean)) / max(sd, 1e-8)  # the largest normalized value
        _require(
            sd >= 0 and low <= high and widest < float(np.finfo(np.float32).max),
            source,
            key,
            stats,
            "sd >= 0 and percentile_00_5 <= percentile_99_5, normalizing within float32",
        )


def _check_derived(plans: Plans, source: str) -> None:
    """Checks across fields: distinct head and covariate names, covariate statistics, and the network's size."""
    names = plans.head_names
    _require(len(set(names)) == len(names), source, "classification_labels", names, "heads of distinct names")
    covariates = [c.name for c in plans.covariates]
    _require(len(set(covariates)) == len(covariates), source, "covariates", covariates, "distinct names")
    for covariate in plans.covariates:
        categories = covariate.values
        numeric = covariate.type == "numeric"
        fill_ok = covariate.fill is None or (_is_finite(covariate.fill) if numeric else covariate.fill in categories)
        _require(
            _is_finite(covariate.mean)
            and _is_finite(covariate.sd)
            and fill_ok
            and (numeric or 1 <= len(categories) <= MAX_COVARIATE_CATEGORIES),
            source,
            f"covariates ({covariate.name})",
            covariate.to_dict(),
            f"finite mean and sd, a fill value of its type and 1 to {MAX_COVARIATE_CATEGORIES} categories",
        )
    bound = plans.network_parameter_bound
    _require(
        bound <= MAX_NETWORK_PARAMETERS,
        source,
        "classification_labels",
        f"{len(names)} heads with {sum(plans.head_sizes):,} values",
        f"heads, ROI labels and covariates whose network has at most MAX_NETWORK_PARAMETERS = "
        f"{MAX_NETWORK_PARAMETERS:,} parameters (these may need {bound:,})",
    )


def check_planning_fields(planning: dict, source: str) -> None:
    """Refuse a size rule, percentile or ROI margin (the LEGACY_PLANNING keys) that the planner cannot write."""
    number = all(isinstance(planning[k], (int, float)) and not isinstance(planning[k], bool) for k in
                 ("size_percentile", "roi_margin_fraction", "roi_margin_mm"))
    if (
        planning["size_rule"] not in SIZE_RULES
        or not isinstance(planning["roi_from_body"], bool)
        or not number
        or not 0 < planning["size_percentile"] <= 100
        or not 0 <= planning["roi_margin_fraction"] <= 10
        or not 0 <= planning["roi_margin_mm"] <= 1000
    ):
        raise UserInputError(
            f"{source}: size_rule must be one of {SIZE_RULES}, size_percentile in (0, 100], roi_margin_fraction in "
            f"[0, 10], roi_margin_mm in [0, 1000] and roi_from_body a boolean; got {planning}."
        )
