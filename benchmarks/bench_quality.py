"""Quality suite: does a training recipe learn? One synthetic task per kind, a held-out test set, references.

For every kind (see `universalclassifier.synthetic_kinds`) and seed: generate 60 training and 60 test cases, plan and
preprocess, train fold 0 at a fixed budget (default 30 epochs x 10 batches), predict every test case through
`predict()`, and report per head the test AUC with a bootstrap 95% CI, the accuracy at 0.5 and the balanced accuracy,
next to

- the radiomics reference (mirp features inside each ROI label + logistic regression, trained on the same training
  cases; needs the `radiomics` extra),
- the oracle: a logistic regression on the kind's one hand-made feature from the true lesion mask,

and the wall time. Prints one JSON object (and writes it with a markdown table to --output).

Examples:
    python benchmarks/bench_quality.py                               # every kind, default recipe, seed 0
    python benchmarks/bench_quality.py --kinds texture shape --seeds 0 1 --trainer ClassifierTrainerAUC23
    python benchmarks/bench_quality.py --kinds texture --set optimizer=sgd learning_rate=0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from universalclassifier.evaluation.bootstrap import bootstrap_auc_ci
from universalclassifier.evaluation.metrics import macro_auc
from universalclassifier.inference.predict import get_predictor
from universalclassifier.paths import TRAINER, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.planning.planner import PlanningOptions
from universalclassifier.synthetic_kinds import KINDS, SPECS, generate_kind_task
from universalclassifier.training.recipes import Recipe, recipe_for
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

logger = logging.getLogger("bench_quality")


def _override(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Apply `field=value` assignments to a recipe, converting each value to the field's type."""
    types = {f.name: f.type for f in dataclasses.fields(Recipe)}
    changes: dict[str, object] = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if name not in types:
            raise SystemExit(f"--set {assignment}: no recipe field {name!r}; fields: {', '.join(types)}")
        kind = types[name]
        changes[name] = (
            value.lower() in ("1", "true", "yes")
            if kind == "bool"
            else {"int": int, "float": float}.get(kind, str)(value)
        )
    return dataclasses.replace(recipe, **changes)


def _metrics(targets: np.ndarray, probabilities: np.ndarray, seed: int) -> dict:
    low, high = bootstrap_auc_ci(targets, probabilities, num_resamples=1000, seed=seed)
    predicted = probabilities.argmax(1)  # a binary head: positive when p > 0.5
    return {
        "auc": macro_auc(targets, probabilities),
        "auc_ci_95": [low, high],
        "accuracy": float(accuracy_score(targets, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
    }


def _oracle(folder: Path, train_ids: list[str], train_y: np.ndarray, test_ids: list[str]) -> np.ndarray:
    """Logistic regression on the kind's hand-made feature, fitted on the training cases."""
    values = json.loads((folder / "oracle_features.json").read_text())["values"]
    x_train = np.array([[values[c]] for c in train_ids])
    mean, sd = x_train.mean(), x_train.std() + 1e-12
    model = LogisticRegression(max_iter=1000).fit((x_train - mean) / sd, train_y)
    return model.predict_proba((np.array([[values[c]] for c in test_ids]) - mean) / sd)


def _radiomics(folder: Path, dataset: dict, train_ids: list[str], train_y: np.ndarray, test_ids: list[str],
               workers: int) -> np.ndarray | None:
    try:
        from universalclassifier.radiomics import reference_scores
    except ImportError as exc:
        logger.warning("No radiomics reference (%s); install the 'radiomics' extra.", exc)
        return None
    num_modalities = len(dataset["modality"])
    uses_roi = "labels" in dataset

    def files(case_id: str, split: str) -> tuple[list[Path], Path | None]:
        images = [folder / f"images{split}" / f"{case_id}_{m:04d}.nii.gz" for m in range(num_modalities)]
        return images, (folder / f"labels{split}" / f"{case_id}.nii.gz") if uses_roi else None

    label = dataset["classification_labels"][0]
    head = label["name"]
    scores = reference_scores(
        [files(c, "Tr") for c in train_ids], {head: list(train_y)}, [files(c, "Ts") for c in test_ids],
        {head: len(label["values"])}, num_workers=workers,
    )
    return np.asarray(scores[head])


def run_kind(kind: str, seed: int, recipe: Recipe, trainer: str, args: argparse.Namespace, root: Path) -> dict:
    """Generate, preprocess, train fold 0, predict the test set and score model, reference and oracle."""
    task_id = 1 + KINDS.index(kind) + 10 * seed
    folder = generate_kind_task(root, kind, task_id, num_cases=args.cases, num_test=args.test_cases, seed=seed)
    dataset = json.loads((folder / "dataset.json").read_text())
    head = SPECS[kind].head["name"]
    plan_and_preprocess(root, task_id, num_workers=args.workers, show_progress=False, planning=args.planning)
    paths = TaskPaths.find(root, task_id)
    options = TrainingOptions(
        max_num_epochs=args.epochs, num_batches_per_epoch=args.batches, num_val_batches_per_epoch=args.val_batches,
        num_workers=args.workers, seed=seed, show_progress=False,
    )
    start = time.perf_counter()
    model = ClassifierTrainer(paths, 0, options, trainer_name=trainer, recipe=recipe)
    model.run_training()
    train_seconds = time.perf_counter() - start
    log = model.log

    train_ids = [c["image"].split("/")[-1].removesuffix(".nii.gz") for c in dataset["training"]]
    train_y = np.array([c[head] for c in dataset["training"]])
    targets = json.loads((folder / "test_targets.json").read_text())
    test_ids = sorted(targets)
    test_y = np.array([targets[c][head] for c in test_ids])
    predictor = get_predictor(paths.trainer_folder(trainer=trainer), folds=[0])
    start = time.perf_counter()
    probabilities = []
    for case_id in test_ids:
        images = [folder / "imagesTs" / f"{case_id}_{m:04d}.nii.gz" for m in range(len(dataset["modality"]))]
        roi = folder / "labelsTs" / f"{case_id}.nii.gz" if "labels" in dataset else None
        probabilities.append(predictor.predict_case(images, roi, case_id=case_id)[0])
    predict_seconds = time.perf_counter() - start
    deep = np.array([[1 - p, p] if isinstance(p, float) else p for p in probabilities])

    result = {
        "kind": kind, "seed": seed, "head": head, "num_test": len(test_ids),
        "model": _metrics(test_y, deep, seed),
        "oracle": _metrics(test_y, _oracle(folder, train_ids, train_y, test_ids), seed),
        "train_seconds": round(train_seconds, 1), "predict_seconds": round(predict_seconds, 1),
        "final_train_loss": log.train_loss[-1], "min_train_loss": min(log.train_loss),
        "max_val_loss": max(log.val_loss),
    }
    if not args.no_reference:
        start = time.perf_counter()
        reference = _radiomics(folder, dataset, train_ids, train_y, test_ids, args.workers)
        if reference is not None:
            result["reference"] = _metrics(test_y, reference, seed)
            result["reference_seconds"] = round(time.perf_counter() - start, 1)
    logger.info("%s", json.dumps(result))
    return result


def _format(metrics: dict | None) -> str:
    if not metrics or metrics["auc"] is None:
        return "n/a"
    low, high = metrics["auc_ci_95"]
    ci = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
    return f"{metrics['auc']:.3f}{ci}"


def markdown_table(results: list[dict], title: str) -> str:
    """One row per kind and seed: model, reference and oracle AUC (95% CI), accuracy, balanced accuracy, times."""
    lines = [
        f"### {title}", "",
        "| kind | seed | model AUC [95% CI] | model acc. | model bal. acc. | radiomics AUC | oracle AUC | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['kind']} | {r['seed']} | {_format(r['model'])} | {r['model']['accuracy']:.3f} | "
            f"{r['model']['balanced_accuracy']:.3f} | "
            f"{_format(r.get('reference'))} | {_format(r['oracle'])} | {r['train_seconds']:.0f} |"
        )
    means = [r["model"]["auc"] for r in results if r["model"]["auc"] is not None]
    lines += ["", f"Mean model AUC over {len(means)} run(s): {np.mean(means):.3f}" if means else ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", default="30x10", help="EPOCHSxBATCHES per epoch (default 30x10)")
    parser.add_argument("--val_batches", type=int, default=4, help="validation batches per epoch")
    parser.add_argument("--trainer", default=TRAINER, help="registered trainer (recipe) to evaluate")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override recipe fields")
    parser.add_argument("--cases", type=int, default=60, help="training cases per task")
    parser.add_argument("--test_cases", type=int, default=60, help="held-out test cases per task")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no_reference", action="store_true", help="skip the radiomics reference")
    parser.add_argument("--size_rule", choices=("percentile", "max"), default="percentile", help="planning size rule")
    parser.add_argument("--no_body_roi", action="store_true", help="without ROI files: the whole crop is the ROI")
    parser.add_argument("--output", type=Path, help="write results JSON and a markdown table (.md beside it)")
    parser.add_argument("--keep", type=Path, help="keep generated tasks and models in this folder")
    parser.add_argument("--verbose", action="store_true", help="log every training epoch")
    args = parser.parse_args()
    args.epochs, args.batches = (int(v) for v in args.budget.lower().split("x"))
    args.planning = dataclasses.replace(
        PlanningOptions() if args.size_rule == "percentile" else PlanningOptions.auc23(), body_roi=not args.no_body_roi
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("universalclassifier").setLevel(logging.INFO if args.verbose else logging.WARNING)
    recipe = _override(recipe_for(args.trainer), args.set)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        results = [run_kind(kind, seed, recipe, args.trainer, args, root) for seed in args.seeds for kind in args.kinds]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    report = {
        "benchmark": "quality", "device": device, "trainer": args.trainer, "recipe": recipe.to_dict(),
        "planning": dataclasses.asdict(args.planning),
        "budget": {"epochs": args.epochs, "batches_per_epoch": args.batches}, "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        title = f"{args.trainer} {' '.join(args.set)} ({args.epochs}x{args.batches})"
        args.output.with_suffix(".md").write_text(markdown_table(results, title))


if __name__ == "__main__":
    main()
