"""A synthetic task generator writing the raw nnU-Net layout; its labels are learnable from the images.

Every case is a body (ellipsoid, zero outside) holding an organ (the ROI) with one spherical lesion. The binary
label `lesion_contrast` says whether the lesion is darker (0) or brighter (1) than the organ; the 3-value
label `lesion_size` (ordinal) says whether its radius is small, medium or large relative to the organ.

With `label_types`, more heads use the other label types and covariates: `lesion_volume` (regression: the lesion's
volume in ml), `contrast_strength` (known only for brighter lesions, null otherwise: mild or strong brightening),
`high_risk` (a brighter lesion in a patient aged 60 or more: it needs the covariate `age`, unknown for about 10% of
cases; `sex` carries no signal), and every two consecutive cases are scans of one patient (`patient_id`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from universalclassifier.dataset.image_io import Geometry, write_image

# (background-free body, organ, lesion contrast magnitude, noise sd) per modality family
_INTENSITIES = {"CT": (40.0, 90.0, 70.0, 12.0), "MR": (300.0, 500.0, 180.0, 30.0)}
_LESION_RADIUS_FRACTION = (0.18, 0.30, 0.42)
HEADS = [
    {"name": "lesion_contrast", "ordinal": False, "values": {"0": "darker", "1": "brighter"}},
    {"name": "lesion_size", "ordinal": True, "values": {"0": "small", "1": "medium", "2": "large"}},
]
LABEL_TYPE_HEADS = [
    {"name": "lesion_volume", "type": "regression"},
    {"name": "contrast_strength", "values": {"0": "mild", "1": "strong"}},
    {"name": "high_risk", "values": {"0": "no", "1": "yes"}},
]
COVARIATES = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical", "values": ["F", "M"]}]
RISK_AGE = 60.0
_STRENGTH = (0.6, 1.4)  # lesion contrast factor of mild and strong brightening


def _ellipsoid(grid: Sequence[np.ndarray], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)) <= 1.0


def _case_volumes(
    rng: np.random.Generator,
    size: Sequence[int],
    spacing: Sequence[float],
    modalities: Sequence[str],
    contrast: int,
    lesion_size: int,
    strength: float = 1.0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The images, the organ mask (ROI) and the lesion mask of one case."""
    extent = np.asarray(size) * np.asarray(spacing)
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(size, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    body = _ellipsoid(grid, extent / 2 + rng.uniform(-0.03, 0.03, 3) * extent, extent * rng.uniform(0.38, 0.46, 3))
    organ_radii = extent * rng.uniform(0.16, 0.22, 3)
    organ_center = extent / 2 + rng.uniform(-0.08, 0.08, 3) * extent
    organ = _ellipsoid(grid, organ_center, organ_radii) & body
    lesion_radius = _LESION_RADIUS_FRACTION[lesion_size] * organ_radii.min()
    lesion_center = organ_center + rng.uniform(-0.25, 0.25, 3) * (organ_radii - lesion_radius)
    lesion = _ellipsoid(grid, lesion_center, np.full(3, lesion_radius)) & organ
    images = []
    for name in modalities:
        body_value, organ_value, lesion_delta, noise = _INTENSITIES["CT" if name.upper() == "CT" else "MR"]
        scale = rng.uniform(0.9, 1.1)
        volume = np.zeros(size, dtype=np.float32)
        volume[body] = body_value * scale
        volume[organ] = organ_value * scale
        volume[lesion] = (organ_value + strength * (lesion_delta if contrast else -lesion_delta)) * scale
        volume[body] += rng.normal(0.0, noise, int(body.sum())).astype(np.float32)
        if name.upper() == "CT":
            volume = np.round(volume).astype(np.int16)
        images.append(volume)
    return images, organ.astype(np.uint8), lesion


def generate_task(
    data_root: Path | str,
    task_id: int = 1,
    task_name: str = "Synthetic",
    num_cases: int = 20,
    modalities: Sequence[str] = ("CT",),
    with_roi: bool = True,
    base_size: Sequence[int] = (24, 40, 40),
    spacing: Sequence[float] = (2.0, 1.0, 1.0),
    size_jitter: float = 0.15,
    num_test: int = 0,
    extension: str = ".nii.gz",
    seed: int = 0,
    label_types: bool = False,
) -> Path:
    """Write a synthetic task to DATA/raw/nnUNet_raw_data/TaskXXX_Name and return that folder.

    Sizes vary by +-`size_jitter` per axis and spacings by +-5% around `spacing` (z, y, x); pass a coarse first
    spacing for an anisotropic task. Test cases (imagesTs, labelsTs) get their true values in test_targets.json.
    `label_types` adds the regression head, the head with missing values and the patients (module docstring).
    """
    if num_cases < 6:
        raise ValueError("num_cases must be at least 6 so that every value of both labels occurs.")
    rng = np.random.default_rng(seed)
    folder = Path(data_root) / "raw" / "nnUNet_raw_data" / f"Task{task_id:03d}_{task_name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        if sub.startswith("labels") and not with_roi or sub.endswith("Ts") and not num_test:
            continue
        (folder / sub).mkdir(parents=True, exist_ok=True)
    combos = [(c, s) for c in range(2) for s in range(3)]
    training, test_targets = [], {}
    for index in range(num_cases + num_test):
        contrast, lesion_size = combos[int(rng.integers(6))] if index >= num_cases else combos[index % 6]
        size = [max(8, int(round(b * rng.uniform(1 - size_jitter, 1 + size_jitter)))) for b in base_size]
        case_spacing = [float(s * rng.uniform(0.95, 1.05)) for s in spacing]
        strength = int(rng.integers(2)) if label_types and contrast else None
        images, roi, lesion = _case_volumes(
            rng, size, case_spacing, modalities, contrast, lesion_size, 1.0 if strength is None else _STRENGTH[strength]
        )
        geometry = Geometry(
            tuple(size), tuple(case_spacing), tuple(rng.uniform(-50, 50, 3).tolist()), (1, 0, 0, 0, 1, 0, 0, 0, 1)
        )
        split = "Tr" if index < num_cases else "Ts"
        case_id = f"case_{index:04d}"
        for m, image in enumerate(images):
            write_image(image, geometry, folder / f"images{split}" / f"{case_id}_{m:04d}{extension}")
        if with_roi:
            roi_map = roi + lesion.astype(np.uint8) if label_types else roi
            write_image(roi_map, geometry, folder / f"labels{split}" / f"{case_id}{extension}")
        targets: dict[str, int | float | None] = {"lesion_contrast": contrast, "lesion_size": lesion_size}
        covariates: dict = {}
        if label_types:
            patient = np.random.default_rng([seed, index // 2])  # both scans of a patient share age and sex
            age, sex = round(float(patient.uniform(40, 80)), 1), ["F", "M"][int(patient.integers(2))]
            targets["lesion_volume"] = round(float(lesion.sum()) * float(np.prod(case_spacing)) / 1000.0, 5)
            targets["contrast_strength"] = strength
            targets["high_risk"] = int(contrast == 1 and age >= RISK_AGE)
            covariates = {"age": None if rng.uniform() < 0.1 else age, "sex": sex}
        if split == "Ts":
            test_targets[case_id] = {**targets, **({"covariates": covariates} if covariates else {})}
            continue
        entry: dict = {"image": f"./imagesTr/{case_id}{extension}", **targets}
        if label_types:
            entry.update(patient_id=f"patient_{index // 2:03d}", covariates=covariates)
        if with_roi:
            entry["label"] = f"./labelsTr/{case_id}{extension}"
        training.append(entry)
    dataset = {
        "name": task_name,
        "description": "Synthetic task generated by universalclassifier.synthetic",
        "modality": {str(i): m for i, m in enumerate(modalities)},
        "classification_labels": HEADS + (LABEL_TYPE_HEADS if label_types else []),
        "numTraining": len(training),
        "training": training,
        "numTest": num_test,
        "test": [f"./imagesTs/case_{i:04d}{extension}" for i in range(num_cases, num_cases + num_test)],
    }
    if with_roi:
        dataset["labels"] = {"0": "background", "1": "organ", **({"2": "lesion"} if label_types else {})}
    if label_types:
        dataset["covariates"] = COVARIATES
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    if num_test:
        (folder / "test_targets.json").write_text(json.dumps(test_targets, indent=2) + "\n")
    return folder
