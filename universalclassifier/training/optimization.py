"""The optimizers of a training run: one for the backbone (everything but the heads) and one for the heads.

The heads may use another optimizer than the backbone: SGD on the heads fits them like an early-stopped ridge-penalized
logistic regression, which keeps a few strong features (ROI descriptors) ahead of a thousand weak ones, whereas
AdamW moves every weight at about the same speed (see docs/benchmarks.md, "Training recipe").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from universalclassifier.errors import UserInputError
from universalclassifier.network.i3d import I3DClassifier
from universalclassifier.training.recipes import Recipe


def _optimizer(kind: str, parameters: Iterable[torch.nn.Parameter], momentum: float, weight_decay: float):
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=0.0, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    return torch.optim.AdamW(parameters, lr=0.0, weight_decay=weight_decay)


class Optimizers:
    """The backbone's and the heads' optimizer, stepped together; learning rates are set once per epoch."""

    def __init__(self, recipe: Recipe, network: I3DClassifier) -> None:
        head_ids = {id(p) for p in network.heads.parameters()}
        backbone = [p for p in network.parameters() if id(p) not in head_ids]
        self.recipe = recipe
        self.backbone = _optimizer(recipe.optimizer, backbone, recipe.momentum, recipe.weight_decay)
        self.heads = _optimizer(
            recipe.head_optimizer, network.heads.parameters(), recipe.momentum, recipe.head_weight_decay
        )

    @property
    def all(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        return (self.backbone, self.heads)

    def set_learning_rate(self, learning_rate: float, backbone_frozen: bool = False) -> None:
        """The backbone at `learning_rate` (0 while frozen: no update, no weight decay), the heads at its multiple."""
        for group in self.backbone.param_groups:
            group["lr"] = 0.0 if backbone_frozen else learning_rate
        for group in self.heads.param_groups:
            group["lr"] = learning_rate * self.recipe.head_learning_rate_factor

    def learning_rates(self) -> dict[str, float]:
        """The learning rate of every parameter group: `backbone` and `heads` (`<name>_<i>` for further groups)."""
        return {
            name if i == 0 else f"{name}_{i}": float(group["lr"])
            for name, optimizer in (("backbone", self.backbone), ("heads", self.heads))
            for i, group in enumerate(optimizer.param_groups)
        }

    def zero_grad(self) -> None:
        for optimizer in self.all:
            optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"backbone": self.backbone.state_dict(), "heads": self.heads.state_dict()}

    def load_state_dict(self, state: dict, source: str) -> None:
        """Restore both optimizers; a checkpoint of an older version (one optimizer) cannot be continued."""
        if set(state) != {"backbone", "heads"}:
            raise UserInputError(
                f"{source} was written by an older universalclassifier (one optimizer); train this fold from the start."
            )
        self.backbone.load_state_dict(state["backbone"])
        self.heads.load_state_dict(state["heads"])
