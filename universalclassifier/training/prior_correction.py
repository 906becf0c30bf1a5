"""Undo what class-balanced sampling does to the nominal heads' probabilities.

Drawing cases with inverse class frequency trains each nominal head as if its values had the sampled frequencies q
instead of the training cases' frequencies p. By Bayes' rule the posterior then differs by the factor p / q per
value, so adding log p - log q to the head's logits (its bias) gives probabilities for the real class frequencies:
0.5 is then the right threshold for a binary head, and calibration starts from honest probabilities. Ranks within a
head, and so its AUC, do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from universalclassifier.plans import ClassificationLabel

MIN_FREQUENCY = 1e-6


def sampling_prior_shifts(
    labels: Sequence[ClassificationLabel], targets: np.ndarray, weights: np.ndarray
) -> dict[str, list[float]]:
    """Per nominal head, log p - log q of each value: p its frequency among the (cases, heads) `targets` (NaN:
    unknown), q its frequency when the cases are drawn with probabilities `weights`."""
    shifts: dict[str, list[float]] = {}
    for index, label in enumerate(labels):
        if label.type != "nominal":
            continue
        known = ~np.isnan(targets[:, index])
        values = targets[known, index].astype(np.int64)
        if values.size == 0 or weights[known].sum() <= 0:
            continue
        prior = np.bincount(values, minlength=label.num_values) / values.size
        sampled = np.bincount(values, weights=weights[known], minlength=label.num_values) / weights[known].sum()
        shift = np.log(np.maximum(prior, MIN_FREQUENCY)) - np.log(np.maximum(sampled, MIN_FREQUENCY))
        shifts[label.name] = [float(v) for v in shift]
    return shifts


@torch.no_grad()
def shift_head_biases(
    heads: nn.ModuleList, labels: Sequence[ClassificationLabel], shifts: dict[str, list[float]]
) -> None:
    """Add each head's shift to its output bias (nominal heads are plain linear layers)."""
    for head, label in zip(heads, labels, strict=True):
        if label.name in shifts:
            if not isinstance(head, nn.Linear) or head.bias is None:
                raise TypeError(f"head {label.name!r} is not a linear layer with a bias")
            head.bias.add_(torch.tensor(shifts[label.name], dtype=head.bias.dtype, device=head.bias.device))
