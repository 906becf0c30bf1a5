"""Summary records as reports: the metric tables, head sections and the comparison with the radiomics reference
that the cross-validation report, the evaluation report and the model card share; the cross-validation report; and
the plain-text table the commands print."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from universalclassifier.evaluation.bootstrap import INTERVAL_DESCRIPTION
from universalclassifier.inference.calibration import CALIBRATION_FILE
from universalclassifier.reporting.document import Block, Figure, Paragraph, Report, Section, Table

DEEP_LABEL = "Deep model"
_CLASSIFICATION_HEADER = ("Cases", "AUC [95% CI]", "Balanced accuracy", "Accuracy", "ECE")
_REGRESSION_HEADER = ("Cases", "MAE [95% CI]", "RMSE", "R² [95% CI]", "Spearman")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_auc_ci(auc: float | None, ci: Sequence[float | None]) -> str:
    """`0.850 [0.700, 0.950]`, with n/a for undefined values and no interval when there is none."""
    if ci[0] is None or ci[1] is None:
        return _number(auc)
    return f"{_number(auc)} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _with_ci(head: dict, metric: str) -> str:
    return format_auc_ci(head[metric], head[f"{metric}_ci_95"])


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def signed_interval(low: float | None, high: float | None) -> str:
    """` [-0.020, +0.110]`: a difference's interval with signs, or "" when there is none."""
    return "" if low is None or high is None else f" [{low:+.3f}, {high:+.3f}]"


def _split_heads(heads: dict) -> tuple[dict, dict]:
    """(classification heads, regression heads) of a summary's "heads", each only with cases of a known target."""
    known = {name: head for name, head in heads.items() if head["num_cases"]}
    regression = {name: head for name, head in known.items() if head["type"] == "regression"}
    return {name: head for name, head in known.items() if name not in regression}, regression


def _metric_cells(head: dict) -> tuple[str, ...]:
    return (
        str(head["num_cases"]), format_auc_ci(head["auc"], head["auc_ci_95"]), _number(head["balanced_accuracy"]),
        _number(head["accuracy"]), _number(head["ece"]),
    )


def _regression_cells(head: dict) -> tuple[str, ...]:
    return (
        str(head["num_cases"]), _with_ci(head, "mae"), _number(head["rmse"]), _with_ci(head, "r2"),
        _number(head["spearman"]),
    )


def metric_tables(heads: dict) -> list[Block]:
    """The tables of a summary's heads with a known target: classification heads, then regression heads."""
    classification, regression = _split_heads(heads)
    tables: list[Block] = []
    if classification:
        rows = tuple((name, *_metric_cells(head)) for name, head in classification.items())
        tables.append(Table(("Head", *_CLASSIFICATION_HEADER), rows))
    if regression:
        rows = tuple((name, *_regression_cells(head)) for name, head in regression.items())
        tables.append(Table(("Regression head", *_REGRESSION_HEADER), rows))
    return tables


def head_figures(name: str, head: dict) -> list[Block]:
    """The figures of one head's summary: ROC curves, confusion matrix and reliability diagram, or the scatter plot."""
    plots = head.get("plots") or {}
    captions = {
        "roc": f"ROC curve of {name}",
        "confusion": f"Confusion matrix of {name}",
        "reliability": f"Reliability diagram of {name}",
        "scatter": f"Predicted vs. true values of {name}",
    }
    return [Figure(plots[kind], caption) for kind, caption in captions.items() if kind in plots]


def _calibration_blocks(name: str, head: dict) -> list[Block]:
    """The temperature-scaling paragraph (and calibrated reliability diagram) of a nominal head's section."""
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
    blocks: list[Block] = [
        Paragraph(
            f"{decision} ECE {_number(head['ece'])} without, {_number(head['ece_calibrated'])} with it (cross-fitted: "
            "each fold's cases scaled with the temperature fitted on the other folds)."
        )
    ]
    if head.get("plot_calibrated"):
        blocks.append(Figure(head["plot_calibrated"], f"Reliability diagram of {name} after temperature scaling"))
    return blocks


def head_section(name: str, head: dict) -> Section:
    """The section of one head: its values, per-value or per-threshold AUCs, confusion matrix and plots."""
    section = Section(name)
    blocks = section.blocks
    if head["num_missing"]:
        blocks.append(Paragraph(f"{head['num_missing']} case(s) have no value for this head and are left out of its "
                                "metrics."))
    if not head.get("num_cases"):
        blocks.append(Paragraph("No case has a known value for this head, so it has no metrics."))
        return section
    if head["type"] == "regression":
        blocks.append(Paragraph(
            f"MAE {_with_ci(head, 'mae')}, RMSE {_with_ci(head, 'rmse')}, R² {_with_ci(head, 'r2')}, Pearson "
            f"{_with_ci(head, 'pearson')}, Spearman {_with_ci(head, 'spearman')} (95% CIs: bootstrap over cases)."
        ))
        blocks += head_figures(name, head)
        return section
    names = list(head["values"].values())
    text = [f"Values: {', '.join(f'{v} = {n}' for v, n in head['values'].items())}."]
    if "auc_per_value" in head:
        per_value = ", ".join(f"{head['values'][v]} {_number(auc)}" for v, auc in head["auc_per_value"].items())
        text.append(f"One-vs-rest AUC per value: {per_value}.")
    if head["type"] == "ordinal":
        per_threshold = ", ".join(f"{k} {_number(auc)}" for k, auc in head["auc_per_threshold"].items())
        text.append(
            f"Ordinal: AUC per threshold {per_threshold}; quadratic weighted kappa "
            f"{_number(head['quadratic_weighted_kappa'])}; mean absolute error {_number(head['mae_grades'])} grades."
        )
    blocks += [
        Paragraph(" ".join(text)),
        Paragraph("Confusion matrix (rows: true value, columns: predicted value):"),
        Table(
            ("true \\ predicted", *names),
            tuple((n, *map(str, row)) for n, row in zip(names, head["confusion_matrix"], strict=True)),
        ),
        *head_figures(name, head),
        *_calibration_blocks(name, head),
    ]
    return section


def _comparison_blocks(
    summary: dict, heads: dict, header: tuple[str, ...], cells: Callable[[dict], tuple[str, ...]], metric: str,
    better: str,
) -> list[Block]:
    """Rows of the network and the reference per head, then the paired difference network minus reference of
    `metric` ("auc" or "mae"), whose interval lies `better` ("above" or "below") 0 where the network wins."""
    reference = summary["reference"]
    rows = []
    for name, other in heads.items():
        rows += [(name, DEEP_LABEL, *cells(summary["heads"][name])), (name, reference["label"], *cells(other))]
    differences = []
    for name, other in heads.items():
        paired = other[f"deep_minus_reference_{metric}"]
        differences.append(f"{name} {_signed(paired['difference'])}{signed_interval(*paired['ci_95'])}")
    worse = "below" if better == "above" else "above"
    return [
        Table((header[0], "Model", *header[1:]), tuple(rows)),
        Paragraph(
            f"{metric.upper()} of the deep model minus the reference on the cases both predicted (paired bootstrap "
            f"95% CI): {'; '.join(differences)}. An interval {better} 0: the network beats the classical model; "
            f"{worse} 0: the classical model is better; containing 0: no clear difference on this data."
        ),
    ]


def comparison_section(summary: dict) -> Section:
    """The section that puts the radiomics reference beside the deep model."""
    reference = summary["reference"]
    section = Section(f"{DEEP_LABEL} vs. radiomics reference")
    if not reference["available"]:
        section.blocks.append(Paragraph(
            f"No radiomics reference for this task yet. Run `{reference['how_to']}` (needs "
            "`pip install 'universalclassifier[radiomics]'`), then summarize again to see whether the network beats a "
            "classical model (mirp radiomics features + logistic or ridge regression, same folds) on this data."
        ))
        return section
    section.blocks.append(Paragraph(
        f"{reference['label']}: out-of-fold predictions of {len(reference['folds'])} fold(s) on the same splits, "
        f"{reference['num_cases']} case(s) pooled (folder `{reference['folder']}`)."
    ))
    classification, regression = _split_heads(reference["heads"])
    if classification:
        section.blocks += _comparison_blocks(
            summary, classification, ("Head", *_CLASSIFICATION_HEADER), _metric_cells, "auc", "above"
        )
    if regression:
        section.blocks += _comparison_blocks(
            summary, regression, ("Regression head", *_REGRESSION_HEADER), _regression_cells, "mae", "below"
        )
    return section


def folds_sentence(folds: Sequence[str], planned: Sequence[str]) -> str:
    """E.g. "2 of 5 planned folds (fold_0, fold_1; **missing: fold_2, fold_3, fold_4**)" or "5 folds (fold_0, ...)"."""
    missing = [fold for fold in planned if fold not in folds]
    if not missing:
        return f"{len(folds)} fold(s) ({', '.join(folds)})"
    return f"{len(folds)} of {len(planned)} planned folds ({', '.join(folds)}; **missing: {', '.join(missing)}**)"


def cv_report(summary: dict) -> Report:
    """The cross-validation report of a summary made by summarize_cross_validation."""
    introduction = Section(None, [
        Paragraph(
            f"Out-of-fold predictions of {folds_sentence(summary['folds'], summary['planned_folds'])} of the trainer "
            f"folder `{summary['trainer_folder']}`, {summary['num_cases']} case(s) pooled. "
            f"AUC: ROC AUC (nominal heads with more than two values: macro mean of the one-vs-rest AUCs; ordinal "
            f"heads: mean of the AUCs of the thresholds grade >= k); 95% CI: {INTERVAL_DESCRIPTION}, "
            f"{summary['num_resamples']} resamples (seed {summary['seed']}). "
            f"ECE: top-label expected calibration error, {summary['calibration_bins']} equal-width confidence bins."
        ),
        *metric_tables(summary["heads"]),
    ])
    return Report(
        f"Cross-validation summary: {summary['task']}, {summary['trainer']}",
        [
            introduction,
            comparison_section(summary),
            *(head_section(name, head) for name, head in summary["heads"].items()),
        ],
    )


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
