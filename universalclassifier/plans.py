"""The plans: every decision the planner makes, as a typed object with a JSON round-trip."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from universalclassifier.atomic import write_json_atomic
from universalclassifier.covariates import Covariate, encoded_width
from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.cropping import ROI_MARGIN_FRACTION, RoiMargin

FORMAT_VERSION = 1
SIZE_RULES = ("max", "percentile")  # see planning/planner.py
# The planning fields plans written before they existed imply (the AUC23 behaviour); plans equal to them leave them
# out, so that older plans keep their hash.
LEGACY_PLANNING = {"size_rule": "max", "size_percentile": 100.0, "roi_margin_fraction": ROI_MARGIN_FRACTION,
                   "roi_margin_mm": 0.0, "roi_from_body": False}


HEAD_TYPES = ("nominal", "ordinal", "regression")


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
        keys = [str(i) for i in range(len(values))] if isinstance(values, dict) else []
        if (
            not isinstance(name, str)
            or not isinstance(ordinal, bool)
            or kind not in HEAD_TYPES
            or not isinstance(values, dict)
            or set(values) != set(keys)
            or not all(isinstance(v, str) for v in values.values())
        ):
            raise UserInputError(
                f"{source} needs a string 'name', a boolean 'ordinal', a 'type' among {HEAD_TYPES} and 'values' "
                f"mapping \"0\"..\"K-1\" to value names; {fix}"
            )
        statistics = {}
        if kind == "regression":
            mean, sd = raw.get("target_mean"), raw.get("target_sd")
            if not (isinstance(mean, (int, float)) and isinstance(sd, (int, float))) or isinstance(sd, bool) or sd <= 0:
                raise UserInputError(f"{source}: a regression head needs target_mean and a positive target_sd; {fix}")
            statistics = {"target_mean": float(mean), "target_sd": float(sd)}
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
    roi_from_body: bool = False  # without ROI files: the ROI is the body (filled nonzero mask), not the whole crop

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

    @classmethod
    def from_dict(cls, raw: dict, source: str = "plans") -> "Plans":
        """Build plans from a dict, refusing other format versions, missing keys and malformed labels."""
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise UserInputError(
                f"{source} has format_version {version!r}, this universalclassifier reads version {FORMAT_VERSION}; "
                "re-run plan & preprocess (and training) with this version, or install the version that wrote it."
            )
        names = [f.name for f in fields(cls) if f.name != "covariates" and f.name not in LEGACY_PLANNING]
        missing = [n for n in names if n not in raw]
        if missing:
            raise UserInputError(f"{source} lacks the key(s) {missing}; it was not written by this tool or is damaged.")
        labels = raw["classification_labels"]
        if not isinstance(labels, list):
            raise UserInputError(f"{source}: 'classification_labels' must be a list; re-run plan & preprocess.")
        heads = [
            ClassificationLabel.from_dict(head, f"{source}: classification_labels[{i}]")
            for i, head in enumerate(labels)
        ]
        covariates = raw.get("covariates", [])
        if not isinstance(covariates, list):
            raise UserInputError(f"{source}: 'covariates' must be a list; re-run plan & preprocess.")
        planning = {key: raw.get(key, legacy) for key, legacy in LEGACY_PLANNING.items()}
        check_planning_fields(planning, source)
        return cls(
            **{n: raw[n] for n in names if n != "classification_labels"},
            **planning,
            classification_labels=heads,
            covariates=[Covariate.from_dict(c, f"{source}: covariates[{i}]") for i, c in enumerate(covariates)],
        )

    @classmethod
    def load(cls, path: Path) -> "Plans":
        """Read plans written by `save`."""
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise UserInputError(f"No plans at {path}; run uc_plan_and_preprocess.sh first.") from exc
        except json.JSONDecodeError as exc:
            raise UserInputError(f"Plans file {path} is not valid JSON ({exc}).") from exc
        return cls.from_dict(raw, str(path))


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
