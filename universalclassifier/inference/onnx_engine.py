"""`predict(..., engine="onnx")`: the folds' ONNX exports run with onnxruntime, without torch.

Each fold folder holds `model.onnx`, written from its final checkpoint by `network/onnx_export.py` (`uc_export_onnx`,
or `uc_export --onnx`). Its inputs are `image` (N, C, Z, Y, X; the plans fix C, Z, Y and X), `zoom` (N, 1) and, for a
model with covariates, `covariates` (N, width); an input the network does not read (`zoom` without ROI descriptors) is
left out of the graph. Its outputs are the heads' predictions, in head order: value probabilities, or the value in the
target's units (the heads' output conversion is part of the graph). Preprocessing, covariates, mirroring, the fold
average and calibration are those of `EnsemblePredictor`, shared with the torch engine.

Its metadata (key `universalclassifier`, a JSON object) ties it to the checkpoint and plans it was exported from: a
model.onnx of an earlier checkpoint of the fold (trained again since) or of other plans is refused.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from universalclassifier.errors import UserInputError
from universalclassifier.inference.predictor import EnsemblePredictor, mirrorings
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import ArtifactLayout
from universalclassifier.plans import Plans
from universalclassifier.version import __version__

logger = logging.getLogger(__name__)

ONNX_MODEL = "model.onnx"
ONNX_FORMAT_VERSION = 1
METADATA_KEY = "universalclassifier"
IMAGE_INPUT, ZOOM_INPUT, COVARIATES_INPUT = "image", "zoom", "covariates"
ONNX_SLACK_BYTES = 64 * 2**20  # the graph and the constants folded into it, beside the float32 parameters
EXPORT_HINT = (
    "export the folds with torch installed: uc_export_onnx DATA -t TASK [-tr TRAINER] [-f FOLD ...] (or uc_export "
    "--onnx, or export_onnx(trainer_folder) from universalclassifier.network.onnx_export)"
)


def onnx_metadata(plans: Plans, checkpoint_id: str | None) -> dict[str, str]:
    """The metadata an export of a fold (its final checkpoint's id) for these plans carries."""
    content = {
        "format_version": ONNX_FORMAT_VERSION,
        "checkpoint_id": checkpoint_id,
        "plans_hash": plans.content_hash(),
        "heads": plans.head_names,
        "package_version": __version__,
    }
    return {METADATA_KEY: json.dumps(content, sort_keys=True)}


def import_onnxruntime() -> ModuleType:
    """onnxruntime, or a UserInputError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserInputError(
            "engine='onnx' needs onnxruntime: pip install 'universalclassifier[onnx]' (or pip install onnxruntime), "
            "or predict with engine='torch'."
        ) from None
    return onnxruntime


def onnx_device(device: object) -> str:
    """The device an ONNX ensemble runs on, written one way: `cpu` or `cuda:N` (None: CUDA when onnxruntime has its
    CUDA provider, else the CPU). Refuses other devices, and CUDA without that provider."""
    providers = import_onnxruntime().get_available_providers()
    if device is None:
        return "cuda:0" if "CUDAExecutionProvider" in providers else "cpu"
    kind, _, index = str(device).partition(":")
    if kind == "cpu" and index in ("", "0"):
        return "cpu"
    if kind != "cuda" or not (index == "" or index.isdecimal()):
        raise UserInputError(f'device {device!r} is not supported; use "cpu" or "cuda[:N]" (None: CUDA if available).')
    if "CUDAExecutionProvider" not in providers:
        raise UserInputError(
            f"device {device!r}: this onnxruntime has no CUDA provider (it has {providers}); install onnxruntime-gpu, "
            'or use "cpu".'
        )
    return f"cuda:{int(index or 0)}"


def _providers(device: str) -> list[Any]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2])}), "CPUExecutionProvider"]


def _final_checkpoint_id(fold_folder: Path) -> str | None:
    """The checkpoint_id in the metadata beside the fold's final checkpoint (artifact/checkpoint.py `metadata_file`,
    which imports torch), None where it records none."""
    checkpoint = fold_folder / ArtifactLayout.FINAL
    metadata = read_json_file(checkpoint.with_name(checkpoint.name + ".json"), "checkpoint metadata")
    value = metadata.get("checkpoint_id") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


class OnnxPredictor(EnsemblePredictor):
    """The ensemble's folds run from their `model.onnx` with onnxruntime; needs no torch."""

    def __init__(
        self,
        artifact_path: Path | str,
        folds: Sequence[int | str] | None = None,
        task: str | int | None = None,
        device: object = None,
    ) -> None:
        ort = import_onnxruntime()
        super().__init__(artifact_path, folds, task)
        self.device = onnx_device(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's to act on
        self.sessions = [self._load(ort, folder, options) for folder in self.fold_folders]
        self.input_names = [[i.name for i in session.get_inputs()] for session in self.sessions]
        logger.info(
            "Loaded %s: %d fold(s) %s with onnxruntime on %s",
            self.trainer_folder.parent.name,
            len(self.sessions),
            [f.name for f in self.fold_folders],
            self.device,
        )

    def _load(self, ort: ModuleType, fold_folder: Path, options: Any) -> Any:
        """The onnxruntime session of a fold's model.onnx, refused where it is missing or does not belong to the
        fold's final checkpoint and these plans; records the checkpoint id."""
        path = fold_folder / ONNX_MODEL
        if not path.exists():
            raise UserInputError(f"{path} is missing: engine='onnx' runs each fold's ONNX export; {EXPORT_HINT}.")
        info = path.stat()
        max_bytes = 8 * self.plans.network_parameter_bound + ONNX_SLACK_BYTES
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            raise UserInputError(
                f"{path} is not a regular file of at most {max_bytes:,} bytes (an export of this model); {EXPORT_HINT}."
            )
        try:
            session = ort.InferenceSession(str(path), options, providers=_providers(self.device))
        except Exception as exc:  # onnxruntime raises its own types for unreadable models
            raise UserInputError(f"onnxruntime cannot load {path} ({exc}); {EXPORT_HINT}.") from None
        try:
            metadata = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except (KeyError, ValueError):
            metadata = None
        if not isinstance(metadata, dict) or metadata.get("format_version") != ONNX_FORMAT_VERSION:
            raise UserInputError(
                f"{path} is not an ONNX export of format {ONNX_FORMAT_VERSION} of universalclassifier; {EXPORT_HINT}."
            )
        if metadata.get("plans_hash") != self.plans.content_hash():
            raise UserInputError(
                f"{path} was exported for other plans than {self.trainer_folder / ArtifactLayout.PLANS} (the task was "
                f"planned again); {EXPORT_HINT}."
            )
        if metadata.get("checkpoint_id") != _final_checkpoint_id(fold_folder):
            raise UserInputError(
                f"{path} was exported from another checkpoint than {fold_folder / ArtifactLayout.FINAL} (the fold was "
                f"trained again since); {EXPORT_HINT}."
            )
        inputs = {i.name: i.shape for i in session.get_inputs()}
        expected = [self.plans.num_modalities + 1, *self.plans.image_size]
        fits = (
            list(inputs.get(IMAGE_INPUT, [])[1:]) == expected
            and set(inputs) <= {IMAGE_INPUT, ZOOM_INPUT, COVARIATES_INPUT}
            and (COVARIATES_INPUT in inputs) == bool(self.plans.covariates)
            and len(session.get_outputs()) == len(self.plans.classification_labels)
        )
        if not fits:
            raise UserInputError(
                f"The inputs {inputs} or the {len(session.get_outputs())} outputs of {path} do not fit the plans (an "
                f"image input of shape [N, {', '.join(map(str, expected))}], one output per head); {EXPORT_HINT}."
            )
        self.checkpoint_ids[fold_folder.name] = metadata["checkpoint_id"]
        return session

    def predictions(
        self, network_input: np.ndarray, tta: bool = False, covariates: np.ndarray | None = None, zoom: float = 1.0
    ) -> list[np.ndarray]:
        """See `EnsemblePredictor.predictions`; in float32 on every device."""
        batch = network_input[None].astype(np.float32, copy=False)
        feeds = {ZOOM_INPUT: np.array([[zoom]], dtype=np.float32)}
        if covariates is not None:
            feeds[COVARIATES_INPUT] = covariates[None].astype(np.float32)
        flips = mirrorings(tta)
        sums = [np.zeros(size, dtype=np.float64) for size in self.plans.head_sizes]
        for folder, session, names in zip(self.fold_folders, self.sessions, self.input_names, strict=True):
            for axes in flips:
                feeds[IMAGE_INPUT] = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
                outputs = session.run(None, {name: feeds[name] for name in names})
                if not all(np.isfinite(output).all() for output in outputs):
                    raise self.not_finite(folder)
                for total, output in zip(sums, outputs, strict=True):
                    total += output[0]
        count = len(self.sessions) * len(flips)
        return [total / count for total in sums]
