"""Saliency maps for every case of a flat folder (`uc_explain`), laid out as `uc_predict` reads its input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from universalclassifier.explain.attribution import require_captum
from universalclassifier.explain.explainer import explain_case, resolve_heads, resolve_methods
from universalclassifier.inference.predict import get_predictor
from universalclassifier.inference.predict_folder import find_roi, folder_inputs

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
    head_indices = resolve_heads(predictor.plans, heads)
    cases, by_case = folder_inputs(predictor, input_folder, roi_folder, covariates_file, impute_missing_covariates)
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
