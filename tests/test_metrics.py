"""Tests for per-head validation metrics and ROC plots."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from universalclassifier.evaluation.head_summary import summarize_heads
from universalclassifier.evaluation.metrics import head_metrics, plot_roc_curves
from universalclassifier.plans import ClassificationLabel

LOGGER = "universalclassifier.evaluation.metrics"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BINARY_TARGETS = [0, 0, 1, 1]
BINARY_P1 = np.array([0.1, 0.4, 0.35, 0.8])
BINARY_PROBS = np.stack([1 - BINARY_P1, BINARY_P1], axis=1)

THREE_TARGETS = [0, 0, 1, 1, 2, 2]
THREE_PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.6, 0.2],
        [0.5, 0.3, 0.2],
        [0.1, 0.2, 0.7],
        [0.2, 0.3, 0.5],
    ]
)


def test_binary_head() -> None:
    m = head_metrics(BINARY_TARGETS, BINARY_PROBS, 2)
    # Positive scores 0.35 and 0.8 against negatives 0.1 and 0.4: 1 + 2 of 4 pairs ranked correctly.
    assert m["auc"] == pytest.approx(0.75)
    # Argmax predictions [0, 0, 0, 1].
    assert m["num_cases"] == 4
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert "auc_per_value" not in m


def test_three_class_head() -> None:
    m = head_metrics(THREE_TARGETS, THREE_PROBS, 3)
    # Value 0: 7/8 pairs; value 1: 6.5/8 (one tie at 0.3); value 2: 8/8.
    assert m["auc_per_value"] == pytest.approx({"0": 0.875, "1": 0.8125, "2": 1.0})
    assert m["auc"] == pytest.approx((0.875 + 0.8125 + 1.0) / 3)
    # Argmax predictions [0, 1, 1, 0, 2, 2].
    assert m["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_absent_class(caplog: pytest.LogCaptureFixture) -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m = head_metrics([0, 0, 1, 1], probs, 3)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert m["auc_per_value"] == {"0": pytest.approx(1.0), "1": pytest.approx(0.875), "2": None}
    assert m["auc"] == pytest.approx((1.0 + 0.875) / 2)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert "undefined for value(s) ['2']" in caplog.text


def test_single_class_targets(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        binary = head_metrics([1, 1, 1], np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]), 2)
        multi = head_metrics([2, 2], np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]), 3)
    assert binary["auc"] is None
    assert binary["accuracy"] == pytest.approx(2 / 3)
    assert multi["auc"] is None
    assert multi["auc_per_value"] == {"0": None, "1": None, "2": None}
    assert "AUC of head is undefined" in caplog.text


def test_results_are_json_serialisable() -> None:
    labels = [
        ClassificationLabel("grade", "nominal", ("1", "2", "3")), ClassificationLabel("present", "nominal", ("n", "y"))
    ]
    summary = summarize_heads(
        labels,
        {"grade": THREE_TARGETS, "present": [0, 1, 0, None, 1, 1]},
        {"grade": THREE_PROBS, "present": np.full((6, 2), 0.5, dtype=np.float32)},
    )
    assert list(summary) == ["grade", "present"]
    assert summary["grade"] == {"type": "nominal", **head_metrics(THREE_TARGETS, THREE_PROBS, 3), "num_missing": 0}
    assert summary["present"]["num_cases"] == 5 and summary["present"]["num_missing"] == 1
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        head_metrics(BINARY_TARGETS, BINARY_PROBS, 3)
    with pytest.raises(ValueError, match="Targets must lie in 0..1"):
        head_metrics([0, 2, 1, 1], BINARY_PROBS, 2)


@pytest.mark.parametrize(("targets", "probs"), [(BINARY_TARGETS, BINARY_PROBS), (THREE_TARGETS, THREE_PROBS)])
def test_roc_png_is_written(tmp_path, targets: list[int], probs: np.ndarray) -> None:
    out_file = tmp_path / "plots" / "roc.png"
    plot_roc_curves(targets, probs, "ROC", out_file)
    assert out_file.read_bytes().startswith(PNG_MAGIC)


def test_roc_skips_undefined_curves(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    out_file = tmp_path / "roc.png"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        plot_roc_curves([0, 0, 1, 1], np.array([[0.6, 0.3, 0.1]] * 4), "grade", out_file)
    assert "no ROC curve for 2 vs rest" in caplog.text
    assert out_file.read_bytes().startswith(PNG_MAGIC)
