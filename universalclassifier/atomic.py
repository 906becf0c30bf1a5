"""Crash-safe file writes: a kill at any point leaves either the old file or the complete new one, never a mix.

Each writer writes a temporary sibling (same folder, so the rename stays on one file system), flushes it to disk
and renames it over the target with `os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on normal exit it replaces `path`, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    temporary.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
    try:
        yield temporary
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Call `write` on a text handle whose content replaces `path` atomically once `write` returns."""
    with atomic_path(path) as temporary, temporary.open("w", encoding="utf-8") as handle:
        write(handle)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    write_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(path: Path, value: object) -> None:
    """Replace `path` with `value` as indented JSON (and a final newline) atomically."""
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")
