"""Grad-CAM and occlusion maps of an ensemble's targets with Captum, on the network input's grid.

Captum is an optional dependency (`pip install 'universalclassifier[explain]'`): it is imported only here, when maps
are computed. Both methods see the image channels only; the ROI channel and the covariates stay as the case gives
them (see `TargetModule`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch

from universalclassifier.errors import UserInputError
from universalclassifier.explain.methods import METHODS
from universalclassifier.explain.targets import HeadTarget, TargetModule
from universalclassifier.network.i3d import ROI_POOLING_LAYER, I3DClassifier

logger = logging.getLogger(__name__)

MISSING_CAPTUM = (
    "Saliency maps need the optional dependency captum: pip install 'universalclassifier[explain]' (or pip install "
    "captum)."
)
# Occlusion: a window of a quarter of each axis, moved by an eighth (about 7 positions per axis, 343 forward passes)
OCCLUSION_WINDOW = 0.25
OCCLUSION_STRIDE = 0.125
# occluded copies evaluated in one forward pass: as many as keep a batch within this many input voxels
OCCLUSION_BATCH_VOXELS = 2**22
OCCLUSION_MAX_BATCH = 16


def require_captum() -> None:
    """Raise a UserInputError that says how to install captum when it cannot be imported."""
    try:
        import captum.attr  # noqa: F401
    except ImportError as exc:
        raise UserInputError(MISSING_CAPTUM) from exc


def gradcam_layers(network: I3DClassifier) -> list[str]:
    """The backbone layers Grad-CAM can read, input side first (the global pooling at the end excluded)."""
    return [name for name, _ in network.backbone.named_children() if name != "AvgPool"]


def default_gradcam_layer(network: I3DClassifier) -> str:
    """The layer Grad-CAM reads by default.

    With ROI pooling, ROI_POOLING_LAYER (the stem, at half the input's resolution): the heads read its mean and SD in
    each ROI label directly, so its gradients carry the ROI pooling as well as the backbone; a deeper layer sees only
    the backbone's share (on a briefly trained lesion task Mixed_4f put 0-10% of the positive attribution within 2
    voxels of the lesion, the stem 64-75%). Without ROI pooling, Mixed_4f, the last block at a sixteenth of the
    input's in-plane resolution.
    """
    return ROI_POOLING_LAYER if network.num_roi_classes else "Mixed_4f"


def check_gradcam_layer(network: I3DClassifier, layer: str | None) -> str:
    """`layer`, or the default, refused with the choices when the network has no such layer."""
    if layer is None:
        return default_gradcam_layer(network)
    names = gradcam_layers(network)
    if layer not in names:
        raise UserInputError(f"Unknown Grad-CAM layer {layer!r}; choose one of {names}.")
    return layer


def occlusion_windows(
    shape: Sequence[int], window: float = OCCLUSION_WINDOW, stride: float = OCCLUSION_STRIDE
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per spatial axis the occlusion window and stride in voxels: the given fractions of the axis, at least 1."""
    windows = tuple(max(1, round(size * window)) for size in shape)
    strides = tuple(max(1, round(size * stride)) for size in shape)
    return windows, strides


def gradcam(module: TargetModule, images: torch.Tensor, layer: str) -> torch.Tensor:
    """(heads, Z, Y, X) Grad-CAM maps of every target, signed (no ReLU), upsampled trilinearly to the input's grid."""
    from captum.attr import LayerAttribution, LayerGradCam

    method = LayerGradCam(module, getattr(module.network.backbone, layer))
    maps = []
    for index in range(len(module.targets)):
        attribution = method.attribute(images, target=index, relu_attributions=False)
        upsampled = LayerAttribution.interpolate(attribution.detach(), tuple(images.shape[2:]), "trilinear")
        maps.append(upsampled[0, 0])
    return torch.stack(maps)


def occlusion(
    module: TargetModule, images: torch.Tensor, window: float = OCCLUSION_WINDOW, stride: float = OCCLUSION_STRIDE
) -> torch.Tensor:
    """(heads, Z, Y, X) occlusion maps of every target: the target minus the target with a window of every image
    channel set to 0 (the normalized intensity mean), averaged over the windows that cover each voxel."""
    from captum.attr import Occlusion

    windows, strides = occlusion_windows(images.shape[2:], window, stride)
    channels = images.shape[1]
    batch = max(1, min(OCCLUSION_MAX_BATCH, OCCLUSION_BATCH_VOXELS // math.prod(images.shape[1:])))
    with torch.no_grad():
        attribution = Occlusion(module).attribute(
            images,
            sliding_window_shapes=(channels, *windows),
            strides=(channels, *strides),
            baselines=0.0,
            perturbations_per_eval=batch,
        )
    # one output per target: (targets, channels, Z, Y, X), equal over the channels that each window covers whole
    return attribution.reshape(len(module.targets), channels, *images.shape[2:]).mean(dim=1)


def ensemble_maps(
    networks: Sequence[I3DClassifier],
    network_input: np.ndarray,
    covariates: np.ndarray | None,
    targets: Sequence[HeadTarget],
    methods: Sequence[str],
    device: torch.device,
    *,
    layer: str | None = None,
    occlusion_window: float = OCCLUSION_WINDOW,
    occlusion_stride: float = OCCLUSION_STRIDE,
    zoom: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per method, the (targets, Z, Y, X) maps of one (C, Z, Y, X) network input (resampled by `zoom`, see
    `preprocess_case`), averaged over the networks."""
    require_captum()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserInputError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    batch = torch.from_numpy(np.ascontiguousarray(network_input[None], dtype=np.float32)).to(device)
    images, roi_channel = batch[:, :-1], batch[:, -1:]
    covariate_batch = None if covariates is None else torch.from_numpy(covariates[None]).float().to(device)
    shape = (len(targets), *batch.shape[2:])
    sums = {method: torch.zeros(shape, dtype=torch.float64, device=device) for method in methods}
    for number, network in enumerate(networks):
        module = TargetModule(network, roi_channel, covariate_batch, targets, zoom)
        if "gradcam" in methods:
            sums["gradcam"] += gradcam(module, images, check_gradcam_layer(network, layer)).double()
        if "occlusion" in methods:
            sums["occlusion"] += occlusion(module, images, occlusion_window, occlusion_stride).double()
        logger.debug("saliency maps of network %d/%d done", number + 1, len(networks))
    return {method: (total / len(networks)).float().cpu().numpy() for method, total in sums.items()}
