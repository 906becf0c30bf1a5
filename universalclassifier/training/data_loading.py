"""Random batches of preprocessed training cases, read from memory-mapped .npy arrays."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from batchgenerators.dataloading.data_loader import SlimDataLoaderBase

from universalclassifier.checks import checked_int

logger = logging.getLogger(__name__)


class CaseBatchLoader(SlimDataLoaderBase):
    """Draw batches of whole cases at random, with replacement, from preprocessed arrays.

    Cases are drawn uniformly, or with the given per-case `sample_weights` (probabilities summing to 1). With
    `covariates` (one encoded row per case), each batch also holds the drawn cases' rows as "covariates"; every batch
    holds the cases' zooms (`zooms`, default 1: see preprocessing) as "zoom", shape (batch, 1).

    Each array is ``(num_modalities + 1, *image_size)`` float32 with the ROI label map as its last channel; all
    arrays must share one shape. Sampling uses the global ``np.random``, which batchgenerators' augmenters seed
    per worker. Arrays are memory-mapped and only the drawn cases are copied.
    """

    def __init__(
        self,
        array_files: Sequence[Path],
        targets: np.ndarray,
        batch_size: int,
        case_ids: Sequence[str] | None = None,
        sample_weights: np.ndarray | None = None,
        covariates: np.ndarray | None = None,
        zooms: np.ndarray | None = None,
    ) -> None:
        files = [Path(f) for f in array_files]
        if not files:
            raise ValueError("CaseBatchLoader needs at least one case; got no array files.")
        checked_int(batch_size, "batch_size", 1)
        targets = np.asarray(targets)
        if targets.ndim != 2:
            raise ValueError(
                f"targets must be a 2D array (num_cases, num_heads), got shape {targets.shape}."
            )
        if not np.issubdtype(targets.dtype, np.number):
            raise ValueError(f"targets must be numbers (NaN where unknown), got dtype {targets.dtype}.")
        if len(targets) != len(files):
            raise ValueError(f"Got {len(files)} array file(s) but {len(targets)} row(s) of targets; they must match.")
        ids = [f.stem for f in files] if case_ids is None else [str(c) for c in case_ids]
        if len(ids) != len(files):
            raise ValueError(f"Got {len(files)} array file(s) but {len(ids)} case id(s); they must match.")
        if sample_weights is not None:
            sample_weights = np.asarray(sample_weights, dtype=np.float64)
            if (
                sample_weights.shape != (len(files),)
                or (sample_weights < 0).any()
                or abs(sample_weights.sum() - 1) > 1e-6
            ):
                raise ValueError("sample_weights must hold one non-negative probability per case, summing to 1.")
        if covariates is not None and (np.ndim(covariates) != 2 or len(covariates) != len(files)):
            raise ValueError(f"covariates must be one row per case ({len(files)}), got shape {np.shape(covariates)}.")
        zooms = np.ones(len(files)) if zooms is None else np.asarray(zooms, dtype=np.float64)
        if zooms.shape != (len(files),) or not ((zooms > 0) & (zooms <= 1)).all():
            raise ValueError(f"zooms must hold one number in (0, 1] per case ({len(files)}), got {zooms!r}.")
        super().__init__(files, int(batch_size))
        self.zooms = zooms.astype(np.float32)[:, None]
        self.covariates = None if covariates is None else np.asarray(covariates, dtype=np.float32)
        self.sample_weights = sample_weights
        self.targets = targets.astype(np.float32)
        self.case_ids = ids
        self.array_shape = _common_shape(files)

    def generate_train_batch(self) -> dict:
        """Return one batch: image channels as "data", the ROI label map as "seg", "target" and case "keys"."""
        indices = np.random.choice(len(self._data), size=(self.batch_size,), p=self.sample_weights)
        data = np.empty((self.batch_size, self.array_shape[0] - 1, *self.array_shape[1:]), dtype=np.float32)
        seg = np.empty((self.batch_size, 1, *self.array_shape[1:]), dtype=np.float32)
        for slot, index in enumerate(indices):
            array = np.load(self._data[index], mmap_mode="r")
            data[slot] = array[:-1]
            seg[slot, 0] = array[-1]
        batch = {
            "data": data,
            "seg": seg,
            "target": self.targets[indices],
            "keys": [self.case_ids[i] for i in indices],
            "zoom": self.zooms[indices],
        }
        if self.covariates is not None:
            batch["covariates"] = self.covariates[indices]
        return batch


def _common_shape(files: Sequence[Path]) -> tuple[int, ...]:
    """The shape every array shares (headers only), refusing missing files and mismatched shapes."""
    shape: tuple[int, ...] | None = None
    for path in files:
        try:
            array = np.load(path, mmap_mode="r")
        except FileNotFoundError as exc:
            raise ValueError(f"Preprocessed array {path} does not exist; run plan & preprocess first.") from exc
        if array.ndim < 2 or array.shape[0] < 2:
            raise ValueError(
                f"{path} has shape {array.shape}; expected (image channels + ROI channel, *image_size)."
            )
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise ValueError(
                f"{path} has shape {array.shape} but {files[0]} has {shape}; all cases must share one shape."
            )
    if shape is None:
        raise ValueError("No preprocessed arrays given.")
    logger.debug("CaseBatchLoader: %d case(s) of shape %s", len(files), shape)
    return shape
