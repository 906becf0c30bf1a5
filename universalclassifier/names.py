"""Names in the user's vocabulary (heads, covariates, case ids) and the file names derived from them.

A name is kept as written wherever it is shown or stored as data (dataset.json keys, CSV columns, JSON keys, plot
titles): "Severe COVID-19 (≥ 1 month)", "läsion" and "名前" are names. Only where a name becomes part of a file name
is it replaced by `file_name_for(name)`, which cannot form a path: a name that already is a safe file name is used as
it is (so files of existing tasks keep their names); any other name becomes a readable ASCII form plus a short hash of
the name, so that two names never share a file by accident.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

MAX_NAME_LENGTH = 100
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} characters, not all blank, without control characters or line breaks (such as NUL, tab "
    "or newline); spaces, punctuation and non-ASCII letters are fine"
)
# Control characters (C0, DEL, C1), lone surrogates (no UTF-8 form: the name could not be written to a file) and
# the Unicode line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
SAFE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SAFE_NAME_RULE = "1 to 100 characters from A-Z, a-z, 0-9, '_', '-' and '.', starting with a letter or digit"
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_LENGTH = 8
_READABLE_LENGTH = 100 - _HASH_LENGTH - 1  # the readable part, '-' and the hash fit SAFE_NAME_PATTERN


def is_name(name: object) -> bool:
    """Whether `name` is a usable head, covariate or case name (see NAME_RULE)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and not name.isspace()
        and not any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in name)
    )


def is_safe_name(name: object) -> bool:
    """Whether `name` is a string that is itself a safe file-name component (see SAFE_NAME_RULE)."""
    return isinstance(name, str) and SAFE_NAME_PATTERN.fullmatch(name) is not None


def file_name_for(name: str) -> str:
    """The file-name form of a name: the name itself when it is safe (SAFE_NAME_RULE), else its ASCII letters, digits,
    '_', '-' and '.' (accents dropped, every other run of characters replaced by '_') followed by '-' and the first 8
    hex digits of the name's SHA-256, e.g. "Severe COVID-19 (≥ 1 month)" -> "Severe_COVID-19_1_month-<hash>".

    The result always matches SAFE_NAME_PATTERN: it holds no path separator, never starts with '.', and is at most
    100 characters long.
    """
    if is_safe_name(name):
        return name
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    readable = _UNSAFE_RUN.sub("_", ascii_text).strip("_.-")[:_READABLE_LENGTH].rstrip("_.-")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]
    return f"{readable}-{digest}" if readable else digest


def file_name_clashes(names: Iterable[str], ignore_case: bool = False) -> list[tuple[str, str, str]]:
    """(first name, second name, shared file name) for every name whose file-name form equals an earlier one's.

    With `ignore_case`, forms that differ only in letter case clash too: they are one file on the case-insensitive
    file systems of Windows and macOS.
    """
    seen: dict[str, str] = {}
    clashes = []
    for name in names:
        form = file_name_for(name)
        key = form.lower() if ignore_case else form
        if key in seen and seen[key] != name:
            clashes.append((seen[key], name, form))
        seen.setdefault(key, name)
    return clashes
