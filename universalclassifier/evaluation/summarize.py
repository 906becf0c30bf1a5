"""The cross-validation summary: pool the out-of-fold predictions of every trained fold and report per head."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from universalclassifier.artifact import numbered_fold_folders
from universalclassifier.atomic import write_json_atomic, write_text_atomic
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import INTERVAL_DESCRIPTION, bootstrap_auc_ci, bootstrap_auc_difference
from universalclassifier.evaluation.calibration import expected_calibration_error, plot_reliability_diagram
from universalclassifier.evaluation.figures import fit_title
from universalclassifier.evaluation.graded_metrics import (
    bootstrap_mae_difference,
    plot_regression_scatter,
    regression_confidence_intervals,
)
from universalclassifier.evaluation.head_summary import head_summary, known_targets
from universalclassifier.evaluation.metrics import plot_roc_curves
from universalclassifier.evaluation.temperature import (
    CALIBRATION_BINS,
    final_checkpoint_ids,
    fit_head_temperature,
    write_calibration,
)
from universalclassifier.inference.calibration import CALIBRATION_FILE
from universalclassifier.json_files import read_json_file
from universalclassifier.names import file_name_for
from universalclassifier.paths import REFERENCE_FOLDER, ArtifactLayout, fold_folder_name
from universalclassifier.planning.planner import NUM_FOLDS
from universalclassifier.plans import ClassificationLabel, Plans

logger = logging.getLogger(__name__)

SUMMARY_FILE = "cv_summary.json"
REPORT_FILE = "cv_report.md"
PLOTS_FOLDER = "cv_plots"
PREDICTIONS_FILE = Path(ArtifactLayout.VALIDATION) / ArtifactLayout.PREDICTIONS_JSON
DEEP_LABEL = "Deep model"
REFERENCE_LABEL = "Radiomics reference (mirp features + logistic or ridge regression)"


Prediction = tuple[int | float | None, list[float]]  # (target or None, probabilities or [regression value])


def _entry(path: Path, case_id: str, head: ClassificationLabel, entry: object) -> Prediction:
    """One head's (target, prediction) of a case in predictions.json, checked against the head."""
    key = "prediction" if head.is_regression else "probabilities"
    if not isinstance(entry, dict) or "target" not in entry or key not in entry:
        raise UserInputError(f"{path}: case '{case_id}' has no target and {key} for head '{head.name}'.")
    target, prediction = entry["target"], entry[key]
    prediction = [prediction] if head.is_regression else prediction
    number = (int, float) if head.is_regression else int
    size = head.num_values
    target_ok = target is None or (
        isinstance(target, number) and not isinstance(target, bool) and (head.is_regression or 0 <= target < size)
    )
    if not target_ok or not isinstance(prediction, list) or len(prediction) != size:
        expected = "a number" if head.is_regression else f"a target in 0..{size - 1} and {size} probabilities"
        raise UserInputError(
            f"{path}: case '{case_id}' head '{head.name}' needs {expected} (as in plans.json); the fold was trained "
            "with other plans."
        )
    return target, [float(v) for v in prediction]


def _read_fold(path: Path, heads: Sequence[ClassificationLabel]) -> dict[str, dict[str, Prediction]]:
    """{case: {head: (target, prediction)}} of one predictions.json, checked against the plans' heads."""
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path} is not valid JSON ({exc}); rerun the validation of that fold.") from exc
    if not isinstance(raw, dict):
        raise UserInputError(f"{path} must map case ids to per-head predictions; rerun the validation of that fold.")
    return {
        case_id: {
            head.name: _entry(path, case_id, head, per_head.get(head.name) if isinstance(per_head, dict) else None)
            for head in heads
        }
        for case_id, per_head in raw.items()
    }


def pool_folds(
    trainer_folder: Path, heads: Sequence[ClassificationLabel]
) -> tuple[list[str], dict[str, tuple[str, dict]]]:
    """The out-of-fold predictions of every validated fold_N of `trainer_folder`: the folds read and
    {case: (fold, {head: (target, prediction)})}; a case seen in an earlier fold is kept from there."""
    pooled: dict[str, tuple[str, dict]] = {}
    folds = []
    for fold in numbered_fold_folders(trainer_folder):
        path = fold / PREDICTIONS_FILE
        if not path.is_file():
            logger.warning("%s has no %s (not trained or validated yet); it is left out.", fold.name, PREDICTIONS_FILE)
            continue
        folds.append(fold.name)
        for case_id, predictions in _read_fold(path, heads).items():
            if case_id in pooled:
                logger.warning(
                    "Case '%s' is in the validation of both %s and %s; keeping the prediction of %s.",
                    case_id, pooled[case_id][0], fold.name, pooled[case_id][0],
                )
                continue
            pooled[case_id] = (fold.name, predictions)
    if not folds:
        raise UserInputError(
            f"{trainer_folder} holds no fold_N/{PREDICTIONS_FILE.as_posix()}; train (and validate) the folds first."
        )
    return folds, pooled


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_auc_ci(auc: float | None, ci: Sequence[float | None]) -> str:
    """`0.850 [0.700, 0.950]`, with n/a for undefined values and no interval when there is none."""
    if ci[0] is None or ci[1] is None:
        return _number(auc)
    return f"{_number(auc)} [{ci[0]:.3f}, {ci[1]:.3f}]"


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], value_names: Sequence[str], title: str, out_file: Path
) -> None:
    """Write a PNG of a confusion matrix (rows = true value, columns = predicted value) with the count in every cell."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    counts = np.asarray(matrix, dtype=np.int64)
    size = max(4.0, 1.0 + 0.9 * len(value_names))
    figure = Figure(figsize=(size + 1, size), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0, aspect="auto")
    figure.colorbar(image, ax=axes, label="Cases", ticks=MaxNLocator(integer=True))
    threshold = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color)
    ticks = range(len(value_names))
    axes.set_xticks(ticks, labels=value_names, rotation=45 if len(value_names) > 3 else 0)
    axes.set_yticks(ticks, labels=value_names)
    axes.set_xlabel("Predicted value")
    axes.set_ylabel("True value")
    axes.set_title(fit_title(title, size + 1))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, format="png")


def summarize_head(
    head: ClassificationLabel,
    pooled: dict[str, tuple[str, dict]],
    folds: list[str],
    plots_title: str,
    folder: Path,
    num_resamples: int,
    seed: int,
    *,
    plots_folder: str = PLOTS_FOLDER,
    fit_calibration: bool = True,
) -> dict:
    """Metrics (with bootstrap CIs) and plots (in `folder`/`plots_folder`) of one head over a pooled prediction set
    {case: (fold, {head: (target, prediction)})}; nominal heads also get a temperature fit with `fit_calibration`."""
    name = head.name
    targets, predictions = pooled_arrays(pooled, name, list(pooled))
    summary = head_summary(head, targets, predictions)
    known, values = known_targets(targets)
    predictions = predictions[known]
    plot_kinds = ("scatter",) if head.is_regression else ("roc", "confusion", "reliability")
    plots = {kind: f"{plots_folder}/{kind}_{file_name_for(name)}.png" for kind in plot_kinds}
    summary.update(folds=folds, plots=plots)
    if not known.any():
        return summary
    title = f"{plots_title}: {name}"
    if head.is_regression:
        plot_regression_scatter(values, predictions[:, 0], title, folder / plots["scatter"])
        intervals = regression_confidence_intervals(values, predictions[:, 0], num_resamples=num_resamples, seed=seed)
        return {**summary, **{f"{metric}_ci_95": list(ci) for metric, ci in intervals.items()}}
    y = values.astype(np.int64)
    if head.type == "nominal" and fit_calibration:
        folds_of = [fold for (fold, _), is_known in zip(pooled.values(), known, strict=True) if is_known]
        summary.update(_calibration(name, y, predictions, folds_of, title, folder / plots["reliability"], plots_folder))
    ci = bootstrap_auc_ci(y, predictions, num_resamples=num_resamples, seed=seed, ordinal=head.ordinal)
    if summary["auc"] is not None and ci[0] is None:
        logger.warning("Head '%s': too few bootstrap resamples have a defined AUC for a confidence interval.", name)
    plot_roc_curves(y, predictions, title, folder / plots["roc"], ordinal=head.ordinal, value_names=head.values)
    plot_confusion_matrix(summary["confusion_matrix"], list(head.values), title, folder / plots["confusion"])
    plot_reliability_diagram(y, predictions, title, folder / plots["reliability"], CALIBRATION_BINS)
    return {
        **summary,
        "auc_ci_95": list(ci),
        "ece": expected_calibration_error(y, predictions, CALIBRATION_BINS),
        "values": dict(zip(map(str, range(head.num_values)), head.values, strict=True)),
    }


def _calibration(
    name: str, y: np.ndarray, probabilities: np.ndarray, folds: list[str], title: str, plot: Path, plots_folder: str
) -> dict:
    """The head's temperature scaling as `fit_head_temperature` judges it, with a reliability diagram of the
    cross-fitted probabilities where there are some."""
    fit = fit_head_temperature(y, probabilities, folds, name)
    result = fit.to_dict()
    if fit.cross_fitted is not None:
        calibrated_plot = plot.with_name(plot.name.replace("reliability_", "reliability_calibrated_"))
        plot_reliability_diagram(
            y, fit.cross_fitted, f"{title} (temperature-scaled, cross-fitted)", calibrated_plot, CALIBRATION_BINS
        )
        result["plot_calibrated"] = f"{plots_folder}/{calibrated_plot.name}"
    return result


def pooled_arrays(
    pooled: dict[str, tuple[str, dict]], name: str, cases: Sequence[str]
) -> tuple[list[int | float | None], np.ndarray]:
    """Targets (None: unknown) and predictions of head `name` for `cases` of a pooled prediction set."""
    targets = [pooled[c][1][name][0] for c in cases]
    return targets, np.array([pooled[c][1][name][1] for c in cases], dtype=np.float64)


def _paired(common: list[str], difference: tuple[float | None, float | None, float | None]) -> dict:
    """A deep-minus-reference difference as the summary stores it."""
    return {"num_cases": len(common), "difference": difference[0], "ci_95": list(difference[1:])}


def _reference_classification_head(
    head: ClassificationLabel,
    pooled: dict[str, tuple[str, dict]],
    deep: dict[str, tuple[str, dict]],
    cases: list[str],
    common: list[str],
    num_resamples: int,
    seed: int,
) -> dict:
    """The reference's metrics of a classification head on `cases` (all with a known target) and the AUC
    difference deep minus reference on the `common` cases."""
    name = head.name
    targets, probabilities = pooled_arrays(pooled, name, cases)
    y = np.array(targets, dtype=np.int64)
    difference: tuple[float | None, float | None, float | None] = (None, None, None)
    if common:
        common_targets, deep_probabilities = pooled_arrays(deep, name, common)
        difference = bootstrap_auc_difference(
            np.array(common_targets, dtype=np.int64), deep_probabilities, pooled_arrays(pooled, name, common)[1],
            num_resamples=num_resamples, seed=seed, ordinal=head.ordinal,
        )
    return {
        **head_summary(head, targets, probabilities),
        "auc_ci_95": list(
            bootstrap_auc_ci(y, probabilities, num_resamples=num_resamples, seed=seed, ordinal=head.ordinal)
        ),
        "ece": expected_calibration_error(y, probabilities, CALIBRATION_BINS),
        "deep_minus_reference_auc": _paired(common, difference),
    }


def _reference_regression_head(
    head: ClassificationLabel,
    pooled: dict[str, tuple[str, dict]],
    deep: dict[str, tuple[str, dict]],
    cases: list[str],
    common: list[str],
    num_resamples: int,
    seed: int,
) -> dict:
    """The reference's metrics of a regression head on `cases` (all with a known target) and the MAE difference
    deep minus reference on the `common` cases."""
    name = head.name
    targets, predictions = pooled_arrays(pooled, name, cases)
    values = np.array(targets, dtype=np.float64)
    intervals = regression_confidence_intervals(values, predictions[:, 0], num_resamples=num_resamples, seed=seed)
    difference: tuple[float | None, float | None, float | None] = (None, None, None)
    if common:
        common_targets, deep_predictions = pooled_arrays(deep, name, common)
        difference = bootstrap_mae_difference(
            np.array(common_targets, dtype=np.float64), deep_predictions[:, 0],
            pooled_arrays(pooled, name, common)[1][:, 0], num_resamples=num_resamples, seed=seed,
        )
    return {
        **head_summary(head, targets, predictions),
        **{f"{metric}_ci_95": ci for metric, ci in intervals.items()},
        "deep_minus_reference_mae": _paired(common, difference),
    }


def _reference_summary(
    reference_folder: Path,
    heads: Sequence[ClassificationLabel],
    deep: dict[str, tuple[str, dict]],
    task_name: str,
    num_resamples: int,
    seed: int,
) -> dict:
    """Pooled metrics of the radiomics reference beside the deep model, or how to get them when it is missing.

    Per head with known targets: the same metrics as the deep model's rows, plus the AUC (regression heads: MAE)
    difference deep minus reference on the cases both predicted, with a paired bootstrap interval.
    """
    validated = reference_folder.is_dir() and any(
        (fold / PREDICTIONS_FILE).is_file() for fold in numbered_fold_folders(reference_folder)
    )
    missing = {"available": False, "label": REFERENCE_LABEL, "how_to": f"uc_radiomics DATA -t {task_name}"}
    if not validated:
        return missing
    try:
        folds, pooled = pool_folds(reference_folder, heads)
    except UserInputError as exc:  # e.g. made before the task's labels changed: it must not block the deep summary
        logger.warning("The radiomics reference is left out: %s Rerun %s to refresh it.", exc, missing["how_to"])
        return {**missing, "problem": str(exc)}
    summary_heads = {}
    for head in heads:
        cases = [case for case in pooled if pooled[case][1][head.name][0] is not None]
        if cases:
            common = [case for case in cases if case in deep and deep[case][1][head.name][0] is not None]
            compare = _reference_regression_head if head.is_regression else _reference_classification_head
            summary_heads[head.name] = compare(head, pooled, deep, cases, common, num_resamples, seed)
    return {
        "available": True,
        "label": REFERENCE_LABEL,
        "folder": f"../{REFERENCE_FOLDER}",
        "folds": folds,
        "num_cases": len(pooled),
        "heads": summary_heads,
    }


def _metric_cells(head: dict) -> str:
    return (
        f"{head['num_cases']} | {format_auc_ci(head['auc'], head['auc_ci_95'])} | "
        f"{_number(head['balanced_accuracy'])} | {_number(head['accuracy'])} | {_number(head['ece'])} |"
    )


def _calibration_lines(name: str, head: dict) -> list[str]:
    """The temperature-scaling paragraph of a nominal head's section."""
    if "temperature" not in head:
        return []
    fitted = head["temperature_fitted"]
    if head["temperature_kept"]:
        decision = (
            f"Temperature scaling: T = {head['temperature']:.3f}, kept in {CALIBRATION_FILE} "
            f"({head['temperature_reason']}); predict() applies it unless calibrate=False."
        )
    else:
        found = "" if fitted is None else f" (fitted T = {fitted:.3f})"
        decision = (
            f"Temperature scaling: none{found}; {CALIBRATION_FILE} holds T = 1 for this head: "
            f"{head['temperature_reason']}."
        )
    lines = [
        "",
        f"{decision} ECE {_number(head['ece'])} without, {_number(head['ece_calibrated'])} with it (cross-fitted: "
        "each fold's cases scaled with the temperature fitted on the other folds).",
    ]
    if head.get("plot_calibrated"):
        lines.append(f"![Reliability diagram of {name} after temperature scaling]({head['plot_calibrated']})")
    return lines


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _paired_difference(name: str, paired: dict) -> str:
    """`head +0.050 [-0.020, +0.110]`: a deep-minus-reference difference with its interval where there is one."""
    interval = "" if paired["ci_95"][0] is None else f" [{paired['ci_95'][0]:+.3f}, {paired['ci_95'][1]:+.3f}]"
    return f"{name} {_signed(paired['difference'])}{interval}"


def _regression_cells(head: dict) -> str:
    return (
        f"{head['num_cases']} | {_with_ci(head, 'mae')} | {_number(head['rmse'])} | {_with_ci(head, 'r2')} | "
        f"{_number(head['spearman'])} |"
    )


def _comparison_report(summary: dict) -> list[str]:
    """The markdown section that puts the radiomics reference beside the deep model."""
    reference = summary["reference"]
    lines = ["", f"## {DEEP_LABEL} vs. radiomics reference", ""]
    if not reference["available"]:
        return lines + [
            f"No radiomics reference for this task yet. Run `{reference['how_to']}` (needs "
            "`pip install 'universalclassifier[radiomics]'`), then summarize again to see whether the network beats a "
            "classical model (mirp radiomics features + logistic or ridge regression, same folds) on this data."
        ]
    lines.append(
        f"{reference['label']}: out-of-fold predictions of {len(reference['folds'])} fold(s) on the same splits, "
        f"{reference['num_cases']} case(s) pooled (folder `{reference['folder']}`)."
    )
    classification, regression = _split_heads(reference["heads"])
    if classification:
        lines += _comparison_table(
            summary, classification, "| Head | Model | Cases | AUC [95% CI] | Balanced accuracy | Accuracy | ECE |",
            _metric_cells, "auc", "above",
        )
    if regression:
        lines += _comparison_table(
            summary, regression, "| Regression head | Model | Cases | MAE [95% CI] | RMSE | R² [95% CI] | Spearman |",
            _regression_cells, "mae", "below",
        )
    return lines


def _comparison_table(
    summary: dict, heads: dict, header: str, cells: Callable[[dict], str], metric: str, better: str
) -> list[str]:
    """Rows of the network and the reference per head, then the paired difference network minus reference of
    `metric` ("auc" or "mae"), whose interval lies `better` ("above" or "below") 0 where the network wins."""
    reference = summary["reference"]
    lines = ["", header, "|---|---|---|---|---|---|---|"]
    for name, other in heads.items():
        lines.append(f"| {_cell(name)} | {DEEP_LABEL} | {cells(summary['heads'][name])}")
        lines.append(f"| {_cell(name)} | {_cell(reference['label'])} | {cells(other)}")
    differences = [_paired_difference(n, other[f"deep_minus_reference_{metric}"]) for n, other in heads.items()]
    worse = "below" if better == "above" else "above"
    return lines + [
        "",
        f"{metric.upper()} of the deep model minus the reference on the cases both predicted (paired bootstrap "
        f"95% CI): {'; '.join(differences)}. An interval {better} 0: the network beats the classical model; {worse} "
        "0: the classical model is better; containing 0: no clear difference on this data.",
    ]


def _split_heads(heads: dict) -> tuple[dict, dict]:
    """(classification heads, regression heads) of a summary's "heads", each only with cases of a known target."""
    known = {name: head for name, head in heads.items() if head["num_cases"]}
    regression = {name: head for name, head in known.items() if head["type"] == "regression"}
    return {name: head for name, head in known.items() if name not in regression}, regression


def _with_ci(head: dict, metric: str) -> str:
    return format_auc_ci(head[metric], head[f"{metric}_ci_95"])


def head_section(name: str, head: dict) -> list[str]:
    """The markdown section of one head: its values, per-value or per-threshold AUCs, confusion matrix and plots."""
    lines = ["", f"## {name}", ""]
    if head["num_missing"]:
        lines += [f"{head['num_missing']} case(s) have no value for this head and are left out of its metrics.", ""]
    if not head.get("num_cases"):
        return lines + ["No case has a known value for this head, so it has no metrics."]
    if head["type"] == "regression":
        return lines + [
            f"MAE {_with_ci(head, 'mae')}, RMSE {_with_ci(head, 'rmse')}, R² {_with_ci(head, 'r2')}, Pearson "
            f"{_with_ci(head, 'pearson')}, Spearman {_with_ci(head, 'spearman')} (95% CIs: bootstrap over cases).",
            "",
            f"![Predicted vs. true values of {name}]({head['plots']['scatter']})",
        ]
    names = list(head["values"].values())
    lines.append(f"Values: {', '.join(f'{v} = {n}' for v, n in head['values'].items())}.")
    if "auc_per_value" in head:
        per_value = ", ".join(f"{head['values'][v]} {_number(auc)}" for v, auc in head["auc_per_value"].items())
        lines.append(f"One-vs-rest AUC per value: {per_value}.")
    if head["type"] == "ordinal":
        per_threshold = ", ".join(f"{k} {_number(auc)}" for k, auc in head["auc_per_threshold"].items())
        lines.append(
            f"Ordinal: AUC per threshold {per_threshold}; quadratic weighted kappa "
            f"{_number(head['quadratic_weighted_kappa'])}; mean absolute error {_number(head['mae_grades'])} grades."
        )
    lines += [
        "",
        "Confusion matrix (rows: true value, columns: predicted value):",
        "",
        "| true \\ predicted | " + " | ".join(_cell(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    lines += [
        f"| {_cell(n)} | " + " | ".join(map(str, row)) + " |"
        for n, row in zip(names, head["confusion_matrix"], strict=True)
    ]
    return lines + [
        "",
        f"![ROC curve of {name}]({head['plots']['roc']})",
        f"![Confusion matrix of {name}]({head['plots']['confusion']})",
        f"![Reliability diagram of {name}]({head['plots']['reliability']})",
    ] + _calibration_lines(name, head)


def _report(summary: dict) -> str:
    """The markdown report of a summary made by summarize_cross_validation."""
    lines = [
        f"# Cross-validation summary: {summary['task']}, {summary['trainer']}",
        "",
        f"Out-of-fold predictions of {folds_sentence(summary['folds'], summary['planned_folds'])} of the trainer "
        f"folder `{summary['trainer_folder']}`, {summary['num_cases']} case(s) pooled.",
        f"AUC: ROC AUC (nominal heads with more than two values: macro mean of the one-vs-rest AUCs; ordinal heads: "
        f"mean of the AUCs of the thresholds grade >= k); 95% CI: {INTERVAL_DESCRIPTION}, "
        f"{summary['num_resamples']} resamples (seed {summary['seed']}). "
        f"ECE: top-label expected calibration error, {summary['calibration_bins']} equal-width confidence bins.",
    ]
    lines += metric_tables(summary["heads"]) + _comparison_report(summary)
    for name, head in summary["heads"].items():
        lines += head_section(name, head)
    return "\n".join(lines) + "\n"


def folds_sentence(folds: Sequence[str], planned: Sequence[str]) -> str:
    """E.g. "2 of 5 planned folds (fold_0, fold_1; **missing: fold_2, fold_3, fold_4**)" or "5 folds (fold_0, ...)"."""
    missing = [fold for fold in planned if fold not in folds]
    if not missing:
        return f"{len(folds)} fold(s) ({', '.join(folds)})"
    return f"{len(folds)} of {len(planned)} planned folds ({', '.join(folds)}; **missing: {', '.join(missing)}**)"


def planned_folds(splits_file: Path | None) -> list[str]:
    """The folds the task's splits_final.json plans (fold_0 .. fold_{n-1}), or the default five without one."""
    if splits_file is not None and Path(splits_file).is_file():
        splits = read_json_file(Path(splits_file), "splits")
        if isinstance(splits, list) and splits:
            return [fold_folder_name(k) for k in range(len(splits))]
        logger.warning("%s is not a list of folds; assuming the default %d folds.", splits_file, NUM_FOLDS)
    return [fold_folder_name(k) for k in range(NUM_FOLDS)]


def warn_missing_folds(folds: Sequence[str], planned: Sequence[str], what: str) -> None:
    """Warn when `what` (e.g. "The cross-validation summary") covers fewer folds than planned."""
    missing = [fold for fold in planned if fold not in folds]
    if missing:
        logger.warning(
            "%s covers %d of %d planned folds (%s); missing: %s. Train (and validate) the missing folds, or read the "
            "results as those of part of the folds only.",
            what, len(folds), len(planned), ", ".join(folds) or "none", ", ".join(missing),
        )


def metric_tables(heads: dict) -> list[str]:
    """Markdown tables of a summary's heads: classification heads, then regression heads."""
    classification, regression = _split_heads(heads)
    lines = []
    if classification:
        lines += ["", "| Head | Cases | AUC [95% CI] | Balanced accuracy | Accuracy | ECE |", "|---" * 6 + "|"]
        lines += [f"| {_cell(name)} | {_metric_cells(head)}" for name, head in classification.items()]
    if regression:
        lines += ["", "| Regression head | Cases | MAE [95% CI] | RMSE | R² [95% CI] | Spearman |", "|---" * 6 + "|"]
        lines += [f"| {_cell(name)} | {_regression_cells(head)}" for name, head in regression.items()]
    return lines


def _table_rows(heads: dict, width: int) -> list[str]:
    return [
        f"{name:<{width}}  {head['num_cases']:>5}  {format_auc_ci(head['auc'], head['auc_ci_95']):<22}  "
        f"{_number(head['balanced_accuracy']):>7}  {_number(head['accuracy']):>8}  {_number(head['ece']):>5}  "
        f"{_number(head.get('ece_calibrated'))}"
        for name, head in heads.items()
    ]


def _text_tables(heads: dict, width: int) -> list[str]:
    """The plain-text rows of a summary's heads with a known target: classification heads, then regression heads."""
    classification, regression = _split_heads(heads)
    header = f"{'head':<{width}}  cases  {'AUC [95% CI]':<22}  bal.acc  accuracy    ECE  ECE after T"
    rows = [header] + _table_rows(classification, width) if classification else []
    if regression:
        rows += [f"{'regression head':<{width}}  cases  {'MAE [95% CI]':<22}  {'R² [95% CI]':<22}"]
        rows += [
            f"{name:<{width}}  {head['num_cases']:>5}  {_with_ci(head, 'mae'):<22}  {_with_ci(head, 'r2'):<22}"
            for name, head in regression.items()
        ]
    return rows


def format_summary_table(summary: dict) -> str:
    """A plain-text table of a cross-validation summary: cases, AUC [95% CI], balanced accuracy, accuracy, ECE.

    Regression heads follow with MAE and R² [95% CI]; the radiomics reference follows as a second table when the
    summary has one, else a line saying how to get it.
    """
    width = max(len("head"), *(len(name) for name in summary["heads"]))
    rows = _text_tables(summary["heads"], width)
    reference = summary.get("reference")
    if reference and reference["available"]:
        rows += ["", f"{reference['label']}:"] + _text_tables(reference["heads"], width)
    elif reference:
        rows += ["", f"No radiomics reference to compare with: run {reference['how_to']}"]
    return "\n".join(rows)


def summarize_cross_validation(
    trainer_folder: Path, num_resamples: int = 1000, seed: int = 0, planned: Sequence[str] | None = None
) -> dict:
    """Pool the out-of-fold predictions of every fold_N of `trainer_folder` and write the cross-validation summary.

    Writes cv_summary.json (returned as a dict), cv_report.md and cv_plots/{roc,confusion,reliability}_<head>.png
    into `trainer_folder`. Per head: head_metrics of the pooled cases, auc_ci_95 (bootstrap, None when undefined),
    ece (top-label, 10 bins), the folds used, the value names and the plot paths relative to `trainer_folder`;
    nominal heads also get their temperature scaling (see evaluation/temperature.py), and calibration.json is written
    with the checkpoint ids of the folds. `planned`: the folds the task's splits plan (default: fold_0 .. fold_4); a
    warning says when fewer were pooled, and the report names the missing ones. `reference`: the same metrics of
    the radiomics reference in the sibling RadiomicsReference/ folder (uc_radiomics) with the paired AUC difference
    to the deep model, or {"available": false, "how_to": ...} when there is none.
    """
    trainer_folder = Path(trainer_folder)
    plans_file = ArtifactLayout(trainer_folder).plans_file
    if not plans_file.is_file():
        raise UserInputError(
            f"No trained model in {trainer_folder} (no {plans_file.name}); train (and validate) the folds first."
        )
    plans = Plans.load(plans_file)
    folds, pooled = pool_folds(trainer_folder, plans.classification_labels)
    if not pooled:
        raise UserInputError(f"The predictions.json of {', '.join(folds)} in {trainer_folder} hold no cases.")
    title = f"{plans.task_name} cross-validation"
    contributing = {fold for fold, _ in pooled.values()}
    used = [fold for fold in folds if fold in contributing]
    planned = list(planned) if planned is not None else planned_folds(None)
    warn_missing_folds(used, planned, "The cross-validation summary")
    heads = {
        head.name: summarize_head(head, pooled, used, title, trainer_folder, num_resamples, seed)
        for head in plans.classification_labels
    }
    summary = {
        "task": plans.task_name,
        "trainer": trainer_folder.name.partition("__")[0],
        "trainer_folder": trainer_folder.name,
        "folds": folds,
        "planned_folds": planned,
        "num_cases": len(pooled),
        "num_resamples": num_resamples,
        "seed": seed,
        "calibration_bins": CALIBRATION_BINS,
        "heads": heads,
    }
    calibration = {
        name: {
            **{key: value for key, value in head.items() if key.startswith("temperature")},
            "num_cases": head["num_cases"],
            "ece": head["ece"],
            "ece_calibrated_cross_fitted": head["ece_calibrated"],
        }
        for name, head in heads.items()
        if "temperature" in head
    }
    write_calibration(trainer_folder, plans, final_checkpoint_ids(trainer_folder, used), calibration)
    summary["reference"] = _reference_summary(
        trainer_folder.parent / REFERENCE_FOLDER,
        plans.classification_labels,
        pooled,
        plans.task_name,
        num_resamples,
        seed,
    )
    write_json_atomic(trainer_folder / SUMMARY_FILE, summary)
    write_text_atomic(trainer_folder / REPORT_FILE, _report(summary))
    logger.info("Wrote %s, %s and %s/ to %s", SUMMARY_FILE, REPORT_FILE, PLOTS_FOLDER, trainer_folder)
    return summary
