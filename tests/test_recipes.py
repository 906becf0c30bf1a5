"""Training recipes: schedules, the registry, round-trips, checks, and the pieces they switch."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from helpers import NUM_ROI_CLASSES, make_plans
from universalclassifier.errors import UserInputError
from universalclassifier.network.i3d import build_network, network_for
from universalclassifier.training.augmentation import class_balanced_weights, training_transforms
from universalclassifier.training.optimization import Optimizers
from universalclassifier.training.recipes import AUC23, DEFAULT, RECIPES, Recipe, recipe_for


def test_auc23_is_the_predecessors_recipe():
    assert recipe_for("ClassifierTrainerAUC23") == AUC23
    assert (AUC23.optimizer, AUC23.learning_rate, AUC23.momentum, AUC23.weight_decay) == ("sgd", 1e-2, 0.99, 3e-5)
    assert (AUC23.normalization, AUC23.augmentation, AUC23.gradient_clip) == ("batch", "nnunet", 12.0)
    assert AUC23.learning_rate_at(0, 200) == pytest.approx(1e-2)
    assert AUC23.learning_rate_at(100, 200) == pytest.approx(1e-2 * 0.5**0.9)
    assert AUC23.learning_rate_at(199, 200) == pytest.approx(1e-2 * (1 / 200) ** 0.9)


def test_warm_up_then_cosine():
    recipe = dataclasses.replace(AUC23, warmup_epochs=4, schedule="cosine", learning_rate=1.0)
    rates = [recipe.learning_rate_at(e, 24) for e in range(24)]
    assert rates[:5] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert rates[14] == pytest.approx(0.5)
    assert all(a > b for a, b in itertools.pairwise(rates[4:])) and rates[-1] < 0.01
    # a warm-up longer than training is shortened so the peak is still reached
    assert dataclasses.replace(recipe, warmup_epochs=50).learning_rate_at(1, 2) == pytest.approx(1.0)


def test_registry_and_round_trip():
    assert recipe_for("ClassifierTrainer") is DEFAULT
    assert set(RECIPES) == {"ClassifierTrainer", "ClassifierTrainerAUC23"}
    with pytest.raises(UserInputError, match="Unknown trainer 'nnUNetTrainerV2': choose one of ClassifierTrainer"):
        recipe_for("nnUNetTrainerV2")
    assert Recipe(**DEFAULT.to_dict()) == DEFAULT


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"normalization": "layer"}, "normalization must be one of"),
        ({"learning_rate": 0.0}, "out of range"),
        ({"head_learning_rate_factor": 0.0}, "out of range"),
        ({"dropout": 1.0}, "out of range"),
        ({"backbone_frozen_fraction": 1.5}, "out of range"),
        ({"head_optimizer": "adam"}, "head_optimizer must be one of"),
        ({"head_weight_decay": -1.0}, "out of range"),
        ({"gradient_clip": 0}, "out of range"),
    ],
)
def test_bad_recipes_are_refused(change, message):
    with pytest.raises(UserInputError, match=message):
        dataclasses.replace(DEFAULT, **change).check()


def test_optimizers_follow_the_recipe():
    network = build_network(2, [2, 3])
    sgd = Optimizers(AUC23, network)
    assert isinstance(sgd.backbone, torch.optim.SGD) and isinstance(sgd.heads, torch.optim.SGD)
    assert sgd.backbone.defaults["nesterov"] and sgd.backbone.defaults["momentum"] == 0.99
    recipe = dataclasses.replace(
        AUC23, optimizer="adamw", weight_decay=0.05, head_optimizer="sgd", momentum=0.9, head_weight_decay=0.0,
        head_learning_rate_factor=10.0,
    )
    optimizers = Optimizers(recipe, network)
    assert isinstance(optimizers.backbone, torch.optim.AdamW) and optimizers.backbone.defaults["weight_decay"] == 0.05
    assert isinstance(optimizers.heads, torch.optim.SGD) and optimizers.heads.defaults["weight_decay"] == 0.0
    heads = optimizers.heads.param_groups[0]["params"]
    assert sum(p.numel() for p in heads) == sum(p.numel() for p in network.heads.parameters())
    assert len(optimizers.backbone.param_groups[0]["params"]) + len(heads) == len(list(network.parameters()))
    optimizers.set_learning_rate(1e-4)
    assert optimizers.backbone.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert optimizers.heads.param_groups[0]["lr"] == pytest.approx(1e-3)
    optimizers.set_learning_rate(1e-4, backbone_frozen=True)
    assert optimizers.backbone.param_groups[0]["lr"] == 0
    with pytest.raises(UserInputError, match="m.model was written by an older universalclassifier"):
        optimizers.load_state_dict({"state": {}, "param_groups": []}, "m.model")
    restored = Optimizers(recipe, network)
    restored.load_state_dict(optimizers.state_dict(), "m.model")
    assert restored.state_dict()["heads"]["param_groups"] == optimizers.state_dict()["heads"]["param_groups"]


def test_a_frozen_backbone_stays_unchanged_while_the_heads_learn():
    recipe = dataclasses.replace(DEFAULT, backbone_frozen_fraction=0.5)
    assert [recipe.backbone_frozen_at(e, 10) for e in range(10)] == [True] * 5 + [False] * 5
    torch.manual_seed(0)
    network = build_network(2, [2], normalization="group")
    optimizers = Optimizers(recipe, network)
    before = [p.detach().clone() for p in network.parameters()]
    optimizers.set_learning_rate(1e-2, recipe.backbone_frozen_at(0, 10))
    x = torch.randn(4, 2, 8, 16, 16)
    for _ in range(3):
        optimizers.zero_grad()
        torch.nn.functional.cross_entropy(network(x)[0], torch.tensor([0, 1, 0, 1])).backward()
        for optimizer in optimizers.all:
            optimizer.step()
    head_ids = {id(p) for p in network.heads.parameters()}
    for old, new in zip(before, network.parameters(), strict=True):
        assert torch.equal(old, new) != (id(new) in head_ids)


def test_group_norm_network_is_independent_of_the_batch():
    torch.manual_seed(0)
    network = build_network(2, [2], normalization="group").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in network.modules())
    x = torch.randn(3, 2, 12, 16, 16)
    alone = network(x[:1])[0]
    together = network(x)[0][:1]
    torch.testing.assert_close(alone, together, rtol=1e-4, atol=1e-5)
    # in training mode too (BatchNorm would mix the cases of a batch)
    network.train()
    network.dropout.p = 0.0
    torch.testing.assert_close(network(x[:1])[0], network(x)[0][:1], rtol=1e-4, atol=1e-5)


def test_class_balanced_weights():
    weights = class_balanced_weights(np.array([0, 0, 0, 0, 0, 0, 1, 1]))
    assert weights.sum() == pytest.approx(1)
    assert weights[:6].sum() == pytest.approx(0.5) and weights[6:].sum() == pytest.approx(0.5)
    assert class_balanced_weights(np.array([2, 0, 1])) == pytest.approx([1 / 3] * 3)


def test_light_augmentation_drops_smoothing_transforms(tmp_path):
    from universalclassifier.plans import Plans

    plans = Plans(
        task_name="Task001_X", modalities=["T1"], normalization_schemes=["zscore"], use_mask_for_norm=[False],
        intensity_properties={}, transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0], image_size=[8, 8, 8], batch_size=2, do_dummy_2D_data_aug=False,
        num_roi_classes=3, uses_roi=True, classification_labels=[], num_training_cases=6,
    )
    names = lambda augmentation: [type(t).__name__ for t in training_transforms(plans, augmentation).transforms]  # noqa: E731
    full, light = names("nnunet"), names("light")
    smoothing = ("GaussianNoiseTransform", "GaussianBlurTransform", "SimulateLowResolutionTransform", "GammaTransform")
    for dropped in smoothing:
        assert dropped in full and dropped not in light
    assert "MirrorTransform" in light and "SpatialTransform" in light
    assert not training_transforms(plans, "light").transforms[1].do_elastic_deform
    with pytest.raises(ValueError, match="augmentation must be one of"):
        training_transforms(plans, "heavy")


def test_mirror_augmentation_keeps_every_voxel_value():
    from universalclassifier.plans import Plans

    plans = Plans(
        task_name="Task001_X", modalities=["T1"], normalization_schemes=["zscore"], use_mask_for_norm=[False],
        intensity_properties={}, transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0], image_size=[6, 7, 8], batch_size=2, do_dummy_2D_data_aug=False,
        num_roi_classes=3, uses_roi=True, classification_labels=[], num_training_cases=6,
    )
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 1, 6, 7, 8)).astype(np.float32)
    seg = rng.integers(0, 3, size=(4, 1, 6, 7, 8)).astype(np.float32)
    flipped_any = False
    for _ in range(5):
        out = training_transforms(plans, "mirror")(data=data.copy(), seg=seg.copy())
        assert out["data"].shape == (4, 2, 6, 7, 8)  # the ROI became the last channel
        for case in range(4):
            image, roi = out["data"][case, 0], out["data"][case, 1]
            flips = [
                axes for r in range(4) for axes in itertools.combinations((0, 1, 2), r)
                if np.array_equal(image, np.flip(data[case, 0], axes) if axes else data[case, 0])
            ]
            assert len(flips) == 1  # exactly a mirroring of the input: no interpolation, no intensity change
            np.testing.assert_allclose(roi, np.flip(seg[case, 0], flips[0]) / 3 if flips[0] else seg[case, 0] / 3)
            flipped_any |= bool(flips[0])
    assert flipped_any


def test_checkpoints_from_before_roi_volume_rebuild_their_network():
    """A checkpoint's recipe without `roi_volume` (written before the field existed) rebuilds heads of its width."""
    plans = make_plans(1, (8, 12, 12))
    saved = DEFAULT.to_dict()
    del saved["roi_volume"]
    per_label_volume = network_for(plans, DEFAULT.to_dict()).heads[0].in_features
    assert network_for(plans, saved).heads[0].in_features == per_label_volume - (NUM_ROI_CLASSES - 1)


def test_checkpoints_from_before_roi_extremes_rebuild_their_network():
    """A checkpoint's recipe without `roi_extremes` rebuilds heads without the two extremes per channel and label."""
    plans = make_plans(1, (8, 12, 12))
    saved = dataclasses.replace(DEFAULT, roi_extremes=True).to_dict()
    width = network_for(plans, saved).heads[0].in_features
    del saved["roi_extremes"]
    assert network_for(plans, saved).heads[0].in_features == width - 2 * plans.num_modalities * (NUM_ROI_CLASSES - 1)
