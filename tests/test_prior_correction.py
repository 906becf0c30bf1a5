"""Undoing balanced sampling: the logit shifts and what they do to a trained head's probabilities."""

import numpy as np
import torch
from torch import nn

from universalclassifier.plans import ClassificationLabel
from universalclassifier.training.augmentation import class_balanced_weights
from universalclassifier.training.prior_correction import sampling_prior_shifts, shift_head_biases

BINARY = ClassificationLabel("malignant", "nominal", ("benign", "malignant"))
THREE = ClassificationLabel("kind", "nominal", ("a", "b", "c"))
GRADE = ClassificationLabel("grade", "ordinal", ("1", "2", "3"))


def test_shifts_are_log_prior_over_sampled_frequency_per_nominal_head():
    first = np.array([0] * 8 + [1] * 2, dtype=float)  # 20% positives, sampled at 50%
    second = np.array([0, 0, 0, 0, 1, 1, 1, 2, np.nan, 2], dtype=float)
    grades = np.zeros(10)
    targets = np.stack([first, second, grades], axis=1)
    weights = class_balanced_weights(first)
    shifts = sampling_prior_shifts([BINARY, THREE, GRADE], targets, weights)
    assert set(shifts) == {"malignant", "kind"}  # ordinal heads are left alone
    np.testing.assert_allclose(shifts["malignant"], [np.log(0.8 / 0.5), np.log(0.2 / 0.5)])
    # second head: frequencies among its 9 known cases; sampled frequency from the weights of those cases
    known = ~np.isnan(second)
    w = weights[known] / weights[known].sum()
    values = second[known].astype(int)
    prior = np.bincount(values, minlength=3) / known.sum()
    sampled = np.array([w[values == k].sum() for k in range(3)])
    np.testing.assert_allclose(shifts["kind"], np.log(prior) - np.log(sampled))
    # uniform sampling changes nothing
    uniform = sampling_prior_shifts([BINARY], targets[:, :1], np.full(10, 0.1))
    np.testing.assert_allclose(uniform["malignant"], [0.0, 0.0], atol=1e-12)


def test_shifted_bias_turns_balanced_posteriors_into_prior_weighted_ones():
    torch.manual_seed(0)
    head = nn.Linear(4, 2)
    features = torch.randn(6, 4)
    before = torch.softmax(head(features), dim=1)
    shift = [float(np.log(0.8 / 0.5)), float(np.log(0.2 / 0.5))]
    shift_head_biases(nn.ModuleList([head]), [BINARY], {"malignant": shift})
    after = torch.softmax(head(features), dim=1)
    # Bayes: p(y|x) is proportional to p_balanced(y|x) * prior(y) / sampled(y)
    expected = before * torch.tensor([0.8 / 0.5, 0.2 / 0.5])
    torch.testing.assert_close(after, expected / expected.sum(1, keepdim=True))
    assert (after[:, 1] < before[:, 1]).all()  # the rare class loses what balanced sampling gave it
