"""The model card of an exported model: `model_card.json` (for programs) and, for people, `MODEL_CARD.md` and the same
as one page with the cross-validation plots embedded, `MODEL_CARD.html`, all built from the same record.

It says what the model reads and predicts (task, modalities, ROI labels, covariates, heads and their values), what it
was trained on (training cases per value, a summary of the data fingerprint, preprocessing), how (recipe and
budget per fold), how well it did (the cross-validated metrics with their 95% CIs, the radiomics reference and the
calibration, as uc_summarize wrote them), with which versions it was exported, and what it is for: an "Intended use"
section that the model's author writes. It holds no case ids and no paths of the training data.
"""

from __future__ import annotations

import datetime
import logging
import platform
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from universalclassifier.dataset.dataset_json import DatasetDescription
from universalclassifier.evaluation.bootstrap import INTERVAL_DESCRIPTION
from universalclassifier.evaluation.summarize import REPORT_FILE, REPORT_HTML_FILE, SUMMARY_FILE
from universalclassifier.evaluation.summary_report import head_figures, metric_tables, signed_interval
from universalclassifier.inference.calibration import CALIBRATION_FILE, calibration_for_ensemble
from universalclassifier.json_files import read_json_file
from universalclassifier.planning.fingerprint import DatasetFingerprint
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.reporting.document import Bullets, Paragraph, Report, Section, Table, Verbatim
from universalclassifier.version import __version__

logger = logging.getLogger(__name__)

MODEL_CARD_MD = "MODEL_CARD.md"
MODEL_CARD_HTML = "MODEL_CARD.html"
MODEL_CARD_JSON = "model_card.json"
MODEL_CARD_VERSION = 1
INTENDED_USE_PLACEHOLDER = (
    "_Not written yet. The model's author fills this in (uc_export --intended_use FILE): the clinical question and "
    "population the model is meant for, the scanners and protocols of its training data, who should use its output "
    "and how, and uses it is not suited for._"
)
# the metrics of a head that the card keeps from cv_summary.json, by head kind; absent ones become null
_CLASSIFICATION_METRICS = ("auc", "auc_ci_95", "balanced_accuracy", "accuracy", "ece", "ece_calibrated",
                           "quadratic_weighted_kappa")
_REGRESSION_METRICS = ("mae", "mae_ci_95", "rmse", "rmse_ci_95", "r2", "r2_ci_95", "spearman", "spearman_ci_95")
_DIFFERENCES = ("deep_minus_reference_auc", "deep_minus_reference_mae")
_BUDGET_OPTIONS = ("max_num_epochs", "num_batches_per_epoch", "num_val_batches_per_epoch")
_BUDGET_FIELDS = ("batch_size_per_process", "world_size", "mixed_precision")


def _head(label: ClassificationLabel, dataset: DatasetDescription | None) -> dict:
    """A head's name, type, values and the number of training cases per value (dataset.json's training cases)."""
    targets = [] if dataset is None else [entry.targets.get(label.name) for entry in dataset.training]
    head: dict = {"name": label.name, "type": label.type}
    if label.is_regression:
        known = [t for t in targets if t is not None]
        head["training_target_mean"], head["training_target_sd"] = label.target_mean, label.target_sd
        head["training_cases_with_value"] = len(known) if dataset is not None else None
    else:
        counts = Counter(targets)
        head["values"] = {str(i): name for i, name in enumerate(label.values)}
        head["training_cases_per_value"] = (
            None if dataset is None else {name: counts.get(i, 0) for i, name in enumerate(label.values)}
        )
    head["training_cases_without_value"] = None if dataset is None else sum(t is None for t in targets)
    return head


def _axis_statistics(rows: Sequence[Sequence[float]]) -> dict:
    """Per-axis median, minimum and maximum of per-case vectors (e.g. sizes or spacings)."""
    array = np.asarray(rows, dtype=np.float64)
    return {
        "median": np.median(array, axis=0).tolist(),
        "min": array.min(axis=0).tolist(),
        "max": array.max(axis=0).tolist(),
    }


def _fingerprint_summary(fingerprint: DatasetFingerprint | None) -> dict | None:
    """The data fingerprint without its per-case entries: sizes and spacings over cases, CT intensity statistics."""
    if fingerprint is None or not fingerprint.cases:
        return None
    names = {str(i): name for i, name in enumerate(fingerprint.modalities)}
    return {
        "num_cases": fingerprint.num_cases,
        "axis_order": "z, y, x",
        "size_after_cropping": _axis_statistics([case.size_after_cropping for case in fingerprint.cases]),
        "spacing_mm": _axis_statistics([case.spacing for case in fingerprint.cases]),
        "median_size_reduction": fingerprint.median_size_reduction,
        "ct_intensities": {
            names.get(channel, channel): statistics for channel, statistics in fingerprint.intensity_properties.items()
        },
    }


def _preprocessing(plans: Plans) -> dict:
    """What the plans do to a case before the network sees it."""
    return {
        "target_spacing_mm": plans.target_spacing,
        "image_size": plans.image_size,
        "axis_order": f"transposed by {plans.transpose_forward} from z, y, x",
        "normalization": dict(zip(plans.modalities, plans.normalization_schemes, strict=True)),
        "size_rule": plans.size_rule,
        "size_percentile": plans.size_percentile,
        "roi_margin_fraction": plans.roi_margin_fraction,
        "roi_margin_mm": plans.roi_margin_mm,
    }


def _shared_or_per_fold(fold_metadata: Mapping[str, dict], value_of: Callable[[dict], object]) -> dict:
    """{"all_folds": value} when every fold has the same value, else {"per_fold": {fold: value}}."""
    values = {fold: value_of(metadata) for fold, metadata in fold_metadata.items()}
    distinct = {repr(value) for value in values.values()}
    return {"all_folds": next(iter(values.values()))} if len(distinct) == 1 else {"per_fold": values}


def _training(fold_metadata: Mapping[str, dict]) -> dict:
    """The trainer, recipe and budget of the exported folds, and how far each fold trained."""
    first = next(iter(fold_metadata.values()))

    def budget(metadata: dict) -> dict:
        options = metadata.get("options")
        options = options if isinstance(options, dict) else {}
        return {**{k: options.get(k) for k in _BUDGET_OPTIONS}, **{k: metadata.get(k) for k in _BUDGET_FIELDS}}

    return {
        "trainer": first.get("trainer"),
        "network": first.get("network"),
        "recipe": _shared_or_per_fold(fold_metadata, lambda metadata: metadata.get("recipe")),
        "budget": _shared_or_per_fold(fold_metadata, budget),
        "folds": {
            fold: {
                "epochs_trained": metadata.get("epoch"),
                "best_epoch": metadata.get("best_epoch"),
                "checkpoint_id": metadata.get("checkpoint_id"),
            }
            for fold, metadata in fold_metadata.items()
        },
    }


def _metrics(head: object, keep_differences: bool) -> dict | None:
    """The card's copy of one head of cv_summary.json (None for an entry that is not a head summary)."""
    if not isinstance(head, dict) or not isinstance(head.get("type"), str):
        return None
    names = _REGRESSION_METRICS if head["type"] == "regression" else _CLASSIFICATION_METRICS
    kept: dict = {"type": head["type"], "num_cases": head.get("num_cases", 0)}
    for name in names:
        kept[name] = head.get(name, [None, None] if name.endswith("_ci_95") else None)
    if keep_differences:
        kept.update({name: head[name] for name in _DIFFERENCES if name in head})
    if isinstance(head.get("plots"), dict):
        kept["plots"] = head["plots"]  # relative to the trainer folder, beside the card in the export
    return kept


def _heads_metrics(heads: object, keep_differences: bool = False) -> dict:
    if not isinstance(heads, dict):
        return {}
    kept = {name: _metrics(head, keep_differences) for name, head in heads.items()}
    return {name: head for name, head in kept.items() if head is not None}


def _cross_validation(trainer_folder: Path) -> tuple[dict | None, dict | None]:
    """(the deep model's cross-validated metrics, the radiomics reference's) from uc_summarize's cv_summary.json;
    None where there is none."""
    path = trainer_folder / SUMMARY_FILE
    if not path.is_file():
        return None, None
    summary = read_json_file(path, "cross-validation summary")
    if not isinstance(summary, dict):
        logger.warning("%s is not a summary of uc_summarize; the model card has no cross-validated metrics.", path)
        return None, None
    cross_validation = {
        "folds": summary.get("folds"),
        "num_cases": summary.get("num_cases"),
        "interval": f"95% CI: {INTERVAL_DESCRIPTION}, {summary.get('num_resamples')} resamples",
        "heads": _heads_metrics(summary.get("heads")),
    }
    reference = summary.get("reference")
    if not isinstance(reference, dict) or not reference.get("available"):
        return cross_validation, None
    return cross_validation, {
        "label": reference.get("label"),
        "folds": reference.get("folds"),
        "num_cases": reference.get("num_cases"),
        "heads": _heads_metrics(reference.get("heads"), keep_differences=True),
    }


def _calibration(trainer_folder: Path, plans: Plans, fold_metadata: Mapping[str, dict]) -> dict | None:
    """calibration.json's temperatures per head, the folds it was fitted on, and whether predict() applies it to the
    exported folds (it does not after a fold was retrained, or for folds it was not fitted on)."""
    path = trainer_folder / CALIBRATION_FILE
    if not path.is_file():
        return None
    checkpoints = {fold: metadata.get("checkpoint_id") for fold, metadata in fold_metadata.items()}
    applies = calibration_for_ensemble(trainer_folder, plans, checkpoints) is not None
    raw = read_json_file(path, "calibration")
    return {
        "method": raw.get("method"),
        "fitted_on_folds": sorted(raw.get("folds") or {}),
        "applied_to_exported_folds": applies,
        "heads": raw.get("heads"),
    }


def _versions() -> dict:
    """The versions the model was exported with."""
    import torch

    return {
        "universalclassifier": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def build_model_card(
    plans: Plans,
    trainer_folder: Path,
    fold_metadata: Mapping[str, dict],
    dataset: DatasetDescription | None,
    fingerprint: DatasetFingerprint | None,
    intended_use: str | None = None,
) -> dict:
    """The model card of the folds `fold_metadata` ({fold folder name: final checkpoint metadata}) of a trainer folder.

    `dataset` (the task's dataset.json) gives the description, ROI label names and the training cases per value, and
    `fingerprint` the data summary; either may be None (then those fields are null). `intended_use`: the author's
    text for the "Intended use" section (None: a placeholder saying what belongs there).
    """
    cross_validation, reference = _cross_validation(trainer_folder)
    roi_labels = None if dataset is None or dataset.roi_labels is None else dataset.roi_labels
    return {
        "model_card_version": MODEL_CARD_VERSION,
        "task": {
            "name": plans.task_name,
            "description": None if dataset is None else dataset.raw.get("description"),
        },
        "trainer_folder": trainer_folder.name,
        "exported": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "folds": list(fold_metadata),
            "versions": _versions(),
        },
        "intended_use": intended_use,
        "inputs": {
            "modalities": {str(i): name for i, name in enumerate(plans.modalities)},
            "roi": {
                "required": plans.uses_roi,
                "labels": None if roi_labels is None else {str(k): v for k, v in roi_labels.items()},
                "num_roi_classes": plans.num_roi_classes,
                "body_as_roi": plans.roi_from_body,
            },
            "covariates": [{"name": c.name, "type": c.type, "values": list(c.values)} for c in plans.covariates],
        },
        "heads": [_head(label, dataset) for label in plans.classification_labels],
        "training_data": {
            "num_training_cases": plans.num_training_cases,
            "fingerprint": _fingerprint_summary(fingerprint),
        },
        "preprocessing": _preprocessing(plans),
        "training": _training(fold_metadata),
        "cross_validation": cross_validation,
        "radiomics_reference": reference,
        "calibration": _calibration(trainer_folder, plans, fold_metadata),
    }


def _shown(value: object) -> str:
    """A value for the card's text: floats with 4 significant digits, lists as [a, b, c]."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _listing(mapping: Mapping[str, object]) -> str:
    return ", ".join(f"{key} = {_shown(value)}" for key, value in mapping.items())


def _heads_section(card: dict) -> Section:
    rows = []
    for head in card["heads"]:
        if head["type"] == "regression":
            values = f"a number (training mean {head['training_target_mean']:.4g}, SD {head['training_target_sd']:.4g})"
            counts = f"{head['training_cases_with_value']} with a value"
        else:
            values = _listing(head["values"])
            per_value = head["training_cases_per_value"]
            counts = "unknown (no dataset.json at export)" if per_value is None else _listing(per_value)
        if head["training_cases_without_value"]:
            counts += f"; {head['training_cases_without_value']} without"
        rows.append((head["name"], head["type"], values, counts))
    return Section("Outputs", [Table(("Head", "Type", "Values", "Training cases per value"), tuple(rows))])


def _inputs_section(card: dict) -> Section:
    inputs = card["inputs"]
    roi = inputs["roi"]
    if roi["required"]:
        names = "" if roi["labels"] is None else f" with the labels {_listing(roi['labels'])}"
        roi_line = f"required: one segmentation per case{names}."
    else:
        kind = "the body (nonzero mask)" if roi["body_as_roi"] else "the whole crop"
        roi_line = f"none (trained without ROIs; {kind} is used instead)."
    covariates = ", ".join(f"{c['name']} ({c['type']})" for c in inputs["covariates"]) or "none"
    return Section("Inputs", [Bullets((
        f"Images, one file per modality in this order: {_listing(inputs['modalities'])}.",
        f"ROI: {roi_line}",
        f"Covariates: {covariates}.",
    ))])


def _training_data_section(card: dict) -> Section:
    data = card["training_data"]
    section = Section("Training data", [Paragraph(f"{data['num_training_cases']} training cases.")])
    fingerprint = data["fingerprint"]
    if fingerprint is not None:
        size, spacing = fingerprint["size_after_cropping"], fingerprint["spacing_mm"]
        section.blocks.append(Paragraph(
            f"After cropping (axes {fingerprint['axis_order']}): median size {_shown(size['median'])} voxels (min "
            f"{_shown(size['min'])}, max {_shown(size['max'])}); spacing median {_shown(spacing['median'])} mm (min "
            f"{_shown(spacing['min'])}, max {_shown(spacing['max'])}); the crop keeps a median "
            f"{_shown(fingerprint['median_size_reduction'])} of the voxels."
        ))
        section.blocks += [
            Paragraph(f"{modality} foreground intensities: {_listing(statistics)}.")
            for modality, statistics in fingerprint["ct_intensities"].items()
        ]
    preprocessing = card["preprocessing"]
    section.blocks.append(Paragraph(
        f"Preprocessing: resampled to {_shown(preprocessing['target_spacing_mm'])} mm, network input "
        f"{_shown(preprocessing['image_size'])} voxels ({preprocessing['axis_order']}); normalization "
        f"{_listing(preprocessing['normalization'])}."
    ))
    return section


def _training_section(card: dict) -> Section:
    training = card["training"]
    lines = [f"Trainer `{training['trainer']}` ({training['network']}); folds {', '.join(training['folds'])}."]
    for key, title in (("recipe", "Recipe"), ("budget", "Budget")):
        entry = training[key]
        if "all_folds" in entry:
            lines.append(f"{title}: {_listing(entry['all_folds'] or {})}.")
        else:
            lines += [f"{title} of {fold}: {_listing(value or {})}." for fold, value in entry["per_fold"].items()]
    epochs = _listing({fold: fold_entry["epochs_trained"] for fold, fold_entry in training["folds"].items()})
    lines.append(f"Epochs trained: {epochs}.")
    return Section("Training", [Paragraph(line) for line in lines])


def _difference(name: str, head: dict) -> str:
    """`head AUC -0.104 [-0.400, +0.200]`: the stored deep-minus-reference difference of a head, or ""."""
    for metric in ("auc", "mae"):
        paired = head.get(f"deep_minus_reference_{metric}")
        if isinstance(paired, dict) and paired.get("difference") is not None:
            low, high = (paired.get("ci_95") or [None, None])[:2]
            return f"{name} {metric.upper()} {paired['difference']:+.3f}{signed_interval(low, high)}"
    return ""


def _cross_validation_section(card: dict) -> Section:
    cross_validation = card["cross_validation"]
    section = Section("Cross-validated performance")
    if cross_validation is None:
        section.blocks.append(
            Paragraph("No cross-validation summary: run `uc_summarize` before exporting to have one here.")
        )
        return section
    section.blocks.append(Paragraph(
        f"Out-of-fold predictions of {', '.join(cross_validation['folds'] or [])}, {cross_validation['num_cases']} "
        f"cases pooled; {cross_validation['interval']}. The full report is `{REPORT_FILE}` beside this card (as one "
        f"page: `{REPORT_HTML_FILE}`)."
    ))
    section.blocks += metric_tables(cross_validation["heads"])
    for name, head in cross_validation["heads"].items():
        section.blocks += head_figures(name, head)
    return section


def _reference_section(card: dict) -> Section:
    reference = card["radiomics_reference"]
    section = Section("Radiomics reference")
    if reference is None:
        section.blocks.append(Paragraph("None was run for this task (`uc_radiomics`)."))
        return section
    section.blocks.append(Paragraph(f"{reference['label']}: {reference['num_cases']} cases, same folds."))
    section.blocks += metric_tables(reference["heads"])
    differences = [d for d in (_difference(name, head) for name, head in reference["heads"].items()) if d]
    if differences:
        section.blocks.append(Paragraph(
            "Deep model minus reference on the cases both predicted (paired bootstrap 95% CI): "
            + "; ".join(differences) + "."
        ))
    return section


def _calibration_section(card: dict) -> Section:
    calibration = card["calibration"]
    if calibration is None:
        text = "No calibration.json: predict() returns the ensemble's probabilities as they are."
    else:
        applied = "applies it to" if calibration["applied_to_exported_folds"] else "does not apply it to"
        heads = calibration["heads"] if isinstance(calibration["heads"], dict) else {}
        temperatures = "; ".join(
            f"{name}: T = {_shown(entry.get('temperature'))} ({entry.get('temperature_reason')})"
            for name, entry in heads.items()
            if isinstance(entry, dict)
        )
        text = (
            f"Temperature scaling fitted on {', '.join(calibration['fitted_on_folds'])}; predict() {applied} the "
            f"exported folds. {temperatures or 'No nominal head.'}"
        )
    return Section("Calibration", [Paragraph(text)])


def model_card_report(card: dict) -> Report:
    """The card as a report (MODEL_CARD.md and MODEL_CARD.html), with the intended use (or its placeholder) first.
    Its figures are the cross-validation plots, as paths relative to the trainer folder."""
    exported = card["exported"]
    versions = ", ".join(f"{name} {version}" for name, version in exported["versions"].items())
    introduction = Section(None, [
        *([Paragraph(card["task"]["description"])] if card["task"]["description"] else []),
        Paragraph(f"Exported {exported['date']} with {versions}; folds {', '.join(exported['folds'])}."),
    ])
    intended_use = card["intended_use"]
    return Report(
        f"Model card: {card['task']['name']} ({card['trainer_folder']})",
        [
            introduction,
            Section("Intended use", [Verbatim(intended_use) if intended_use else Paragraph(INTENDED_USE_PLACEHOLDER)]),
            _inputs_section(card),
            _heads_section(card),
            _training_data_section(card),
            _training_section(card),
            _cross_validation_section(card),
            _reference_section(card),
            _calibration_section(card),
        ],
    )
