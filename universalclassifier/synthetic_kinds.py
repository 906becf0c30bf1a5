"""Synthetic task *kinds* for the quality suite: small lesions in realistic noise, one classification head each.

Every case is a body (ellipsoid) holding an organ (ROI label 1) with one lesion (ROI label 2) of radius 2-6
voxels, in images of 32-48 voxels per side at about 1 mm. Noise is spatially correlated (Gaussian-smoothed) and
each image carries a smooth multiplicative bias field and its own intensity scale, so absolute intensities carry
no label. The kinds differ in what separates the classes:

- ``contrast``: the lesion is darker (0) or brighter (1) than the organ.
- ``texture``: same mean as the organ; homogeneous (0) or heterogeneous (1).
- ``size``: lesion radius small (0), medium (1) or large (2); an ordinal 3-value head.
- ``shape``: round (0) or lobulated (1) lesion of similar volume and the same intensity.
- ``multimodal``: two modalities; the lesion's contrast in modality 1 is weaker (0) or stronger (1) than in
  modality 0, whose own contrast varies widely, so neither modality alone decides the label.
- ``imbalanced``: about 15% positives (bright lesion) among iso- or hypo-intense lesions.
- ``no_roi``: a CT-like contrast task written without ROI files: the lesion must be found in the whole body.
- ``ct_lesion``: made unlike the others, without ROI files: a CT slab on anisotropic voxels (0.7-0.9 mm in-plane,
  2-3 mm slices) with air at -1000 HU around a 40 HU body (noise SD 20 HU) and no organ; one small lesion (radius
  2-5 voxels in-plane) is +60 HU (malignant, 1) or +25 HU (benign, 0) above the body. The lesion fills about 0.1%
  of the image.

Besides the raw task the generator writes ``test_targets.json`` (true values of the imagesTs cases) and
``oracle_features.json``: per case one hand-made feature computed from the true lesion mask (e.g. the voxel
standard deviation inside the lesion for ``texture``) that a classical model can use as an upper reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from universalclassifier.dataset.image_io import Geometry, write_image

KINDS = ("contrast", "texture", "size", "shape", "multimodal", "imbalanced", "no_roi", "ct_lesion")
_NOISE_SD = 40.0
_BODY, _ORGAN = 300.0, 500.0
_CT_BODY, _CT_ORGAN, _CT_NOISE = 40.0, 90.0, 14.0
_POSITIVE_FRACTION_IMBALANCED = 0.15
_AIR, _CT_LESION_BODY, _CT_LESION_NOISE = -1000.0, 40.0, 20.0
_CT_LESION_CONTRAST = (25.0, 60.0)  # HU above the body: benign, malignant


@dataclass(frozen=True)
class KindSpec:
    """What a kind writes: its head, modalities, whether ROI files exist, and the name of its oracle feature."""

    head: dict
    modalities: tuple[str, ...]
    with_roi: bool
    oracle_feature: str


def _binary(name: str, negative: str, positive: str) -> dict:
    return {"name": name, "ordinal": False, "values": {"0": negative, "1": positive}}


SPECS: dict[str, KindSpec] = {
    "contrast": KindSpec(_binary("lesion_brighter", "darker", "brighter"), ("T1",), True, "lesion_minus_organ_mean"),
    "texture": KindSpec(_binary("heterogeneous", "homogeneous", "heterogeneous"), ("T2",), True, "lesion_sd"),
    "size": KindSpec(
        {"name": "lesion_size", "ordinal": True, "values": {"0": "small", "1": "medium", "2": "large"}},
        ("T1",), True, "lesion_volume",
    ),
    "shape": KindSpec(_binary("lobulated", "round", "lobulated"), ("T1",), True, "lesion_sphericity"),
    "multimodal": KindSpec(
        _binary("stronger_in_t2", "weaker", "stronger"), ("T1", "T2"), True, "contrast_ratio_t2_t1"
    ),
    "imbalanced": KindSpec(_binary("bright_lesion", "other", "bright"), ("T1",), True, "lesion_minus_organ_mean"),
    "no_roi": KindSpec(_binary("lesion_brighter", "darker", "brighter"), ("CT",), False, "lesion_minus_organ_mean"),
    "ct_lesion": KindSpec(_binary("malignant", "benign", "malignant"), ("CT",), False, "lesion_minus_organ_mean"),
}


def _ellipsoid(grid: Sequence[np.ndarray], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)) <= 1.0


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], sd: float) -> np.ndarray:
    """Gaussian noise smoothed over about one voxel, rescaled to standard deviation `sd`."""
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape), 0.7)
    return noise * (sd / noise.std())


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float = 0.1) -> np.ndarray:
    """A smooth multiplicative field around 1 (scanner inhomogeneity)."""
    coarse = rng.normal(0.0, 1.0, (3, 3, 3))
    field = ndimage.zoom(coarse, [s / 3 for s in shape], order=3, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    return 1.0 + strength * field / max(np.abs(field).max(), 1e-6)


def _sphericity(mask: np.ndarray) -> float:
    """pi^(1/3) (6V)^(2/3) / A with A the number of voxel faces between the mask and the rest."""
    padded = np.pad(mask, 1).astype(np.int8)
    area = sum(np.abs(np.diff(padded, axis=a)).sum() for a in range(3))
    return float(np.pi ** (1 / 3) * (6 * mask.sum()) ** (2 / 3) / max(area, 1))


def _lesion_mask(
    rng: np.random.Generator, grid: Sequence[np.ndarray], center: np.ndarray, radius: float, lobulated: bool
) -> np.ndarray:
    """A sphere, or a core sphere with 4-6 smaller spheres on its surface (a lobulated lesion of similar volume)."""
    if not lobulated:
        return _ellipsoid(grid, center, np.full(3, radius))
    core = 0.72 * radius
    mask = _ellipsoid(grid, center, np.full(3, core))
    for _ in range(int(rng.integers(4, 7))):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        mask |= _ellipsoid(grid, center + direction * core, np.full(3, 0.5 * radius))
    return mask


def _labels_for(kind: str, count: int, rng: np.random.Generator) -> list[int]:
    """Class values for `count` cases: balanced (shuffled), or about 15% positives for `imbalanced`."""
    if kind == "imbalanced":
        positives = max(2, int(round(_POSITIVE_FRACTION_IMBALANCED * count)))
        values = [1] * positives + [0] * (count - positives)
    else:
        num_values = len(SPECS[kind].head["values"])
        values = [i % num_values for i in range(count)]
    return [int(v) for v in rng.permutation(values)]


def _ct_lesion_case(label: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, Geometry, float]:
    """A `ct_lesion` case: air around a noisy body holding one lesion; the ROI marks body (1) and lesion (2)."""
    size = (int(rng.integers(14, 21)), int(rng.integers(56, 72)), int(rng.integers(56, 72)))
    in_plane = float(rng.uniform(0.7, 0.9))
    spacing = (float(rng.uniform(2.0, 3.0)), in_plane, in_plane)
    extent = np.asarray(size) * np.asarray(spacing)
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(size, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    radii = extent * np.array([0.6, rng.uniform(0.36, 0.44), rng.uniform(0.36, 0.44)])  # the body fills the slab
    body = _ellipsoid(grid, extent / 2, radii)
    radius = rng.uniform(2.0, 5.0) * in_plane
    center = extent / 2 + rng.uniform(-0.4, 0.4, 3) * np.maximum(radii - radius - 2 * np.asarray(spacing), 0.0)
    lesion = _ellipsoid(grid, center, np.array([max(radius, spacing[0]), radius, radius])) & body
    volume = np.where(body, _CT_LESION_BODY, _AIR)
    volume[lesion] += _CT_LESION_CONTRAST[label]
    volume += _correlated_noise(rng, size, _CT_LESION_NOISE) * body + rng.normal(0, 5.0, size) * ~body
    roi = body.astype(np.uint8)
    roi[lesion] = 2
    image = np.round(volume).astype(np.int16)
    geometry = Geometry(size, spacing, tuple(rng.uniform(-50, 50, 3).tolist()), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return [image], roi, geometry, _oracle("ct_lesion", [image], body & ~lesion, lesion)


def _case(kind: str, label: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, Geometry, float]:
    """Images, ROI (0 background, 1 organ, 2 lesion), geometry and the oracle feature of one case."""
    if kind == "ct_lesion":
        return _ct_lesion_case(label, rng)
    size = tuple(int(s) for s in rng.integers(32, 49, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.95, 1.05, 3))
    extent = np.asarray(size) * np.asarray(spacing)
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(size, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    body = _ellipsoid(grid, extent / 2 + rng.uniform(-0.03, 0.03, 3) * extent, extent * rng.uniform(0.40, 0.47, 3))
    organ_radii = extent * rng.uniform(0.22, 0.30, 3)
    organ_center = extent / 2 + rng.uniform(-0.06, 0.06, 3) * extent
    organ = _ellipsoid(grid, organ_center, organ_radii) & body

    if kind == "size":
        radius = rng.uniform(*[(2.0, 3.0), (3.5, 4.5), (5.0, 6.0)][label])
    elif kind == "shape":
        radius = rng.uniform(3.5, 5.5)
    else:
        radius = rng.uniform(2.5, 5.5)
    lesion_center = organ_center + rng.uniform(-0.35, 0.35, 3) * np.maximum(organ_radii - radius - 1.0, 0.0)
    lesion = _lesion_mask(rng, grid, lesion_center, radius, lobulated=kind == "shape" and label == 1) & organ

    # Lesion contrast per modality in units of the noise sd, and extra lesion heterogeneity (texture kind).
    contrasts: list[float]
    heterogeneity = 0.0
    if kind in ("contrast", "no_roi"):
        contrasts = [rng.uniform(1.0, 2.0) * (1 if label else -1)]
    elif kind == "texture":
        contrasts = [rng.uniform(-0.2, 0.2)]
        heterogeneity = rng.uniform(1.0, 1.8) if label else rng.uniform(0.0, 0.4)
    elif kind in ("size", "shape"):
        contrasts = [rng.uniform(1.5, 2.5)]
    elif kind == "multimodal":
        base = rng.uniform(0.8, 2.4)
        contrasts = [base, base * (rng.uniform(1.25, 1.6) if label else rng.uniform(0.4, 0.8))]
    else:  # imbalanced
        contrasts = [rng.uniform(0.8, 2.0) if label else rng.uniform(-1.5, 0.2)]

    spec = SPECS[kind]
    images = []
    for modality, contrast in zip(spec.modalities, contrasts, strict=True):
        ct = modality == "CT"
        body_value, organ_value, noise_sd = (_CT_BODY, _CT_ORGAN, _CT_NOISE) if ct else (_BODY, _ORGAN, _NOISE_SD)
        volume = np.where(body, body_value, 0.0)
        volume[organ] = organ_value
        volume[lesion] = organ_value + contrast * noise_sd
        volume += _correlated_noise(rng, size, noise_sd) * body
        if heterogeneity:
            volume[lesion] += _correlated_noise(rng, size, heterogeneity * noise_sd)[lesion]
        if ct:
            images.append(np.round(volume).astype(np.int16))
        else:
            images.append((volume * _bias_field(rng, size) * rng.uniform(0.7, 1.4)).astype(np.float32))

    roi = organ.astype(np.uint8)
    roi[lesion] = 2
    oracle = _oracle(kind, images, organ & ~lesion, lesion)
    geometry = Geometry(size, spacing, tuple(rng.uniform(-50, 50, 3).tolist()), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return images, roi, geometry, oracle


def _oracle(kind: str, images: list[np.ndarray], organ: np.ndarray, lesion: np.ndarray) -> float:
    """The kind's hand-made feature from the true masks."""
    def contrast(image: np.ndarray) -> float:
        return float((image[lesion].mean() - image[organ].mean()) / (image[organ].std() + 1e-6))

    features: dict[str, Callable[[], float]] = {
        "lesion_minus_organ_mean": lambda: contrast(images[0]),
        "lesion_sd": lambda: float(images[0][lesion].std() / (images[0][organ].std() + 1e-6)),
        "lesion_volume": lambda: float(lesion.sum()),
        "lesion_sphericity": lambda: -_sphericity(lesion),
        "contrast_ratio_t2_t1": lambda: contrast(images[1]) / max(contrast(images[0]), 1e-3),
    }
    return features[SPECS[kind].oracle_feature]()


def generate_kind_task(
    data_root: Path | str,
    kind: str,
    task_id: int,
    num_cases: int = 60,
    num_test: int = 60,
    seed: int = 0,
    extension: str = ".nii.gz",
) -> Path:
    """Write a task of the given kind to DATA/raw/nnUNet_raw_data/TaskXXX_<Kind> and return that folder.

    Training cases go to imagesTr (+ labelsTr), test cases to imagesTs (+ labelsTs) with their values in
    test_targets.json; oracle_features.json holds every case's oracle feature.
    """
    if kind not in SPECS:
        raise ValueError(f"Unknown kind {kind!r}; choose from {', '.join(KINDS)}.")
    if num_cases < 6:
        raise ValueError("num_cases must be at least 6 so that every value occurs in training.")
    spec = SPECS[kind]
    rng = np.random.default_rng(seed)
    name = "".join(part.capitalize() for part in kind.split("_"))
    folder = Path(data_root) / "raw" / "nnUNet_raw_data" / f"Task{task_id:03d}_{name}"
    head = spec.head["name"]
    training, test_targets, oracle = [], {}, {}
    for sub in ("imagesTr", "imagesTs", *(("labelsTr", "labelsTs") if spec.with_roi else ())):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    labels = _labels_for(kind, num_cases, rng) + (_labels_for(kind, num_test, rng) if num_test else [])
    for index, label in enumerate(labels):
        split = "Tr" if index < num_cases else "Ts"
        case_id = f"case_{index:04d}"
        images, roi, geometry, oracle[case_id] = _case(kind, label, rng)
        for m, image in enumerate(images):
            write_image(image, geometry, folder / f"images{split}" / f"{case_id}_{m:04d}{extension}")
        if spec.with_roi:
            write_image(roi, geometry, folder / f"labels{split}" / f"{case_id}{extension}")
        if split == "Ts":
            test_targets[case_id] = {head: label}
            continue
        entry = {"image": f"./imagesTr/{case_id}{extension}", head: label}
        if spec.with_roi:
            entry["label"] = f"./labelsTr/{case_id}{extension}"
        training.append(entry)
    dataset = {
        "name": name,
        "description": f"Synthetic '{kind}' task of the universalclassifier quality suite",
        "modality": {str(i): m for i, m in enumerate(spec.modalities)},
        "classification_labels": [spec.head],
        "numTraining": len(training),
        "training": training,
        "numTest": num_test,
        "test": [f"./imagesTs/case_{i:04d}{extension}" for i in range(num_cases, num_cases + num_test)],
    }
    if spec.with_roi:
        dataset["labels"] = {"0": "background", "1": "organ", "2": "lesion"}
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    (folder / "test_targets.json").write_text(json.dumps(test_targets, indent=2) + "\n")
    (folder / "oracle_features.json").write_text(
        json.dumps({"feature": spec.oracle_feature, "values": oracle}, indent=2) + "\n"
    )
    return folder
