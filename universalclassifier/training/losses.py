"""The training loss: per head a loss of its type over the cases whose target is known, summed over heads.

Targets are one float per head and case, NaN where unknown (a missing label masks that head's loss for that case).
- nominal: cross-entropy (optionally label-smoothed);
- ordinal: binary cross-entropy of each cumulative logit against [grade >= k], summed over the K-1 thresholds;
- regression: Huber loss (smooth L1, beta 1) of the output against the target standardized with the plans' mean/SD.
Each head's loss is the mean over its known cases in the batch; a head without any known case adds 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from universalclassifier.plans import ClassificationLabel


def head_loss(
    label: ClassificationLabel, output: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The loss of one head: `output` as the network gives it, `target` (N,) floats with NaN where unknown."""
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return output.sum() * 0.0  # keeps the head in the graph (DDP expects a gradient for every parameter)
    output, target = output[known].float(), target[known]
    if label.type == "nominal":
        return F.cross_entropy(output, target.long(), label_smoothing=label_smoothing)
    if label.type == "ordinal":
        thresholds = torch.arange(1, output.shape[1] + 1, device=output.device)
        at_least = (target[:, None] >= thresholds[None]).float()
        return F.binary_cross_entropy_with_logits(output, at_least, reduction="sum") / len(target)
    standardized = (target - label.target_mean) / label.target_sd
    return F.smooth_l1_loss(output[:, 0], standardized.float())


def summed_loss(
    labels: Sequence[ClassificationLabel],
    outputs: Sequence[torch.Tensor],
    target: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Sum over heads of `head_loss`; `target` is (N, number of heads)."""
    losses = [
        head_loss(label, output, target[:, i], label_smoothing)
        for i, (label, output) in enumerate(zip(labels, outputs, strict=True))
    ]
    return torch.stack(losses).sum()
