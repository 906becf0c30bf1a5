"""Cross-validation splits, stored as JSON so users can edit them.

The folds are stratified on the targets where the data allow it: classification labels by value, regression labels
by quantile bin, with a missing value (None) counted as its own value. Cases of one group (e.g. the scans of one
patient) can be kept in one fold, and a user-edited splits file that splits a group between training and validation
is reported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from universalclassifier.errors import UserInputError

logger = logging.getLogger(__name__)

MISSING = "missing"
"""The stratification value of a case without a value for a label."""

Stratum = int | str
Splits = list[dict[str, list[str]]]


def _is_missing(value: object) -> bool:
    """None, or a float NaN (how tables often write a missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_inputs(
    case_ids: Sequence[str],
    targets: Mapping[str, Sequence[int | float | None]],
    num_folds: int,
    regression_labels: Collection[str] = (),
) -> None:
    if num_folds < 2:
        raise UserInputError(f"Cross-validation needs at least 2 folds, got num_folds={num_folds}.")
    if len(case_ids) < num_folds:
        raise UserInputError(
            f"Cannot split {len(case_ids)} case(s) into {num_folds} folds: need at least as many cases as folds."
        )
    duplicates = sorted(case_id for case_id, count in Counter(case_ids).items() if count > 1)
    if duplicates:
        raise UserInputError(f"Duplicate case ids cannot be split into folds: {duplicates}.")
    unknown = sorted(set(regression_labels) - set(targets))
    if unknown:
        raise UserInputError(f"Regression label(s) {unknown} have no targets; known labels are {list(targets)}.")
    for label, values in targets.items():
        if len(values) != len(case_ids):
            raise UserInputError(
                f"Label '{label}' has {len(values)} target value(s) but there are {len(case_ids)} cases; "
                "every case needs exactly one value per label."
            )
        if label in regression_labels:
            bad = [case_id for case_id, value in zip(case_ids, values, strict=True) if not _is_regression_value(value)]
            if bad:
                raise UserInputError(
                    f"Regression label '{label}' needs a finite number or None for every case; cases {sorted(bad)} "
                    "have other values."
                )


def _is_regression_value(value: object) -> bool:
    """A finite real number, or missing."""
    if _is_missing(value):
        return True
    return isinstance(value, int | float | np.integer | np.floating) and bool(np.isfinite(value))


def _min_count(strata: Sequence[object]) -> int:
    return min(Counter(strata).values())


def _known(value: int | float | None) -> float | None:
    """The value as a float, or None where it is missing (None or NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _quantile_bins(values: Sequence[int | float | None], num_folds: int) -> list[Stratum]:
    """Quantile bin (0, 1, ...) of each known value, MISSING for the others.

    `max(2, min(5, known // num_folds))` bins with edges at the quantiles of the known values; equal edges (ties)
    are merged, so some bins may stay empty. A value on an edge goes to the upper bin.
    """
    numbers = [_known(v) for v in values]
    known = np.array([v for v in numbers if v is not None], dtype=np.float64)
    if known.size == 0:
        return [MISSING] * len(values)
    num_bins = max(2, min(5, known.size // num_folds))
    edges = np.unique(np.quantile(known, np.linspace(0.0, 1.0, num_bins + 1))[1:-1])
    bins = np.searchsorted(edges, np.array([v if v is not None else 0.0 for v in numbers]), side="right")
    return [MISSING if v is None else int(b) for v, b in zip(numbers, bins, strict=True)]


def _strata_columns(
    columns: Mapping[str, Sequence[int | float | None]], regression_labels: Collection[str], num_folds: int
) -> dict[str, list[Stratum]]:
    """Per label, the stratification value of each case: the class, the quantile bin, or MISSING."""
    strata: dict[str, list[Stratum]] = {}
    for label, values in columns.items():
        if label in regression_labels:
            strata[label] = _quantile_bins(values, num_folds)
        else:
            strata[label] = [MISSING if v is None or _is_missing(v) else int(v) for v in values]
    return strata


def _group_codes(ids: Sequence[str], groups: Mapping[str, str]) -> list[int]:
    """A group number per case, numbered in order of first appearance; cases absent from `groups` are alone."""
    numbers: dict[tuple[str, str], int] = {}
    codes = []
    for case_id in ids:
        key = ("group", groups[case_id]) if case_id in groups else ("case", case_id)
        codes.append(numbers.setdefault(key, len(numbers)))
    return codes


def make_splits(
    case_ids: Sequence[str],
    targets: Mapping[str, Sequence[int | float | None]],
    num_folds: int = 5,
    seed: int = 12345,
    *,
    regression_labels: Collection[str] = (),
    groups: Mapping[str, str] | None = None,
) -> Splits:
    """Split cases into `num_folds` folds, stratified on the label combination where the data allow it.

    `targets` maps each label name (in the task's label order) to one value per case, in `case_ids` order: ints for
    classification labels, floats for the `regression_labels` (stratified on quantile bins), None where a case has
    no value (stratified as its own value "missing").
    Strategy: stratify on the tuple of all label values; if a combination has fewer cases than folds,
    stratify on the first label only; if that is also too sparse, use an unstratified shuffled KFold.
    `groups` maps case ids to group ids (e.g. patients; absent cases are groups of their own): when a group has
    several cases, the same chain uses StratifiedGroupKFold (ending in GroupKFold) so each group stays in one fold.
    The result does not depend on the order in which cases are listed.
    """
    _check_inputs(case_ids, targets, num_folds, regression_labels)
    order = sorted(range(len(case_ids)), key=lambda i: case_ids[i])
    ids = np.array([case_ids[i] for i in order])
    columns = _strata_columns(
        {label: [values[i] for i in order] for label, values in targets.items()}, regression_labels, num_folds
    )
    label_names = list(columns)
    n = len(ids)

    combinations = [tuple(columns[label][i] for label in label_names) for i in range(n)]
    first = [str(v) for v in columns[label_names[0]]] if label_names else []
    if groups is not None:
        codes = _group_codes(ids.tolist(), groups)
        if max(Counter(codes).values()) > 1:
            return _make_group_splits(ids, codes, label_names, combinations, first, num_folds, seed)
    if label_names and _min_count(combinations) >= num_folds:
        logger.info(
            "Splitting %d cases into %d folds, stratified on the combination of labels %s.", n, num_folds, label_names
        )
        strata = [str(c) for c in combinations]
        splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed).split(ids, strata)
    elif label_names and _min_count(first) >= num_folds:
        logger.info(
            "Splitting %d cases into %d folds, stratified on the first label '%s' only: some combinations of "
            "label values have fewer than %d cases.",
            n,
            num_folds,
            label_names[0],
            num_folds,
        )
        splitter = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed).split(ids, first)
    else:
        logger.info(
            "Splitting %d cases into %d folds with plain (unstratified) KFold: no label has at least %d cases "
            "for each of its values.",
            n,
            num_folds,
            num_folds,
        )
        splitter = KFold(n_splits=num_folds, shuffle=True, random_state=seed).split(ids)
    return _as_splits(ids, splitter)


def _as_splits(ids: np.ndarray, splitter: Iterable[tuple[np.ndarray, np.ndarray]]) -> Splits:
    return [
        {"train": sorted(ids[train_idx].tolist()), "val": sorted(ids[val_idx].tolist())}
        for train_idx, val_idx in splitter
    ]


def _make_group_splits(
    ids: np.ndarray,
    codes: list[int],
    label_names: list[str],
    combinations: list[tuple[Stratum, ...]],
    first: list[str],
    num_folds: int,
    seed: int,
) -> Splits:
    """Folds that keep every group in one fold: StratifiedGroupKFold on the label combination, else on the first
    label, else GroupKFold. A stratified variant that leaves a fold without cases is skipped."""
    n = len(ids)
    num_groups = len(set(codes))
    if num_groups < num_folds:
        raise UserInputError(
            f"Cannot split {n} case(s) in {num_groups} group(s) into {num_folds} folds: the cases of a group "
            f"(e.g. a patient) stay in one fold, so at least {num_folds} groups are needed."
        )
    candidates: list[tuple[str, list[str]]] = []
    if label_names and _min_count(combinations) >= num_folds:
        candidates.append((f"the combination of labels {label_names}", [str(c) for c in combinations]))
    if label_names and _min_count(first) >= num_folds:
        candidates.append((f"the first label '{label_names[0]}' only", first))
    for description, strata in candidates:
        splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
        splits = _as_splits(ids, splitter.split(ids, strata, groups=codes))
        if all(fold["val"] for fold in splits):
            logger.info(
                "Splitting %d cases in %d groups into %d folds with StratifiedGroupKFold, stratified on %s; "
                "each group stays in one fold.",
                n,
                num_groups,
                num_folds,
                description,
            )
            return splits
        logger.info("StratifiedGroupKFold on %s leaves a fold without cases; trying the next strategy.", description)
    logger.info(
        "Splitting %d cases in %d groups into %d folds with plain (unstratified) GroupKFold: no label has at least "
        "%d cases for each of its values; each group stays in one fold.",
        n,
        num_groups,
        num_folds,
        num_folds,
    )
    # GroupKFold balances fold sizes deterministically; renumbering the groups by the seed varies the folds
    shuffled = np.random.RandomState(seed).permutation(num_groups)[codes]
    return _as_splits(ids, GroupKFold(n_splits=num_folds).split(ids, groups=shuffled))


def groups_spanning_folds(
    splits: Sequence[Mapping[str, Sequence[str]]], groups: Mapping[str, str]
) -> dict[int, dict[str, list[str]]]:
    """Fold index -> {group: sorted case ids of the group in that fold} for each group of `groups` that has cases
    in both the train and the val part of the fold. Folds without such groups are left out."""
    spanning: dict[int, dict[str, list[str]]] = {}
    for index, fold in enumerate(splits):
        members: dict[str, dict[str, set[str]]] = {}
        for part in ("train", "val"):
            for case_id in fold[part]:
                if case_id in groups:
                    members.setdefault(groups[case_id], {"train": set(), "val": set()})[part].add(case_id)
        split_groups = {
            group: sorted(parts["train"] | parts["val"])
            for group, parts in sorted(members.items(), key=lambda item: str(item[0]))
            if parts["train"] and parts["val"]
        }
        if split_groups:
            spanning[index] = split_groups
    return spanning


def _read_splits(splits_file: Path) -> Splits:
    fix = "fix or delete the file to have it recreated"
    try:
        content = json.loads(splits_file.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"Splits file {splits_file} is not valid JSON ({exc}); {fix}.") from exc
    well_formed = isinstance(content, list) and all(
        isinstance(fold, dict)
        and all(
            isinstance(fold.get(part), list) and all(isinstance(c, str) for c in fold[part])
            for part in ("train", "val")
        )
        for fold in content
    )
    if not well_formed or not content:
        raise UserInputError(
            f'Splits file {splits_file} must be a non-empty JSON list of {{"train": [...], "val": [...]}} '
            f"objects holding case ids; {fix}."
        )
    return [{"train": list(fold["train"]), "val": list(fold["val"])} for fold in content]


def load_or_create_splits(
    splits_file: Path,
    case_ids: Sequence[str],
    targets: Mapping[str, Sequence[int | float | None]],
    num_folds: int = 5,
    seed: int = 12345,
    *,
    regression_labels: Collection[str] = (),
    groups: Mapping[str, str] | None = None,
) -> Splits:
    """Read the splits from `splits_file` if it exists (validating its case ids), else create and write them.

    `targets`, `regression_labels` and `groups` are as for `make_splits`. An existing file whose folds split a group
    between train and val is used as it is, with a warning per fold and group.

    An existing file is never overwritten, so edits made by the user are kept. Creation is atomic and safe when
    several folds start at once: the splits are written completely to a temporary file that is then hard-linked
    to `splits_file`, which fails if another process got there first; its file is then read instead (with the
    same seed it holds the same splits).
    """
    splits_file = Path(splits_file)
    if not splits_file.exists():
        splits = make_splits(
            case_ids, targets, num_folds=num_folds, seed=seed, regression_labels=regression_labels, groups=groups
        )
        if _create_exclusively(splits_file, json.dumps(splits, indent=2) + "\n"):
            logger.info("Wrote %d folds to %s.", len(splits), splits_file)
            return splits
        logger.info("Another process created %s first; using its splits.", splits_file)
    return _read_checked_splits(splits_file, case_ids, groups)


def _create_exclusively(path: Path, text: str) -> bool:
    """Create `path` holding `text` in one step unless it exists; True if this call created it.

    The text is written and flushed to a temporary sibling first, so `path` never appears half-written. On a file
    system without hard links the temporary file is renamed over `path` instead (still atomic; a file created at
    the same moment by another fold is replaced by identical content).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as exc:  # no hard links on this file system
            logger.debug("Cannot hard-link %s (%s); renaming instead.", path, exc)
            os.replace(temporary, path)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _read_checked_splits(splits_file: Path, case_ids: Sequence[str], groups: Mapping[str, str] | None = None) -> Splits:
    """The splits of an existing file, refusing case ids that are not in the task and warning about groups that
    are split between train and val of a fold."""
    splits = _read_splits(splits_file)
    known = set(case_ids)
    mentioned = {c for fold in splits for part in ("train", "val") for c in fold[part]}
    unknown = sorted(mentioned - known)
    if unknown:
        raise UserInputError(
            f"Splits file {splits_file} names case ids that are not in the task: {unknown}; "
            "fix or delete the file to have it recreated."
        )
    validated = {c for fold in splits for c in fold["val"]}
    uncovered = sorted(known - validated)
    if uncovered:
        shown = ", ".join(uncovered[:10]) + (f", ... ({len(uncovered) - 10} more)" if len(uncovered) > 10 else "")
        logger.warning(
            "%d case(s) are in no validation fold of %s and will never be validated: %s",
            len(uncovered),
            splits_file,
            shown,
        )
    for index, spanning in groups_spanning_folds(splits, groups or {}).items():
        for group, members in spanning.items():
            logger.warning(
                "Splits file %s, fold %d: the cases %s of group '%s' are split between train and val, so the "
                "validation sees that group during training; move them into one fold (all into the validation "
                "part of the same fold) to avoid this leakage.",
                splits_file,
                index,
                members,
                group,
            )
    logger.info("Using the %d folds in existing splits file %s.", len(splits), splits_file)
    return splits


def fold_cases(splits: Splits, fold: int | str, all_case_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Return (train, val) case ids of `fold`; fold "all" trains and validates on every case."""
    if fold == "all":
        everything = sorted(all_case_ids)
        return everything, list(everything)
    available = f"folds 0..{len(splits) - 1} and 'all'" if splits else "only fold 'all'"
    try:
        index = int(fold)
    except (TypeError, ValueError):
        raise UserInputError(f"Fold {fold!r} is not a fold number; available are {available}.") from None
    if not 0 <= index < len(splits):
        raise UserInputError(f"Fold {fold!r} does not exist; available are {available}.")
    return list(splits[index]["train"]), list(splits[index]["val"])
