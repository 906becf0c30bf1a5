"""Data augmentation (the baseline's settings: nnU-Net v1's 3D defaults) and the batch generators built on it.

The loader delivers the image channels as "data" and the ROI label map as "seg". Spatial transforms move both
together; intensity transforms touch "data" only, so the ROI is never brightened, blurred or noised. At the end
`RoiToChannel` maps the ROI into [0, 1) (as `to_network_input` does at inference) and appends it to "data".

Batches cross from the worker processes as numpy arrays and become tensors in this process (`BatchGenerator`):
torch shares a tensor sent through a multiprocessing queue by handing over a file descriptor from the sending
process, so a batch still in flight when `MultiThreadedAugmenter` stops its workers could not be received, and
its results thread died with a FileNotFoundError traceback on about a third of shutdowns.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (
    BrightnessMultiplicativeTransform,
    ContrastAugmentationTransform,
    GammaTransform,
)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from universalclassifier.checks import checked_int
from universalclassifier.parallel import exit_when_parent_dies
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.preprocessor import roi_to_unit_interval
from universalclassifier.training.data_loading import CaseBatchLoader

logger = logging.getLogger(__name__)

# Spatial transform (nnU-Net v1 3D defaults).
ELASTIC_ALPHA = (0.0, 900.0)
ELASTIC_SIGMA = (9.0, 13.0)
P_ELASTIC = 0.2
ROTATION_RANGE = (-math.radians(15.0), math.radians(15.0))
NO_ROTATION = (0.0, 0.0)
P_ROTATION = 0.2
SCALE_RANGE = (0.85, 1.25)
P_SCALE = 0.2
ORDER_DATA = 3
BORDER_VALUE_DATA = 0.0
# batchgenerators' interpolate_img (augmentations/utils.py) treats is_seg=True with order != 0 specially: it
# interpolates the one-hot indicator of every label present (here order 1, i.e. linearly) and takes the argmax
# (ties go to the nearest-neighbour label), so the ROI stays a map of its original labels, never blends of them.
# Voxels mapped from outside the image get no label and take the border value (-1, "outside the body").
ORDER_ROI = 1
BORDER_VALUE_ROI = -1.0

# Intensity transforms (image channels only).
NOISE_VARIANCE = (0.0, 0.1)
P_NOISE = 0.1
BLUR_SIGMA = (0.5, 1.0)
P_BLUR = 0.2
P_BLUR_PER_CHANNEL = 0.5
BRIGHTNESS_RANGE = (0.75, 1.25)
P_BRIGHTNESS = 0.15
CONTRAST_RANGE = (0.75, 1.25)
P_CONTRAST = 0.15
LOW_RESOLUTION_ZOOM = (0.5, 1.0)
P_LOW_RESOLUTION = 0.25
P_LOW_RESOLUTION_PER_CHANNEL = 0.5
LOW_RESOLUTION_ORDER_DOWN = 0
LOW_RESOLUTION_ORDER_UP = 3
GAMMA_RANGE = (0.7, 1.5)
P_GAMMA_INVERTED = 0.1
P_GAMMA = 0.3

MIRROR_AXES = (0, 1, 2)
NUM_CACHED_PER_QUEUE = 2

_ORIGINAL_SHAPE_KEY = "original_shape_{}"


class SeedPythonRandom(AbstractTransform):
    """Seed Python's `random` from `np.random` for every batch.

    batchgenerators draws the Gaussian noise variance and the blur sigma from Python's `random`, which its
    augmenters do not seed (they seed only `np.random`, per worker); deriving it from `np.random` makes those
    draws follow the augmenter's seed too.
    """

    def __call__(self, **data_dict: Any) -> dict:
        random.seed(int(np.random.randint(0, 2**31 - 1)))
        return data_dict


class ExitWithParent(AbstractTransform):
    """Pass batches through unchanged; in a worker process, first make it exit when the process that built this
    transform dies (see `exit_when_parent_dies`), so that a killed trainer leaves no augmentation workers behind."""

    def __init__(self) -> None:
        self.parent_pid = os.getpid()

    def __call__(self, **data_dict: Any) -> dict:
        if os.getpid() != self.parent_pid:
            exit_when_parent_dies(self.parent_pid)
        return data_dict


class RoiToChannel(AbstractTransform):
    """Append the ROI label map ("seg", (B, 1, ...)) to "data" as its last channel, mapped into [0, 1).

    Values below 0 (outside the body) become 0, then everything is divided by `num_roi_classes`; "seg" is removed.
    """

    def __init__(self, num_roi_classes: int) -> None:
        self.num_roi_classes = checked_int(num_roi_classes, "num_roi_classes", 1)

    def __call__(self, **data_dict: Any) -> dict:
        roi = roi_to_unit_interval(np.asarray(data_dict.pop("seg")), self.num_roi_classes)
        data_dict["data"] = np.concatenate([np.asarray(data_dict["data"], dtype=np.float32), roi], axis=1)
        return data_dict


class ToTensors(AbstractTransform):
    """Turn "data", "target" (NaN where unknown), "zoom" and "covariates" (if any) into contiguous float32 tensors;
    other keys stay as they are."""

    def __call__(self, **data_dict: Any) -> dict:
        for key in ("data", "target", "zoom", "covariates"):
            if key in data_dict:
                data_dict[key] = torch.from_numpy(np.ascontiguousarray(data_dict[key], dtype=np.float32))
        return data_dict


class Convert3DTo2DTransform(AbstractTransform):
    """Fold the first spatial axis into the channels, (B, C, Z, Y, X) -> (B, C*Z, Y, X), for "data" and "seg"."""

    def __call__(self, **data_dict: Any) -> dict:
        for key in ("data", "seg"):
            array = data_dict[key]
            data_dict[_ORIGINAL_SHAPE_KEY.format(key)] = array.shape
            data_dict[key] = array.reshape(array.shape[0], array.shape[1] * array.shape[2], *array.shape[3:])
        return data_dict


class Convert2DTo3DTransform(AbstractTransform):
    """Undo `Convert3DTo2DTransform`: (B, C*Z, Y', X') -> (B, C, Z, Y', X')."""

    def __call__(self, **data_dict: Any) -> dict:
        for key in ("data", "seg"):
            batch, channels, depth = data_dict.pop(_ORIGINAL_SHAPE_KEY.format(key))[:3]
            array = data_dict[key]
            data_dict[key] = array.reshape(batch, channels, depth, *array.shape[2:])
        return data_dict


AUGMENTATIONS = ("nnunet", "light", "mirror")


def training_transforms(plans: Plans, augmentation: str = "nnunet") -> Compose:
    """The training augmentation pipeline, ending in a numpy batch with the ROI as the last data channel.

    "nnunet" is nnU-Net v1's 3D default set. "light" keeps rotation, scaling, mirroring, brightness and contrast
    but drops elastic deformation, Gaussian noise, blur, simulated low resolution and gamma, which add, smooth away
    or distort the fine texture that small lesions are told apart by. "mirror" only flips the axes: no
    interpolation and no intensity change, so voxel statistics inside the ROI stay exactly as preprocessed.
    With `plans.do_dummy_2D_data_aug` the spatial
    transform works slice by slice along the first axis (rotation in-plane only) and simulated low resolution
    leaves that axis alone.
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")
    mirror_and_roi = [
        MirrorTransform(MIRROR_AXES, data_key="data", label_key="seg"), RoiToChannel(plans.num_roi_classes)
    ]
    if augmentation == "mirror":
        return Compose([SeedPythonRandom(), *mirror_and_roi])
    full = augmentation == "nnunet"
    dummy_2d = plans.do_dummy_2D_data_aug
    if dummy_2d and len(plans.image_size) != 3:
        raise ValueError(f"dummy-2D augmentation needs a 3D image size, got {plans.image_size}.")
    spatial = SpatialTransform(
        list(plans.image_size[1:] if dummy_2d else plans.image_size),
        patch_center_dist_from_border=None,
        do_elastic_deform=full,
        alpha=ELASTIC_ALPHA,
        sigma=ELASTIC_SIGMA,
        do_rotation=True,
        angle_x=ROTATION_RANGE,
        angle_y=NO_ROTATION if dummy_2d else ROTATION_RANGE,
        angle_z=NO_ROTATION if dummy_2d else ROTATION_RANGE,
        do_scale=True,
        scale=SCALE_RANGE,
        border_mode_data="constant",
        border_cval_data=BORDER_VALUE_DATA,
        order_data=ORDER_DATA,
        border_mode_seg="constant",
        border_cval_seg=BORDER_VALUE_ROI,
        order_seg=ORDER_ROI,
        random_crop=False,
        p_el_per_sample=P_ELASTIC,
        p_scale_per_sample=P_SCALE,
        p_rot_per_sample=P_ROTATION,
    )
    spatial_steps: list[AbstractTransform] = (
        [Convert3DTo2DTransform(), spatial, Convert2DTo3DTransform()] if dummy_2d else [spatial]
    )
    blur = GaussianBlurTransform(
        BLUR_SIGMA, different_sigma_per_channel=True, p_per_sample=P_BLUR, p_per_channel=P_BLUR_PER_CHANNEL
    )
    smoothing_and_gamma: list[AbstractTransform] = [
        SimulateLowResolutionTransform(
            zoom_range=LOW_RESOLUTION_ZOOM,
            per_channel=True,
            p_per_channel=P_LOW_RESOLUTION_PER_CHANNEL,
            order_downsample=LOW_RESOLUTION_ORDER_DOWN,
            order_upsample=LOW_RESOLUTION_ORDER_UP,
            p_per_sample=P_LOW_RESOLUTION,
            ignore_axes=(0,) if dummy_2d else None,
        ),
        GammaTransform(
            GAMMA_RANGE, invert_image=True, per_channel=True, retain_stats=True, p_per_sample=P_GAMMA_INVERTED
        ),
        GammaTransform(GAMMA_RANGE, invert_image=False, per_channel=True, retain_stats=True, p_per_sample=P_GAMMA),
    ]
    return Compose(
        [
            SeedPythonRandom(),
            *spatial_steps,
            *([GaussianNoiseTransform(noise_variance=NOISE_VARIANCE, p_per_sample=P_NOISE), blur] if full else []),
            BrightnessMultiplicativeTransform(multiplier_range=BRIGHTNESS_RANGE, p_per_sample=P_BRIGHTNESS),
            ContrastAugmentationTransform(contrast_range=CONTRAST_RANGE, p_per_sample=P_CONTRAST),
            *(smoothing_and_gamma if full else []),
            *mirror_and_roi,
        ]
    )


def validation_transforms(plans: Plans) -> Compose:
    """No augmentation: only the ROI channel mapping."""
    return Compose([RoiToChannel(plans.num_roi_classes)])


class BatchGenerator:
    """An endless iterator of tensor batches {"data", "target", "keys"} drawn from a batchgenerators augmenter.

    The augmenter yields numpy batches; they become tensors here (pinned when `pin_memory`). Call `shutdown`
    when done, so that background workers exit.
    """

    def __init__(self, augmenter: MultiThreadedAugmenter | SingleThreadedAugmenter, pin_memory: bool) -> None:
        self.augmenter = augmenter
        self.pin_memory = pin_memory
        self._to_tensors = ToTensors()

    def __iter__(self) -> BatchGenerator:
        return self

    def __next__(self) -> dict:
        batch = self._to_tensors(**next(self.augmenter))
        if self.pin_memory:
            batch["data"] = batch["data"].pin_memory()
            batch["target"] = batch["target"].pin_memory()
        return batch

    def shutdown(self) -> None:
        """Stop the background workers, if any, and wait for them to exit."""
        if isinstance(self.augmenter, MultiThreadedAugmenter):
            self.augmenter._finish()


def class_balanced_weights(values: np.ndarray) -> np.ndarray:
    """Sampling probabilities per case that give every class of `values` the same total probability."""
    classes, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    weights = 1.0 / (len(classes) * counts[inverse])
    return weights / weights.sum()


def make_batch_generator(
    array_files: Sequence[Path],
    targets: np.ndarray,
    plans: Plans,
    batch_size: int,
    train: bool,
    num_workers: int,
    seed: int,
    case_ids: Sequence[str] | None = None,
    augmentation: str = "nnunet",
    balanced_sampling: bool = False,
    covariates: np.ndarray | None = None,
    zooms: np.ndarray | None = None,
) -> BatchGenerator:
    """An endless, seeded iterator of tensor batches; call its `shutdown` after use.

    With `num_workers` >= 1 the batches come from that many background processes (worker i seeded with seed + i,
    exiting on its own if this process dies);
    with 0 they are made in this process after seeding the global `np.random` with `seed`. Batches are pinned in
    memory when CUDA is available.
    """
    checked_int(num_workers, "num_workers", 0)
    weights = class_balanced_weights(np.asarray(targets)[:, 0]) if balanced_sampling else None
    loader = CaseBatchLoader(array_files, targets, batch_size, case_ids, weights, covariates, zooms)
    transforms = training_transforms(plans, augmentation) if train else validation_transforms(plans)
    pin_memory = torch.cuda.is_available()
    if num_workers == 0:
        np.random.seed(seed)
        return BatchGenerator(SingleThreadedAugmenter(loader, transforms), pin_memory)
    logger.debug("Starting %d augmentation worker(s) (seed %d, train=%s)", num_workers, seed, train)
    augmenter = MultiThreadedAugmenter(
        loader,
        Compose([ExitWithParent(), transforms]),
        num_processes=num_workers,
        num_cached_per_queue=NUM_CACHED_PER_QUEUE,
        seeds=[seed + i for i in range(num_workers)],
        pin_memory=False,  # its batches are numpy; BatchGenerator pins the tensors it makes of them
    )
    return BatchGenerator(augmenter, pin_memory)
