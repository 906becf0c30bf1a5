"""Clinical covariates (age, sex, PSA, ...): their declaration, training statistics and encoding for the network.

A task declares them at the top level of dataset.json, `"covariates": [{"name": "age", "type": "numeric"},
{"name": "sex", "type": "categorical", "values": ["F", "M"]}]`, and gives them per training case as
`"covariates": {"age": 63, "sex": "F"}` (a value may be null or left out). The plans keep, per covariate, the
training cases' statistics: a numeric covariate is standardized with the training mean and SD and an unknown value
is imputed with the training median; a categorical one is one-hot encoded and an unknown value imputed with the most
frequent training category. Every covariate also gets a missing-indicator, so the network sees which values were
imputed. The encoded vector is fused with the image features before the heads (network/i3d.py).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from universalclassifier.checks import MAX_ABS_NUMBER, finite_number, shown_value
from universalclassifier.errors import UserInputError

COVARIATE_TYPES = ("numeric", "categorical")
CovariateValue = float | str | None


@dataclass(frozen=True)
class Covariate:
    """One covariate: its name, type, categories (categorical) and training statistics (filled in by `fit`)."""

    name: str
    type: str
    values: tuple[str, ...] = ()
    mean: float = 0.0
    sd: float = 1.0
    fill: float | str | None = None  # the imputed value: training median (numeric) or mode (categorical)

    @property
    def width(self) -> int:
        """Its number of network inputs: value and missing-indicator, or one per category and the indicator."""
        return 2 if self.type == "numeric" else len(self.values) + 1

    def check(self, value: object, source: str) -> CovariateValue:
        """`value` as this covariate holds it (float, category or None), or a UserInputError naming `source`."""
        if value is None:
            return None
        if self.type == "numeric":
            number = finite_number(value)
            if number is not None:
                return number
            raise UserInputError(
                f"{source}: covariate '{self.name}' = {shown_value(value)} is not a finite number of magnitude at most "
                f"{MAX_ABS_NUMBER:g} (or null)."
            )
        if isinstance(value, str) and value in self.values:
            return value
        raise UserInputError(
            f"{source}: covariate '{self.name}' = {value!r} is not one of {list(self.values)} (or null)."
        )

    def fit(self, known: Sequence[CovariateValue]) -> Covariate:
        """This covariate with the statistics of its known training values (at least one)."""
        if self.type == "numeric":
            numbers = np.array(known, dtype=np.float64)
            sd = float(numbers.std())
            return replace(self, mean=float(numbers.mean()), sd=sd if sd > 0 else 1.0, fill=float(np.median(numbers)))
        counts = Counter(known)
        return replace(self, fill=max(self.values, key=lambda v: (counts[v], -self.values.index(v))))

    def encode(self, value: CovariateValue) -> list[float]:
        """The network inputs of one value (None: imputed, with the missing-indicator set)."""
        missing = value is None
        value = self.fill if missing else value
        if self.type == "numeric":
            return [(float(value) - self.mean) / self.sd, float(missing)]  # type: ignore[arg-type]
        return [float(value == category) for category in self.values] + [float(missing)]

    def to_dict(self) -> dict:
        result: dict = {"name": self.name, "type": self.type}
        if self.type == "categorical":
            result["values"] = list(self.values)
        return {**result, "mean": self.mean, "sd": self.sd, "fill": self.fill}

    @classmethod
    def from_dict(cls, raw: object, source: str) -> Covariate:
        """Read the form `to_dict` writes (the plans), refusing damaged entries."""
        fix = "it was not written by this tool or is damaged: re-run plan & preprocess."
        if not isinstance(raw, dict) or raw.get("type") not in COVARIATE_TYPES or not isinstance(raw.get("name"), str):
            raise UserInputError(f"{source} must be a covariate with a 'name' and a 'type' in {COVARIATE_TYPES}; {fix}")
        values = raw.get("values", [])
        mean, sd = raw.get("mean"), raw.get("sd")
        valid = (
            isinstance(values, list)
            and all(isinstance(v, str) for v in values)
            and isinstance(mean, (int, float))
            and isinstance(sd, (int, float))
            and sd > 0
        )
        if not valid:
            raise UserInputError(f"{source}: covariate '{raw['name']}' has damaged values or statistics; {fix}")
        return cls(raw["name"], raw["type"], tuple(values), float(mean), float(sd), raw.get("fill"))  # type: ignore[arg-type]


def encoded_width(covariates: Sequence[Covariate]) -> int:
    """The length of the encoded covariate vector."""
    return sum(covariate.width for covariate in covariates)


def check_case_covariates(
    covariates: Sequence[Covariate], given: object, source: str
) -> dict[str, CovariateValue]:
    """A case's covariate values by name (None where unknown), checked; unknown names and bad values are refused."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise UserInputError(f"{source}: 'covariates' must be an object such as {{\"age\": 63, \"sex\": \"F\"}}.")
    names = [c.name for c in covariates]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UserInputError(f"{source}: unknown covariate(s) {unknown}; the task declares {names}.")
    return {c.name: c.check(given.get(c.name), source) for c in covariates}


def encode_covariates(covariates: Sequence[Covariate], values: Mapping[str, CovariateValue]) -> np.ndarray:
    """The float32 network input of one case's checked covariate values (see `check_case_covariates`)."""
    return np.array([x for c in covariates for x in c.encode(values.get(c.name))], dtype=np.float32)


def read_covariates_csv(path: Path, covariates: Sequence[Covariate]) -> dict[str, dict[str, CovariateValue]]:
    """Per case id, its checked covariate values from a CSV with a `case_id` column and one column per covariate.

    An empty cell is an unknown value; numeric cells are read as numbers. Columns of covariates the model does not
    have are refused, as are unreadable numbers and unknown categories (the error names the file and the case).
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            columns = [] if not rows else list(rows[0])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserInputError(f"Cannot read the covariates file {path} ({exc}).") from exc
    names = [c.name for c in covariates]
    if "case_id" not in columns or sorted(set(columns) - {"case_id"}) != sorted(names):
        raise UserInputError(
            f"{path} needs the columns case_id and {names} (one row per case, empty cells where unknown); found "
            f"{columns}."
        )
    result = {}
    for row in rows:
        source = f"{path}, case {row['case_id']}"
        values: dict[str, object] = {}
        for covariate in covariates:
            cell = (row[covariate.name] or "").strip()
            if cell and covariate.type == "numeric":
                try:
                    values[covariate.name] = float(cell)
                except ValueError:
                    values[covariate.name] = cell  # refused by the check below, which names the value
            else:
                values[covariate.name] = cell or None
        result[row["case_id"]] = check_case_covariates(covariates, values, source)
    return result
