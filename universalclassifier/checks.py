"""One check for integer options and arguments, shared by the API (ValueError) and the command line (argparse)."""

from __future__ import annotations

import argparse
import operator
from collections.abc import Callable
from typing import Any


def checked_int(value: Any, name: str, minimum: int, error: type[Exception] = ValueError) -> int:
    """`value` as an int if it is an integer (Python or NumPy, not a bool) of at least `minimum`, else `error`."""
    try:
        number = operator.index(value)  # accepts Python and NumPy integers, rejects floats and strings
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` for integers of at least `minimum`: argparse then names the option and exits with 2."""

    def parse(text: str) -> int:
        try:
            return checked_int(int(text), "the value", minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None

    parse.__name__ = f"integer >= {minimum}"
    return parse
