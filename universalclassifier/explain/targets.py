"""What a saliency map explains: one number per case and head, computed by a small module around the network.

Per head type the explained number (the target) is:
- binary nominal: the log-odds of value 1, logit(p(1)) = z_1 - z_0 (positive maps: evidence for value 1);
- nominal with more values: the logit of the value the ensemble predicts;
- ordinal: the score, as the sum of the cumulative logits s - t_k (evidence for a higher grade);
- regression: the predicted value in the target's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from universalclassifier.network.i3d import I3DClassifier
from universalclassifier.plans import ClassificationLabel


@dataclass(frozen=True)
class HeadTarget:
    """The explained number of one head: the head's index in the network's outputs and how to reduce them."""

    head_index: int
    label: ClassificationLabel
    value: int | None = None  # the explained value of a nominal head with more than two values

    @classmethod
    def for_head(cls, head_index: int, label: ClassificationLabel, prediction: np.ndarray) -> HeadTarget:
        """The target of a head, given the ensemble's prediction for the case (its value probabilities)."""
        if label.type == "nominal" and label.num_values > 2:
            return cls(head_index, label, int(np.argmax(prediction)))
        return cls(head_index, label)

    def describe(self) -> str:
        """The target in words, for logs and the result."""
        if self.label.type == "nominal":
            if self.value is None:
                return f"log-odds of {self.label.name} = {self.label.values[1]!r} (value 1)"
            return f"logit of the predicted value {self.value} ({self.label.values[self.value]!r})"
        if self.label.type == "ordinal":
            return "ordinal score (sum of the cumulative logits)"
        return "predicted value (target units)"

    def reduce(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N,) targets from the network's per-head outputs."""
        output = outputs[self.head_index].float()
        if self.label.type == "nominal":
            return output[:, 1] - output[:, 0] if self.value is None else output[:, self.value]
        if self.label.type == "ordinal":
            return output.sum(dim=1)
        return output[:, 0] * self.label.target_sd + self.label.target_mean


class TargetModule(nn.Module):
    """Images (N, modalities, Z, Y, X) -> targets (N, heads): the network with one case's ROI channel, covariates and
    zoom held fixed, so that attribution methods perturb and differentiate the image channels only."""

    def __init__(
        self,
        network: I3DClassifier,
        roi_channel: torch.Tensor,
        covariates: torch.Tensor | None,
        targets: Sequence[HeadTarget],
        zoom: float = 1.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.roi_channel = roi_channel  # (1, 1, Z, Y, X), already scaled into [0, 1) as the network reads it
        self.covariates = covariates  # (1, width) or None
        self.targets = list(targets)
        self.zoom = zoom

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = len(images)
        x = torch.cat([images, self.roi_channel.expand(batch, -1, -1, -1, -1).to(images.dtype)], dim=1)
        covariates = None if self.covariates is None else self.covariates.expand(batch, -1)
        zoom = torch.full((batch, 1), self.zoom, dtype=images.dtype, device=images.device)
        outputs = self.network(x, covariates, zoom)
        return torch.stack([target.reduce(outputs) for target in self.targets], dim=1)
