"""One training run per fold at a time: an exclusive lock on the fold folder, released when the process ends (even
by kill -9), naming the holder when a second run is refused."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from universalclassifier.errors import UserInputError

LOCK_FILE = ".uc_train.lock"


@contextmanager
def fold_lock(fold_folder: Path, command: str = "uc_train") -> Iterator[None]:
    """Hold the fold folder's lock while the body runs; a UserInputError naming the other process if it is held.

    The lock file stays behind (the lock itself is the kernel's, on the open file), holding the last holder's
    process id, host and start time.
    """
    fold_folder = Path(fold_folder)
    fold_folder.mkdir(parents=True, exist_ok=True)
    path = fold_folder / LOCK_FILE
    stream = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip() or "a process that has not written its id yet"
            raise UserInputError(
                f"{fold_folder} is in use by another training run ({holder}); wait until it has finished or stop "
                f"it, then run again. Two runs of one fold would mix their logs, checkpoints and validation files."
            ) from None
        stream.seek(0)
        stream.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        stream.write(f"{command}, process {os.getpid()} on {socket.gethostname()}, started {started}\n")
        stream.flush()
        yield
    finally:
        stream.close()  # closing releases the lock
