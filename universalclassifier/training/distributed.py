"""Distributed data-parallel set-up for `torchrun`: NCCL on GPUs, gloo on CPU; rank 0 alone writes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a (possibly single-process) training run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed() -> DistributedContext:
    """Join the process group torchrun describes in the environment, or return a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group, if one was joined."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def max_weight_difference(module: torch.nn.Module, context: DistributedContext) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's, over all ranks (0.0 if in sync)."""
    if not context.enabled:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for p in module.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return float(difference.item())
