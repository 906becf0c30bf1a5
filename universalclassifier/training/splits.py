"""Cross-validation splits: stratified on the classification targets, stored as JSON so users can edit them."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from universalclassifier.errors import UserInputError

logger = logging.getLogger(__name__)


def _check_inputs(case_ids: Sequence[str], targets: Mapping[str, Sequence[int]], num_folds: int) -> None:
    if num_folds < 2:
        raise UserInputError(f"Cross-validation needs at least 2 folds, got num_folds={num_folds}.")
    if len(case_ids) < num_folds:
        raise UserInputError(
            f"Cannot split {len(case_ids)} case(s) into {num_folds} folds: need at least as many cases as folds."
        )
    duplicates = sorted(case_id for case_id, count in Counter(case_ids).items() if count > 1)
    if duplicates:
        raise UserInputError(f"Duplicate case ids cannot be split into folds: {duplicates}.")
    for label, values in targets.items():
        if len(values) != len(case_ids):
            raise UserInputError(
                f"Label '{label}' has {len(values)} target value(s) but there are {len(case_ids)} cases; "
                "every case needs exactly one value per label."
            )


def _min_count(strata: Sequence[object]) -> int:
    return min(Counter(strata).values())


def make_splits(
    case_ids: Sequence[str],
    targets: Mapping[str, Sequence[int]],
    num_folds: int = 5,
    seed: int = 12345,
) -> list[dict[str, list[str]]]:
    """Split cases into `num_folds` folds, stratified on the label combination where the data allow it.

    `targets` maps each label name (in the task's label order) to one value per case, in `case_ids` order.
    Strategy: stratify on the tuple of all label values; if a combination has fewer cases than folds,
    stratify on the first label only; if that is also too sparse, use an unstratified shuffled KFold.
    The result does not depend on the order in which cases are listed.
    """
    _check_inputs(case_ids, targets, num_folds)
    order = sorted(range(len(case_ids)), key=lambda i: case_ids[i])
    ids = np.array([case_ids[i] for i in order])
    columns = {label: [int(values[i]) for i in order] for label, values in targets.items()}
    label_names = list(columns)
    n = len(ids)

    combinations = [tuple(columns[label][i] for label in label_names) for i in range(n)]
    first = columns[label_names[0]] if label_names else []
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

    return [
        {"train": sorted(ids[train_idx].tolist()), "val": sorted(ids[val_idx].tolist())}
        for train_idx, val_idx in splitter
    ]


def _read_splits(splits_file: Path) -> list[dict[str, list[str]]]:
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
            f"Splits file {splits_file} must be a non-empty JSON list of {{\"train\": [...], \"val\": [...]}} "
            f"objects holding case ids; {fix}."
        )
    return [{"train": list(fold["train"]), "val": list(fold["val"])} for fold in content]


def load_or_create_splits(
    splits_file: Path,
    case_ids: Sequence[str],
    targets: Mapping[str, Sequence[int]],
    num_folds: int = 5,
    seed: int = 12345,
) -> list[dict[str, list[str]]]:
    """Read the splits from `splits_file` if it exists (validating its case ids), else create and write them.

    An existing file is never overwritten, so edits made by the user are kept. Creation is atomic and safe when
    several folds start at once: the splits are written completely to a temporary file that is then hard-linked
    to `splits_file`, which fails if another process got there first; its file is then read instead (with the
    same seed it holds the same splits).
    """
    splits_file = Path(splits_file)
    if not splits_file.exists():
        splits = make_splits(case_ids, targets, num_folds=num_folds, seed=seed)
        if _create_exclusively(splits_file, json.dumps(splits, indent=2) + "\n"):
            logger.info("Wrote %d folds to %s.", len(splits), splits_file)
            return splits
        logger.info("Another process created %s first; using its splits.", splits_file)
    return _read_checked_splits(splits_file, case_ids)


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


def _read_checked_splits(splits_file: Path, case_ids: Sequence[str]) -> list[dict[str, list[str]]]:
    """The splits of an existing file, refusing case ids that are not in the task."""
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
        logger.warning(
            "%d case(s) are in no validation fold of %s and will never be validated: %s",
            len(uncovered),
            splits_file,
            uncovered,
        )
    logger.info("Using the %d folds in existing splits file %s.", len(splits), splits_file)
    return splits


def fold_cases(
    splits: list[dict[str, list[str]]], fold: int | str, all_case_ids: Sequence[str]
) -> tuple[list[str], list[str]]:
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
