"""Run a function over many items in worker processes, with a progress bar and results in input order."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

logger = logging.getLogger(__name__)

# How often a worker process checks that the process that started it is still alive.
PARENT_POLL_SECONDS = 0.5

_watchdog_pid: int | None = None  # the process in which a parent watchdog runs (threads do not survive a fork)


def exit_when_parent_dies(parent_pid: int, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """In a worker process: end it as soon as `parent_pid` is no longer its parent (once per process).

    A worker whose parent is killed (e.g. SIGKILL by the out-of-memory killer) is re-parented to PID 1 or a
    subreaper and would otherwise keep running, and keep its memory, with nobody to read its results. A daemon
    thread polls os.getppid() against the pid the worker was started by; this works on every POSIX system and
    whatever the start method, even while the worker's main thread is blocked on a full queue.
    """
    global _watchdog_pid
    if _watchdog_pid == os.getpid():
        return
    _watchdog_pid = os.getpid()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        logger.warning("Worker %d: its parent process %d is gone; exiting.", os.getpid(), parent_pid)
        os._exit(1)

    threading.Thread(target=watch, name="exit-when-parent-dies", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """Keep each worker single-threaded (the pool itself is the parallelism) and bound to its parent's life."""
    import SimpleITK as sitk

    exit_when_parent_dies(parent_pid)
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

    Workers are started with "spawn" so that the caller's threads and imported libraries are never forked; they
    exit on their own when this process dies (see `exit_when_parent_dies`).
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
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
        ) as pool:
            for result in pool.map(_call, [(func, args) for args in argument_tuples]):
                yield result
                bar.update()
    finally:
        bar.close()
