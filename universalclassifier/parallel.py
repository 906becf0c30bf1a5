"""Run a function over many items in worker processes, with a progress bar and results in input order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _init_worker() -> None:
    """Keep each worker single-threaded: the pool itself is the parallelism."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _call(packed: tuple[Callable[..., T], tuple]) -> T:
    func, args = packed
    return func(*args)


def map_with_progress(
    func: Callable[..., T],
    argument_tuples: Sequence[tuple[Any, ...]],
    num_workers: int,
    description: str,
    show_progress: bool = True,
) -> Iterator[T]:
    """Yield `func(*args)` for every tuple, in order, using `num_workers` processes (serially for 1).

    Workers are started with "spawn" so that the caller's threads and imported libraries are never forked.
    """
    bar = tqdm(total=len(argument_tuples), desc=description, unit="case", disable=not show_progress)
    try:
        if num_workers <= 1 or len(argument_tuples) <= 1:
            for args in argument_tuples:
                yield func(*args)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        workers = min(num_workers, len(argument_tuples))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
            for result in pool.map(_call, [(func, args) for args in argument_tuples]):
                yield result
                bar.update()
    finally:
        bar.close()
