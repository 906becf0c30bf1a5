"""What every command-line entry point shares: --verbose/--quiet, console logging that keeps progress bars intact,
and turning user mistakes into a one-line error and exit code 2.

Imports nothing from the package but `errors`, so that any entry point (cli, training, demo) can use it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from tqdm import tqdm

from universalclassifier.errors import UserInputError


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


def run_command(args: argparse.Namespace, job: Callable[[argparse.Namespace], None]) -> int:
    """Configure logging from --verbose/--quiet, run the job, and turn user mistakes into a one-line error.

    Returns the exit code: 0, 2 after a UserInputError, 130 after Ctrl-C.
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        root.removeHandler(console)  # an entry point called in-process (tests, notebooks) leaves logging as it was
    return 0
