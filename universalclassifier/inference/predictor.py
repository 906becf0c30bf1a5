"""The predictor: loads every trained fold of an artifact once and turns one case's files into probabilities.

`EnsemblePredictor` holds what does not depend on how the networks run (checking the inputs, preprocessing, the
covariates, calibration) and imports no torch; `Predictor` runs the folds' networks with torch (imported on first
use), `inference.onnx_engine.OnnxPredictor` their ONNX exports with onnxruntime.
"""

from __future__ import annotations

import itertools
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from universalclassifier.artifact import (
    check_folds_match_plans,
    find_fold_folders,
    find_trainer_folder,
    load_network_weights,
    load_plans,
    network_from_weights,
)
from universalclassifier.covariates import check_case_covariates, encode_covariates
from universalclassifier.dataset.image_io import is_existing_image
from universalclassifier.errors import UserInputError
from universalclassifier.inference.calibration import Calibration, calibration_for_ensemble
from universalclassifier.inference.outputs import ContractValue, contract_value
from universalclassifier.preprocessing.preprocessor import (
    MAX_INPUT_VOXELS,
    MAX_RESAMPLED_VOXELS,
    preprocess_case,
    to_network_input,
)
from universalclassifier.version import __version__

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def import_torch() -> ModuleType:
    """torch, or a UserInputError saying how to predict without it."""
    try:
        import torch
    except ImportError:
        raise UserInputError(
            "engine='torch' needs torch (pip install torch); without it, predict with engine='onnx' from the folds' "
            "ONNX exports (uc_export_onnx)."
        ) from None
    return torch


def choose_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA when available, else CPU."""
    torch = import_torch()
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def mirrorings(tta: bool) -> list[tuple[int, ...]]:
    """The axes of a (N, C, Z, Y, X) batch to flip for each pass: none, or with `tta` every combination of the three
    spatial axes (8 passes)."""
    return [()] if not tta else [axes for r in range(4) for axes in itertools.combinations((2, 3, 4), r)]


class EnsemblePredictor(ABC):
    """An ensemble of the trained folds of one task, ready to classify cases; subclasses run the networks."""

    def __init__(
        self, artifact_path: Path | str, folds: Sequence[int | str] | None = None, task: str | int | None = None
    ) -> None:
        self.trainer_folder = find_trainer_folder(artifact_path, task)
        self.plans = load_plans(self.trainer_folder)
        self.fold_folders = find_fold_folders(self.trainer_folder, None if folds is None else list(folds))
        self.checkpoint_ids: dict[str, str | None] = {}  # fold folder name -> its final checkpoint's id, once loaded
        self._calibration: tuple[Calibration | None] | None = None  # read on first use (see `calibration`)

    @abstractmethod
    def predictions(
        self, network_input: np.ndarray, tta: bool = False, covariates: np.ndarray | None = None, zoom: float = 1.0
    ) -> list[np.ndarray]:
        """Per head the value probabilities (or the regression value) averaged over folds (and mirrorings with `tta`)
        for one (C, Z, Y, X) network input, its encoded covariates (see `covariate_input`) and its zoom (see
        `preprocess_case`)."""

    def not_finite(self, fold_folder: Path) -> UserInputError:
        """The error for a fold whose network predicts NaN or infinite values."""
        return UserInputError(
            f"The network of {fold_folder} predicts NaN or infinite values for this case: its weights or the plans of "
            f"{self.trainer_folder} are damaged, or the input is far outside what it was trained on; check the input, "
            "or train this fold again."
        )

    @staticmethod
    def check_files(image_files: Sequence[str | os.PathLike[str]], roi_file: Path | str | None) -> None:
        """Refuse a single path instead of a list, and missing files, before any work."""
        if isinstance(image_files, (str, Path)):
            raise UserInputError("ordered_image_files must be a list of files, one per modality, not a single path.")
        for path in [*image_files, *([roi_file] if roi_file is not None else [])]:
            if not is_existing_image(Path(path)):
                raise UserInputError(f"Input file {path} does not exist.")

    def covariate_input(
        self, covariates: Mapping[str, object] | None, impute_missing: bool = False
    ) -> np.ndarray | None:
        """The encoded covariates of one case (None for a model without covariates), refusing what does not fit.

        A model trained with covariates needs them, unless `impute_missing` (every unknown value is then imputed as in
        training); a model trained without them refuses them.
        """
        declared = self.plans.covariates
        names = [c.name for c in declared]
        if not declared:
            if covariates:
                raise UserInputError("This model was trained without covariates; call it without covariates.")
            return None
        if covariates is None and not impute_missing:
            raise UserInputError(
                f"This model was trained with the covariates {names}: pass covariates={{...}} with their values (null "
                "where unknown), or impute_missing_covariates=True to impute every one as in training."
            )
        values = check_case_covariates(declared, covariates, "covariates")
        unknown = [name for name, value in values.items() if value is None]
        if unknown and not impute_missing:
            raise UserInputError(
                f"No value for the covariate(s) {unknown}; give them, or pass impute_missing_covariates=True to impute "
                "them with the training median (numeric) or most frequent category."
            )
        return encode_covariates(declared, values)

    def calibration(self, calibrate: bool = True) -> Calibration | None:
        """The calibration that predictions with `calibrate` apply: the trainer folder's calibration.json when it holds
        for this ensemble (see `calibration_for_ensemble`), else None. Read on first use; the first time it is
        applied, an INFO line says so."""
        if not calibrate:
            return None
        if self._calibration is None:
            found = calibration_for_ensemble(self.trainer_folder, self.plans, self.checkpoint_ids)
            if found is not None:
                logger.info(
                    "Applying the temperature calibration %s (fitted by uc_summarize on %s): %s; pass "
                    "calibrate=False / --no_calibration to predict without it.",
                    found.path, ", ".join(sorted(found.fold_checkpoints)), found.describe(),
                )
            self._calibration = (found,)
        return self._calibration[0]

    def configuration(self, tta: bool, calibrate: bool) -> dict:
        """What decides this ensemble's predictions besides the case: folds with their checkpoint ids, TTA, the
        calibration applied (its identity, None without), plans hash and package version."""
        calibration = self.calibration(calibrate)
        return {
            "folds": dict(self.checkpoint_ids),
            "tta": tta,
            "calibration": None if calibration is None else calibration.identity,
            "plans_hash": self.plans.content_hash(),
            "package_version": __version__,
        }

    def predict_per_head(
        self,
        image_files: Sequence[str | os.PathLike[str]],
        roi_file: Path | str | None = None,
        tta: bool = False,
        case_id: str = "case",
        max_input_voxels: int = MAX_INPUT_VOXELS,
        max_resampled_voxels: int = MAX_RESAMPLED_VOXELS,
        covariates: Mapping[str, object] | None = None,
        impute_missing_covariates: bool = False,
        calibrate: bool = True,
    ) -> list[np.ndarray]:
        """Per head the value probabilities (K,) or the regression value (1,) of one case.

        Inputs beyond the size limits (see `preprocess_case`) are refused before they are resampled, and covariates
        that do not fit the model (see `covariate_input`) before anything is read. With `calibrate`, nominal heads
        are temperature-scaled with the trainer folder's calibration.json (written by uc_summarize) where it holds
        for this ensemble (see `calibration`).
        """
        self.check_files(image_files, roi_file)
        covariate_input = self.covariate_input(covariates, impute_missing_covariates)
        array, properties = preprocess_case(
            case_id,
            [Path(p) for p in image_files],
            None if roi_file is None else Path(roi_file),
            self.plans,
            max_input_voxels=max_input_voxels,
            max_resampled_voxels=max_resampled_voxels,
        )
        network_input = to_network_input(array, self.plans.num_roi_classes)
        per_head = self.predictions(network_input, tta, covariate_input, properties.zoom)
        calibration = self.calibration(calibrate)
        return per_head if calibration is None else calibration.apply(self.plans.classification_labels, per_head)

    def predict_case(
        self, image_files: Sequence[str | os.PathLike[str]], roi_file: Path | str | None = None, **options: Any
    ) -> list[ContractValue]:
        """The predict() contract for one case (`options` as for `predict_per_head`): per head a float (binary: p(1);
        regression: the value in the target's units) or a list of probabilities (more values)."""
        return [contract_value(p) for p in self.predict_per_head(image_files, roi_file, **options)]


class Predictor(EnsemblePredictor):
    """The ensemble's networks run with torch."""

    def __init__(
        self,
        artifact_path: Path | str,
        folds: Sequence[int | str] | None = None,
        task: str | int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        from universalclassifier.artifact.checkpoint import CHECKPOINT_ID

        super().__init__(artifact_path, folds, task)
        self.device = choose_device(device)
        loaded = [load_network_weights(folder, self.device, self.plans) for folder in self.fold_folders]
        check_folds_match_plans(
            self.trainer_folder,
            self.plans,
            {f.name: metadata for f, (_, metadata) in zip(self.fold_folders, loaded, strict=True)},
        )
        self.checkpoint_ids = {
            f.name: metadata.get(CHECKPOINT_ID) for f, (_, metadata) in zip(self.fold_folders, loaded, strict=True)
        }
        self.networks = [
            network_from_weights(self.plans, weights, metadata, folder).to(self.device).eval()
            for folder, (weights, metadata) in zip(self.fold_folders, loaded, strict=True)
        ]
        logger.info(
            "Loaded %s: %d fold(s) %s on %s",
            self.trainer_folder.parent.name,
            len(self.networks),
            [f.name for f in self.fold_folders],
            self.device,
        )

    def predictions(
        self, network_input: np.ndarray, tta: bool = False, covariates: np.ndarray | None = None, zoom: float = 1.0
    ) -> list[np.ndarray]:
        """See `EnsemblePredictor.predictions`; on CUDA in float16 autocast."""
        import torch

        from universalclassifier.network.heads import head_predictions

        with torch.inference_mode():
            batch = torch.from_numpy(network_input[None]).to(self.device)
            covariate_batch = None if covariates is None else torch.from_numpy(covariates[None]).to(self.device)
            zoom_batch = torch.tensor([[zoom]], dtype=torch.float32, device=self.device)
            flips = mirrorings(tta)
            sums = [torch.zeros(size, dtype=torch.float64, device=self.device) for size in self.plans.head_sizes]
            use_amp = self.device.type == "cuda"
            for folder, network in zip(self.fold_folders, self.networks, strict=True):
                for axes in flips:
                    x = torch.flip(batch, axes) if axes else batch
                    with torch.autocast(self.device.type, dtype=torch.float16, enabled=use_amp):
                        outputs = network(x, covariate_batch, zoom_batch)
                    predictions = head_predictions(self.plans.classification_labels, outputs)
                    if not all(bool(torch.isfinite(p).all()) for p in predictions):
                        raise self.not_finite(folder)
                    for total, prediction in zip(sums, predictions, strict=True):
                        total += prediction[0].double()
            count = len(self.networks) * len(flips)
            return [(total / count).cpu().numpy() for total in sums]
