"""Reading JSON that may come from an uploaded artifact: only from a regular file of bounded size, every failure a
UserInputError that names the file."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from universalclassifier.errors import UserInputError

MAX_JSON_BYTES = 64 * 1024 * 1024  # far above any plans, metadata or calibration file this package writes


def read_json_file(path: Path, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the JSON in `path` (`what` names it in errors, e.g. "plans").

    Refused with a UserInputError, before anything is read: a missing path, anything but a regular file (a FIFO
    would block, a device such as /dev/zero never ends; a symlink is judged by its target) and a file of more than
    `max_bytes`. Also refused: text that is not UTF-8 JSON, and JSON nested too deeply to parse.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserInputError(f"No {what} at {path}.") from None
    except OSError as exc:
        raise UserInputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserInputError(f"The {what} {path} is not a regular file; replace it with the file itself.")
    if info.st_size > max_bytes:
        raise UserInputError(
            f"The {what} {path} has {info.st_size:,} bytes, more than the {max_bytes:,} this package ever writes; "
            "it is not a file written by universalclassifier."
        )
    try:
        with path.open("rb") as stream:
            content = stream.read(max_bytes + 1)  # the file may have grown since stat
        if len(content) > max_bytes:
            raise UserInputError(f"The {what} {path} grew beyond {max_bytes:,} bytes while being read.")
        return json.loads(content.decode("utf-8"))
    except UserInputError:
        raise
    except OSError as exc:
        raise UserInputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:  # not UTF-8, not JSON, or an integer beyond Python's digit limit
        raise UserInputError(f"The {what} {path} is not valid JSON ({exc}).") from None
    except RecursionError:
        raise UserInputError(f"The {what} {path} is nested too deeply to be a file of this package.") from None
