"""The plans: every decision the planner makes, as a typed object with a JSON round-trip."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from universalclassifier.atomic import write_json_atomic
from universalclassifier.errors import UserInputError

FORMAT_VERSION = 1


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
    classification_labels: list[dict]
    num_training_cases: int
    format_version: int = FORMAT_VERSION

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def head_names(self) -> list[str]:
        return [head["name"] for head in self.classification_labels]

    @property
    def head_sizes(self) -> list[int]:
        return [len(head["values"]) for head in self.classification_labels]

    def to_dict(self) -> dict:
        return {**asdict(self), "num_modalities": self.num_modalities}

    def content_hash(self) -> str:
        """SHA-256 of the plans' canonical JSON (sorted keys, no whitespace): equal plans give equal hashes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def save(self, path: Path) -> None:
        """Write the plans as indented JSON, atomically (a kill leaves the old file or the new one)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict, source: str = "plans") -> "Plans":
        """Build plans from a dict, refusing other format versions and missing keys."""
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise UserInputError(
                f"{source} has format_version {version!r}, this universalclassifier reads version {FORMAT_VERSION}; "
                "re-run plan & preprocess (and training) with this version, or install the version that wrote it."
            )
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in raw]
        if missing:
            raise UserInputError(f"{source} lacks the key(s) {missing}; it was not written by this tool or is damaged.")
        return cls(**{n: raw[n] for n in names})

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
