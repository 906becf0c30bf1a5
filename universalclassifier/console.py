"""What every command-line entry point shares: --verbose/--quiet, console logging that keeps progress bars intact,
and turning user mistakes into a one-line error and exit code 2.

Imports nothing from the package but `errors`, so that any entry point (cli, training, demo) can use it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable

from tqdm import tqdm

from universalclassifier.errors import UserInputError

# The task option's spellings: -t (AUC23, nnU-Net v1), -d (nnU-Net v2's dataset option) and --task (the dest).
TASK_FLAGS = ("-t", "-d", "--task")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive --verbose and --quiet options that `run_command` reads."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--verbose", action="store_true", help="log debug details")
    group.add_argument("--quiet", action="store_true", help="log warnings and errors only, no progress bars")


class ProgressBarFriendlyHandler(logging.Handler):
    """Writes log lines to stderr through tqdm, so that they do not break a progress bar in flight."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


_OS_ERROR_FIXES = {
    errno.ENOSPC: "free disk space (or choose another output folder) and run the command again; finished cases, "
    "folds and checkpoints are kept",
    errno.EDQUOT: "free space within your disk quota and run the command again",
    errno.EACCES: "make the folder writable for you, or choose another output folder",
    errno.EPERM: "make the folder writable for you, or choose another output folder",
    errno.EROFS: "the file system is read-only: choose an output folder on a writable one",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and the fix where one is known."""
    where = f" {exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    fix = _OS_ERROR_FIXES.get(exc.errno or 0)
    return f"{exc.strerror or exc}:{where}" + (f"; {fix}." if fix else ".")


def run_command(args: argparse.Namespace, job: Callable[[argparse.Namespace], None]) -> int:
    """Configure logging from --verbose/--quiet, run the job, and turn user mistakes into a one-line error.

    Returns the exit code: 0, 2 after a UserInputError or an operating-system error (a full disk, a read-only or
    missing folder: one line naming the file), 130 after Ctrl-C.
    """
    console = ProgressBarFriendlyHandler()
    console.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(console)
    # the root level stays at INFO even with --quiet so that log files (e.g. training_log.txt) get every epoch
    root.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        job(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        root.removeHandler(console)  # an entry point called in-process (tests, notebooks) leaves logging as it was
    return 0
