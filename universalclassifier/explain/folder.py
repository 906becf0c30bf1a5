"""Saliency maps for every case of a flat folder (`uc_explain`), laid out as `uc_predict` reads its input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from universalclassifier.covariates import read_covariates_csv
from universalclassifier.errors import UserInputError
from universalclassifier.explain.attribution import require_captum
from universalclassifier.explain.explainer import explain_case, resolve_heads, resolve_methods
from universalclassifier.inference.predict import get_predictor
from universalclassifier.inference.predict_folder import find_cases, find_roi

logger = logging.getLogger(__name__)


def explain_folder(
    artifact_path: Path,
    input_folder: Path,
    output_folder: Path,
    roi_folder: Path | None = None,
    *,
    method: str = "gradcam",
    heads: Sequence[str] | None = None,
    task: str | int | None = None,
    folds: Sequence[int | str] | None = None,
    covariates_file: Path | None = None,
    impute_missing_covariates: bool = False,
    gradcam_layer: str | None = None,
    show_progress: bool = True,
) -> list[str]:
    """Write the maps of every case of `input_folder` (CASE_XXXX.<ext>; ROIs as `roi_folder`/CASE.<ext>) into
    `output_folder` (see `explain`); returns the ids of the cases that failed (each is logged, the others still run).

    Methods, heads, the ROI folder and every case's covariates are checked before the first case is explained.
    """
    methods = resolve_methods(method)
    require_captum()
    predictor = get_predictor(artifact_path, folds, task)
    plans = predictor.plans
    head_indices = resolve_heads(plans, heads)
    if plans.uses_roi and roi_folder is None:
        raise UserInputError("This model was trained with ROI segmentations: pass the ROI folder with -s.")
    if not plans.uses_roi and roi_folder is not None:
        raise UserInputError("This model was trained without ROI segmentations: drop -s.")
    cases = find_cases(Path(input_folder), plans.num_modalities)
    names = [c.name for c in plans.covariates]
    if covariates_file is not None and not names:
        raise UserInputError("This model was trained without covariates: drop --covariates.")
    by_case = {} if covariates_file is None else read_covariates_csv(covariates_file, plans.covariates)
    for case_id in cases:
        try:
            predictor.covariate_input(by_case.get(case_id), impute_missing_covariates)
        except UserInputError as exc:
            where = f" in {covariates_file}" if covariates_file is not None else ""
            raise UserInputError(
                f"case {case_id}{where}: {exc} (uc_explain: --covariates CSV, --impute_missing_covariates)"
            ) from None
    failed = []
    for case_id, files in tqdm(cases.items(), desc="Explaining", unit="case", disable=not show_progress):
        try:
            roi = find_roi(roi_folder, case_id) if roi_folder is not None else None
            explain_case(
                predictor,
                files,
                roi,
                Path(output_folder),
                methods=methods,
                heads=head_indices,
                case_id=case_id,
                covariates=by_case.get(case_id),
                impute_missing_covariates=impute_missing_covariates,
                gradcam_layer=gradcam_layer,
            )
        except (ValueError, RuntimeError, OSError) as exc:  # report the case, go on with the others
            logger.error("case %s failed: %s", case_id, exc)
            failed.append(case_id)
    logger.info("Explained %d case(s) into %s (%d failed)", len(cases) - len(failed), output_folder, len(failed))
    return failed
