"""`explain()`: saliency maps of one case on its original image grid, one per head and method, plus a PNG each."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import torch

from universalclassifier.checks import shown_value
from universalclassifier.dataset.image_io import read_image, split_extension, write_image
from universalclassifier.errors import UserInputError
from universalclassifier.explain.attribution import (
    OCCLUSION_STRIDE,
    OCCLUSION_WINDOW,
    check_gradcam_layer,
    ensemble_maps,
    require_captum,
)
from universalclassifier.explain.backmapping import to_original_grid
from universalclassifier.explain.figure import peak_voxel, save_map_figure
from universalclassifier.explain.methods import METHOD_CHOICES, METHODS
from universalclassifier.explain.targets import HeadTarget
from universalclassifier.inference.predict import get_predictor
from universalclassifier.inference.predictor import Predictor
from universalclassifier.names import NAME_RULE, file_name_for, is_name
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.preprocessor import preprocess_case, to_network_input

logger = logging.getLogger(__name__)

DEFAULT_EXTENSION = ".nii.gz"  # for inputs without an image extension (DICOM series folders)
_MODALITY_SUFFIX = re.compile(r"_\d{4}$")


def resolve_methods(method: object) -> list[str]:
    """The methods `method` names ("gradcam", "occlusion" or "both"), refused with the choices otherwise."""
    if not isinstance(method, str) or method not in METHOD_CHOICES:
        raise UserInputError(f"Unknown method {method!r}; choose one of {list(METHOD_CHOICES)}.")
    return list(METHODS) if method == "both" else [method]


def resolve_heads(plans: Plans, head: str | Sequence[str] | None) -> list[int]:
    """The indices of the heads `head` names (one name or several; None: every head), refused when unknown."""
    if head is None:
        return list(range(len(plans.head_names)))
    names = [head] if isinstance(head, str) else list(head)
    unknown = [name for name in names if name not in plans.head_names]
    if unknown or not names:
        raise UserInputError(f"Unknown head(s) {unknown or names}; this model has the heads {plans.head_names}.")
    return [plans.head_names.index(name) for name in dict.fromkeys(names)]


def case_id_of(image_file: Path | str) -> str:
    """The case id of an image file named CASE_XXXX.<ext> (or CASE.<ext>): CASE."""
    stem, _ = split_extension(image_file)
    return _MODALITY_SUFFIX.sub("", stem)


def _write_renamed(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a hidden sibling with the same extension, renamed into place once complete."""
    stem, extension = split_extension(path)
    temporary = path.with_name(f".{stem}.partial{extension or path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def explain_case(
    predictor: Predictor,
    image_files: Sequence[Path | str],
    roi_file: Path | str | None,
    output_folder: Path,
    *,
    methods: Sequence[str],
    heads: Sequence[int],
    case_id: str,
    covariates: Mapping[str, object] | None = None,
    impute_missing_covariates: bool = False,
    gradcam_layer: str | None = None,
    occlusion_window: float = OCCLUSION_WINDOW,
    occlusion_stride: float = OCCLUSION_STRIDE,
) -> dict[str, dict[str, dict]]:
    """The maps of one case with a loaded ensemble (see `explain`); `heads` are head indices."""
    plans = predictor.plans
    predictor.check_files(image_files, roi_file)
    covariate_input = predictor.covariate_input(covariates, impute_missing_covariates)
    if "gradcam" in methods:
        for network in predictor.networks:
            check_gradcam_layer(network, gradcam_layer)
    array, properties = preprocess_case(
        case_id, [Path(p) for p in image_files], None if roi_file is None else Path(roi_file), plans
    )
    network_input = to_network_input(array, plans.num_roi_classes)
    predictions = predictor.predictions(network_input, covariates=covariate_input, zoom=properties.zoom)
    targets = [HeadTarget.for_head(h, plans.classification_labels[h], predictions[h]) for h in heads]
    maps = ensemble_maps(
        predictor.networks,
        network_input,
        covariate_input,
        targets,
        methods,
        predictor.device,
        layer=gradcam_layer,
        occlusion_window=occlusion_window,
        occlusion_stride=occlusion_stride,
        zoom=properties.zoom,
    )
    image, geometry = read_image(Path(image_files[0]))
    extension = split_extension(image_files[0])[1] or DEFAULT_EXTENSION
    output_folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, dict]] = {}
    for number, target in enumerate(targets):
        name = target.label.name
        for method in methods:
            saliency = to_original_grid(maps[method][number], properties, plans)
            voxel = peak_voxel(saliency)
            stem = f"{file_name_for(case_id)}_{file_name_for(name)}_{method}"
            map_file, png_file = output_folder / f"{stem}{extension}", output_folder / f"{stem}.png"
            title = f"{case_id}: {name}, {method}; target: {target.describe()}"
            _write_renamed(map_file, partial(write_image, saliency, geometry))
            _write_renamed(png_file, partial(save_map_figure, image, saliency, geometry, voxel, title))
            result.setdefault(name, {})[method] = {
                "map": str(map_file),
                "png": str(png_file),
                "max_voxel": voxel,
                "target": target.describe(),
            }
            logger.debug("case %s: %s %s map written to %s (peak at %s)", case_id, name, method, map_file, voxel)
    logger.info("case %s: %s map(s) of %s written to %s", case_id, "/".join(methods), list(result), output_folder)
    return result


def explain(
    artifact_path: Path | str,
    ordered_image_files: Sequence[Path | str],
    roi_segmentation_file: Path | str | None = None,
    *,
    output_folder: Path | str,
    method: str = "gradcam",
    head: str | Sequence[str] | None = None,
    folds: Sequence[int | str] | None = None,
    task: str | int | None = None,
    covariates: Mapping[str, object] | None = None,
    impute_missing_covariates: bool = False,
    case_id: str | None = None,
    device: str | torch.device | None = None,
    gradcam_layer: str | None = None,
    occlusion_window: float = OCCLUSION_WINDOW,
    occlusion_stride: float = OCCLUSION_STRIDE,
) -> dict[str, dict[str, dict]]:
    """Saliency maps of one case for the trained ensemble in `artifact_path`, on the case's original image grid.

    Every map is averaged over the ensemble's folds, taken back through preprocessing (padding, resampling, transpose,
    both crops; 0 outside the crop the network saw) and written as OUT/CASE_<head>_<method>.<input extension> with
    the first image's exact size, spacing, origin and direction, plus OUT/CASE_<head>_<method>.png: three orthogonal
    slices through the map's peak over the first modality. CASE and <head> appear in their file-name form
    (`universalclassifier.names.file_name_for`: a name that is not a safe ASCII file name gets a readable ASCII form
    and a hash). Maps are signed; what they explain per head type is in `universalclassifier.explain.targets`
    (binary: the log-odds of value 1).

    Args:
        artifact_path, ordered_image_files, roi_segmentation_file, folds, task, covariates, impute_missing_covariates,
            device: as for `predict()`.
        output_folder: where the maps go (created if needed).
        method: "gradcam" (Grad-CAM on `gradcam_layer`), "occlusion" (a window of every image channel set to 0,
            moved over the image: `occlusion_window` of each axis, stride `occlusion_stride`) or "both".
        head: a head name, a list of names, or None for every head.
        case_id: the name the files start with (default: the first image's name without `_XXXX.<ext>`).
        gradcam_layer: a backbone layer name (default: the layer the ROI pooling reads, for networks with ROI pooling;
            else Mixed_4f).

    Returns:
        {head: {method: {"map": path, "png": path, "max_voxel": [z, y, x], "target": what the map explains}}};
        `max_voxel` is the voxel of the largest absolute attribution, in the original image's array order.
    """
    methods = resolve_methods(method)
    for name, value in (("occlusion_window", occlusion_window), ("occlusion_stride", occlusion_stride)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise UserInputError(f"{name} must be a fraction of each axis in (0, 1], got {value!r}.")
    require_captum()
    files = list(ordered_image_files) if not isinstance(ordered_image_files, (str, os.PathLike)) else None
    if files is None:
        raise UserInputError("ordered_image_files must be a list of files, one per modality, not a single path.")
    case = case_id if case_id is not None else case_id_of(files[0]) if files else "case"
    if not is_name(case):
        raise UserInputError(f"case_id {shown_value(case, 120)} is not allowed: use {NAME_RULE}.")
    predictor = get_predictor(artifact_path, folds, task, device)
    return explain_case(
        predictor,
        files,
        roi_segmentation_file,
        Path(output_folder),
        methods=methods,
        heads=resolve_heads(predictor.plans, head),
        case_id=case,
        covariates=covariates,
        impute_missing_covariates=impute_missing_covariates,
        gradcam_layer=gradcam_layer,
        occlusion_window=occlusion_window,
        occlusion_stride=occlusion_stride,
    )
