"""I3D (Inception-V1 inflated to 3D) classifier for volumes shaped (N, C, Z, Y, X).

The backbone follows the layer sequence and widths of the I3D paper (Carreira & Zisserman, 2017) and ends in global
average pooling, so it accepts any spatial size of at least one voxel per axis: every convolution and max-pool uses
TensorFlow-style "same" padding computed from the actual input size, which gives an output size of
ceil(input / stride) (never zero). On top of the 1024 pooled features sit dropout and one linear head per
classification label. Weights are always randomly initialised; nothing is downloaded.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from universalclassifier.checks import checked_int
from universalclassifier.network.heads import build_head
from universalclassifier.plans import HEAD_TYPES, Plans

logger = logging.getLogger(__name__)

Triple = tuple[int, int, int]

BATCH_NORM_EPS = 1e-3
# PyTorch's default: running statistics settle within tens of steps, which short training runs need
BATCH_NORM_MOMENTUM = 0.1
NUM_FEATURES = 1024
CHANNELS_PER_GROUP = 16
# ROI pooling reads the stem's features (the finest the network has: half resolution on every axis), where lesions a
# few voxels across still span several feature voxels; it pools their mean and standard deviation in each ROI label.
ROI_POOLING_LAYER = "Conv3d_1a_7x7"
ROI_POOLING_FEATURES = 2 * 64
# The fine ROI branch: two 3x3x3 convolutions at the input's full resolution, pooled like the stem (mean and SD per
# ROI label): lesions only a few voxels across keep their texture there.
# ROI descriptors, no learned layers: per ROI label the mean and SD of each input image channel inside it, its size
# (cube root of its volume fraction) and its outline (`roi_outline`): first-order and shape radiomics in miniature.
# With `roi_volume` also the volume fraction itself: the grid is the same for every case (the plan's image size at its
# target spacing), so the fraction is proportional to the label's volume in ml, which a linear head then reads directly.
# With `roi_extremes` also the highest and lowest local mean (3x3x3 voxels, inside the label) of each image channel in
# the label: a small bright or dark spot in a large ROI (a lesion in a body without its own ROI) barely moves the
# label's mean and SD, but sets its extremes; the local mean keeps single noisy voxels from setting them.
FINE_ROI_CHANNELS = 32
NORMALIZATIONS = ("batch", "group")

# Branch widths of every Inception block: (1x1x1, 3x3x3 reduce, 3x3x3, 3x3x3 reduce, 3x3x3, pool projection).
MIXED_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _triple(value: int | Sequence[int]) -> Triple:
    if isinstance(value, int):
        return (value, value, value)
    z, y, x = value
    return (int(z), int(y), int(x))


def same_padding(spatial_size: Sequence[int], kernel_size: Triple, stride: Triple) -> list[int]:
    """TensorFlow "same" padding for the (Z, Y, X) axes, in the last-axis-first order `F.pad` expects.

    Per axis the total is max((ceil(size / stride) - 1) * stride + kernel - size, 0); the smaller half goes before.
    """
    pad: list[int] = []
    for size, kernel, step in reversed(list(zip(spatial_size, kernel_size, stride, strict=True))):
        total = max((math.ceil(size / step) - 1) * step + kernel - size, 0)
        pad.extend((total // 2, total - total // 2))
    return pad


class SameMaxPool3d(nn.Module):
    """3D max-pooling with TensorFlow "same" padding computed from the input size.

    The padding value is -inf, so padded voxels never win the maximum: this matches TensorFlow, which ignores the
    padding. With "same" padding every window overlaps the input, so no output is -inf. (In this network every pool
    follows a ReLU, so zero padding would give the same result, but -inf stays correct for any input.)
    """

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int]) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-3:], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad, mode="constant", value=float("-inf"))
        return F.max_pool3d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding=same"


def normalization_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm3d ("batch"), or GroupNorm with 16 channels per group ("group").

    GroupNorm normalizes each case on its own, so training and evaluation behave alike whatever the batch size;
    16 channels per group keep its statistics meaningful even where the feature map is a single voxel.
    """
    if kind == "batch":
        return nn.BatchNorm3d(channels, eps=BATCH_NORM_EPS, momentum=BATCH_NORM_MOMENTUM)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // CHANNELS_PER_GROUP), channels, eps=BATCH_NORM_EPS)
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")


class ConvUnit(nn.Module):
    """Conv3d without bias + normalization + ReLU, with TensorFlow "same" zero padding computed from the input size."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        normalization: str = "batch",
    ) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel_size, self.stride, bias=False)
        self.bn = normalization_layer(normalization, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-3:], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        return F.relu(self.bn(self.conv(x)), inplace=True)


class MixedBlock(nn.Module):
    """Inception block: four parallel branches whose outputs are concatenated along the channel axis."""

    def __init__(self, in_channels: int, widths: Sequence[int], normalization: str = "batch") -> None:
        super().__init__()
        out0, reduce1, out1, reduce2, out2, pool_projection = widths
        norm = normalization
        self.branch0 = ConvUnit(in_channels, out0, normalization=norm)
        self.branch1 = nn.Sequential(
            ConvUnit(in_channels, reduce1, normalization=norm), ConvUnit(reduce1, out1, 3, normalization=norm)
        )
        self.branch2 = nn.Sequential(
            ConvUnit(in_channels, reduce2, normalization=norm), ConvUnit(reduce2, out2, 3, normalization=norm)
        )
        self.branch3 = nn.Sequential(SameMaxPool3d(3, 1), ConvUnit(in_channels, pool_projection, normalization=norm))
        self.out_channels = out0 + out1 + out2 + pool_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


def _build_backbone(in_channels: int, normalization: str) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["Conv3d_1a_7x7"] = ConvUnit(in_channels, 64, kernel_size=7, stride=2, normalization=normalization)
    layers["MaxPool3d_2a_3x3"] = SameMaxPool3d((1, 3, 3), (1, 2, 2))
    layers["Conv3d_2b_1x1"] = ConvUnit(64, 64, normalization=normalization)
    layers["Conv3d_2c_3x3"] = ConvUnit(64, 192, kernel_size=3, normalization=normalization)
    layers["MaxPool3d_3a_3x3"] = SameMaxPool3d((1, 3, 3), (1, 2, 2))
    pools_before = {"Mixed_4b": ("MaxPool3d_4a_3x3", 3, 2), "Mixed_5b": ("MaxPool3d_5a_2x2", 2, 2)}
    channels = 192
    for name, widths in MIXED_WIDTHS.items():
        if name in pools_before:
            pool_name, kernel, stride = pools_before[name]
            layers[pool_name] = SameMaxPool3d(kernel, stride)
        block = MixedBlock(channels, widths, normalization)
        layers[name] = block
        channels = block.out_channels
    layers["AvgPool"] = nn.AdaptiveAvgPool3d(1)
    return nn.Sequential(layers)


class I3DClassifier(nn.Module):
    """I3D backbone with one linear classification head per label.

    Args:
        in_channels: number of input channels (image modalities plus the ROI channel).
        head_sizes: number of values of each classification label (1 for a regression head); one head is built per
            entry, in order.
        dropout: dropout probability applied to the pooled 1024 features before the heads, in [0, 1).
        normalization: the layer after every convolution: "batch" or "group".
        num_roi_classes: with a value K >= 2, ROI pooling is on: the input's last channel is the ROI map scaled
            into [0, 1) (label / K), and the heads also see, for each ROI label 1..K-1, the mean and standard
            deviation of the `ROI_POOLING_LAYER` features inside that label. 0 (the default) turns it off.
        head_types: per head "nominal" (the default), "ordinal" or "regression" (see network/heads.py).
        roi_volume: with `roi_descriptors`, each ROI label's descriptors also hold its volume fraction (see above).
        roi_extremes: with `roi_descriptors`, each ROI label's descriptors also hold the highest and lowest local mean
            of each image channel inside it (see above).
        num_covariates: length of the encoded covariate vector (universalclassifier/covariates.py) fused with the image
            features before the heads; 0 (the default): none.
    """

    def __init__(
        self,
        in_channels: int,
        head_sizes: Sequence[int],
        dropout: float = 0.5,
        normalization: str = "batch",
        num_roi_classes: int = 0,
        *,
        fine_roi_features: bool = False,
        roi_descriptors: bool = False,
        roi_volume: bool = False,
        roi_extremes: bool = False,
        standardize_features: bool = False,
        head_types: Sequence[str] | None = None,
        num_covariates: int = 0,
    ) -> None:
        super().__init__()
        in_channels = checked_int(in_channels, "in_channels", 1)
        if isinstance(head_sizes, (str, bytes)) or not isinstance(head_sizes, Sequence):
            raise ValueError(f"head_sizes must be a sequence of integers, got {head_sizes!r}")
        if len(head_sizes) == 0:
            raise ValueError("head_sizes must contain at least one head")
        types = ["nominal"] * len(head_sizes) if head_types is None else list(head_types)
        if len(types) != len(head_sizes) or not set(types) <= set(HEAD_TYPES):
            raise ValueError(f"head_types must name one of {HEAD_TYPES} per head, got {head_types!r}")
        sizes = [
            checked_int(size, f"head_sizes[{i}]", 1 if kind == "regression" else 2)
            for i, (size, kind) in enumerate(zip(head_sizes, types, strict=True))
        ]
        if any(size != 1 for size, kind in zip(sizes, types, strict=True) if kind == "regression"):
            raise ValueError(f"a regression head has one output: head_sizes {sizes} for head_types {types}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if num_roi_classes != 0:
            num_roi_classes = checked_int(num_roi_classes, "num_roi_classes", 2)
        if (fine_roi_features or roi_descriptors) and not num_roi_classes:
            raise ValueError("fine_roi_features and roi_descriptors need ROI pooling (num_roi_classes >= 2)")
        if (roi_volume or roi_extremes) and not roi_descriptors:
            raise ValueError("roi_volume and roi_extremes are ROI descriptors: they need roi_descriptors")

        self.in_channels = in_channels
        self.head_sizes = tuple(sizes)
        self.head_types = tuple(types)
        self.normalization = normalization
        self.num_roi_classes = num_roi_classes
        self.backbone = _build_backbone(in_channels, normalization)
        self.dropout = nn.Dropout(p=float(dropout))
        per_label = [ROI_POOLING_FEATURES]  # the sizes of the feature groups of each ROI label
        self.fine_branch: nn.Module | None = None
        if fine_roi_features:
            self.fine_branch = nn.Sequential(
                ConvUnit(in_channels, FINE_ROI_CHANNELS, 3, normalization=normalization),
                ConvUnit(FINE_ROI_CHANNELS, FINE_ROI_CHANNELS, 3, normalization=normalization),
            )
            per_label.append(2 * FINE_ROI_CHANNELS)
        self.roi_descriptors = roi_descriptors
        self.roi_volume = roi_volume
        self.roi_extremes = roi_extremes
        if roi_descriptors:
            per_label.append(2 * (in_channels - 1) + int(roi_volume) + 1 + 3)
        if roi_extremes:  # a group of its own: the spot they find weighs as much as the label's other descriptors
            per_label.append(2 * (in_channels - 1))
        self.num_covariates = checked_int(num_covariates, "num_covariates", 0)
        groups = [NUM_FEATURES] + per_label * max(0, num_roi_classes - 1) + ([num_covariates] if num_covariates else [])
        num_features = sum(groups)
        # Optional: each feature standardized over the batch (running statistics in evaluation), then each group
        # scaled to the same total variance, so that a group of a few features (e.g. the ROI descriptors) weighs as
        # much as the 1024 backbone features: the heads' learning prefers no group by its size.
        self.feature_norm = nn.BatchNorm1d(num_features, affine=False) if standardize_features else nn.Identity()
        scale = torch.cat([torch.full((size,), size**-0.5) for size in groups]) if standardize_features else None
        self.register_buffer("feature_scale", scale, persistent=False)
        self.heads = nn.ModuleList(
            build_head(kind, num_features, size) for kind, size in zip(types, sizes, strict=True)
        )
        self._initialise_weights()

    def _initialise_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm3d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Let gradients reach every layer (True) or only the heads (False: the forward pass then records no graph
        before the heads, so a heads-only step skips the backbone's backward pass)."""
        for name, parameter in self.named_parameters():
            if not name.startswith("heads."):
                parameter.requires_grad_(trainable)

    def forward(
        self, x: torch.Tensor, covariates: torch.Tensor | None = None, zoom: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Map a (N, in_channels, Z, Y, X) batch to one output tensor per head, in order: (N, K) logits (nominal),
        (N, K-1) cumulative logits (ordinal) or (N, 1) standardized values (regression). `covariates` (N,
        num_covariates) are required when the network has covariates, refused otherwise. `zoom` (N, 1), default 1:
        the factor each case was resampled down by to fit the input (preprocessing), which the ROI size descriptors
        undo so that they give the true size."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape (N, {self.in_channels}, Z, Y, X), got {tuple(x.shape)}"
            )
        if self.num_covariates and (covariates is None or tuple(covariates.shape) != (len(x), self.num_covariates)):
            given = None if covariates is None else tuple(covariates.shape)
            raise ValueError(f"expected covariates of shape ({len(x)}, {self.num_covariates}), got {given}")
        if covariates is not None and not self.num_covariates:
            raise ValueError("this network has no covariate inputs, but covariates were given")
        if not self.num_roi_classes:
            features = torch.flatten(self.backbone(x), 1)
        else:
            roi_labels = torch.round(x[:, -1:] * self.num_roi_classes)
            masks = [roi_labels == label for label in range(1, self.num_roi_classes)]
            fine = self.fine_branch(x) if self.fine_branch is not None else None
            h, pooled = x, []
            for name, layer in self.backbone.named_children():
                h = layer(h)
                if name == ROI_POOLING_LAYER:
                    stem = h
            for mask in masks:
                pooled.append(roi_statistics(stem, mask))
                if fine is not None:
                    pooled.append(roi_statistics(fine, mask))
                if self.roi_descriptors:
                    fraction = mask.flatten(1).to(x.dtype).mean(dim=1, keepdim=True)
                    if zoom is not None:
                        fraction = fraction / zoom.to(x.dtype).reshape_as(fraction).pow(3)
                    pooled += [roi_statistics(x[:, :-1], mask), *([fraction] if self.roi_volume else [])]
                    pooled += [fraction.pow(1 / 3), roi_outline(mask)]
                    if self.roi_extremes:
                        pooled.append(roi_extremes(x[:, :-1], mask))
            features = torch.cat([torch.flatten(h, 1), *pooled], dim=1)
        if covariates is not None:
            features = torch.cat([features, covariates.to(features.dtype)], dim=1)
        features = self.feature_norm(features)
        if self.feature_scale is not None:
            features = features * self.feature_scale
        features = self.dropout(features)
        return [head(features) for head in self.heads]


def adaptive_average(x: torch.Tensor, size: Triple) -> torch.Tensor:
    """`F.adaptive_avg_pool3d(x, size)`; while exporting to ONNX, the same averages as products with one averaging
    matrix per axis, since ONNX pools only sizes that divide evenly (network/onnx_export.py)."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool3d(x, size)
    for axis, size_out in zip((-3, -2, -1), size, strict=True):
        x = (x.transpose(axis, -1) @ _averaging_matrix(x.shape[axis], size_out, x)).transpose(axis, -1)
    return x


def _averaging_matrix(size_in: int, size_out: int, like: torch.Tensor) -> torch.Tensor:
    """(size_in, size_out) matrix averaging each adaptive pooling bin: bin o covers floor(o * size_in / size_out) up to
    ceil((o + 1) * size_in / size_out), as in torch's adaptive pooling."""
    size_in, size_out = int(size_in), int(size_out)
    bins = [(o * size_in // size_out, -(-(o + 1) * size_in // size_out)) for o in range(size_out)]
    rows = [[1.0 / (end - start) if start <= i < end else 0.0 for start, end in bins] for i in range(size_in)]
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _differences(x: torch.Tensor, axis: int) -> torch.Tensor:
    """`x.diff(dim=axis)` written as two slices (ONNX has no diff)."""
    length = x.shape[axis] - 1
    return x.narrow(axis, 1, length) - x.narrow(axis, 0, length)


def roi_statistics(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation (N, 2C) of (N, C, z, y, x) features inside a finer (N, 1, Z, Y, X) boolean mask.

    The mask becomes the fraction of each feature voxel it covers, which weights both; an empty mask gives zeros.
    """
    depth, height, width = features.shape[-3:]
    weights = adaptive_average(mask.to(features.dtype), (depth, height, width))
    total = weights.sum(dim=(2, 3, 4)).clamp_min(1e-6)
    mean = (features * weights).sum(dim=(2, 3, 4)) / total
    variance = (features.square() * weights).sum(dim=(2, 3, 4)) / total - mean.square()
    return torch.cat([mean, (variance.clamp_min(0) + 1e-6).sqrt() - 1e-3], dim=1)


def roi_extremes(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Highest and lowest local mean (N, 2C) of (N, C, Z, Y, X) images inside a (N, 1, Z, Y, X) boolean mask.

    The local mean of a voxel averages the mask's voxels among its 3x3x3 neighbours. The extremes are taken over the
    voxels whose whole neighbourhood lies in the mask, or, where no voxel's does (a mask at most two voxels thin),
    over the whole mask; an empty mask gives zeros.
    """
    weights = mask.to(images.dtype)
    neighbours = F.avg_pool3d(weights, 3, stride=1, padding=1).clamp_min(1e-6)
    local = F.avg_pool3d(images * weights, 3, stride=1, padding=1) / neighbours
    inner = -F.max_pool3d(-weights, 3, stride=1, padding=1)  # eroded: 1 where the whole neighbourhood is in the mask
    has_inner = inner.amax(dim=(1, 2, 3, 4), keepdim=True)
    where = inner + (1 - has_inner) * weights  # the eroded mask, or the mask where the erosion is empty
    huge = torch.finfo(images.dtype).max
    highest = (local - huge * (1 - where)).amax(dim=(2, 3, 4))
    lowest = (local + huge * (1 - where)).amin(dim=(2, 3, 4))
    present = weights.amax(dim=(2, 3, 4))  # (N, 1): 0 for an empty mask
    return torch.cat([highest, lowest], dim=1) * present


def roi_outline(mask: torch.Tensor) -> torch.Tensor:
    """Surface per axis over volume^(2/3) (N, 3) of a (N, 1, Z, Y, X) boolean mask: low for compact shapes.

    Counts the mask's voxel faces normal to each axis (the image border closes the mask) and divides by the voxel
    count to the power 2/3, so the values depend on the shape, not its size; an empty mask gives zeros.
    """
    closed = F.pad(mask.to(torch.float32), (1, 1, 1, 1, 1, 1))
    faces = torch.stack([_differences(closed, axis).abs().flatten(1).sum(1) for axis in (2, 3, 4)], dim=1)
    volume = mask.flatten(1).sum(1, keepdim=True).to(torch.float32)
    return torch.where(volume > 0, faces / volume.clamp_min(1).pow(2 / 3), torch.zeros_like(faces))


def build_network(
    num_input_channels: int,
    head_sizes: Sequence[int],
    dropout: float = 0.5,
    normalization: str = "batch",
    num_roi_classes: int = 0,
    *,
    fine_roi_features: bool = False,
    roi_descriptors: bool = False,
    roi_volume: bool = False,
    roi_extremes: bool = False,
    standardize_features: bool = False,
    head_types: Sequence[str] | None = None,
    num_covariates: int = 0,
) -> I3DClassifier:
    """Build a randomly initialised I3D classifier for the given input channels, label sizes and layer choices."""
    network = I3DClassifier(
        num_input_channels,
        head_sizes,
        dropout,
        normalization,
        num_roi_classes,
        fine_roi_features=fine_roi_features,
        roi_descriptors=roi_descriptors,
        roi_volume=roi_volume,
        roi_extremes=roi_extremes,
        standardize_features=standardize_features,
        head_types=head_types,
        num_covariates=num_covariates,
    )
    logger.debug(
        "Built I3D classifier: %d input channel(s), heads %s, dropout %.2f, %s normalization, ROI pooling over %d "
        "class(es), %d parameters",
        network.in_channels,
        list(network.head_sizes),
        dropout,
        normalization,
        num_roi_classes,
        sum(p.numel() for p in network.parameters()),
    )
    return network


def network_for(plans: Plans, recipe: Mapping) -> I3DClassifier:
    """The network a task's plans and a training recipe (as saved in checkpoints) call for."""
    roi_pooling = bool(recipe["roi_pooling"]) and plans.num_roi_classes >= 2
    descriptors = roi_pooling and bool(recipe.get("roi_descriptors", False))
    return build_network(
        plans.num_modalities + 1,
        plans.head_sizes,
        recipe["dropout"],
        recipe["normalization"],
        plans.num_roi_classes if recipe["roi_pooling"] else 0,
        fine_roi_features=roi_pooling and bool(recipe.get("fine_roi_features", False)),
        roi_descriptors=descriptors,
        roi_volume=descriptors and bool(recipe.get("roi_volume", False)),  # checkpoints before it had none
        roi_extremes=descriptors and bool(recipe.get("roi_extremes", False)),  # nor this
        standardize_features=bool(recipe.get("standardize_features", False)),
        head_types=[head.type for head in plans.classification_labels],
        num_covariates=plans.covariate_width,
    )
