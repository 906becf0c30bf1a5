"""The report figures say what the tables say: threshold ROC curves of ordinal heads, both learning rates in
progress.png, titles that fit their figure."""

from __future__ import annotations

import numpy as np
import pytest

from universalclassifier.evaluation.calibration import plot_reliability_diagram
from universalclassifier.evaluation.graded_metrics import ordinal_metrics
from universalclassifier.evaluation.metrics import plot_roc_curves
from universalclassifier.training.progress import plot_progress
from universalclassifier.training.training_log import TrainingLog, TrainResult, ValidationResult

# Six cases of a three-grade head; the threshold AUCs differ from the one-vs-rest AUCs of the same grades.
GRADES = [0, 0, 1, 1, 2, 2]
GRADE_PROBS = np.array(
    [[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]
)


def _rendered(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def test_the_ordinal_roc_plot_shows_the_threshold_curves_the_table_reports(tmp_path):
    figure = plot_roc_curves(
        GRADES, GRADE_PROBS, "Task001 cv: size", tmp_path / "roc.png", ordinal=True,
        value_names=("small", "medium", "large"),
    )
    thresholds = ordinal_metrics(GRADES, GRADE_PROBS, 3)["auc_per_threshold"]
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == [
        "chance",
        f">= medium vs < medium, AUC = {thresholds['>=1']:.3f}",
        f">= large vs < large, AUC = {thresholds['>=2']:.3f}",
    ]
    assert "threshold ROC curves" in figure.axes[0].get_title()
    nominal = plot_roc_curves(GRADES, GRADE_PROBS, "nominal", tmp_path / "nominal.png")
    assert [label.split(",")[0] for label in nominal.axes[0].get_legend_handles_labels()[1][1:]] == [
        "0 vs rest", "1 vs rest", "2 vs rest",
    ]


def _log(learning_rates: list[float]) -> TrainingLog:
    log = TrainingLog.for_heads(["a"])
    for lr in learning_rates:
        log.record(TrainResult(1.0, lr, False, 1.0, 0.0), ValidationResult(1.0, {"a": 0.5}), 1.0)
    return log


def test_progress_plots_the_backbone_and_head_learning_rates_by_whole_epoch(tmp_path):
    rates = [1e-5, 5e-5, 1e-4, 5e-5]
    figure = plot_progress(_log(rates), tmp_path / "progress.png", 1000.0, [True, True, False, False])
    assert (tmp_path / "progress.png").is_file()
    lr_axes = figure.axes[2]
    assert lr_axes.get_yscale() == "log"
    backbone, heads = lr_axes.get_lines()
    assert np.isnan(backbone.get_ydata()[:2]).all() and backbone.get_ydata()[2:].tolist() == rates[2:]
    assert heads.get_ydata() == pytest.approx([1000 * r for r in rates])
    assert backbone.get_label().startswith("backbone") and heads.get_label() == "heads"
    _rendered(figure)
    ticks = [t for t in lr_axes.get_xticks() if 1 <= t <= len(rates)]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_long_reliability_title_fits_the_figure(tmp_path):
    title = (
        "Task042_AVeryLongTaskNameForTesting cross-validation: severe_covid_19_within_one_month (temperature-scaled)"
    )
    figure = plot_reliability_diagram([0, 1, 1, 0], np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]]),
                                      title, tmp_path / "reliability.png")
    renderer = _rendered(figure)
    box = figure.axes[0].title.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width and box.y1 <= figure.bbox.height
    assert figure.axes[0].get_title().replace("\n", " ").startswith("Task042_AVeryLongTaskNameForTesting cross")
