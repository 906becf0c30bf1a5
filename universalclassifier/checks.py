"""One check for integer options and arguments, shared by the API (ValueError) and the command line (argparse)."""

from __future__ import annotations

import argparse
import math
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


MAX_ABS_NUMBER = 1e15  # targets and covariates: their squares (standardization) must stay finite in float64


def finite_number(value: Any, limit: float = MAX_ABS_NUMBER) -> float | None:
    """`value` as a float if it is a number (int or float, not a bool) that is finite and at most `limit` in
    magnitude, else None (also for integers too large for a float, which `float()` would refuse with OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= limit else None


def shown_value(value: Any, width: int = 40) -> str:
    """A short repr of a user's value for an error message (huge integers and long strings abbreviated)."""
    try:
        text = repr(value)
    except ValueError:  # an integer beyond Python's digit limit for str()
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    return text if len(text) <= width else f"{text[: width - 5]}...({len(text)} characters)"


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` for integers of at least `minimum`: argparse then names the option and exits with 2."""

    def parse(text: str) -> int:
        try:
            return checked_int(int(text), "the value", minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None

    parse.__name__ = f"integer >= {minimum}"
    return parse
