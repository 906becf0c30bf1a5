"""The labels CSV of `--from deepreg-h5` and `--from folder`: one row per case, one column per head.

Columns: `case_id` (required), `patient_id` (optional: the case's patient, for grouped folds) and one column per
classification head holding numbers. An empty cell (or NA, NaN, null, None) is an unknown value. A column is a
regression head when it holds more than MAX_NOMINAL_DISTINCT distinct values, else a nominal head, whose values must
then be non-negative integer codes; `--regression_columns`, `--nominal_columns` and `--ordinal_columns` choose the
type instead. The codes of a nominal or ordinal head become its values 0..K-1 by `integer_scale`: codes that do not
start at 0 (a 1-5 score) are shifted down by the smallest code, the value names keep the codes ("1".."5"), and
`LabelTable.value_maps` (written to import_report.json) records the shift.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from universalclassifier.dataset.dataset_json import name_problem
from universalclassifier.errors import UserInputError
from universalclassifier.importing.task_writer import SkippedCase
from universalclassifier.plans import ClassificationLabel

logger = logging.getLogger(__name__)

CASE_COLUMN = "case_id"
PATIENT_COLUMN = "patient_id"
# A column with more distinct values than this is taken for a regression target.
MAX_NOMINAL_DISTINCT = 10
# A nominal head has one output per code from its smallest to its largest: codes spanning more than this are surely
# not classes.
MAX_NOMINAL_VALUE = 99
NULL_TEXTS = frozenset({"", "na", "n/a", "nan", "null", "none"})

Target = int | float | None


@dataclass
class LabelTable:
    """The heads a labels CSV declares and each case's values (None: unknown) and patient."""

    path: Path
    heads: tuple[ClassificationLabel, ...]
    targets: dict[str, dict[str, Target]]
    patients: dict[str, str | None]
    skipped: list[SkippedCase] = field(default_factory=list)
    # Heads whose codes were shifted to start at 0: {head: {original code: value}} (see integer_scale).
    value_maps: dict[str, dict[str, int]] = field(default_factory=dict)


def integer_scale(codes: Iterable[float]) -> tuple[int, tuple[str, ...]]:
    """The offset to subtract from a nominal or ordinal head's integer codes, and the names of its values 0..K-1.

    Codes that do not start at 0 are shifted down by the smallest one: scores {1, ..., 5} become the values 0..4
    named "1".."5". The whole range from the smallest to the largest code is kept, so an unused code in between stays
    a value ({1, 2, 5}: five values, "3" and "4" unused), as an ordinal scale needs. Fewer than two distinct codes are
    not shifted (such a head cannot be trained, and the validation error then names the code the user wrote). A head
    has at least two values.
    """
    distinct = sorted({int(code) for code in codes})
    offset = distinct[0] if len(distinct) >= 2 else 0
    top = distinct[-1] if distinct else 1
    return offset, tuple(str(offset + i) for i in range(max(2, top - offset + 1)))


def value_map(offset: int, names: Sequence[str]) -> dict[str, int]:
    """{original code: value} of a shifted head, for the import report."""
    return {str(offset + i): i for i in range(len(names))}


def is_null(text: str) -> bool:
    """Whether a CSV cell stands for an unknown value."""
    return text.strip().lower() in NULL_TEXTS


def parse_number(text: str) -> float | None:
    """A CSV cell as a finite number, or None when it is not one."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_csv_rows(path: Path, required: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV file (UTF-8, a byte-order mark allowed); refuses missing `required` columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [{k: (v or "").strip() for k, v in row.items() if isinstance(k, str)} for row in reader]
    except FileNotFoundError as exc:
        raise UserInputError(f"CSV file {path} does not exist.") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserInputError(f"Cannot read the CSV file {path}: {exc}.") from exc
    missing = [name for name in required if name not in header]
    if missing:
        raise UserInputError(f"{path} has no column(s) {missing}; its columns are {header}.")
    return header, rows


def check_head_name(name: str, path: Path) -> None:
    """Refuse a column name that cannot name a head (dataset_json.name_problem)."""
    problem = name_problem(name)
    if problem is not None:
        raise UserInputError(f"{path}: column {problem} (a column becomes a head of that name).")


def _check_numbers(name: str, rows: Sequence[dict[str, str]], path: Path) -> None:
    """Refuse a head column none of whose filled cells is a number (words such as true/false, yes/no): that is a
    column to recode, not a few rows to skip."""
    filled = [text for row in rows if not is_null(text := row.get(name, ""))]
    if filled and all(parse_number(text) is None for text in filled):
        examples = ", ".join(repr(text) for text in sorted(set(filled))[:4])
        raise UserInputError(
            f"{path}: column '{name}' holds no numbers (its values include {examples}); a head column holds numbers: "
            "class codes 0, 1, 2, ... or measurements. Write its values as codes (e.g. false -> 0, true -> 1)."
        )


def _column_type(
    name: str, values: list[float], path: Path, regression: set[str], nominal: set[str], ordinal: set[str]
) -> str:
    if name in regression:
        return "regression"
    chosen = "ordinal" if name in ordinal else "nominal" if name in nominal else None
    distinct = set(values)
    if chosen is None and len(distinct) > MAX_NOMINAL_DISTINCT:
        return "regression"
    kind = chosen or "nominal"
    odd = sorted(v for v in distinct if v != round(v) or v < 0)
    if odd:
        raise UserInputError(
            f"{path}: column '{name}' has {len(distinct)} distinct values, including {odd[:5]}, which are not class "
            f"codes 0, 1, 2, ...; a {kind} head needs non-negative integers (pass --regression_columns {name} if it "
            "is a measurement)."
        )
    offset, names = integer_scale(distinct)
    if len(names) > MAX_NOMINAL_VALUE + 1:
        raise UserInputError(
            f"{path}: column '{name}' would need {len(names)} values for the codes {names[0]}..{names[-1]}; a {kind} "
            f"head has one output per code in that range, so renumber its classes (or pass --regression_columns "
            f"{name})."
        )
    return kind


def _target(value: float | None, head: ClassificationLabel, offsets: dict[str, int]) -> Target:
    """A case's value of `head`: the number of a regression head, else the code shifted to the values 0..K-1."""
    if value is None or head.is_regression:
        return value
    return int(value) - offsets[head.name]


def read_label_table(
    path: Path,
    regression_columns: Sequence[str] = (),
    nominal_columns: Sequence[str] = (),
    ordinal_columns: Sequence[str] = (),
) -> LabelTable:
    """Read a labels CSV; rows that cannot be used (no case id, duplicates, a value that is no number) are skipped."""
    header, rows = read_csv_rows(path, [CASE_COLUMN])
    head_columns = [name for name in header if name not in (CASE_COLUMN, PATIENT_COLUMN)]
    if not head_columns:
        raise UserInputError(
            f"{path} has no head column: besides '{CASE_COLUMN}' (and '{PATIENT_COLUMN}') it needs one column per "
            "classification head."
        )
    chosen = {"--regression_columns": regression_columns, "--nominal_columns": nominal_columns}
    chosen["--ordinal_columns"] = ordinal_columns
    for option, columns in chosen.items():
        unknown = [c for c in columns if c not in head_columns]
        if unknown:
            raise UserInputError(f"{option} names {unknown}, which are not head columns of {path}: {head_columns}.")
    twice = set(regression_columns) & (set(nominal_columns) | set(ordinal_columns)) | (
        set(nominal_columns) & set(ordinal_columns)
    )
    if twice:
        raise UserInputError(f"Column(s) {sorted(twice)} are given two head types; give each column one type.")
    for name in head_columns:
        check_head_name(name, path)
        _check_numbers(name, rows, path)
    skipped: list[SkippedCase] = []
    counts = Counter(row.get(CASE_COLUMN, "") for row in rows)
    parsed: dict[str, dict[str, float | None]] = {}
    patients: dict[str, str | None] = {}
    for index, row in enumerate(rows, start=2):  # line 1 is the header
        case_id = row.get(CASE_COLUMN, "")
        if not case_id:
            skipped.append(SkippedCase(f"line {index}", "missing case id", f"{path} line {index} has no case_id."))
            continue
        if counts[case_id] > 1:
            if case_id not in {s.case_id for s in skipped}:
                skipped.append(
                    SkippedCase(case_id, "duplicate row", f"{path} has {counts[case_id]} rows for this case.")
                )
            continue
        values: dict[str, float | None] = {}
        bad = []
        for name in head_columns:
            text = row.get(name, "")
            values[name] = None if is_null(text) else parse_number(text)
            if not is_null(text) and values[name] is None:
                bad.append(f"{name} = {text!r}")
        if bad:
            skipped.append(
                SkippedCase(case_id, "unparseable label", f"{path}: {', '.join(bad)} is not a number (or empty).")
            )
            continue
        parsed[case_id] = values
        patient = row.get(PATIENT_COLUMN, "")
        patients[case_id] = None if is_null(patient) else patient
    regression, nominal, ordinal = set(regression_columns), set(nominal_columns), set(ordinal_columns)
    heads = []
    offsets: dict[str, int] = {}
    value_maps: dict[str, dict[str, int]] = {}
    for name in head_columns:
        known = [v for values in parsed.values() if (v := values[name]) is not None]
        kind = _column_type(name, known, path, regression, nominal, ordinal)
        if kind == "regression":
            heads.append(ClassificationLabel(name=name, type=kind, values=()))
            continue
        offsets[name], names = integer_scale(known)
        heads.append(ClassificationLabel(name=name, type=kind, values=names))
        if offsets[name]:
            value_maps[name] = value_map(offsets[name], names)
            logger.info(
                "%s: column '%s' holds the codes %s..%s; they become the values 0..%d of the %s head, named by "
                "their codes (value_maps in the import report).",
                path, name, names[0], names[-1], len(names) - 1, kind,
            )  # fmt: skip
    targets = {
        case_id: {head.name: _target(values[head.name], head, offsets) for head in heads}
        for case_id, values in parsed.items()
    }
    return LabelTable(path, tuple(heads), targets, patients, skipped, value_maps)
