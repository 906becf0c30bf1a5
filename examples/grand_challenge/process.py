#!/usr/bin/env python3
"""Grand-challenge algorithm entry point: classify the one case in /input and write one JSON per output.

The model comes from `/opt/ml/model` when one is there (grand-challenge extracts the model tarball uploaded on the
algorithm's Models page into it), else from the one baked into the image (`/opt/algorithm/artifact`); see
`choose_model`. Both locations are options (`--model_mount`, `--artifact`) with those defaults.

`task_config.json` maps the container's interfaces to the model:

    {
      "input_interfaces": ["ct-image"],                      # one per modality, in dataset.json order
      "roi_segmentation_interface": "organ-segmentation",    # or null for a model trained without ROIs
      "output_interfaces": ["lesion-contrast-likelihood", "lesion-size-likelihoods"], # one per classification label
      "covariate_interfaces": {"age": "patient-age", "sex": "patient-sex"},  # optional: model covariate -> interface
      "impute_missing_covariates": false                     # optional: impute null covariate values as in training
    }

Each image interface is read from `<input>/images/<interface>/` (exactly one image file there, or the slices of one
DICOM series), each covariate from
the value interface `<input>/<interface>.json` (a number, a category string or null); each output is written as
`<output>/<interface>.json`: the probability of value 1 for a binary label, the value for a regression label, else the
list of per-value probabilities.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from universalclassifier.dataset.image_io import dicom_series_files, split_extension
from universalclassifier.errors import UserInputError

logger = logging.getLogger("universalclassifier.grand_challenge")

DEFAULT_INPUT = Path("/input")
DEFAULT_OUTPUT = Path("/output")
DEFAULT_MODEL_MOUNT = Path("/opt/ml/model")  # where grand-challenge extracts a separately uploaded model tarball
DEFAULT_ARTIFACT = Path("/opt/algorithm/artifact")  # the model baked into the image (may be left empty)
DEFAULT_CONFIG = Path(__file__).resolve().parent / "task_config.json"
_CONFIG_KEYS = {
    "input_interfaces", "output_interfaces", "roi_segmentation_interface", "covariate_interfaces",
    "impute_missing_covariates",
}


@dataclass(frozen=True)
class TaskConfig:
    """Which grand-challenge interfaces feed the model and receive its outputs."""

    input_interfaces: list[str]
    output_interfaces: list[str]
    roi_segmentation_interface: str | None
    covariate_interfaces: dict[str, str] = field(default_factory=dict)
    impute_missing_covariates: bool = False


def _slug_list(config: dict, key: str, path: Path) -> list[str]:
    value = config.get(key)
    if not isinstance(value, list) or not value or not all(_is_slug(v) for v in value):
        raise UserInputError(f"{path}: '{key}' must be a non-empty list of interface slugs (got {value!r}).")
    if len(set(value)) != len(value):
        raise UserInputError(f"{path}: '{key}' lists an interface twice: {value}.")
    return value


def _is_slug(value: object) -> bool:
    return isinstance(value, str) and bool(value) and "/" not in value and value not in (".", "..")


def load_config(path: Path) -> TaskConfig:
    """Read and check task_config.json."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"Task config {path} does not exist; pass it with --config.") from None
    except json.JSONDecodeError as exc:
        raise UserInputError(f"Task config {path} is not valid JSON: {exc}.") from None
    if not isinstance(config, dict):
        raise UserInputError(f"Task config {path} must hold a JSON object.")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise UserInputError(f"{path}: unknown key(s) {unknown}; the keys are {sorted(_CONFIG_KEYS)}.")
    roi = config.get("roi_segmentation_interface")
    if roi is not None and not _is_slug(roi):
        raise UserInputError(f"{path}: 'roi_segmentation_interface' must be an interface slug or null (got {roi!r}).")
    covariates = config.get("covariate_interfaces", {})
    if not isinstance(covariates, dict) or not all(isinstance(k, str) and _is_slug(v) for k, v in covariates.items()):
        raise UserInputError(f"{path}: 'covariate_interfaces' must map covariate names to interface slugs.")
    impute = config.get("impute_missing_covariates", False)
    if not isinstance(impute, bool):
        raise UserInputError(f"{path}: 'impute_missing_covariates' must be true or false (got {impute!r}).")
    return TaskConfig(
        _slug_list(config, "input_interfaces", path), _slug_list(config, "output_interfaces", path), roi,
        covariates, impute,
    )


def read_covariates(input_dir: Path, interfaces: dict[str, str]) -> dict[str, object] | None:
    """Each covariate's value from its value interface `<input_dir>/<interface>.json`; None without covariates."""
    if not interfaces:
        return None
    values = {}
    for name, interface in interfaces.items():
        path = input_dir / f"{interface}.json"
        try:
            values[name] = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserInputError(f"No file {path} for covariate '{name}' (interface '{interface}').") from None
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path} (covariate '{name}') is not valid JSON: {exc}.") from None
    return values


def find_interface_image(input_dir: Path, interface: str) -> Path:
    """The single image file in `<input_dir>/images/<interface>/`, or that folder itself when it holds the slices of
    one DICOM series (files without an image extension)."""
    folder = input_dir / "images" / interface
    if not folder.is_dir():
        raise UserInputError(f"No folder {folder} for input interface '{interface}'.")
    images = sorted(p for p in folder.iterdir() if p.is_file() and split_extension(p)[1])
    if not images and any(p.is_file() for p in folder.iterdir()):
        dicom_series_files(folder)  # refuses a folder without exactly one DICOM series, naming it
        return folder
    if len(images) != 1:
        found = ", ".join(p.name for p in images) or "none"
        raise UserInputError(
            f"Expected exactly one image file in {folder} for interface '{interface}', found {len(images)}: {found}."
        )
    return images[0]


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def choose_model(model_mount: Path, baked_in: Path) -> Path:
    """The model to predict with: the uploaded one at `model_mount` when there is one, else the baked-in `baked_in`.

    At `model_mount`: a model zip of uc_export; a folder holding exactly one `.zip` at its top (the uploaded tarball
    held model.zip), which is used; or any other non-empty folder, read as a trained_models folder (or a folder below
    it). An absent or empty `model_mount` means no model was uploaded.
    """
    if model_mount.is_file():
        return model_mount
    if _holds_files(model_mount):
        zips = sorted(p for p in model_mount.iterdir() if p.is_file() and p.suffix.lower() == ".zip")
        if len(zips) > 1:
            raise UserInputError(
                f"{model_mount} holds several model zips ({', '.join(p.name for p in zips)}); upload a tarball with "
                "one."
            )
        return zips[0] if zips else model_mount
    if _holds_files(baked_in):
        return baked_in
    raise UserInputError(
        f"No model: nothing in {model_mount} (upload one on the algorithm's Models page) and none baked into the "
        f"image at {baked_in} (see examples/grand_challenge/README.md)."
    )


def run(input_dir: Path, output_dir: Path, artifact: Path, config_file: Path) -> dict[str, float | list[float]]:
    """Classify the case in `input_dir` with the model `artifact` (a trained_models folder, a folder below it, or a
    model zip) and write one JSON per output interface; returns what was written."""
    config = load_config(config_file)
    images = [find_interface_image(input_dir, interface) for interface in config.input_interfaces]
    roi = None
    if config.roi_segmentation_interface is not None:
        roi = find_interface_image(input_dir, config.roi_segmentation_interface)
    logger.info("Inputs: %s; ROI: %s; model: %s", [str(p) for p in images], roi, artifact)

    from universalclassifier import predict  # imports torch: only once the inputs are known to be there

    covariates = read_covariates(input_dir, config.covariate_interfaces)
    result = predict(
        artifact, images, roi, covariates=covariates, impute_missing_covariates=config.impute_missing_covariates
    )
    if len(result) != len(config.output_interfaces):
        raise UserInputError(
            f"The model predicts {len(result)} classification label(s) but {config_file} lists "
            f"{len(config.output_interfaces)} output interface(s) {config.output_interfaces}."
        )
    outputs = dict(zip(config.output_interfaces, result, strict=True))
    for interface, value in outputs.items():
        target = output_dir / f"{interface}.json"
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(value) + "\n")
        except OSError as exc:
            raise UserInputError(f"Cannot write {target}: {exc.strerror or exc}.") from None
        logger.info("Wrote %s: %s", target, value)
    return outputs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; every path defaults to the container layout."""
    parser = argparse.ArgumentParser(description="Grand-challenge entry point of a universalclassifier model.")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help=f"input folder (default {DEFAULT_INPUT})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"output folder (default {DEFAULT_OUTPUT})")
    parser.add_argument(
        "--model_mount", type=Path, default=DEFAULT_MODEL_MOUNT,
        help=f"the uploaded model, used when present: a model zip, a folder with one, or a trained_models folder "
        f"(default {DEFAULT_MODEL_MOUNT})",
    )
    parser.add_argument(
        "--artifact", type=Path, default=DEFAULT_ARTIFACT,
        help=f"the baked-in trained_models folder, used when nothing is uploaded (default {DEFAULT_ARTIFACT})",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="task_config.json (default: the one next to this script)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the algorithm; user and configuration mistakes end with a one-line message and exit code 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        run(args.input, args.output, choose_model(args.model_mount, args.artifact), args.config)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
