"""`predict()`: the function a challenge container calls; loaded models are cached per artifact in the process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from universalclassifier.inference.predictor import Predictor, choose_device

_PREDICTORS: dict[tuple, Predictor] = {}


def get_predictor(
    artifact_path: Path | str,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    device: str | torch.device | None = None,
) -> Predictor:
    """A cached Predictor for these arguments (loaded on first use)."""
    key = (
        str(Path(artifact_path).expanduser().resolve()),
        None if folds is None else tuple(str(f) for f in folds),
        None if task is None else str(task),
        str(choose_device(device)),
    )
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(artifact_path, folds, task, device)
    return _PREDICTORS[key]


def predict(
    artifact_path: Path | str,
    ordered_image_files: Sequence[Path | str],
    roi_segmentation_file: Path | str | None = None,
    *,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    tta: bool = False,
    device: str | torch.device | None = None,
) -> list[float | list[float]]:
    """Classify one case with the trained ensemble in `artifact_path`.

    Args:
        artifact_path: the trained_models folder (or any folder below it down to the trainer folder).
        ordered_image_files: one image file per modality, in dataset.json modality order.
        roi_segmentation_file: the case's ROI segmentation; required iff the model was trained with ROIs.
        folds: folds to ensemble (default: every trained fold_N, else `all`).
        task: task id or name, needed when the artifact holds several tasks.
        tta: average over all mirrorings as well.
        device: torch device (default: CUDA when available, else CPU).

    Returns:
        One entry per classification label in dataset.json order: the probability of value 1 (a float) for a
        binary label, else a list with one probability per value (summing to 1).
    """
    predictor = get_predictor(artifact_path, folds, task, device)
    return predictor.predict_case(ordered_image_files, roi_segmentation_file, tta=tta)
