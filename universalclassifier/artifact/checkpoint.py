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
import stat
import uuid
import zipfile
from pathlib import Path

import torch

from universalclassifier.atomic import atomic_path
from universalclassifier.errors import UserInputError
from universalclassifier.json_files import read_json_file
from universalclassifier.plans import MAX_NETWORK_PARAMETERS

logger = logging.getLogger(__name__)

# 2: metadata holds the training recipe (network layers are rebuilt from it)
# 3: weights and metadata share a checkpoint_id; metadata holds the plans_hash the fold was trained with
CHECKPOINT_FORMAT_VERSION = 3
READABLE_CHECKPOINT_FORMAT_VERSIONS = (2, 3)
CHECKPOINT_ID = "checkpoint_id"
CHECKPOINT_SLACK_BYTES = 64 * 2**20  # names, pickled structure and zip records beside the tensors


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


def checkpoint_byte_limit(max_parameters: int) -> int:
    """The largest checkpoint of a network with at most `max_parameters` parameters and buffers: its float32 tensors
    and at most three more copies of them (the optimizer state of `model_latest`: AdamW's two moments, SGD's
    momentum), plus room for the names and the zip records. Its tensors, uncompressed, must fit the same bound."""
    return 4 * 4 * max_parameters + CHECKPOINT_SLACK_BYTES


MAX_CHECKPOINT_BYTES = checkpoint_byte_limit(MAX_NETWORK_PARAMETERS)


def _check_weights_file(checkpoint: Path, max_bytes: int) -> None:
    """Refuse, before torch reads anything: a checkpoint that is not a regular file (a FIFO blocks, a device never
    ends), one of more than `max_bytes`, and a zip archive with compressed members or members claiming more bytes
    than the file holds (torch.save stores them uncompressed; a compressed member may expand far beyond the file)."""
    try:
        info = checkpoint.stat()
    except OSError as exc:
        raise UserInputError(f"Cannot read the checkpoint {checkpoint}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserInputError(f"The checkpoint {checkpoint} is not a regular file; replace it with the file itself.")
    fix = "it was not written by universalclassifier or is damaged: train this fold again."
    if info.st_size > max_bytes:
        raise UserInputError(
            f"The checkpoint {checkpoint} has {info.st_size:,} bytes, more than the {max_bytes:,} a checkpoint of this "
            f"model can have; {fix}"
        )
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            members = archive.infolist()
    except Exception as exc:  # zipfile raises several types for damaged archives
        raise UserInputError(f"The checkpoint {checkpoint} is not a torch.save archive ({exc}); {fix}") from None
    packed = any(m.compress_type != zipfile.ZIP_STORED or m.file_size != m.compress_size for m in members)
    claimed = sum(m.file_size for m in members)
    if packed or claimed > info.st_size:
        raise UserInputError(
            f"The checkpoint {checkpoint} holds compressed members or members claiming {claimed:,} bytes in a file of "
            f"{info.st_size:,}; torch.save writes neither: {fix}"
        )


def _read_metadata(path: Path) -> tuple[dict | None, str]:
    """The JSON object in a metadata file (bounded, regular files only), or None and why it cannot be used."""
    try:
        content = read_json_file(path, "checkpoint metadata")
    except UserInputError as exc:
        return None, str(exc)
    if not isinstance(content, dict):
        return None, f"The checkpoint metadata {path} does not hold a JSON object."
    return content, ""


def load_checkpoint(
    checkpoint: Path, map_location: str | torch.device = "cpu", max_bytes: int = MAX_CHECKPOINT_BYTES
) -> tuple[dict[str, dict], dict]:
    """Read a checkpoint written by `save_checkpoint` (or by format 2, which had no id); never unpickles objects.

    Raises UserInputError when the weights and the metadata do not belong to the same save, and for a weights file
    that torch did not write or that exceeds `max_bytes` (see `checkpoint_byte_limit`; checked before it is read).
    """
    if not checkpoint.exists():
        raise FileNotFoundError(f"No checkpoint at {checkpoint}.")
    _check_weights_file(checkpoint, max_bytes)
    try:
        tensors = torch.load(checkpoint, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # torch raises several types for damaged or unsafe files
        raise UserInputError(f"Cannot load {checkpoint} safely (weights only): {exc}") from None
    if not isinstance(tensors, dict) or not all(isinstance(key, str) for key in tensors):
        raise UserInputError(f"The checkpoint {checkpoint} does not hold named state dicts; train this fold again.")
    weights_id = tensors.pop(CHECKPOINT_ID, None)
    metadata, problem = _read_metadata(metadata_file(checkpoint))
    if metadata is not None and metadata.get(CHECKPOINT_ID) == weights_id:
        return tensors, metadata
    if isinstance(weights_id, str) and weights_id:
        pending_file = _pending_metadata_file(checkpoint, weights_id)
        pending, _ = _read_metadata(pending_file) if pending_file.exists() else (None, "")
        if pending is not None and pending.get(CHECKPOINT_ID) == weights_id:
            logger.warning(
                "%s: its save was interrupted; using the metadata written first (%s)", checkpoint, pending_file.name
            )
            return tensors, pending
    if metadata is None:
        found = f"cannot be used ({problem})"
    else:
        found = (
            f"belongs to another save (its {CHECKPOINT_ID} is {metadata.get(CHECKPOINT_ID)!r}, "
            f"the weights' {weights_id!r})"
        )
    raise UserInputError(
        f"The metadata {metadata_file(checkpoint)} of {checkpoint} {found}: the pair was not written together. "
        "Train this fold again (with -c if its model_latest is intact)."
    )
