"""Worker processes end when the process that started them is killed (SIGKILL, e.g. by the out-of-memory killer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from helpers import REPO

# Starts augmentation workers (2) exactly as the trainer does, prints READY, then waits to be killed.
BATCH_GENERATOR = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from helpers import make_plans, write_cases
from universalclassifier.training.augmentation import make_batch_generator
size = (8, 24, 24)
files, targets = write_cases(Path(sys.argv[2]), 1, size)
generator = make_batch_generator(files, targets, make_plans(1, size), 2, train=True, num_workers=2, seed=0)
next(generator)
print("READY", flush=True)
time.sleep(600)
"""

# Runs map_with_progress over two slow calls in 2 spawned workers, prints READY, then waits to be killed.
PROCESS_POOL = """
import threading, time
from universalclassifier.parallel import map_with_progress
sleep_in_workers = lambda: list(map_with_progress(time.sleep, [(600,), (600,)], 2, "sleep", False))
threading.Thread(target=sleep_in_workers, daemon=True).start()
print("READY", flush=True)
time.sleep(600)
"""


def _workers_of(process: subprocess.Popen, count: int, timeout: float = 60.0) -> list[psutil.Process]:
    """The `count` worker processes of `process` once they all run (multiprocessing helpers excluded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [
            child
            for child in psutil.Process(process.pid).children()
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        if len(children) >= count:
            return children
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers of {process.pid}, found {psutil.Process(process.pid).children()}")


def _alive(worker: psutil.Process) -> bool:
    try:
        return worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_parent_and_wait_for_workers(code: str, *args: str, count: int) -> list[psutil.Process]:
    """Run `code`, SIGKILL it once its workers run; returns the workers still alive 5 seconds later."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, cwd=REPO)
    workers: list[psutil.Process] = []
    try:
        assert process.stdout.readline().strip() == "READY"
        workers = _workers_of(process, count)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [w for w in workers if _alive(w)]
    finally:
        process.kill()
        process.stdout.close()
        for worker in workers:  # leave no stray process behind, even when the test fails
            if _alive(worker):
                worker.kill()


def test_augmentation_workers_exit_when_the_trainer_is_killed(tmp_path):
    assert _kill_parent_and_wait_for_workers(BATCH_GENERATOR, str(REPO / "tests"), str(tmp_path), count=2) == []


def test_process_pool_workers_exit_when_their_parent_is_killed():
    assert _kill_parent_and_wait_for_workers(PROCESS_POOL, count=2) == []
