"""`--from innereye`: an InnerEye-DeepLearning classification dataset.csv.

InnerEye keeps one row per subject and channel: the `channel` column names the row's channel, the image channels'
rows give the image file (`filePath`, relative to the CSV's folder), the label channel's row gives the label and
the feature channels' rows the non-image features (numerical and categorical columns).

Labels become heads named `label_name` (default `target`, not InnerEye's `label`: in dataset.json an entry's
`label` is its ROI file):
- binary labels (true/false, yes/no, 0/1, any case): one nominal head, its value names spelled as in the CSV;
- class lists such as `0|2|3` (any value holding '|', or `multi_label`): one binary head `<label_name>_<class>`
  per class that occurs, 1 when the class is listed; an empty label lists no class (every head 0);
- numbers with `regression`: one regression head.
Otherwise an empty label is an unknown value. Image files are read by extension: the formats SimpleITK reads here,
`.npy` and HDF5 (the first 3D dataset), the last two with the given spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from universalclassifier.covariates import Covariate
from universalclassifier.dataset.dataset_json import name_problem
from universalclassifier.errors import UserInputError
from universalclassifier.importing.labels_csv import is_null, parse_number, read_csv_rows
from universalclassifier.importing.task_writer import (
    CaseSkipped,
    ImportedCase,
    ImportedSource,
    SkippedCase,
    Target,
)
from universalclassifier.importing.volumes import SOURCE_EXTENSIONS, Volume, file_volume, source_extension
from universalclassifier.plans import ClassificationLabel

KIND = "innereye"
# The head's default name. Not InnerEye's "label": a dataset.json entry's "label" is its ROI file.
DEFAULT_LABEL_NAME = "target"
_TRUE = {"true": "true", "yes": "yes", "1": "1"}
_FALSE = {"false": "false", "no": "no", "0": "0"}
_BINARY_NAMES = {"true": ("false", "true"), "yes": ("no", "yes")}


@dataclass(frozen=True)
class InnerEyeColumns:
    """The dataset.csv columns, with InnerEye's defaults."""

    subject: str = "subject"
    channel: str = "channel"
    image: str = "filePath"
    label: str = "label"


@dataclass(frozen=True)
class _Subject:
    """What the CSV says about one subject before its label is interpreted."""

    subject: str
    images: tuple[Volume, ...]
    label: str
    covariates: dict[str, float | str | None]


def _single_value(rows: list[dict[str, str]], column: str, what: str) -> str:
    """The one non-empty value of `column` among `rows` ('' when none); rows that disagree skip the subject."""
    values = sorted({row.get(column, "") for row in rows} - {""})
    if len(values) > 1:
        raise CaseSkipped(f"conflicting {what}", f"the rows of its channels give {column} = {values}.")
    return values[0] if values else ""


def _image_volume(
    rows: list[dict[str, str]], channel: str, folder: Path, columns: InnerEyeColumns, spacing, h5_dataset
) -> Volume:
    found = [row for row in rows if row[columns.channel] == channel]
    if not found:
        raise CaseSkipped("missing channel", f"no row with {columns.channel} = {channel!r}.")
    if len(found) > 1:
        raise CaseSkipped("duplicate channel", f"{len(found)} rows with {columns.channel} = {channel!r}.")
    text = found[0].get(columns.image, "")
    if not text:
        raise CaseSkipped("missing file", f"the {channel!r} row has no {columns.image}.")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else folder / path
    if not source_extension(path):
        raise CaseSkipped("unsupported format", f"{path} is none of {', '.join(SOURCE_EXTENSIONS)}.")
    if not path.is_file():
        raise CaseSkipped("missing file", f"{path} does not exist.")
    return file_volume(path, spacing, h5_dataset)


def _covariates(
    rows: list[dict[str, str]], numerical: Sequence[str], categorical: Sequence[str]
) -> dict[str, float | str | None]:
    result: dict[str, float | str | None] = {}
    for name in numerical:
        text = _single_value(rows, name, "covariate")
        if is_null(text):
            result[name] = None
        elif (number := parse_number(text)) is None:
            raise CaseSkipped("unparseable covariate", f"numerical column {name} = {text!r} is not a number.")
        else:
            result[name] = number
    for name in categorical:
        text = _single_value(rows, name, "covariate")
        result[name] = None if is_null(text) else text
    return result


def _binary(text: str) -> int | None:
    lower = text.lower()
    if lower in _TRUE or lower in _FALSE:
        return 1 if lower in _TRUE else 0
    number = parse_number(text)
    return int(number) if number in (0.0, 1.0) else None


def _classes(text: str) -> set[int] | None:
    """The classes a multi-label value lists (empty: none), or None when it is not a list of class indices."""
    if not text:
        return set()
    found = set()
    for part in text.split("|"):
        number = parse_number(part)
        if number is None or number < 0 or number != int(number):
            return None
        found.add(int(number))
    return found


def _label_heads(
    subjects: list[_Subject], label_name: str, label_column: str, multi_label: bool, regression: bool
) -> tuple[tuple[ClassificationLabel, ...], dict[str, dict[str, Target]], list[SkippedCase]]:
    """The heads and each subject's targets; subjects whose label cannot be parsed are skipped."""
    multi = multi_label or any("|" in s.label for s in subjects)
    if multi and regression:
        raise UserInputError(
            f"The {label_column} column holds class lists ('|'); --regression needs one number per subject."
        )
    skipped: list[SkippedCase] = []
    targets: dict[str, dict[str, Target]] = {}
    if multi:
        parsed = {s.subject: _classes(s.label) for s in subjects}
        classes = sorted(set().union(*(c for c in parsed.values() if c is not None)))
        if not classes:
            raise UserInputError(f"No subject lists any class in the {label_column} column; nothing to classify.")
        heads = tuple(
            ClassificationLabel(name=f"{label_name}_{c}", type="nominal", values=("absent", "present")) for c in classes
        )
        for s in subjects:
            listed = parsed[s.subject]
            if listed is None:
                skipped.append(_unparseable(s, label_column, "a list of class indices such as 0|2|3 (or empty)"))
                continue
            targets[s.subject] = {f"{label_name}_{c}": int(c in listed) for c in classes}
        return heads, targets, skipped
    if regression:
        for s in subjects:
            value = None if is_null(s.label) else parse_number(s.label)
            if value is None and not is_null(s.label):
                skipped.append(_unparseable(s, label_column, "a number (or empty)"))
                continue
            targets[s.subject] = {label_name: value}
        return (ClassificationLabel(name=label_name, type="regression", values=()),), targets, skipped
    other_numbers = sorted(
        {s.label for s in subjects if _binary(s.label) is None and parse_number(s.label) is not None}
    )
    if other_numbers:
        raise UserInputError(
            f"The {label_column} column holds numbers other than 0 and 1 ({', '.join(other_numbers[:5])}); pass "
            "--regression to import them as one regression head, or --multi_label if they are class indices."
        )
    spellings = set()
    for s in subjects:
        if is_null(s.label):
            targets[s.subject] = {label_name: None}
        elif (value := _binary(s.label)) is None:
            skipped.append(_unparseable(s, label_column, "true/false, yes/no or 0/1 (or empty)"))
        else:
            targets[s.subject] = {label_name: value}
            lower = s.label.lower()
            spellings.add(_TRUE.get(lower) or _FALSE.get(lower) or "number")
    family = {"true" if w in ("true", "false") else "yes" if w in ("yes", "no") else "number" for w in spellings}
    names = _BINARY_NAMES.get(family.pop(), ("0", "1")) if len(family) == 1 else ("0", "1")
    return (ClassificationLabel(name=label_name, type="nominal", values=names),), targets, skipped


def _unparseable(subject: _Subject, column: str, expected: str) -> SkippedCase:
    return SkippedCase(subject.subject, "unparseable label", f"{column} = {subject.label!r} is not {expected}.")


def read_innereye(
    csv_path: Path,
    image_channels: Sequence[str],
    columns: InnerEyeColumns = InnerEyeColumns(),
    label_channels: Sequence[str] | None = None,
    feature_channels: Sequence[str] | None = None,
    label_name: str = DEFAULT_LABEL_NAME,
    multi_label: bool = False,
    regression: bool = False,
    numerical_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    h5_dataset: str | None = None,
) -> ImportedSource:
    """Read an InnerEye dataset.csv (module docstring); only reads the CSV and looks up the image files."""
    csv_path = Path(csv_path).expanduser().resolve()
    if not image_channels:
        raise UserInputError("Name the channels whose rows hold the images: --image_channels CHANNEL ...")
    problem = name_problem(label_name)
    if problem is not None:
        raise UserInputError(f"--label_name {problem} (it becomes the head name).")
    label_channels = list(label_channels or image_channels[:1])
    feature_channels = list(feature_channels or label_channels)
    features = list(numerical_columns) + list(categorical_columns)
    if len(set(features)) != len(features):
        raise UserInputError(f"A column is given twice among the numerical and categorical columns {features}.")
    required = [columns.subject, columns.channel, columns.image, columns.label, *features]
    _, rows = read_csv_rows(csv_path, list(dict.fromkeys(required)))
    by_subject: dict[str, list[dict[str, str]]] = {}
    skipped: list[SkippedCase] = []
    for index, row in enumerate(rows, start=2):
        if not row[columns.subject]:
            skipped.append(SkippedCase(f"line {index}", "missing subject", f"{csv_path} line {index} has no subject."))
            continue
        by_subject.setdefault(row[columns.subject], []).append(row)
    if not by_subject:
        raise UserInputError(f"{csv_path} lists no subject.")
    channels = {row[columns.channel] for subject_rows in by_subject.values() for row in subject_rows}
    unknown = [c for c in dict.fromkeys([*image_channels, *label_channels, *feature_channels]) if c not in channels]
    if unknown:
        raise UserInputError(
            f"Channel(s) {unknown} occur in no row of {csv_path}; its {columns.channel} column holds "
            f"{sorted(channels)}."
        )
    subjects: list[_Subject] = []
    for subject, subject_rows in by_subject.items():
        try:
            images = tuple(
                _image_volume(subject_rows, ch, csv_path.parent, columns, spacing, h5_dataset) for ch in image_channels
            )
            label = _single_value(
                [r for r in subject_rows if r[columns.channel] in label_channels], columns.label, "labels"
            )
            values = _covariates(
                [r for r in subject_rows if r[columns.channel] in feature_channels],
                numerical_columns,
                categorical_columns,
            )
        except CaseSkipped as skip:
            skipped.append(SkippedCase(subject, skip.reason, skip.detail))
            continue
        subjects.append(_Subject(subject, images, label, values))
    if not subjects:
        details = "\n".join(f"  - {s.case_id}: {s.reason}: {s.detail}" for s in skipped[:20])
        raise UserInputError(f"No subject of {csv_path} can be imported:\n{details}")
    heads, targets, unparsed = _label_heads(subjects, label_name, columns.label, multi_label, regression)
    cases = [
        ImportedCase(s.subject, s.images, targets[s.subject], covariates=s.covariates)
        for s in subjects
        if s.subject in targets
    ]
    covariates = tuple(Covariate(n, "numeric") for n in numerical_columns) + tuple(
        Covariate(n, "categorical") for n in categorical_columns
    )
    options = {
        "columns": {"subject": columns.subject, "channel": columns.channel, "image": columns.image},
        "label_column": columns.label,
        "image_channels": list(image_channels),
        "label_channels": label_channels,
        "feature_channels": feature_channels,
        "label_name": label_name,
        "multi_label": multi_label,
        "regression": regression,
        "numerical_columns": list(numerical_columns),
        "categorical_columns": list(categorical_columns),
        "spacing": [float(s) for s in spacing],
    }
    if h5_dataset is not None:
        options["h5_dataset"] = h5_dataset
    return ImportedSource(
        kind=KIND,
        paths=(csv_path,),
        heads=heads,
        num_channels=len(image_channels),
        cases=cases,
        skipped=skipped + unparsed,
        covariates=covariates,
        default_modalities=tuple(image_channels),
        options=options,
    )
