"""Tests for cross-validation splits."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter

import numpy as np
import pytest

from universalclassifier.errors import UserInputError
from universalclassifier.training import splits as splits_module
from universalclassifier.training.splits import fold_cases, groups_spanning_folds, load_or_create_splits, make_splits

LOGGER = "universalclassifier.training.splits"


def _ids(n: int) -> list[str]:
    return [f"case_{i:03d}" for i in range(n)]


def _assert_partition(splits: list[dict[str, list[str]]], case_ids: list[str]) -> None:
    val_counts = Counter(c for fold in splits for c in fold["val"])
    assert set(val_counts) == set(case_ids)
    assert all(count == 1 for count in val_counts.values())
    for fold in splits:
        assert not set(fold["train"]) & set(fold["val"])
        assert sorted(fold["train"] + fold["val"]) == sorted(case_ids)
        assert fold["train"] == sorted(fold["train"])
        assert fold["val"] == sorted(fold["val"])


def test_five_folds_partition_the_cases() -> None:
    ids = _ids(23)
    targets = {"a": [i % 2 for i in range(23)]}
    splits = make_splits(ids, targets)
    assert len(splits) == 5
    _assert_partition(splits, ids)
    assert sorted(len(fold["val"]) for fold in splits) == [4, 4, 5, 5, 5]


def test_stratifies_on_label_combination(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(20)
    combos = [(0, 0)] * 10 + [(0, 1)] * 5 + [(1, 0)] * 5
    targets = {"a": [c[0] for c in combos], "b": [c[1] for c in combos]}
    by_id = dict(zip(ids, combos, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, targets)
    assert "combination of labels ['a', 'b']" in caplog.text
    _assert_partition(splits, ids)
    for fold in splits:
        assert Counter(by_id[c] for c in fold["val"]) == {(0, 0): 2, (0, 1): 1, (1, 0): 1}


def test_splits_do_not_depend_on_case_order() -> None:
    ids = _ids(20)
    targets = {"a": [i % 2 for i in range(20)]}
    reversed_splits = make_splits(ids[::-1], {"a": targets["a"][::-1]})
    assert make_splits(ids, targets) == reversed_splits


def test_seed_controls_splits() -> None:
    ids = _ids(30)
    targets = {"a": [i % 3 for i in range(30)]}
    assert make_splits(ids, targets, seed=1) == make_splits(ids, targets, seed=1)
    assert make_splits(ids, targets, seed=1) != make_splits(ids, targets, seed=2)


def test_falls_back_to_first_label(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(20)
    a = [0] * 10 + [1] * 10
    b = [0] * 8 + [1] * 2 + [0] * 5 + [1] * 5  # combination (0, 1) has only 2 cases
    by_id = dict(zip(ids, a, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"a": a, "b": b})
    assert "first label 'a' only" in caplog.text
    _assert_partition(splits, ids)
    for fold in splits:
        assert Counter(by_id[c] for c in fold["val"]) == {0: 2, 1: 2}


def test_falls_back_to_plain_kfold(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(20)
    targets = {"a": [0] * 17 + [1] * 3, "b": [0, 1] * 10}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, targets)
    assert "plain (unstratified) KFold" in caplog.text
    _assert_partition(splits, ids)
    assert all(len(fold["val"]) == 4 for fold in splits)


def test_too_few_cases() -> None:
    with pytest.raises(ValueError, match="Cannot split 4 case\\(s\\) into 5 folds"):
        make_splits(_ids(4), {"a": [0, 1, 0, 1]})


def test_duplicate_case_ids() -> None:
    ids = _ids(9) + ["case_003"]
    with pytest.raises(ValueError, match="Duplicate case ids.*case_003"):
        make_splits(ids, {"a": [0, 1] * 5})


def test_target_length_mismatch() -> None:
    with pytest.raises(ValueError, match="Label 'b' has 9 target value\\(s\\) but there are 10 cases"):
        make_splits(_ids(10), {"a": [0, 1] * 5, "b": [0] * 9})


def test_load_or_create_writes_then_reuses_edited_file(tmp_path) -> None:
    ids = _ids(10)
    targets = {"a": [0, 1] * 5}
    splits_file = tmp_path / "sub" / "splits.json"
    created = load_or_create_splits(splits_file, ids, targets)
    assert json.loads(splits_file.read_text()) == created
    assert splits_file.read_text().startswith("[\n  {")

    edited = [{"train": ids[:7], "val": ids[7:]}, {"train": ids[3:], "val": ids[:3]}]
    splits_file.write_text(json.dumps(edited))
    before = splits_file.read_text()
    assert load_or_create_splits(splits_file, ids, targets, seed=999) == edited
    assert splits_file.read_text() == before


def test_existing_file_with_uncovered_cases_warns(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(6)
    splits_file = tmp_path / "splits.json"
    splits_file.write_text(json.dumps([{"train": ids[:4], "val": ids[4:5]}]))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_or_create_splits(splits_file, ids, {"a": [0] * 6})
    assert "case_000" in caplog.text and "no validation fold" in caplog.text
    assert "case_004" not in caplog.text


def test_a_one_fold_official_split_names_only_the_first_uncovered_cases(tmp_path, caplog) -> None:
    ids = _ids(30)  # e.g. MedMNIST's official split: every training case is in no validation fold
    splits_file = tmp_path / "splits.json"
    splits_file.write_text(json.dumps([{"train": ids[:25], "val": ids[25:]}]))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_or_create_splits(splits_file, ids, {"a": [0, 1] * 15})
    assert "25 case(s) are in no validation fold" in caplog.text and "... (15 more)" in caplog.text
    assert ids[9] in caplog.text and ids[10] not in caplog.text


def test_existing_file_with_unknown_ids_raises(tmp_path) -> None:
    ids = _ids(6)
    splits_file = tmp_path / "splits.json"
    splits_file.write_text(json.dumps([{"train": ids[:3] + ["ghost"], "val": ids[3:] + ["phantom"]}]))
    with pytest.raises(ValueError, match=r"\['ghost', 'phantom'\].*fix or delete the file"):
        load_or_create_splits(splits_file, ids, {"a": [0] * 6})


def test_malformed_file_raises(tmp_path) -> None:
    splits_file = tmp_path / "splits.json"
    splits_file.write_text('{"train": []}')
    with pytest.raises(ValueError, match="fix or delete the file"):
        load_or_create_splits(splits_file, _ids(6), {"a": [0] * 6})


def test_fold_cases() -> None:
    ids = _ids(10)
    splits = make_splits(ids, {"a": [0, 1] * 5})
    assert fold_cases(splits, 2, ids) == (splits[2]["train"], splits[2]["val"])
    assert fold_cases(splits, "all", ids[::-1]) == (ids, ids)


@pytest.mark.parametrize("fold", [5, -1, "seven"])
def test_bad_fold_number(fold: int | str) -> None:
    ids = _ids(10)
    splits = make_splits(ids, {"a": [0, 1] * 5})
    with pytest.raises(ValueError, match=r"available are folds 0\.\.4 and 'all'"):
        fold_cases(splits, fold, ids)


# --------------------------------------------------------------------- legacy output, pinned


# Computed with the implementation before missing values, regression labels and groups were added (seed 7, 3 folds);
# tasks without those must keep getting exactly these folds.
LEGACY_VAL_FOLDS = {
    "combination": [
        ["case_002", "case_004", "case_006", "case_011"],
        ["case_000", "case_003", "case_007", "case_010"],
        ["case_001", "case_005", "case_008", "case_009"],
    ],
    "first label": [
        ["case_002", "case_004", "case_010", "case_011"],
        ["case_000", "case_003", "case_008", "case_009"],
        ["case_001", "case_005", "case_006", "case_007"],
    ],
    "plain KFold": [
        ["case_002", "case_005", "case_007", "case_010"],
        ["case_000", "case_001", "case_008", "case_011"],
        ["case_003", "case_004", "case_006", "case_009"],
    ],
}
LEGACY_TARGETS = {
    "combination": {"a": [0] * 6 + [1] * 6, "b": [0] * 9 + [1] * 3},
    "first label": {"a": [0] * 6 + [1] * 6, "b": [0, 1] * 3 + [0] * 5 + [1]},
    "plain KFold": {"a": [0] * 11 + [1]},
}


@pytest.mark.parametrize("strategy", sorted(LEGACY_VAL_FOLDS))
@pytest.mark.parametrize("singleton_groups", [False, True])
def test_legacy_splits_are_unchanged(strategy: str, singleton_groups: bool, caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(12)
    groups = {c: f"patient_{c}" for c in ids} if singleton_groups else None  # one case per group: no grouping needed
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, LEGACY_TARGETS[strategy], num_folds=3, seed=7, groups=groups)
    assert [fold["val"] for fold in splits] == LEGACY_VAL_FOLDS[strategy]
    _assert_partition(splits, ids)
    assert "Group" not in caplog.text


# --------------------------------------------------------------------- missing values


def test_missing_values_are_their_own_stratum(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(30)
    values: list[int | None] = [0, 1, None] * 10
    by_id = dict(zip(ids, values, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"a": values})
    assert "combination of labels ['a']" in caplog.text
    _assert_partition(splits, ids)
    for fold in splits:
        assert Counter(by_id[c] for c in fold["val"]) == {0: 2, 1: 2, None: 2}


def test_missing_values_in_first_label_fallback(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(30)
    a: list[int | None] = [0] * 10 + [1] * 10 + [None] * 10
    b: list[int | None] = [None] * 2 + [0] * 28  # (0, None) has only 2 cases
    by_id = dict(zip(ids, a, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"a": a, "b": b})
    assert "first label 'a' only" in caplog.text
    _assert_partition(splits, ids)
    for fold in splits:
        assert Counter(by_id[c] for c in fold["val"]) == {0: 2, 1: 2, None: 2}


def test_nan_counts_as_missing() -> None:
    ids = _ids(20)
    with_none = make_splits(ids, {"r": [1.0, None] * 10}, regression_labels=["r"])
    with_nan = make_splits(ids, {"r": [1.0, float("nan")] * 10}, regression_labels=["r"])
    assert with_nan == with_none


# --------------------------------------------------------------------- regression labels


def _fold_means(splits: list[dict[str, list[str]]], by_id: dict[str, float]) -> list[float]:
    return [sum(by_id[c] for c in fold["val"]) / len(fold["val"]) for fold in splits]


def test_regression_labels_are_stratified_on_quantile_bins(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(100)
    values = [float((37 * i) % 100) for i in range(100)]  # 0..99 in scrambled order; overall mean 49.5
    by_id = dict(zip(ids, values, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"age": values}, regression_labels=["age"])
    assert "combination of labels ['age']" in caplog.text
    _assert_partition(splits, ids)
    # 5 quantile bins of 20 values, each spread 4 per fold: a fold's mean is within one bin width of the overall mean
    for mean in _fold_means(splits, by_id):
        assert abs(mean - 49.5) < 5.0
    for fold in splits:
        assert Counter(int(by_id[c]) // 20 for c in fold["val"]) == {b: 4 for b in range(5)}


def test_regression_bins_on_skewed_values() -> None:
    ids = _ids(60)
    values = [float(i**3) for i in range(60)]
    splits = make_splits(ids, {"volume": values}, regression_labels=["volume"], num_folds=3)
    _assert_partition(splits, ids)
    for fold in splits:  # 5 bins of 12 values: 4 of each bin per fold
        assert Counter(ids.index(c) // 12 for c in fold["val"]) == {b: 4 for b in range(5)}


def test_regression_with_missing_values_and_classification_label() -> None:
    ids = _ids(40)
    regression: list[float | None] = [None if i % 4 == 0 else float(i) for i in range(40)]
    classes = [i % 2 for i in range(40)]
    splits = make_splits(ids, {"grade": classes, "size": regression}, regression_labels={"size"}, num_folds=4)
    _assert_partition(splits, ids)
    missing = {c for c, v in zip(ids, regression, strict=True) if v is None}
    for fold in splits:
        assert len(missing & set(fold["val"])) == 10 // 4 or len(missing & set(fold["val"])) == 10 // 4 + 1


@pytest.mark.parametrize(
    "values",
    [
        [0.0] * 30 + [float(i) for i in range(10)],  # most values tied: equal quantile edges
        [3.5] * 40,  # every value tied
        [None] * 38 + [1.0, 2.0],  # almost nothing known
        [None] * 40,  # nothing known
    ],
)
def test_regression_ties_and_missing_values_do_not_crash(values: list[float | None]) -> None:
    ids = _ids(40)
    splits = make_splits(ids, {"r": values}, regression_labels=["r"])
    _assert_partition(splits, ids)
    assert make_splits(ids[::-1], {"r": values[::-1]}, regression_labels=["r"]) == splits


def test_regression_ties_still_stratify(caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(40)
    values = [0.0] * 30 + [float(i) for i in range(1, 11)]
    # the quantile edges are 0, 0, 0 and 2.2: merged into two edges, giving the bins [0, 2] (32 cases) and 3..10
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"r": values}, regression_labels=["r"])
    assert "combination of labels ['r']" in caplog.text
    high = set(ids[32:])
    assert sorted(len(high & set(fold["val"])) for fold in splits) == [1, 1, 2, 2, 2]


def test_unknown_regression_label() -> None:
    with pytest.raises(UserInputError, match=r"Regression label\(s\) \['age'\] have no targets"):
        make_splits(_ids(10), {"a": [0, 1] * 5}, regression_labels=["age"])


def test_regression_label_with_bad_value() -> None:
    values: list = [1.0] * 9 + ["big"]
    with pytest.raises(UserInputError, match=r"Regression label 'r' needs a finite number.*\['case_009'\]"):
        make_splits(_ids(10), {"r": values}, regression_labels=["r"])
    with pytest.raises(UserInputError, match=r"finite number.*\['case_000'\]"):
        make_splits(_ids(10), {"r": [float("inf")] + [1.0] * 9}, regression_labels=["r"])


# --------------------------------------------------------------------- groups


def _patients() -> tuple[list[str], dict[str, str], list[int]]:
    """30 patients with 2 scans each (a third of them positive) plus 10 single scans without a patient."""
    ids = [f"p{p:02d}_scan{s}" for p in range(30) for s in range(2)] + [f"single_{i}" for i in range(10)]
    groups = {f"p{p:02d}_scan{s}": f"patient_{p:02d}" for p in range(30) for s in range(2)}
    labels = [int(p % 3 == 0) for p in range(30) for _ in range(2)] + [int(i < 4) for i in range(10)]
    return ids, groups, labels


def _assert_groups_in_one_fold(splits: list[dict[str, list[str]]], groups: dict[str, str]) -> None:
    for fold in splits:
        train_groups = {groups[c] for c in fold["train"] if c in groups}
        val_groups = {groups[c] for c in fold["val"] if c in groups}
        assert not train_groups & val_groups
    assert groups_spanning_folds(splits, groups) == {}


def test_groups_never_span_train_and_val(caplog: pytest.LogCaptureFixture) -> None:
    ids, groups, labels = _patients()
    by_id = dict(zip(ids, labels, strict=True))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"malignant": labels}, groups=groups)
    assert "StratifiedGroupKFold, stratified on the combination of labels ['malignant']" in caplog.text
    _assert_partition(splits, ids)
    _assert_groups_in_one_fold(splits, groups)
    overall = sum(labels) / len(labels)
    for fold in splits:
        assert abs(sum(by_id[c] for c in fold["val"]) / len(fold["val"]) - overall) < 0.1
        assert 12 <= len(fold["val"]) <= 16


def test_groups_first_label_and_plain_fallbacks(caplog: pytest.LogCaptureFixture) -> None:
    ids, groups, labels = _patients()
    sparse = [1] + [0] * (len(ids) - 1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        first = make_splits(ids, {"malignant": labels, "rare": sparse}, groups=groups)
    assert "StratifiedGroupKFold, stratified on the first label 'malignant' only" in caplog.text
    _assert_partition(first, ids)
    _assert_groups_in_one_fold(first, groups)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        plain = make_splits(ids, {"rare": sparse}, groups=groups)
    assert "plain (unstratified) GroupKFold" in caplog.text
    _assert_partition(plain, ids)
    _assert_groups_in_one_fold(plain, groups)
    assert sorted(len(fold["val"]) for fold in plain) == [14] * 5
    assert make_splits(ids, {"rare": sparse}, groups=groups, seed=1) != make_splits(
        ids, {"rare": sparse}, groups=groups, seed=2
    )


def test_groups_skip_a_stratified_split_with_an_empty_fold(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class EmptyFoldSplitter:
        def __init__(self, n_splits: int, shuffle: bool, random_state: int) -> None:
            self.n_splits = n_splits

        def split(self, X, y, groups):  # noqa: N803 - scikit-learn's argument names
            everything = np.arange(len(X))
            yield everything[:0], everything
            for _ in range(self.n_splits - 1):
                yield everything, everything[:0]

    monkeypatch.setattr(splits_module, "StratifiedGroupKFold", EmptyFoldSplitter)
    ids, groups, labels = _patients()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        splits = make_splits(ids, {"malignant": labels}, groups=groups)
    assert "leaves a fold without cases" in caplog.text
    assert "plain (unstratified) GroupKFold" in caplog.text
    _assert_partition(splits, ids)
    _assert_groups_in_one_fold(splits, groups)


def test_group_splits_do_not_depend_on_case_order() -> None:
    ids, groups, labels = _patients()
    ages = [float((7 * i) % 23) if i % 5 else None for i in range(len(ids))]
    targets = {"malignant": labels, "age": ages}
    expected = make_splits(ids, targets, groups=groups, regression_labels=["age"])
    order = random.Random(3).sample(range(len(ids)), len(ids))
    shuffled_groups = dict(random.Random(4).sample(sorted(groups.items()), len(groups)))
    shuffled = make_splits(
        [ids[i] for i in order],
        {label: [values[i] for i in order] for label, values in targets.items()},
        groups=shuffled_groups,
        regression_labels=["age"],
    )
    assert shuffled == expected
    _assert_groups_in_one_fold(expected, groups)


def test_groups_mapping_may_name_other_cases() -> None:
    ids, groups, labels = _patients()
    with_extra = {**groups, "not_in_task": "patient_00"}
    assert make_splits(ids, {"malignant": labels}, groups=with_extra) == make_splits(
        ids, {"malignant": labels}, groups=groups
    )


def test_too_few_groups() -> None:
    ids = _ids(10)
    groups = {c: f"patient_{i % 3}" for i, c in enumerate(ids)}
    with pytest.raises(UserInputError, match=r"10 case\(s\) in 3 group\(s\) into 5 folds.*at least 5 groups"):
        make_splits(ids, {"a": [0, 1] * 5}, groups=groups)
    # two of the cases have no patient: 5 groups are enough
    assert len(make_splits(ids, {"a": [0, 1] * 5}, groups={c: g for c, g in groups.items() if c < "case_008"})) == 5


def test_load_or_create_passes_groups_and_regression_on(tmp_path) -> None:
    ids, groups, labels = _patients()
    ages = [float(i % 17) for i in range(len(ids))]
    splits_file = tmp_path / "splits.json"
    created = load_or_create_splits(
        splits_file, ids, {"malignant": labels, "age": ages}, regression_labels=["age"], groups=groups
    )
    assert created == make_splits(ids, {"malignant": labels, "age": ages}, regression_labels=["age"], groups=groups)
    _assert_groups_in_one_fold(created, groups)
    assert json.loads(splits_file.read_text()) == created


# --------------------------------------------------------------------- leakage in user-edited files


def test_groups_spanning_folds() -> None:
    groups = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}
    splits = [
        {"train": ["a1", "b1", "b2", "x"], "val": ["a2", "c1"]},  # A is split
        {"train": ["a2", "c1"], "val": ["a1", "b1", "b2", "x"]},  # A is split; B is only in val
        {"train": ["b1", "a1", "a2", "c1"], "val": ["x", "b2"]},  # B is split
        {"train": ["c1", "x"], "val": ["a1", "a2", "b1", "b2"]},  # nothing split
    ]
    assert groups_spanning_folds(splits, groups) == {
        0: {"A": ["a1", "a2"]},
        1: {"A": ["a1", "a2"]},
        2: {"B": ["b1", "b2"]},
    }
    assert groups_spanning_folds(splits, {}) == {}


def test_existing_file_with_split_group_warns(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    ids = _ids(6)
    groups = {"case_000": "patient_x", "case_004": "patient_x", "case_001": "patient_y", "case_002": "patient_y"}
    edited = [
        {"train": ids[:3], "val": ids[3:]},  # patient_x: case_000 in train, case_004 in val
        {"train": ids[3:], "val": ids[:3]},  # patient_x again
    ]
    splits_file = tmp_path / "splits.json"
    splits_file.write_text(json.dumps(edited))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load_or_create_splits(splits_file, ids, {"a": [0, 1] * 3}, groups=groups) == edited
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    for fold, record in enumerate(warnings):
        message = record.getMessage()
        assert str(splits_file) in message
        assert f"fold {fold}:" in message
        assert "'patient_x'" in message and "['case_000', 'case_004']" in message
        assert "move them into one fold" in message
    assert "patient_y" not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_or_create_splits(splits_file, ids, {"a": [0, 1] * 3})  # without groups nothing can be checked
    assert "patient_x" not in caplog.text
