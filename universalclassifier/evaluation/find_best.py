"""uc_find_best: choose the trained variant (trainer folder) of a task that predict() uses when none is named.

The variants are the task's trainer folders (`ClassifierTrainer*__<plans>`, e.g. `ClassifierTrainer` and
`ClassifierTrainerAUC23`), compared on their pooled out-of-fold predictions as uc_summarize pools them. The rule:

1. Eligible: every fold that the task's splits_final.json plans (default five) has its
   `fold_N/validation/predictions.json`, and together they cover every validation case of the splits; the heads are
   those of the plans. Other variants are listed with what they lack and not considered.
2. Score: the mean over heads of the pooled out-of-fold AUC (classification heads, as uc_summarize reports it: the
   macro one-vs-rest AUC, the mean threshold AUC of ordinal heads) or R² (regression heads), on the cases every
   eligible variant predicted. A head whose score is undefined for some variant (one class only) is left out of
   every variant's mean.
3. The highest score wins only if the paired bootstrap 95% interval of its score minus that of the default
   (`ClassifierTrainer__UniversalClassifierPlansv1.0`) lies above 0. A tie, an interval that holds 0, or no interval
   keeps the default: it is the recipe chosen on the quality suite across task kinds, and a difference that this
   data cannot tell from chance is no reason to leave it. Without an eligible default, the highest score wins.
4. The radiomics reference (uc_radiomics), when present, is scored the same way on the cases it shares and compared
   with the choice (paired bootstrap); it is never chosen, since predict() cannot run it.

Writes `best_configuration.json` (read by predict(), see inference/best_configuration.py) and
`best_configuration.md` (the table and the reason) into the task's trained_models folder.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from universalclassifier.artifact import numbered_fold_folders
from universalclassifier.artifact.folders import trainer_folder_candidates
from universalclassifier.atomic import write_json_atomic, write_text_atomic
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.bootstrap import binary_problems, bootstrap_interval, mean_auc
from universalclassifier.evaluation.graded_metrics import _r2
from universalclassifier.evaluation.head_summary import known_targets
from universalclassifier.evaluation.pooling import PREDICTIONS_FILE, Pooled, planned_folds, pool_folds, pooled_arrays
from universalclassifier.evaluation.reference_comparison import REFERENCE_LABEL
from universalclassifier.inference.best_configuration import BEST_CONFIGURATION_FILE
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import PLANS_IDENTIFIER, REFERENCE_FOLDER, TRAINER, ArtifactLayout, TaskPaths
from universalclassifier.plans import ClassificationLabel, Plans

logger = logging.getLogger(__name__)

REPORT_FILE = "best_configuration.md"
DEFAULT_VARIANT = f"{TRAINER}__{PLANS_IDENTIFIER}"
PRIMARY_METRIC = "mean over heads of the pooled out-of-fold AUC (classification heads) or R² (regression heads)"
RULE = (
    "Eligible: out-of-fold predictions of every planned fold, covering every validation case of the splits. Score: "
    f"the {PRIMARY_METRIC}, on the cases every eligible variant predicted. The highest score wins only if the paired "
    f"bootstrap 95% interval of its score minus the default's ({DEFAULT_VARIANT}) lies above 0; a tie or a difference "
    "the data cannot tell from chance keeps the default, the recipe chosen on the quality suite across task kinds. "
    "The radiomics reference is compared, never chosen (predict() cannot run it)."
)


@dataclass
class Variant:
    """A trainer folder's pooled out-of-fold predictions, and why it is not eligible (None: it is)."""

    folder: Path
    folds: list[str]
    pooled: Pooled
    problem: str | None

    @property
    def name(self) -> str:
        return self.folder.name


def _heads_key(heads: Sequence[ClassificationLabel]) -> list[tuple]:
    return [(head.name, head.type, tuple(head.values)) for head in heads]


def _planned_cases(splits_file: Path) -> dict[str, list[str]] | None:
    """{fold_N: its validation cases} of splits_final.json, or None without a readable one."""
    if not splits_file.is_file():
        return None
    splits = read_json_file(splits_file, "splits")
    if not isinstance(splits, list) or not all(isinstance(s, dict) and isinstance(s.get("val"), list) for s in splits):
        return None
    return {f"fold_{k}": [str(case) for case in split["val"]] for k, split in enumerate(splits)}


def _coverage_problem(folds: list[str], pooled: Pooled, planned: list[str], cases: dict[str, list[str]] | None) -> str:
    """What a variant lacks for a complete out-of-fold set ("" when nothing)."""
    missing = [fold for fold in planned if fold not in folds]
    if missing:
        return f"no validation predictions of {', '.join(missing)} (of {len(planned)} planned folds)"
    uncovered = sorted(case for fold in planned for case in (cases or {}).get(fold, []) if case not in pooled)
    if uncovered:
        shown = ", ".join(uncovered[:5]) + (" ..." if len(uncovered) > 5 else "")
        return f"{len(uncovered)} validation case(s) of the splits have no prediction ({shown})"
    return ""


def load_variant(
    folder: Path,
    heads: Sequence[ClassificationLabel],
    heads_from: str,
    planned: list[str],
    cases: dict[str, list[str]] | None,
) -> Variant:
    """A trainer folder's pooled out-of-fold predictions of `heads` (those of the variant `heads_from`), judged for
    eligibility (see the module docstring)."""
    try:
        own = Plans.load(ArtifactLayout(folder).plans_file).classification_labels
        if _heads_key(own) != _heads_key(heads):
            problem = f"its heads differ from those of {heads_from} (the task's labels changed in between): retrain it"
            return Variant(folder, [], {}, problem)
        folds, pooled = pool_folds(folder, heads)
    except UserInputError as exc:  # a damaged variant must not block the comparison of the others
        return Variant(folder, [], {}, str(exc))
    return Variant(folder, folds, pooled, _coverage_problem(folds, pooled, planned, cases) or None)


def _head_scorer(head: ClassificationLabel, pooled: Pooled, cases: Sequence[str]) -> Callable[[np.ndarray], float]:
    """The head's score (AUC, or R² for regression) on the given indices into `cases`, NaN where undefined; cases
    without a known target are skipped."""
    targets, predictions = pooled_arrays(pooled, head.name, cases)
    known, values = known_targets(targets)
    position = np.full(len(cases), -1)
    position[known] = np.arange(int(known.sum()))
    predictions = predictions[known]
    if head.is_regression:

        def score(selected: np.ndarray) -> float:
            if len(selected) < 2:
                return math.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                return float(_r2(values[selected], predictions[selected, 0]))  # NaN for constant targets

    else:
        positive, scores = binary_problems(values.astype(np.int64), predictions, head.ordinal)

        def score(selected: np.ndarray) -> float:
            if positive.shape[1] == 0:
                return math.nan
            return float(mean_auc(positive[selected], scores[selected]))

    def of_cases(indices: np.ndarray) -> float:
        selected = position[indices]
        return score(selected[selected >= 0])

    return of_cases


def head_scores(heads: Sequence[ClassificationLabel], pooled: Pooled, cases: Sequence[str]) -> dict[str, float | None]:
    """{head: score on `cases`} (None where undefined)."""
    everything = np.arange(len(cases))
    scores = {head.name: _head_scorer(head, pooled, cases)(everything) for head in heads}
    return {name: None if math.isnan(value) else value for name, value in scores.items()}


def _mean_scorer(
    heads: Sequence[ClassificationLabel], pooled: Pooled, cases: Sequence[str]
) -> Callable[[np.ndarray], float]:
    """The mean of the heads' scores on indices into `cases` (NaN when one is undefined)."""
    scorers = [_head_scorer(head, pooled, cases) for head in heads]
    return lambda indices: float(np.mean([scorer(indices) for scorer in scorers]))


def paired_difference(
    heads: Sequence[ClassificationLabel],
    pooled_a: Pooled,
    pooled_b: Pooled,
    cases: Sequence[str],
    num_resamples: int,
    seed: int,
) -> dict:
    """Score of a minus score of b on `cases` with a paired bootstrap 95% interval (each resample draws the same
    cases for both): {"num_cases", "difference", "ci_95"}; None where undefined."""
    score_a, score_b = _mean_scorer(heads, pooled_a, cases), _mean_scorer(heads, pooled_b, cases)

    def difference(indices: np.ndarray) -> float:
        return score_a(indices) - score_b(indices)

    point = difference(np.arange(len(cases)))
    interval: tuple[float | None, float | None] = (None, None)
    if len(cases) >= 2 and not math.isnan(point):
        interval = bootstrap_interval(
            [np.arange(len(cases))], difference, paired=False, vectorized=False, num_resamples=num_resamples, seed=seed
        )
    return {
        "num_cases": len(cases),
        "difference": None if math.isnan(point) else point,
        "ci_95": list(interval),
    }


def _choose(eligible: list[Variant], scores: dict[str, float], versus_default: dict[str, dict]) -> tuple[str, str]:
    """The chosen variant's name and the reason, by the rule of the module docstring."""
    best = max(eligible, key=lambda v: (scores[v.name], v.name == DEFAULT_VARIANT, v.name))
    if not any(v.name == DEFAULT_VARIANT for v in eligible):
        if len(eligible) == 1:
            return best.name, f"It is the only eligible variant; the default {DEFAULT_VARIANT} is not eligible."
        return best.name, f"Highest score ({scores[best.name]:.3f}); the default {DEFAULT_VARIANT} is not eligible."
    if best.name == DEFAULT_VARIANT:
        if len(eligible) == 1:
            return best.name, "It is the only eligible variant."
        return best.name, f"The default has the highest score ({scores[best.name]:.3f}; a tie counts for the default)."
    paired = versus_default[best.name]
    low, high = paired["ci_95"]
    comparison = (
        f"{best.name} scores {scores[best.name]:.3f}, the default {scores[DEFAULT_VARIANT]:.3f}: difference "
        f"{paired['difference']:+.3f}"
    )
    if low is not None and low > 0:
        return best.name, f"{comparison} [{low:+.3f}, {high:+.3f}], significantly above 0."
    interval = "no interval could be computed" if low is None else f"[{low:+.3f}, {high:+.3f}] holds 0"
    return DEFAULT_VARIANT, (
        f"{comparison}, but {interval}: not significant, so the default recipe is kept (chosen on the quality "
        "suite across task kinds; this data cannot tell the difference from chance)."
    )


def _reference(
    task_folder: Path,
    heads: Sequence[ClassificationLabel],
    score_heads: Sequence[ClassificationLabel],
    chosen: Variant,
    cases: Sequence[str],
    task_name: str,
    num_resamples: int,
    seed: int,
) -> dict:
    """The radiomics reference scored on the cases it shares with `cases`, and the chosen variant minus it."""
    folder = task_folder / REFERENCE_FOLDER
    how_to = f"uc_radiomics DATA -t {task_name}"
    missing = {"available": False, "label": REFERENCE_LABEL, "how_to": how_to}
    if not folder.is_dir() or not any((f / PREDICTIONS_FILE).is_file() for f in numbered_fold_folders(folder)):
        return missing
    try:
        folds, pooled = pool_folds(folder, heads)
    except UserInputError as exc:
        logger.warning("The radiomics reference is left out: %s Rerun %s to refresh it.", exc, how_to)
        return {**missing, "problem": str(exc)}
    shared = [case for case in cases if case in pooled]
    if not shared:
        return {**missing, "problem": "it shares no case with the deep variants"}
    scores = head_scores(score_heads, pooled, shared)
    defined = [value for value in scores.values() if value is not None]
    return {
        "available": True,
        "label": REFERENCE_LABEL,
        "folds": folds,
        "num_cases": len(shared),
        "heads": scores,
        "score": float(np.mean(defined)) if len(defined) == len(scores) and defined else None,
        "chosen_minus_reference": paired_difference(score_heads, chosen.pooled, pooled, shared, num_resamples, seed),
    }


def _number(value: float | None, signed: bool = False) -> str:
    return "n/a" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"


def _difference_cell(paired: dict | None) -> str:
    if paired is None:
        return ""
    low, high = paired["ci_95"]
    interval = "" if low is None else f" [{low:+.3f}, {high:+.3f}]"
    return f"{_number(paired['difference'], signed=True)}{interval}"


def render_report(result: dict) -> str:
    """best_configuration.md: the choice and its reason, the table of variants, the rule."""
    heads = result["score_heads"]
    metric = {name: "R²" if kind == "regression" else "AUC" for name, kind in heads.items()}
    head_columns = [f"{name.replace('|', '/')} {metric[name]}" for name in heads]
    lines = [
        f"# Best configuration: {result['task']}",
        "",
        f"**Chosen: `{result['chosen']['trainer_folder']}`.** {result['reason']}",
        "",
        f"Out-of-fold predictions of {len(result['planned_folds'])} planned fold(s), {result['num_cases']} case(s) "
        f"compared; score: the {PRIMARY_METRIC}; 95% intervals: paired bootstrap over cases, "
        f"{result['num_resamples']} resamples (seed {result['seed']}).",
        "",
        "| Variant | Eligible | " + " | ".join(head_columns) + " | Score | Minus the default [95% CI] |",
        "|---" * (len(heads) + 4) + "|",
    ]
    for name, variant in result["variants"].items():
        eligible = "yes" if variant["problem"] is None else f"no: {variant['problem']}".replace("|", "/")
        cells = [_number(variant["heads"].get(head)) if variant["heads"] else "" for head in heads]
        score = _number(variant["score"]) if variant["problem"] is None else ""
        lines.append(
            f"| `{name}` | {eligible} | " + " | ".join(cells)
            + f" | {score} | {_difference_cell(variant.get('minus_default'))} |"
        )
    reference = result["reference"]
    if reference["available"]:
        cells = [_number(reference["heads"][head]) for head in heads]
        lines.append(
            f"| {reference['label']} ({reference['num_cases']} shared cases) | not a model for predict() | "
            + " | ".join(cells) + f" | {_number(reference['score'])} | |"
        )
        lines += [
            "",
            f"Chosen minus reference: {_difference_cell(reference['chosen_minus_reference'])} (paired bootstrap 95% "
            "CI; above 0: the network beats the classical model).",
        ]
    elif "problem" in reference:
        lines += ["", f"The radiomics reference is left out: {reference['problem']} (rerun `{reference['how_to']}`)."]
    else:
        lines += ["", f"No radiomics reference to compare with (run `{reference['how_to']}`)."]
    if result["left_out_heads"]:
        lines += ["", f"Left out of the score (undefined for some variant): {', '.join(result['left_out_heads'])}."]
    lines += ["", f"Rule: {RULE}", "", "predict() and uc_predict use the chosen variant when given a folder above "
              "the trainer folders; pass a trainer folder to use another."]
    return "\n".join(lines) + "\n"


def _warn_ineligible(variant: Variant, task_name: str) -> None:
    logger.warning(
        "%s is left out of the comparison: %s. Complete it (uc_train each missing fold; uc_train --validation_only "
        "for a trained fold without validation/) and run uc_find_best -t %s again to include it.",
        variant.name, variant.problem, task_name,
    )


def find_best_configuration(
    data_root: Path | str, task: str | int, num_resamples: int = 1000, seed: int = 0
) -> dict:
    """Compare the trained variants of a task and write best_configuration.json and .md; returns the JSON's content.

    See the module docstring for the rule. Refuses a task with no trained variant, or none that is eligible.
    """
    paths = TaskPaths.find(data_root, task)
    task_folder = paths.trainer_folder().parent
    found = trainer_folder_candidates(task_folder) if task_folder.is_dir() else []
    folders = sorted(found, key=lambda folder: (folder.name != DEFAULT_VARIANT, folder.name))  # the default first
    if not folders:
        raise UserInputError(
            f"No trained variant of {paths.task_name} in {task_folder}; train one (uc_train) before uc_find_best."
        )
    heads_from = folders[0]  # the default when it is there
    heads = Plans.load(ArtifactLayout(heads_from).plans_file).classification_labels
    planned = planned_folds(paths.splits_file)
    cases = _planned_cases(paths.splits_file)
    variants = [load_variant(folder, heads, heads_from.name, planned, cases) for folder in folders]
    for variant in variants:
        if variant.problem is not None:
            _warn_ineligible(variant, paths.task_name)
    eligible = [variant for variant in variants if variant.problem is None]
    if not eligible:
        lacking = "; ".join(f"{variant.name}: {variant.problem}" for variant in variants)
        raise UserInputError(
            f"No variant of {paths.task_name} has complete out-of-fold predictions ({lacking}); train and validate "
            "every fold of one of them, then run uc_find_best again."
        )
    common = [case for case in eligible[0].pooled if all(case in v.pooled for v in eligible[1:])]
    if any(len(variant.pooled) != len(common) for variant in eligible):
        logger.info("The eligible variants share %d out-of-fold case(s); they are compared on those.", len(common))
    per_variant = {variant.name: head_scores(heads, variant.pooled, common) for variant in eligible}
    score_heads = [head for head in heads if all(scores[head.name] is not None for scores in per_variant.values())]
    if not score_heads:
        raise UserInputError(
            f"No head of {paths.task_name} has a defined AUC or R² on the {len(common)} shared out-of-fold case(s) "
            "(one class or constant targets only); there is nothing to compare."
        )
    scores = {name: float(np.mean([s[h.name] for h in score_heads])) for name, s in per_variant.items()}
    by_name = {variant.name: variant for variant in eligible}
    versus_default = {
        variant.name: paired_difference(
            score_heads, variant.pooled, by_name[DEFAULT_VARIANT].pooled, common, num_resamples, seed
        )
        for variant in eligible
        if DEFAULT_VARIANT in by_name and variant.name != DEFAULT_VARIANT
    }
    chosen, reason = _choose(eligible, scores, versus_default)
    reference = _reference(
        task_folder, heads, score_heads, by_name[chosen], common, paths.task_name, num_resamples, seed
    )
    high = reference.get("chosen_minus_reference", {}).get("ci_95", [None, None])[1]
    if high is not None and high < 0:
        reason += " The radiomics reference scores significantly higher than this variant on this data."
        logger.warning("The radiomics reference beats %s on %s's out-of-fold cases.", chosen, paths.task_name)
    result = {
        "task": paths.task_name,
        "chosen": {
            "trainer_folder": chosen,
            "trainer": chosen.partition("__")[0],
            "plans_identifier": chosen.partition("__")[2],
        },
        "reason": reason,
        "rule": RULE,
        "primary_metric": PRIMARY_METRIC,
        "planned_folds": planned,
        "num_cases": len(common),
        "num_resamples": num_resamples,
        "seed": seed,
        "score_heads": {head.name: head.type for head in score_heads},
        "left_out_heads": [head.name for head in heads if head not in score_heads],
        "variants": {
            variant.name: {
                "problem": variant.problem,
                "folds": variant.folds,
                "heads": per_variant.get(variant.name, {}),
                "score": scores.get(variant.name),
                "minus_default": versus_default.get(variant.name),
            }
            for variant in variants
        },
        "reference": reference,
    }
    write_json_atomic(task_folder / BEST_CONFIGURATION_FILE, result)
    write_text_atomic(task_folder / REPORT_FILE, render_report(result))
    logger.info(
        "%s: chose %s. %s Wrote %s and %s to %s.",
        paths.task_name, chosen, reason, BEST_CONFIGURATION_FILE, REPORT_FILE, task_folder,
    )
    return result
