"""Predict every case of a flat folder (`uc_predict.sh`): one JSON per case and a summary.csv.

A case's JSON records the configuration it was made with (folds and their checkpoint ids, TTA, the calibration
applied, plans hash, package version, the case's covariates); a later run skips a case only when its result is
complete and that configuration is the same, and predicts it again otherwise. summary.csv lists the results of the
current configuration only.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from universalclassifier.atomic import write_atomic, write_json_atomic
from universalclassifier.covariates import read_covariates_csv
from universalclassifier.dataset.image_io import is_existing_file, is_existing_folder, split_extension
from universalclassifier.errors import UserInputError
from universalclassifier.inference.outputs import (
    check_head_result,
    contract_value,
    head_results,
    prediction_cells,
    prediction_columns,
)
from universalclassifier.inference.predict import get_predictor
from universalclassifier.inference.predictor import EnsemblePredictor
from universalclassifier.json_files import read_json_file
from universalclassifier.plans import ClassificationLabel
from universalclassifier.preprocessing.preprocessor import InputLimits

logger = logging.getLogger(__name__)

_MODALITY_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<modality>\d{4})$")


def find_cases(input_folder: Path, num_modalities: int) -> dict[str, list[Path]]:
    """Group `CASE_XXXX.<ext>` files (or `CASE_XXXX/` folders holding one DICOM series) by case; every case must have
    modalities 0..num_modalities-1."""
    if not input_folder.is_dir():
        raise UserInputError(f"Input folder {input_folder} does not exist.")
    found: dict[str, dict[int, Path]] = defaultdict(dict)
    series_and_file: list[str] = []
    for path in sorted(input_folder.iterdir()):
        stem, ext = split_extension(path)
        match = _MODALITY_SUFFIX.match(stem)
        is_series = not ext and is_existing_folder(path)
        if (ext or is_series) and match:
            case, modality = match.group("case"), int(match.group("modality"))
            if modality in found[case] and (is_series or is_existing_folder(found[case][modality])):
                series_and_file.append(f"{found[case][modality].name} and {path.name}")
            found[case][modality] = path
    if not found:
        raise UserInputError(
            f"{input_folder} holds no image named CASE_XXXX.<ext> or DICOM series folder CASE_XXXX/ (XXXX = modality "
            "index, e.g. 0000)."
        )
    problems = [
        f"case {case}: has modalities {sorted(files)}, expected {list(range(num_modalities))}"
        for case, files in found.items()
        if sorted(files) != list(range(num_modalities))
    ]
    problems += [f"both {pair} are one case's modality: keep only one" for pair in series_and_file]
    if problems:
        raise UserInputError(f"Input folder {input_folder} does not match the model: " + "; ".join(problems))
    return {case: [files[m] for m in range(num_modalities)] for case, files in sorted(found.items())}


def find_roi(roi_folder: Path, case_id: str) -> Path:
    """The ROI file `CASE.<ext>` of a case, else its DICOM file `CASE.dcm` (a DICOM-SEG), else its DICOM series
    folder `CASE/`."""
    matches = [p for p in roi_folder.iterdir() if split_extension(p)[1] and split_extension(p)[0] == case_id]
    if not matches:
        if is_existing_file(roi_folder / f"{case_id}.dcm"):
            return roi_folder / f"{case_id}.dcm"
        if is_existing_folder(roi_folder / case_id):
            return roi_folder / case_id
        raise UserInputError(
            f"case {case_id}: no ROI file {case_id}.<ext>, DICOM-SEG {case_id}.dcm or DICOM series folder {case_id}/ "
            f"in {roi_folder}."
        )
    return matches[0]


MAX_RESULT_BYTES = 1024 * 1024  # a case's result JSON: a few hundred bytes per head


def read_result(out_file: Path, case_id: str, labels: Sequence[ClassificationLabel]) -> dict | None:
    """A case's result JSON if it is complete and well-formed for these heads, else None (missing, truncated, ...).

    A result of a version that recorded no configuration (and no `heads`) is returned as it is: its configuration
    differs from every current one, so it is predicted again.
    """
    try:
        result = read_json_file(out_file, "case result", MAX_RESULT_BYTES)
    except UserInputError:
        return None
    if not isinstance(result, dict) or result.get("case_id") != case_id:
        return None
    if "configuration" not in result:
        return result
    heads = result.get("heads")
    if not isinstance(heads, dict) or not all(check_head_result(label, heads.get(label.name)) for label in labels):
        return None
    return result


def case_result(
    case_id: str, labels: Sequence[ClassificationLabel], per_head: Sequence[np.ndarray], configuration: dict
) -> dict:
    """A case's result JSON: per head its predict() value (as before, for scripts that read it), `heads` with the
    probabilities, predicted value and its name (see inference/outputs.py) and the `configuration` it was made with."""
    return {
        "case_id": case_id,
        **{label.name: contract_value(p) for label, p in zip(labels, per_head, strict=True)},
        "heads": head_results(labels, per_head),
        "configuration": configuration,
    }


def _changed(stored: dict, configuration: dict) -> list[str]:
    """What differs between a stored result's configuration and the current one (its keys, or "configuration" for a
    result made before configurations were recorded)."""
    recorded = stored.get("configuration")
    if not isinstance(recorded, dict):
        return ["configuration"]
    return [key for key, value in configuration.items() if recorded.get(key) != value]


def _cases_to_predict(
    cases: dict[str, list[Path]],
    output_folder: Path,
    labels: Sequence[ClassificationLabel],
    configurations: dict[str, dict],
) -> dict[str, list[Path]]:
    """The cases without a complete result made with their current configuration; logs how many are predicted again
    because their configuration changed, and what changed."""
    todo, reasons, redone = {}, Counter[str](), 0
    for case_id, files in cases.items():
        out_file = output_folder / f"{case_id}.json"
        if not out_file.exists():
            todo[case_id] = files
            continue
        stored = read_result(out_file, case_id, labels)
        if stored is None:
            logger.warning("case %s: %s is damaged or incomplete; predicting it again", case_id, out_file)
            todo[case_id] = files
        elif changed := _changed(stored, configurations[case_id]):
            logger.debug("case %s: %s was made with another %s; predicting it again", case_id, out_file, changed)
            todo[case_id] = files
            redone += 1
            reasons.update(changed)
        else:
            logger.debug("case %s: %s exists, skipped", case_id, out_file)
    if redone:
        logger.info(
            "Predicting %d case(s) again: their results were made with another configuration (%s differed).",
            redone,
            ", ".join(f"{key} in {count}" for key, count in sorted(reasons.items())),
        )
    return todo


def _result_row(case_id: str, result: dict, labels: Sequence[ClassificationLabel]) -> list[str]:
    row = [case_id]
    for label in labels:
        row += prediction_cells(label, result["heads"][label.name])
    return row


def folder_inputs(
    predictor: EnsemblePredictor,
    input_folder: Path,
    roi_folder: Path | None,
    covariates_file: Path | None,
    impute_missing: bool,
) -> tuple[dict[str, list[Path]], dict[str, dict]]:
    """The cases of `input_folder` and their covariates from `covariates_file`, checked against the model before any
    case is processed: an ROI folder given iff the model was trained with ROIs, every case's covariates."""
    plans = predictor.plans
    if plans.uses_roi and roi_folder is None:
        raise UserInputError("This model was trained with ROI segmentations: pass the ROI folder with -s.")
    if not plans.uses_roi and roi_folder is not None:
        raise UserInputError("This model was trained without ROI segmentations: drop -s.")
    cases = find_cases(Path(input_folder), plans.num_modalities)
    names = [c.name for c in plans.covariates]
    if covariates_file is not None and not names:
        raise UserInputError("This model was trained without covariates: drop --covariates.")
    if covariates_file is None and names and not impute_missing:
        raise UserInputError(
            f"This model was trained with the covariates {names}: pass them with --covariates CSV (columns case_id, "
            f"{', '.join(names)}), or --impute_missing_covariates to impute them as in training."
        )
    by_case = {} if covariates_file is None else read_covariates_csv(covariates_file, plans.covariates)
    for case_id in cases:
        try:
            predictor.covariate_input(by_case.get(case_id), impute_missing)
        except UserInputError as exc:
            raise UserInputError(f"case {case_id} in {covariates_file}: {exc}") from None
    return cases, by_case


def predict_folder(
    artifact_path: Path,
    input_folder: Path,
    output_folder: Path,
    roi_folder: Path | None = None,
    task: str | int | None = None,
    folds: list[int | str] | None = None,
    tta: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    limits: InputLimits = InputLimits(),
    covariates_file: Path | None = None,
    impute_missing_covariates: bool = False,
    calibrate: bool = True,
    engine: str = "torch",
) -> list[str]:
    """Predict all cases of `input_folder` into `output_folder`; returns the ids of cases that failed.

    `engine`: "torch", or "onnx" for the folds' exported model.onnx files (see `predict`).

    `limits` bounds each case's size (see `InputLimits`); a case beyond them fails with a message naming the limit.
    `covariates_file`: a CSV (case_id and one column per covariate) for a model trained with covariates; cases
    missing from it, and empty cells, need `impute_missing_covariates`. Checked for every case before any is predicted.
    """
    predictor = get_predictor(artifact_path, folds, task, engine=engine)
    labels = predictor.plans.classification_labels
    cases, covariates = folder_inputs(predictor, input_folder, roi_folder, covariates_file, impute_missing_covariates)
    output_folder.mkdir(parents=True, exist_ok=True)
    configuration = predictor.configuration(tta, calibrate)
    if calibrate and configuration["calibration"] is None:
        logger.info("Predicting without calibration: the trainer folder holds none that fits these folds.")
    case_configurations = {
        case_id: {
            **configuration,
            "covariates": covariates.get(case_id),
            "impute_missing_covariates": impute_missing_covariates,
        }
        for case_id in cases
    }
    todo = cases if overwrite else _cases_to_predict(cases, output_folder, labels, case_configurations)
    failed, skipped = [], len(cases) - len(todo)
    for case_id, files in tqdm(todo.items(), desc="Predicting", unit="case", disable=not show_progress):
        try:
            roi = find_roi(roi_folder, case_id) if roi_folder is not None else None
            per_head = predictor.predict_per_head(
                files,
                roi,
                tta=tta,
                case_id=case_id,
                max_input_voxels=limits.max_input_voxels,
                max_resampled_voxels=limits.max_resampled_voxels,
                covariates=covariates.get(case_id),
                impute_missing_covariates=impute_missing_covariates,
                calibrate=calibrate,
            )
        except (ValueError, RuntimeError, OSError) as exc:  # report the case, go on with the others
            logger.error("case %s failed: %s", case_id, exc)
            failed.append(case_id)
            continue
        result = case_result(case_id, labels, per_head, case_configurations[case_id])
        write_json_atomic(output_folder / f"{case_id}.json", result)
    header = ["case_id"] + [column for label in labels for column in prediction_columns(label)]
    rows = [header]
    for case_id in cases:
        stored = read_result(output_folder / f"{case_id}.json", case_id, labels)
        if stored is not None and not _changed(stored, case_configurations[case_id]):
            rows.append(_result_row(case_id, stored, labels))
        elif stored is not None:
            logger.warning("case %s: its result is from another configuration; left out of summary.csv", case_id)
    write_atomic(output_folder / "summary.csv", lambda handle: csv.writer(handle).writerows(rows))
    logger.info(
        "Predicted %d case(s) into %s (%d finished before with the same configuration, %d failed)",
        len(cases) - skipped - len(failed),
        output_folder,
        skipped,
        len(failed),
    )
    return failed
