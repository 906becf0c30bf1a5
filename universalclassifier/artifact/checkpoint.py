"""Checkpoints without pickles: tensors in a weights-only torch file, every other piece of state in JSON beside it.

The two files form one unit. Every save draws a random `checkpoint_id` that goes into both, and commits in
three steps: (1) the metadata is written completely to a pending file named after that id, (2) the weights
replace the old ones atomically, (3) the pending file is renamed over the metadata. A kill after (2) leaves new
weights beside old metadata; `load_checkpoint` notices the differing ids and takes the pending metadata, whose id
matches. A pair that matches neither way (one file replaced by hand) is refused rather than used.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import torch

from universalclassifier.atomic import atomic_path
from universalclassifier.errors import UserInputError

logger = logging.getLogger(__name__)

# 2: metadata holds the training recipe (network layers are rebuilt from it)
# 3: weights and metadata share a checkpoint_id; metadata holds the plans_hash the fold was trained with
CHECKPOINT_FORMAT_VERSION = 3
READABLE_CHECKPOINT_FORMAT_VERSIONS = (2, 3)
CHECKPOINT_ID = "checkpoint_id"


def metadata_file(checkpoint: Path) -> Path:
    """The JSON file holding a checkpoint's non-tensor state: `model_x.model` -> `model_x.model.json`."""
    return checkpoint.with_name(checkpoint.name + ".json")


def _pending_metadata_file(checkpoint: Path, checkpoint_id: str) -> Path:
    return checkpoint.with_name(f".{metadata_file(checkpoint).name}.{checkpoint_id}.pending")


def _leftovers(checkpoint: Path) -> list[Path]:
    """Pending metadata and temporary files of earlier, interrupted saves of this checkpoint."""
    pending = checkpoint.parent.glob(f".{metadata_file(checkpoint).name}.*.pending")
    temporary = checkpoint.parent.glob(f".{checkpoint.name}.*.tmp")
    return sorted([*pending, *temporary])


def save_checkpoint(checkpoint: Path, tensors: dict[str, dict], metadata: dict) -> None:
    """Write state dicts (only tensors and plain numbers inside) and the JSON metadata as one crash-safe unit."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint_id = uuid.uuid4().hex
    stale = _leftovers(checkpoint)
    pending = _pending_metadata_file(checkpoint, checkpoint_id)
    content = {**metadata, CHECKPOINT_ID: checkpoint_id, "checkpoint_format_version": CHECKPOINT_FORMAT_VERSION}
    with pending.open("w", encoding="utf-8") as stream:  # only ever read once the weights carry its id
        stream.write(json.dumps(content, indent=2) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    with atomic_path(checkpoint) as temporary:
        torch.save({**tensors, CHECKPOINT_ID: checkpoint_id}, temporary)
    os.replace(pending, metadata_file(checkpoint))
    for path in stale:
        path.unlink(missing_ok=True)


def _read_json(path: Path) -> dict | None:
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return content if isinstance(content, dict) else None


def load_checkpoint(checkpoint: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, dict], dict]:
    """Read a checkpoint written by `save_checkpoint` (or by format 2, which had no id); never unpickles objects.

    Raises UserInputError when the weights and the metadata do not belong to the same save.
    """
    if not checkpoint.is_file():
        raise FileNotFoundError(f"No checkpoint at {checkpoint}.")
    tensors = torch.load(checkpoint, map_location=map_location, weights_only=True)
    weights_id = tensors.pop(CHECKPOINT_ID, None)
    metadata = _read_json(metadata_file(checkpoint))
    if metadata is not None and metadata.get(CHECKPOINT_ID) == weights_id:
        return tensors, metadata
    if weights_id:
        pending_file = _pending_metadata_file(checkpoint, weights_id)
        pending = _read_json(pending_file)
        if pending is not None and pending.get(CHECKPOINT_ID) == weights_id:
            logger.warning(
                "%s: its save was interrupted; using the metadata written first (%s)", checkpoint, pending_file.name
            )
            return tensors, pending
    if metadata is None:
        found = "is missing or not valid JSON"
    else:
        found = (
            f"belongs to another save (its {CHECKPOINT_ID} is {metadata.get(CHECKPOINT_ID)!r}, "
            f"the weights' {weights_id!r})"
        )
    raise UserInputError(
        f"The metadata {metadata_file(checkpoint)} of {checkpoint} {found}: the pair was not written together. "
        "Train this fold again (with -c if its model_latest is intact)."
    )
