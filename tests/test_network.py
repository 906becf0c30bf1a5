"""Tests for the I3D classification network (CPU only, small inputs)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from universalclassifier.network.i3d import (
    FINE_ROI_CHANNELS,
    NUM_FEATURES,
    ROI_POOLING_FEATURES,
    I3DClassifier,
    SameMaxPool3d,
    build_network,
    roi_extremes,
    roi_outline,
    roi_statistics,
    same_padding,
)

# Spatial sizes (Z, Y, X): tiny, odd, single-slice, strongly anisotropic and isotropic volumes.
SPATIAL_SIZES = [(8, 24, 24), (7, 33, 29), (1, 64, 64), (4, 96, 96), (48, 48, 48), (1, 1, 1), (2, 3, 5)]

# Exact number of trainable parameters for in_channels=2 and two 2-value heads (about 12.3 M). Roughly:
#   stem (Conv3d_1a_7x7 44,032 + Conv3d_2b_1x1 4,224 + Conv3d_2c_3x3 332,160)          ~   0.38 M
#   Mixed_3b 0.39 M + 3c 0.84 M                                                         ~   1.22 M
#   Mixed_4b 0.74 M + 4c 0.90 M + 4d 1.10 M + 4e 1.36 M + 4f 1.80 M                      ~   5.90 M
#   Mixed_5b 1.97 M + 5c 2.78 M                                                         ~   4.76 M
#   two heads 2 * (1024 * 2 + 2) = 4,100
# Conv weights dominate; BatchNorm weights/biases contribute 14,560 of the total.
EXPECTED_PARAMETERS = 12_269_412


def _count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def network() -> I3DClassifier:
    torch.manual_seed(0)
    return build_network(2, [2, 2]).eval()


@pytest.mark.parametrize("spatial", SPATIAL_SIZES)
def test_output_shapes_in_eval_mode(network: I3DClassifier, spatial: tuple[int, int, int]) -> None:
    with torch.no_grad():
        outputs = network(torch.randn(2, 2, *spatial))
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 2), (2, 2)]
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("spatial", [(1, 1, 1), (7, 33, 29), (4, 96, 96)])
def test_output_shapes_in_train_mode(spatial: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_network(1, [3]).train()
    outputs = model(torch.randn(2, 1, *spatial))
    assert [tuple(o.shape) for o in outputs] == [(2, 3)]
    assert torch.isfinite(outputs[0]).all()


def test_backbone_ends_with_1024_features(network: I3DClassifier) -> None:
    with torch.no_grad():
        features = network.backbone(torch.randn(2, 2, 5, 17, 11))
    assert tuple(features.shape) == (2, NUM_FEATURES, 1, 1, 1)


def test_parameter_count() -> None:
    count = _count_parameters(build_network(2, [2, 2]))
    assert 12_200_000 < count < 12_400_000
    assert count == EXPECTED_PARAMETERS


def test_parameter_count_scales_with_inputs_and_heads() -> None:
    # One extra input channel adds one 7x7x7x64 slice of the stem; one extra head value adds a 1024-weight row + bias.
    assert _count_parameters(build_network(3, [2, 2])) == EXPECTED_PARAMETERS + 7 * 7 * 7 * 64
    assert _count_parameters(build_network(2, [2, 3])) == EXPECTED_PARAMETERS + NUM_FEATURES + 1


def test_training_step_updates_weights_with_finite_gradients() -> None:
    torch.manual_seed(0)
    model = build_network(2, [2, 3]).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stem = model.backbone.Conv3d_1a_7x7.conv.weight
    watched = [stem, *(head.weight for head in model.heads)]
    before = [w.detach().clone() for w in watched]

    x = torch.randn(2, 2, 8, 24, 24)
    targets = [torch.tensor([0, 1]), torch.tensor([2, 0])]
    outputs = model(x)
    loss = sum(torch.nn.functional.cross_entropy(o, t) for o, t in zip(outputs, targets, strict=True))
    optimizer.zero_grad()
    loss.backward()

    for weight in watched:
        assert weight.grad is not None
        assert torch.isfinite(weight.grad).all()
        assert weight.grad.abs().sum() > 0
    optimizer.step()
    for weight, old in zip(watched, before, strict=True):
        assert not torch.equal(weight.detach(), old)


@pytest.mark.parametrize("head_sizes", [[3], [2, 4, 5]])
def test_different_head_counts(head_sizes: list[int]) -> None:
    torch.manual_seed(0)
    model = build_network(3, head_sizes).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 6, 20, 18))
    assert [tuple(o.shape) for o in outputs] == [(2, size) for size in head_sizes]


def test_numpy_integers_are_accepted() -> None:
    model = build_network(np.int64(2), [np.int64(2), np.int32(3)])
    assert model.in_channels == 2
    assert model.head_sizes == (2, 3)


def test_eval_mode_is_deterministic(network: I3DClassifier) -> None:
    x = torch.randn(2, 2, 7, 33, 29)
    with torch.no_grad():
        first = network(x)
        second = network(x)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_input_channels": 0, "head_sizes": [2]}, r"in_channels must be an integer >= 1, got 0"),
        ({"num_input_channels": -3, "head_sizes": [2]}, r"in_channels must be an integer >= 1, got -3"),
        ({"num_input_channels": 1.5, "head_sizes": [2]}, r"in_channels must be an integer >= 1, got 1\.5"),
        ({"num_input_channels": True, "head_sizes": [2]}, r"in_channels must be an integer >= 1, got True"),
        ({"num_input_channels": 1, "head_sizes": []}, r"head_sizes must contain at least one head"),
        ({"num_input_channels": 1, "head_sizes": "22"}, r"head_sizes must be a sequence of integers"),
        ({"num_input_channels": 1, "head_sizes": 2}, r"head_sizes must be a sequence of integers"),
        ({"num_input_channels": 1, "head_sizes": [2, 1]}, r"head_sizes\[1\] must be an integer >= 2, got 1"),
        ({"num_input_channels": 1, "head_sizes": [0]}, r"head_sizes\[0\] must be an integer >= 2, got 0"),
        ({"num_input_channels": 1, "head_sizes": [2.0]}, r"head_sizes\[0\] must be an integer >= 2, got 2\.0"),
        ({"num_input_channels": 1, "head_sizes": [2], "dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"num_input_channels": 1, "head_sizes": [2], "dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
        ({"num_input_channels": 2, "head_sizes": [2], "normalization": "layer"}, r"normalization must be one of"),
        (
            {"num_input_channels": 2, "head_sizes": [2], "num_roi_classes": 1},
            r"num_roi_classes must be an integer >= 2",
        ),
    ],
)
def test_argument_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_network(**kwargs)


def test_classifier_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match=r"in_channels must be an integer >= 1"):
        I3DClassifier(0, [2])


def test_wrong_input_shape_is_rejected(network: I3DClassifier) -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, Z, Y, X\), got \(2, 3, 4, 4, 4\)"):
        network(torch.randn(2, 3, 4, 4, 4))
    with pytest.raises(ValueError, match=r"expected input of shape"):
        network(torch.randn(2, 2, 4, 4))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        ((24, 24, 24), (7, 7, 7), (2, 2, 2), [2, 3, 2, 3, 2, 3]),  # even size: total 5, floor half before
        ((7, 33, 29), (3, 3, 3), (1, 1, 1), [1, 1, 1, 1, 1, 1]),
        ((1, 1, 1), (2, 2, 2), (2, 2, 2), [0, 1, 0, 1, 0, 1]),
        ((4, 5, 6), (1, 3, 3), (1, 2, 2), [0, 1, 1, 1, 0, 0]),  # last axis first, as F.pad expects
    ],
)
def test_same_padding(size: tuple, kernel: tuple, stride: tuple, expected: list[int]) -> None:
    assert same_padding(size, kernel, stride) == expected


def test_same_max_pool_padding_never_wins() -> None:
    # All-negative input: zero padding would leak zeros into border outputs; -inf padding must not.
    x = -1.0 - torch.rand(1, 1, 3, 5, 4)
    pooled = SameMaxPool3d(3, 1)(x)
    assert pooled.shape == x.shape
    assert (pooled < 0).all()
    assert torch.isfinite(pooled).all()
    single = torch.full((1, 1, 1, 1, 1), -5.0)
    assert torch.equal(SameMaxPool3d(3, 2)(single), single)
    assert torch.equal(SameMaxPool3d(2, 2)(single), single)


def test_roi_statistics_weight_by_covered_fraction() -> None:
    features = torch.zeros(1, 2, 2, 2, 2)
    features[0, 0, 0] = 4.0  # first z-half of channel 0
    features[0, 1] = 1.0
    mask = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    mask[0, 0, :2] = True  # exactly the first z-half at the feature resolution
    torch.testing.assert_close(roi_statistics(features, mask), torch.tensor([[4.0, 1.0, 0.0, 0.0]]), atol=1e-3, rtol=0)
    mask[0, 0, 2, :2, :2] = True  # plus half of the feature cell (1, 0, 0): 4 of its 8 voxels
    weights = torch.tensor([1.0] * 4 + [0.5] + [0.0] * 3)  # covered fraction of the 8 feature cells
    values = torch.tensor([4.0] * 4 + [0.0] * 4)
    mean = (weights * values).sum() / weights.sum()
    sd = ((weights * (values - mean) ** 2).sum() / weights.sum()).sqrt()
    expected = torch.tensor([[float(mean), 1.0, float(sd), 0.0]])
    torch.testing.assert_close(roi_statistics(features, mask), expected, atol=1e-3, rtol=1e-4)
    assert torch.allclose(roi_statistics(features, torch.zeros_like(mask)), torch.zeros(1, 4), atol=1e-6)


def test_roi_pooling_heads_see_each_roi_label() -> None:
    torch.manual_seed(0)
    network = build_network(2, [2], dropout=0.0, normalization="group", num_roi_classes=3).eval()
    assert network.heads[0].in_features == NUM_FEATURES + 2 * ROI_POOLING_FEATURES
    x = torch.randn(1, 2, 16, 24, 24)
    x[:, -1] = 1 / 3
    x[:, -1, 6:10, 8:14, 8:14] = 2 / 3
    baseline = network(x)[0]
    changed = x.clone()
    changed[0, 0, 6:10, 8:14, 8:14] += 3.0  # only the image inside the label-2 region
    assert not torch.allclose(network(changed)[0], baseline)
    # the pooled features are what the heads read: zero the head weights of everything else and only they matter
    with torch.no_grad():
        network.heads[0].weight[:, : NUM_FEATURES + ROI_POOLING_FEATURES] = 0  # global and label-1 features
        baseline = network(x)[0]
    moved = x.clone()
    moved[0, 0, :4, :4, :4] += 3.0  # as large a change far outside label 2 hardly moves the label-2 statistics
    outside = (network(moved)[0] - baseline).abs().max()
    inside = (network(changed)[0] - baseline).abs().max()
    assert outside < 0.1 * inside


def test_roi_descriptors_read_the_input_inside_each_label() -> None:
    torch.manual_seed(0)
    network = build_network(3, [2], dropout=0.0, normalization="group", num_roi_classes=3, roi_descriptors=True)
    per_label = ROI_POOLING_FEATURES + 2 * 2 + 1 + 3
    assert network.heads[0].in_features == NUM_FEATURES + 2 * per_label
    x = torch.randn(1, 3, 16, 24, 24)
    x[:, -1] = 1 / 3
    x[:, -1, 6:10, 8:14, 8:14] = 2 / 3  # label 2: 4 x 6 x 6 voxels
    network.eval()
    features = {}
    network.heads[0].register_forward_hook(lambda module, inputs, output: features.update(x=inputs[0]))
    network(x)
    label2 = features["x"][0, NUM_FEATURES + per_label + ROI_POOLING_FEATURES :]
    inside = x[0, :2, 6:10, 8:14, 8:14].flatten(1)
    # a 4 x 6 x 6 box: 2 * 36 faces normal to Z, 2 * 24 normal to Y and to X, over 144 ** (2 / 3)
    outline = torch.tensor([72.0, 48.0, 48.0]) / 144 ** (2 / 3)
    expected = torch.cat(
        [inside.mean(1), inside.std(1, unbiased=False), torch.tensor([(144 / (16 * 24 * 24)) ** (1 / 3)]), outline]
    )
    torch.testing.assert_close(label2, expected, atol=2e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="roi_descriptors need ROI pooling"):
        build_network(2, [2], num_roi_classes=0, roi_descriptors=True)


def test_roi_volume_adds_the_volume_fraction_before_the_size() -> None:
    torch.manual_seed(0)
    network = build_network(
        3, [2, 1], dropout=0.0, normalization="group", num_roi_classes=3, roi_descriptors=True, roi_volume=True,
        head_types=["nominal", "regression"],
    )
    per_label = ROI_POOLING_FEATURES + 2 * 2 + 2 + 3
    assert network.heads[1].in_features == NUM_FEATURES + 2 * per_label
    x = torch.randn(1, 3, 16, 24, 24)
    x[:, -1] = 1 / 3
    x[:, -1, 6:10, 8:14, 8:14] = 2 / 3  # label 2: 4 x 6 x 6 voxels, label 1 the rest
    network.eval()
    features = {}
    network.heads[1].register_forward_hook(lambda module, inputs, output: features.update(x=inputs[0]))
    network(x)
    sizes = []
    for label, voxels in ((1, 16 * 24 * 24 - 144), (2, 144)):
        start = NUM_FEATURES + (label - 1) * per_label + ROI_POOLING_FEATURES + 2 * 2
        sizes.append(features["x"][0, start : start + 2])
        fraction = voxels / (16 * 24 * 24)
        torch.testing.assert_close(sizes[-1], torch.tensor([fraction, fraction ** (1 / 3)]), atol=1e-5, rtol=1e-4)
    # a case preprocessing zoomed down by 0.5 to fit the input: the descriptors give its true (8x larger) volume
    network(x, zoom=torch.tensor([[0.5]]))
    start = NUM_FEATURES + per_label + ROI_POOLING_FEATURES + 2 * 2
    fraction = 8 * 144 / (16 * 24 * 24)
    torch.testing.assert_close(
        features["x"][0, start : start + 2], torch.tensor([fraction, fraction ** (1 / 3)]), atol=1e-5, rtol=1e-4
    )
    with pytest.raises(ValueError, match="roi_volume and roi_extremes are ROI descriptors"):
        build_network(3, [2], num_roi_classes=3, roi_volume=True)


def test_roi_extremes_find_a_small_spot_that_barely_moves_the_mean() -> None:
    images = torch.zeros(1, 2, 12, 16, 16)
    images[0, 0, 2:5, 3:6, 3:6] = 5.0  # a bright 3x3x3 spot in 3072 voxels
    images[0, 1, 7:10, 9:12, 9:12] = -2.0  # a dark one in the other channel
    images[0, 1, 0, 0, 0] = 50.0  # one hot voxel at the border: its local mean is at most 50 / 8
    images[0, 0, 11] = 1.0  # a plane of ones, for a mask one voxel thin
    everywhere = torch.ones(1, 1, 12, 16, 16, dtype=torch.bool)
    torch.testing.assert_close(roi_extremes(images, everywhere), torch.tensor([[5.0, 50 / 8, 0.0, -2.0]]))
    # a mask one voxel thin has no voxel with its whole neighbourhood inside: its extremes come from all of it, and
    # the local means average only its own voxels (the zeros next to the plane do not count)
    plane = torch.zeros_like(everywhere)
    plane[0, 0, 11] = True
    torch.testing.assert_close(roi_extremes(images, plane), torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    torch.testing.assert_close(roi_extremes(images, torch.zeros_like(everywhere)), torch.zeros(1, 4))


def test_roi_extremes_follow_the_other_descriptors_of_each_label() -> None:
    network = build_network(
        3, [2], dropout=0.0, normalization="group", num_roi_classes=3, roi_descriptors=True, roi_extremes=True
    )
    per_label = ROI_POOLING_FEATURES + 2 * 2 + 1 + 3 + 2 * 2
    assert network.heads[0].in_features == NUM_FEATURES + 2 * per_label
    x = torch.zeros(1, 3, 16, 24, 24)
    x[:, -1] = 1 / 3
    x[:, -1, 4:14, 6:16, 6:16] = 2 / 3  # label 2: 10 x 10 x 10 voxels
    x[0, 0, 8:11, 9:12, 9:12] = 4.0  # a spot inside label 2
    network.eval()
    features = {}
    network.heads[0].register_forward_hook(lambda module, inputs, output: features.update(x=inputs[0]))
    network(x)
    label1, label2 = (features["x"][0, NUM_FEATURES + k * per_label - 4 : NUM_FEATURES + k * per_label] for k in (1, 2))
    torch.testing.assert_close(label2, torch.tensor([4.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(label1, torch.zeros(4))  # label 1 (around label 2) never reaches the spot's centre
    with pytest.raises(ValueError, match="roi_volume and roi_extremes are ROI descriptors"):
        build_network(3, [2], num_roi_classes=3, roi_extremes=True)
    # standardized, the extremes are a feature group of their own: together they weigh as much as the 1024 features
    scale = build_network(
        3, [2], num_roi_classes=3, roi_descriptors=True, roi_extremes=True, standardize_features=True
    ).feature_scale
    assert scale is not None
    torch.testing.assert_close(scale[-4:], torch.full((4,), 0.5))
    torch.testing.assert_close(scale[-5], torch.tensor((2 * 2 + 1 + 3) ** -0.5))
    torch.testing.assert_close(scale[0], torch.tensor(NUM_FEATURES**-0.5))


def test_fine_roi_branch_adds_learned_statistics_per_label() -> None:
    network = build_network(3, [2], normalization="group", num_roi_classes=3, fine_roi_features=True)
    assert network.heads[0].in_features == NUM_FEATURES + 2 * (ROI_POOLING_FEATURES + 2 * FINE_ROI_CHANNELS)
    x = torch.randn(2, 3, 8, 12, 12)
    x[:, -1] = torch.randint(0, 3, (2, 8, 12, 12)) / 3
    sum(logits.sum() for logits in network(x)).backward()
    assert network.fine_branch is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.fine_branch.parameters())
    with pytest.raises(ValueError, match="fine_roi_features and roi_descriptors need ROI pooling"):
        build_network(2, [2], num_roi_classes=0, fine_roi_features=True)


def test_roi_outline_is_size_free_and_higher_for_lobulated_shapes() -> None:
    grid = torch.stack(torch.meshgrid(*[torch.arange(40.0)] * 3, indexing="ij"))
    small = ((grid - 20) ** 2).sum(0) <= 4**2
    large = ((grid - 20) ** 2).sum(0) <= 9**2
    lobulated = small.clone()
    for offset in ([4, 0, 0], [-4, 0, 0], [0, 4, 0], [0, 0, -4]):
        lobulated |= ((grid - 20 - torch.tensor(offset).view(3, 1, 1, 1)) ** 2).sum(0) <= 2**2
    border = torch.zeros_like(small)
    border[:3, :4, :5] = True  # the image border closes the mask
    outline = roi_outline(torch.stack([small, large, lobulated, border, torch.zeros_like(small)])[:, None])
    assert torch.allclose(outline[0], outline[1], rtol=0.1)  # the ball's outline does not depend on its size
    assert outline[2].sum() > 1.15 * outline[0].sum()
    torch.testing.assert_close(outline[3], torch.tensor([40.0, 30.0, 24.0]) / 60 ** (2 / 3))
    assert (outline[4] == 0).all()


def test_standardized_feature_groups_reach_the_heads_with_equal_total_variance() -> None:
    torch.manual_seed(0)
    network = build_network(
        2, [2], dropout=0.0, normalization="group", num_roi_classes=3, roi_descriptors=True, standardize_features=True
    )
    features = {}
    network.heads[0].register_forward_hook(lambda module, inputs, output: features.update(x=inputs[0]))
    x = torch.randn(6, 2, 8, 12, 12)
    x[:, -1] = torch.randint(0, 3, (6, 8, 12, 12)) / 3
    network.train()
    network(x)
    assert torch.allclose(features["x"].mean(dim=0), torch.zeros(features["x"].shape[1]), atol=1e-4)
    # the groups: 1024 backbone features, then per ROI label 128 stem statistics and 6 descriptors (1 image channel)
    variance = features["x"].var(dim=0, unbiased=False)
    bounds = [0, 1024, 1152, 1158, 1286, 1292]
    assert len(variance) == bounds[-1]
    totals = torch.stack([variance[a:b].sum() for a, b in itertools.pairwise(bounds)])
    # features of (near-)zero variance stay below 1: on a tiny input many of the deep backbone's are constant
    assert (totals <= 1 + 1e-3).all() and (totals[1:] > 0.9).all() and totals[0] > 0.3, totals
    assert variance[:1024].max() < 0.01 and variance[1152:1158].min() > 0.1  # a descriptor weighs ~ 170 features
    network.eval()
    alone = network(x[:1])[0]
    torch.testing.assert_close(alone, network(x)[0][:1], rtol=1e-4, atol=1e-5)  # running statistics in evaluation
