"""Exporting a trained artifact's folds to ONNX, for `predict(..., engine="onnx")` (inference/onnx_engine.py).

Each fold's final checkpoint becomes `fold_X/model.onnx`: the network followed by its heads' output conversion
(softmax, grade probabilities, regression values in the target's units), with a dynamic batch axis and the spatial
size the plans fix. It is traced with torch's TorchScript-based exporter (`dynamo=False`, which needs no onnxscript)
at opset 17, which onnxruntime 1.14 and later run. Every export is compared with torch on a random batch of two
before it replaces an earlier one.

`uc_export_onnx DATA -t ID [-tr TRAINER] [-f FOLD ...]` runs `export_onnx` on a task's trainer folder.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from universalclassifier.artifact import (
    check_folds_match_plans,
    find_fold_folders,
    find_trainer_folder,
    load_network_weights,
    load_plans,
    network_from_weights,
)
from universalclassifier.artifact.checkpoint import CHECKPOINT_ID
from universalclassifier.atomic import atomic_path
from universalclassifier.console import TASK_FLAGS, add_common_options, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.inference.onnx_engine import (
    COVARIATES_INPUT,
    IMAGE_INPUT,
    ONNX_MODEL,
    ZOOM_INPUT,
    import_onnxruntime,
    onnx_metadata,
)
from universalclassifier.network.heads import head_predictions
from universalclassifier.network.i3d import I3DClassifier
from universalclassifier.paths import TRAINER
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

OPSET = 17
MAX_DIFFERENCE = 1e-4  # between onnxruntime and torch on the check batch, relative for values beyond 1


class PredictionGraph(nn.Module):
    """What is exported: a network and its heads' output conversion (`head_predictions`), one output per head."""

    def __init__(self, network: I3DClassifier, labels: Sequence[ClassificationLabel]) -> None:
        super().__init__()
        self.network = network
        self.labels = list(labels)

    def forward(
        self, image: torch.Tensor, zoom: torch.Tensor, covariates: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        return tuple(head_predictions(self.labels, self.network(image, covariates, zoom)))


def _check_batch(network: I3DClassifier, spatial_size: Sequence[int], batch_size: int = 2) -> dict[str, np.ndarray]:
    """A random input batch: image channels, the ROI channel (labels / num_roi_classes), zooms and covariates."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(batch_size, network.in_channels, *spatial_size)).astype(np.float32)
    classes = max(network.num_roi_classes, 2)
    image[:, -1] = rng.integers(0, classes, size=(batch_size, *spatial_size)) / classes
    batch = {IMAGE_INPUT: image, ZOOM_INPUT: rng.uniform(0.5, 1.0, size=(batch_size, 1)).astype(np.float32)}
    if network.num_covariates:
        batch[COVARIATES_INPUT] = rng.normal(size=(batch_size, network.num_covariates)).astype(np.float32)
    return batch


def largest_difference(onnx_outputs: Sequence[np.ndarray], torch_outputs: Sequence[np.ndarray]) -> float:
    """The largest difference between two sets of outputs, relative where the torch value exceeds 1 in magnitude."""
    return max(
        float((np.abs(a - b) / np.maximum(np.abs(b), 1.0)).max())
        for a, b in zip(onnx_outputs, torch_outputs, strict=True)
    )


def export_network(
    network: I3DClassifier,
    labels: Sequence[ClassificationLabel],
    spatial_size: Sequence[int],
    path: Path,
    metadata: Mapping[str, str],
) -> float:
    """Export `network` (in evaluation mode) with its heads' output conversion for inputs of `spatial_size` (Z, Y, X)
    to `path`, carrying `metadata`; returns the largest difference from torch on a random batch of two (see
    `largest_difference`). Raises RuntimeError, leaving `path` as it was, when it exceeds MAX_DIFFERENCE."""
    import onnx

    ort = import_onnxruntime()
    graph = PredictionGraph(network, labels).eval()
    batch = _check_batch(network, spatial_size)
    names = list(batch)  # image, zoom[, covariates]: the order of PredictionGraph.forward
    outputs = [f"prediction_{i}" for i in range(len(labels))]
    with torch.inference_mode():
        expected = [t.numpy() for t in graph(*(torch.from_numpy(batch[name]) for name in names))]
    with atomic_path(path) as temporary:
        with warnings.catch_warnings():
            # the spatial size is fixed by the plans, so the padding the tracer records as constants stays right
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based", DeprecationWarning)
            warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
            warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
            torch.onnx.export(
                graph,
                tuple(torch.from_numpy(batch[name]) for name in names),
                temporary,
                dynamo=False,
                opset_version=OPSET,
                input_names=names,
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [*names, *outputs]},
            )
        model = onnx.load(str(temporary))
        onnx.helper.set_model_props(model, dict(metadata))
        onnx.save(model, str(temporary))
        session = ort.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        kept = {i.name for i in session.get_inputs()}  # an input the network does not read is left out
        difference = largest_difference(session.run(None, {k: v for k, v in batch.items() if k in kept}), expected)
        if not difference <= MAX_DIFFERENCE:
            raise RuntimeError(
                f"The ONNX export for {path} differs from torch by {difference:.2e} (more than {MAX_DIFFERENCE}) on a "
                "check batch; it was not written. Please report this with your torch and onnxruntime versions."
            )
    return difference


def export_onnx(trainer_folder: Path | str, folds: Sequence[int | str] | None = None) -> list[Path]:
    """Export the final checkpoint of each fold (the given folds, else every trained fold) of a trainer folder to
    `fold_X/model.onnx`, replacing earlier exports; returns the written files in fold order."""
    trainer = find_trainer_folder(trainer_folder)
    plans = load_plans(trainer)
    written = []
    for folder in find_fold_folders(trainer, None if folds is None else list(folds)):
        weights, metadata = load_network_weights(folder, torch.device("cpu"), plans)
        check_folds_match_plans(trainer, plans, {folder.name: metadata})
        network = network_from_weights(plans, weights, metadata, folder).eval()
        path = folder / ONNX_MODEL
        difference = export_network(
            network, plans.classification_labels, plans.image_size, path,
            onnx_metadata(plans, metadata.get(CHECKPOINT_ID)),
        )
        logger.info("Wrote %s (largest difference from torch on a check batch: %.1e)", path, difference)
        written.append(path)
    return written


def export_onnx_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_export_onnx",
        description="Export each trained fold of a task to fold_X/model.onnx (its final checkpoint and the heads' "
        "output conversion, dynamic batch axis), for predict(..., engine='onnx'), which needs onnxruntime but no "
        "torch. Needs pip install 'universalclassifier[onnx]'.",
    )
    parser.add_argument("data_root", help="data root holding trained_models/")
    parser.add_argument(*TASK_FLAGS, required=True, help="task id (e.g. 1) or full name (e.g. Task001_Name)")
    parser.add_argument("-tr", "--trainer", default=TRAINER, help=f"trainer (recipe) to export (default {TRAINER})")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="folds to export (default: every trained fold)")
    add_common_options(parser)
    return parser


def _export(args: argparse.Namespace) -> None:
    from universalclassifier.paths import TaskPaths

    trainer_folder = TaskPaths.find(args.data_root, args.task).trainer_folder(trainer=args.trainer)
    if not trainer_folder.is_dir():
        raise UserInputError(f"No trained model at {trainer_folder}; train it first, or name the trainer with -tr.")
    export_onnx(trainer_folder, args.folds)


def export_onnx_main(argv: Sequence[str] | None = None) -> int:
    """`uc_export_onnx DATA -t ID [-tr TRAINER] [-f FOLD ...]`."""
    return run_command(export_onnx_parser().parse_args(argv), _export)


if __name__ == "__main__":
    raise SystemExit(export_onnx_main())
