"""`make test` runs the suite in two pytest-xdist workers, one per core: each worker, and every command it starts,
computes with one thread, so that the two workers do not oversubscribe the cores."""

from __future__ import annotations

import os

import torch


def pytest_configure(config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
