"""The predictor: loads every trained fold of an artifact once and turns one case's files into probabilities."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from universalclassifier.artifact import (
    check_folds_match_plans,
    find_fold_folders,
    find_trainer_folder,
    load_network_weights,
    load_plans,
)
from universalclassifier.covariates import check_case_covariates, encode_covariates
from universalclassifier.dataset.image_io import is_existing_image
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.temperature import apply_temperature, read_temperatures
from universalclassifier.network.heads import head_predictions
from universalclassifier.network.i3d import network_for
from universalclassifier.preprocessing.preprocessor import (
    MAX_INPUT_VOXELS,
    MAX_RESAMPLED_VOXELS,
    preprocess_case,
    to_network_input,
)

logger = logging.getLogger(__name__)


def choose_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """An ensemble of the trained folds of one task, ready to classify cases."""

    def __init__(
        self,
        artifact_path: Path | str,
        folds: Sequence[int | str] | None = None,
        task: str | int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.trainer_folder = find_trainer_folder(artifact_path, task)
        self.plans = load_plans(self.trainer_folder)
        self.fold_folders = find_fold_folders(self.trainer_folder, None if folds is None else list(folds))
        self.device = choose_device(device)
        self.temperatures = read_temperatures(self.trainer_folder, self.plans)  # nominal heads, from uc_summarize
        loaded = [load_network_weights(folder, self.device) for folder in self.fold_folders]
        check_folds_match_plans(
            self.trainer_folder,
            self.plans,
            {f.name: metadata for f, (_, metadata) in zip(self.fold_folders, loaded, strict=True)},
        )
        self.networks = []
        for weights, metadata in loaded:
            network = network_for(self.plans, metadata["recipe"])
            network.load_state_dict(weights)
            self.networks.append(network.to(self.device).eval())
        logger.info(
            "Loaded %s: %d fold(s) %s on %s",
            self.trainer_folder.parent.name,
            len(self.networks),
            [f.name for f in self.fold_folders],
            self.device,
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

    @torch.inference_mode()
    def predictions(
        self, network_input: np.ndarray, tta: bool = False, covariates: np.ndarray | None = None, zoom: float = 1.0
    ) -> list[np.ndarray]:
        """Per head the value probabilities (or the regression value) averaged over folds (and mirrorings with `tta`)
        for one (C, Z, Y, X) network input, its encoded covariates (see `covariate_input`) and its zoom (see
        `preprocess_case`)."""
        batch = torch.from_numpy(network_input[None]).to(self.device)
        covariate_batch = None if covariates is None else torch.from_numpy(covariates[None]).to(self.device)
        zoom_batch = torch.tensor([[zoom]], dtype=torch.float32, device=self.device)
        flips = [()] if not tta else [axes for r in range(4) for axes in itertools.combinations((2, 3, 4), r)]
        sums = [torch.zeros(size, dtype=torch.float64, device=self.device) for size in self.plans.head_sizes]
        use_amp = self.device.type == "cuda"
        for network in self.networks:
            for axes in flips:
                x = torch.flip(batch, axes) if axes else batch
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=use_amp):
                    outputs = network(x, covariate_batch, zoom_batch)
                predictions = head_predictions(self.plans.classification_labels, outputs)
                for total, prediction in zip(sums, predictions, strict=True):
                    total += prediction[0].double()
        count = len(self.networks) * len(flips)
        return [(total / count).cpu().numpy() for total in sums]

    def predict_case(
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
    ) -> list[float | list[float]]:
        """The predict() contract for one case: per head a float (binary: p(1); regression: the value in the target's
        units) or a list of probabilities (more values).

        Inputs beyond the size limits (see `preprocess_case`) are refused before they are resampled, and covariates
        that do not fit the model (see `covariate_input`) before anything is read. With `calibrate`, nominal heads
        are temperature-scaled with the trainer folder's calibration.json (written by uc_summarize), if any.
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
        if calibrate:
            per_head = [
                apply_temperature(p, self.temperatures[head.name]) if head.name in self.temperatures else p
                for head, p in zip(self.plans.classification_labels, per_head, strict=True)
            ]
        return [float(p[-1]) if len(p) <= 2 else [float(v) for v in p] for p in per_head]  # p(1), or the value
