"""`predict()`: the function a challenge container calls (and `predict_detailed()`, which also names each head's
predicted value); loaded models are cached in the process.

The cache holds at most `PREDICTOR_CACHE_SIZE` ensembles (least recently used first out). Its key is what decides
the loaded weights, written one way only: the resolved trainer folder, the fold folders (sorted; `folds=None`
resolved to the folds on disk), the engine and the device with its index (`cuda` is `cuda:0` on a single-GPU machine).
Loading is guarded by a lock per key, so threads that ask for the same ensemble at once load it once.

Engines: "torch" runs the folds' checkpoints; "onnx" their ONNX exports with onnxruntime (inference/onnx_engine.py),
and then nothing here imports torch.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from universalclassifier.artifact import find_fold_folders
from universalclassifier.dataset.image_io import is_existing_image
from universalclassifier.errors import UserInputError
from universalclassifier.inference.best_configuration import preferred_trainer_folder
from universalclassifier.inference.outputs import ContractValue, contract_value, head_result
from universalclassifier.inference.predictor import EnsemblePredictor, Predictor, choose_device, import_torch
from universalclassifier.paths import fold_of_folder
from universalclassifier.preprocessing.preprocessor import MAX_INPUT_VOXELS, MAX_RESAMPLED_VOXELS
from universalclassifier.sharing.cache import artifact_folder

if TYPE_CHECKING:
    import torch

PREDICTOR_CACHE_SIZE = 2
ENGINES = ("torch", "onnx")

CacheKey = tuple[str, tuple[str, ...], str, str]
_PREDICTORS: OrderedDict[CacheKey, EnsemblePredictor] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[CacheKey, threading.Lock] = {}


def canonical_device(device: str | torch.device | None) -> torch.device:
    """The device to run on, written one way: `cpu`, or `cuda:N` with its index (`cuda` is the current device).

    Refuses devices that are not CPU or an existing CUDA device.
    """
    torch = import_torch()
    try:
        chosen = choose_device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(f'device {device!r} is not a torch device ({exc}); use e.g. "cpu" or "cuda:0".') from exc
    if chosen.type == "cpu":
        return torch.device("cpu")
    if chosen.type != "cuda":
        raise UserInputError(f'device {device!r} is not supported; use "cpu" or "cuda[:N]" (None: CUDA if available).')
    if not torch.cuda.is_available():
        raise UserInputError(f'device {device!r}: torch sees no CUDA device here; use "cpu" (or None for the default).')
    index = torch.cuda.current_device() if chosen.index is None else chosen.index
    if index >= torch.cuda.device_count():
        raise UserInputError(f"device {device!r}: there are only {torch.cuda.device_count()} CUDA device(s).")
    return torch.device("cuda", index)


def _is_fold(fold: object) -> bool:
    """Whether `fold` names a fold: a non-negative integer (or its digits) or "all"."""
    if isinstance(fold, bool):
        return False
    return (isinstance(fold, int) and fold >= 0) or (isinstance(fold, str) and (fold == "all" or fold.isdecimal()))


def _fold_argument(folder: Path) -> int | str:
    """The `folds` entry naming a fold folder: N for fold_N, "all" for all."""
    fold = fold_of_folder(folder.name)
    assert fold is not None, folder  # find_fold_folders returns fold folders only
    return fold


def _resolve(
    artifact_path: Path | str,
    folds: Sequence[int | str] | None,
    task: str | int | None,
    device: str | torch.device | None,
    engine: str = "torch",
) -> tuple[CacheKey, Path, list[int | str], str | torch.device]:
    """The cache key and the canonical arguments (trainer folder, sorted folds, device) a predictor is built with."""
    if engine not in ENGINES:
        raise UserInputError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if not isinstance(artifact_path, (str, os.PathLike)):
        raise UserInputError(
            f"artifact_path must be a folder or a model zip of uc_export (str or Path), not {artifact_path!r}."
        )
    if folds is not None:
        listed = list(folds) if isinstance(folds, Iterable) and not isinstance(folds, (str, bytes)) else None
        if not listed or not all(_is_fold(f) for f in listed):
            raise UserInputError(f'folds must be a non-empty list of fold numbers (0, 1, ...) or "all", got {folds!r}.')
        folds = listed
    trainer_folder = preferred_trainer_folder(artifact_folder(artifact_path), task).resolve()
    fold_folders = find_fold_folders(trainer_folder, folds)
    fold_list = sorted({_fold_argument(f) for f in fold_folders}, key=lambda f: (f == "all", f if f != "all" else 0))
    chosen: str | torch.device
    if engine == "onnx":
        from universalclassifier.inference.onnx_engine import onnx_device

        chosen = onnx_device(device)
    else:
        chosen = canonical_device(device)
    key = (str(trainer_folder), tuple(str(f) for f in fold_list), engine, str(chosen))
    return key, trainer_folder, fold_list, chosen


@overload
def get_predictor(
    artifact_path: Path | str,
    folds: Sequence[int | str] | None = ...,
    task: str | int | None = ...,
    device: str | torch.device | None = ...,
    engine: Literal["torch"] = ...,
) -> Predictor: ...


@overload
def get_predictor(
    artifact_path: Path | str,
    folds: Sequence[int | str] | None = ...,
    task: str | int | None = ...,
    device: str | torch.device | None = ...,
    *,
    engine: str,
) -> EnsemblePredictor: ...


def get_predictor(
    artifact_path: Path | str,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    device: str | torch.device | None = None,
    engine: str = "torch",
) -> EnsemblePredictor:
    """A cached predictor for these arguments (a `Predictor`, or an `OnnxPredictor` with engine="onnx"), loaded on
    first use (once, even when threads ask at the same time)."""
    key, trainer_folder, fold_list, chosen = _resolve(artifact_path, folds, task, device, engine)
    with _CACHE_LOCK:
        if key in _PREDICTORS:
            _PREDICTORS.move_to_end(key)
            return _PREDICTORS[key]
        load_lock = _LOAD_LOCKS.setdefault(key, threading.Lock())
    with load_lock:
        with _CACHE_LOCK:
            if key in _PREDICTORS:
                _PREDICTORS.move_to_end(key)
                return _PREDICTORS[key]
        predictor: EnsemblePredictor | None = None
        try:
            if engine == "onnx":
                from universalclassifier.inference.onnx_engine import OnnxPredictor

                predictor = OnnxPredictor(trainer_folder, fold_list, None, chosen)
            else:
                predictor = Predictor(trainer_folder, fold_list, None, chosen)
        finally:
            with _CACHE_LOCK:  # publish and release in one step: no thread can miss both the cache and the lock
                _LOAD_LOCKS.pop(key, None)
                if predictor is not None:
                    _PREDICTORS[key] = predictor
                    while len(_PREDICTORS) > PREDICTOR_CACHE_SIZE:
                        _PREDICTORS.popitem(last=False)
    return predictor


def _file_list(ordered_image_files: object, roi_segmentation_file: object) -> list[str | os.PathLike]:
    """The image files as a list, refusing arguments that are not paths of existing images (files, or folders holding
    one DICOM series) before anything is loaded."""
    if isinstance(ordered_image_files, (str, os.PathLike)):
        raise UserInputError("ordered_image_files must be a list of files, one per modality, not a single path.")
    try:
        files = list(ordered_image_files)  # type: ignore[call-overload]
    except TypeError:
        raise UserInputError(
            f"ordered_image_files must be a list of files, one per modality, not {type(ordered_image_files).__name__}."
        ) from None
    not_paths = [f for f in files if not isinstance(f, (str, os.PathLike))]
    if not_paths:
        raise UserInputError(f"ordered_image_files must hold file paths (str or Path); got {not_paths[:3]!r}.")
    if roi_segmentation_file is not None and not isinstance(roi_segmentation_file, (str, os.PathLike)):
        raise UserInputError(
            f"roi_segmentation_file must be a file path (str or Path) or None, not {roi_segmentation_file!r}."
        )
    for path in [*files, *([roi_segmentation_file] if roi_segmentation_file is not None else [])]:
        if not is_existing_image(path):  # a file, or a folder holding one DICOM series
            raise UserInputError(f"Input file {path} does not exist (or its path cannot be used).")
    return files


def predict(
    artifact_path: Path | str,
    ordered_image_files: Sequence[Path | str],
    roi_segmentation_file: Path | str | None = None,
    *,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    tta: bool = False,
    device: str | torch.device | None = None,
    max_input_voxels: int = MAX_INPUT_VOXELS,
    max_resampled_voxels: int = MAX_RESAMPLED_VOXELS,
    covariates: Mapping[str, object] | None = None,
    impute_missing_covariates: bool = False,
    calibrate: bool = True,
    engine: str = "torch",
) -> list[ContractValue]:
    """Classify one case with the trained ensemble in `artifact_path`.

    Args:
        artifact_path: the trained_models folder (or any folder below it down to the trainer folder), or a model zip
            written by uc_export (checked against its manifest and extracted once into the model cache, see
            `universalclassifier.sharing.cache`). A trainer folder names the trainer; above it, a task with several
            trainer folders uses the one uc_find_best chose (its best_configuration.json).
        ordered_image_files: one image file (or DICOM series folder) per modality, in dataset.json modality order.
        roi_segmentation_file: the case's ROI segmentation; required iff the model was trained with ROIs. Its
            values must be the integer ROI labels the model was trained with (0..num_roi_classes-1).
        folds: folds to ensemble (default: every trained fold_N, else `all`).
        task: task id or name, needed when the artifact holds several tasks.
        tta: average over all mirrorings as well.
        device: "cpu" or "cuda[:N]" (default: CUDA when available, else CPU; a torch.device too with engine="torch").
        max_input_voxels: refuse an input file with more voxels than this (read from its header).
        max_resampled_voxels: refuse a case whose crop resamples to more voxels than this at the model's spacing.
        covariates: the case's covariate values by name (e.g. {"age": 63, "sex": "F"}; None where unknown), required
            by a model trained with covariates.
        impute_missing_covariates: impute unknown (or all, without `covariates`) values as in training.
        calibrate: temperature-scale nominal heads with the calibration that uc_summarize fitted, where it holds for
            these folds (it is left out, with a warning, after a fold was retrained; an INFO line says when it is
            applied).
        engine: "torch" (the folds' checkpoints) or "onnx" (their ONNX exports, run with onnxruntime: needs no torch;
            export them first with uc_export_onnx, see network/onnx_export.py).

    Returns:
        One entry per classification label in dataset.json order: the probability of value 1 (a float) for a
        binary label, the value in the target's units (a float) for a regression head, else a list with one
        probability per value (summing to 1). `predict_detailed` gives the predicted value and its name as well.
    """
    _, per_head = _predict_per_head(
        artifact_path, ordered_image_files, roi_segmentation_file, folds, task, tta, device, max_input_voxels,
        max_resampled_voxels, covariates, impute_missing_covariates, calibrate, engine,
    )
    return [contract_value(p) for p in per_head]


def predict_detailed(
    artifact_path: Path | str,
    ordered_image_files: Sequence[Path | str],
    roi_segmentation_file: Path | str | None = None,
    *,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    tta: bool = False,
    device: str | torch.device | None = None,
    max_input_voxels: int = MAX_INPUT_VOXELS,
    max_resampled_voxels: int = MAX_RESAMPLED_VOXELS,
    covariates: Mapping[str, object] | None = None,
    impute_missing_covariates: bool = False,
    calibrate: bool = True,
    engine: str = "torch",
) -> list[dict]:
    """Like `predict` (same arguments, same ensemble), with the predicted value of every head named.

    Returns one dict per classification label in dataset.json order (JSON-serialisable): "head" (its name), "type",
    and for classification heads "probabilities" (one per value, also for binary heads), "prediction" (the
    predicted value: the most probable value of a nominal head, the median grade of an ordinal head) and
    "prediction_name" (that value's name in dataset.json); for regression heads "prediction" (the value).
    """
    predictor, per_head = _predict_per_head(
        artifact_path, ordered_image_files, roi_segmentation_file, folds, task, tta, device, max_input_voxels,
        max_resampled_voxels, covariates, impute_missing_covariates, calibrate, engine,
    )
    labels = predictor.plans.classification_labels
    return [
        {"head": label.name, "type": label.type, **head_result(label, p)}
        for label, p in zip(labels, per_head, strict=True)
    ]


def _predict_per_head(
    artifact_path: Path | str,
    ordered_image_files: object,
    roi_segmentation_file: Path | str | None,
    folds: Sequence[int | str] | None,
    task: str | int | None,
    tta: bool,
    device: str | torch.device | None,
    max_input_voxels: int,
    max_resampled_voxels: int,
    covariates: Mapping[str, object] | None,
    impute_missing_covariates: bool,
    calibrate: bool,
    engine: str,
) -> tuple[EnsemblePredictor, list[np.ndarray]]:
    """The arguments of `predict` checked, and the cached predictor with its per-head prediction of the case."""
    files = _file_list(ordered_image_files, roi_segmentation_file)
    for name, limit in (("max_input_voxels", max_input_voxels), ("max_resampled_voxels", max_resampled_voxels)):
        if isinstance(limit, bool) or not isinstance(limit, Integral) or limit < 1:
            raise UserInputError(f"{name} must be a positive whole number of voxels, got {limit!r}.")
    predictor = get_predictor(artifact_path, folds, task, device, engine=engine)
    per_head = predictor.predict_per_head(
        files,
        roi_segmentation_file,
        tta=tta,
        max_input_voxels=max_input_voxels,
        max_resampled_voxels=max_resampled_voxels,
        covariates=covariates,
        impute_missing_covariates=impute_missing_covariates,
        calibrate=calibrate,
    )
    return predictor, per_head
