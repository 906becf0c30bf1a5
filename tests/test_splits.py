"""Tests for cross-validation splits."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from universalclassifier.training.splits import fold_cases, load_or_create_splits, make_splits

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
