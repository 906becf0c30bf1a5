"""Checkpoints without pickles: tensors in a weights-only torch file, every other piece of state in JSON beside it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

CHECKPOINT_FORMAT_VERSION = 2  # 2: metadata holds the training recipe (network layers are rebuilt from it)


def metadata_file(checkpoint: Path) -> Path:
    """The JSON file holding a checkpoint's non-tensor state: `model_x.model` -> `model_x.model.json`."""
    return checkpoint.with_name(checkpoint.name + ".json")


def save_checkpoint(checkpoint: Path, tensors: dict[str, dict], metadata: dict) -> None:
    """Write state dicts (only tensors and plain numbers inside) and the JSON metadata, each atomically."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    temporary = checkpoint.with_name(checkpoint.name + ".tmp")
    torch.save(tensors, temporary)
    temporary.replace(checkpoint)
    json_file = metadata_file(checkpoint)
    temporary_json = json_file.with_name(json_file.name + ".tmp")
    temporary_json.write_text(json.dumps({**metadata, "checkpoint_format_version": CHECKPOINT_FORMAT_VERSION}, indent=2) + "\n")
    temporary_json.replace(json_file)


def load_checkpoint(checkpoint: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, dict], dict]:
    """Read a checkpoint written by `save_checkpoint`; never unpickles arbitrary objects."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"No checkpoint at {checkpoint}.")
    tensors = torch.load(checkpoint, map_location=map_location, weights_only=True)
    metadata = json.loads(metadata_file(checkpoint).read_text())
    return tensors, metadata
