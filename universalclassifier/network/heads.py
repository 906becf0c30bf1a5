"""The output heads by label type, and how their outputs become predictions.

- nominal: one logit per value; the prediction is the softmax.
- ordinal (K ordered grades): one score s and K-1 increasing thresholds t_1 < ... < t_{K-1}; the outputs are the
  cumulative logits s - t_k of P(grade >= k). Increasing thresholds make the cumulative probabilities fall with k for
  every case (rank-consistent), so the grade probabilities, their differences, are never negative.
- regression: one output, the target standardized with the training cases' mean and SD (stored in the plans); the
  prediction is in the target's units.

Every head's prediction is a vector: the probability of each value, or the one predicted value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from universalclassifier.plans import ClassificationLabel


class OrdinalHead(nn.Module):
    """Cumulative logits s(x) - t_k, k = 1..K-1, with t_1 = `first` and t_{k+1} - t_k = softplus(gap_k) > 0."""

    def __init__(self, num_features: int, num_grades: int) -> None:
        super().__init__()
        self.score = nn.Linear(num_features, 1, bias=False)
        self.first = nn.Parameter(torch.tensor(-(num_grades - 2) / 2.0))  # thresholds start 1 apart, centred on 0
        self.gaps = nn.Parameter(torch.full((num_grades - 2,), 0.5413))  # softplus(0.5413) = 1

    def thresholds(self) -> torch.Tensor:
        return torch.cat([self.first.reshape(1), self.first + torch.cumsum(F.softplus(self.gaps), 0)])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) - self.thresholds()


def build_head(kind: str, num_features: int, num_values: int) -> nn.Module:
    """The head of a label of type `kind` with `num_values` values (1 for regression)."""
    if kind == "ordinal":
        return OrdinalHead(num_features, num_values)
    return nn.Linear(num_features, 1 if kind == "regression" else num_values)


def grade_probabilities(cumulative_logits: torch.Tensor) -> torch.Tensor:
    """(N, K) grade probabilities from (N, K-1) cumulative logits of P(grade >= k)."""
    at_least = torch.sigmoid(cumulative_logits)
    ones, zeros = torch.ones_like(at_least[:, :1]), torch.zeros_like(at_least[:, :1])
    bounds = torch.cat([ones, at_least, zeros], dim=1)
    return (bounds[:, :-1] - bounds[:, 1:]).clamp_min(0)


def head_predictions(labels: Sequence[ClassificationLabel], outputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per head, (N, width) predictions from its outputs: the value probabilities, or the value in target units."""
    result = []
    for label, output in zip(labels, outputs, strict=True):
        output = output.float()
        if label.type == "nominal":
            result.append(torch.softmax(output, dim=1))
        elif label.type == "ordinal":
            result.append(grade_probabilities(output))
        else:
            result.append(output * label.target_sd + label.target_mean)
    return result
