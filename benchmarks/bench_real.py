"""Real data end to end: LIDC lung nodules (5-fold CV grouped by patient) and AdrenalMNIST3D (official split, CV).

Reads the two public sets in DATA_DIR (default ../shared/data, see its README) and, per seed:

- LIDC (`lidc`): `uc_import --from folder` (images, nodule masks, labels.csv; `malignancy_score` ordinal,
  `diameter_mm` regression), plan & preprocess, train the folds at the budget, `uc_radiomics` on the same folds and
  `uc_summarize`: pooled out-of-fold metrics with 95% CIs per head (`malignant` AUC and accuracy at 0.5,
  `malignancy_score` QWK, `diameter_mm` R² and MAE), the radiomics reference and the mask-volume baseline (logistic /
  linear regression on the mask volume, fitted per fold on the same training cases), with paired bootstrap AUC
  differences.
- AdrenalMNIST3D (`adrenal`): `uc_import --from medmnist`, train on the official `train` split and evaluate on
  `val` (fold 0 of the official split file the importer writes); with --adrenal_cv also 5-fold CV on train + val.
  AUC and accuracy at 0.5 (as MedMNIST reports), balanced accuracy, next to the published test-split table.

Prints one JSON object and a markdown table (both also written with --output). Time figures are wall seconds.

Examples:
    python benchmarks/bench_real.py                                 # both sets, default recipe, seed 0, 30x10
    python benchmarks/bench_real.py --sets lidc --folds 0 --budget 4x10
    python benchmarks/bench_real.py --sets adrenal --seeds 0 1 2 --set backbone_frozen_fraction=0.25
    python benchmarks/bench_real.py --sets lidc --size_rule max     # the AUC23 planning
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import _override  # noqa: E402
from universalclassifier.evaluation.bootstrap import bootstrap_auc_ci, bootstrap_auc_difference  # noqa: E402
from universalclassifier.evaluation.pooling import pool_folds, pooled_arrays  # noqa: E402
from universalclassifier.evaluation.summarize import summarize_cross_validation  # noqa: E402
from universalclassifier.importing.cli import import_main  # noqa: E402
from universalclassifier.paths import TRAINER, TaskPaths  # noqa: E402
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess  # noqa: E402
from universalclassifier.planning.planner import DEFAULT_SIZE_PERCENTILE, PlanningOptions  # noqa: E402
from universalclassifier.plans import Plans  # noqa: E402
from universalclassifier.training.recipes import Recipe, recipe_for  # noqa: E402
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions  # noqa: E402

logger = logging.getLogger("bench_real")

LIDC_TASK, ADRENAL_TASK, ADRENAL_CV_TASK = 50, 60, 61
PUBLISHED_ADRENAL = {  # MedMNIST v2, official test split (AUC, ACC), from ../shared/data/README.md
    "ResNet-18 (3D)": (0.827, 0.721),
    "ResNet-18 (ACS)": (0.839, 0.754),
    "ResNet-50 (3D)": (0.828, 0.745),
    "auto-sklearn": (0.828, 0.802),
    "AutoKeras": (0.804, 0.705),
}


def _imported(root: Path, task: int) -> bool:
    """Whether a task with this id is already in the data root (a --keep folder reused)."""
    return any((root / "raw" / "nnUNet_raw_data").glob(f"Task{task:03d}_*"))


def _train_folds(root: Path, task: int, folds: list[int | str], recipe: Recipe, args: argparse.Namespace,
                 seed: int) -> dict:
    """Train the given folds one after the other; returns seconds and the training cases per second."""
    paths = TaskPaths.find(root, task)
    options = TrainingOptions(
        max_num_epochs=args.epochs, num_batches_per_epoch=args.batches, num_val_batches_per_epoch=args.val_batches,
        num_workers=args.workers, seed=seed, show_progress=False,
        pretrained_weights=None if args.pretrained_weights is None else str(args.pretrained_weights),
    )
    seconds, epoch_seconds, batch_size = 0.0, [], 0
    for fold in folds:
        start = time.perf_counter()
        trainer = ClassifierTrainer(paths, fold, options, trainer_name=args.trainer, recipe=recipe)
        trainer.run_training()
        seconds += time.perf_counter() - start
        batch_size = trainer.batch_size
        log = trainer.log.to_dict()
        frozen = [recipe.backbone_frozen_at(e, args.epochs) for e in range(args.epochs)]
        epoch_seconds.append([s for s, f in zip(log["train_seconds"], frozen, strict=True) if not f])
        logger.info("task %d fold %s trained in %.0f s", task, fold, time.perf_counter() - start)
    all_layer = [s for fold in epoch_seconds for s in fold]
    cases_per_second = batch_size * args.batches / float(np.median(all_layer)) if all_layer else None
    return {"train_seconds": round(seconds, 1), "batch_size": batch_size,
            "cases_per_second_all_layers": None if cases_per_second is None else round(cases_per_second, 2)}


def _plan(root: Path, task: int, args: argparse.Namespace) -> Plans:
    start = time.perf_counter()
    plans = plan_and_preprocess(root, task, num_workers=args.workers, show_progress=False, planning=args.planning)
    logger.info("task %d planned: image %s, batch %d (%.0f s)", task, plans.image_size, plans.batch_size,
                time.perf_counter() - start)
    return plans


def _volume_baseline(rois: Path, labels: dict[str, dict], folds: list[dict], seed: int,
                     deep: dict) -> dict:
    """Mask volume alone, fitted per fold on that fold's training cases: `malignant` (logistic regression on the log
    volume) and `diameter_mm` (linear regression on the cube root), scored on the pooled validation cases."""
    volume = {}
    for case_id in labels:
        image = sitk.ReadImage(str(rois / f"{case_id}.nii.gz"))
        volume[case_id] = float((sitk.GetArrayViewFromImage(image) > 0).sum() * np.prod(image.GetSpacing()))
    malignant, diameter = {}, {}
    for fold in folds:
        x_train = np.array([[np.log(volume[c] + 1)] for c in fold["train"]])
        x_val = np.array([[np.log(volume[c] + 1)] for c in fold["val"]])
        y = np.array([labels[c]["malignant"] for c in fold["train"]])
        model = LogisticRegression().fit(x_train, y)
        malignant.update(zip(fold["val"], model.predict_proba(x_val)[:, 1], strict=True))
        cube_train = np.array([[volume[c] ** (1 / 3)] for c in fold["train"]])
        cube_val = np.array([[volume[c] ** (1 / 3)] for c in fold["val"]])
        line = LinearRegression().fit(cube_train, [labels[c]["diameter_mm"] for c in fold["train"]])
        diameter.update(zip(fold["val"], line.predict(cube_val), strict=True))
    cases = sorted(malignant)
    y = np.array([labels[c]["malignant"] for c in cases])
    p = np.array([malignant[c] for c in cases])
    probabilities = np.stack([1 - p, p], axis=1)
    _, deep_probabilities = pooled_arrays(deep, "malignant", cases)
    difference = bootstrap_auc_difference(y, deep_probabilities, probabilities, seed=seed)
    true_diameter = np.array([labels[c]["diameter_mm"] for c in cases])
    return {
        "malignant": {
            "auc": float(roc_auc_score(y, p)),
            "auc_ci_95": list(bootstrap_auc_ci(y, probabilities, seed=seed)),
            "accuracy": float(accuracy_score(y, p >= 0.5)),
            "deep_minus_volume_auc": {"difference": difference[0], "ci_95": list(difference[1:])},
        },
        "diameter_mm": {
            "r2": float(r2_score(true_diameter, [diameter[c] for c in cases])),
            "mae": float(np.mean(np.abs(true_diameter - [diameter[c] for c in cases]))),
        },
    }


def _head_figures(summary: dict) -> dict:
    """The figures the tables show, per head, from a cross-validation summary (deep model and reference)."""
    figures = {}
    for name, head in summary["heads"].items():
        reference = summary.get("reference", {}).get("heads", {}).get(name, {})
        keep = ("auc", "auc_ci_95", "accuracy", "balanced_accuracy", "quadratic_weighted_kappa", "r2", "r2_ci_95",
                "mae", "mae_ci_95", "ece", "num_cases")
        figures[name] = {key: head[key] for key in keep if key in head}
        figures[name]["reference"] = {key: reference[key] for key in keep if key in reference}
        for paired in ("deep_minus_reference_auc", "deep_minus_reference_mae"):
            if paired in reference:
                figures[name][paired] = reference[paired]
    return figures


def run_lidc(root: Path, data: Path, recipe: Recipe, args: argparse.Namespace, seed: int) -> dict:
    """Import, plan, train the folds, run the radiomics reference and the volume baseline, summarize."""
    lidc = data / "lidc_nodules"
    task = LIDC_TASK + seed
    if not _imported(root, task):
        code = import_main([
            str(root), "--from", "folder", str(lidc / "images"), "--labels", str(lidc / "labels.csv"), "--rois",
            str(lidc / "rois"), "-t", str(task), "--name", "LIDC", "--ordinal_columns", "malignancy_score",
            "--regression_columns", "diameter_mm", "--quiet",
        ])
        if code != 0:
            raise SystemExit(f"uc_import of {lidc} failed (exit {code})")
    plans = _plan(root, task, args)
    paths = TaskPaths.find(root, task)
    folds = args.folds if args.folds else list(range(5))
    result: dict = {"set": "lidc", "seed": seed, "image_size": plans.image_size, "size_rule": plans.size_rule,
                    **_train_folds(root, task, folds, recipe, args, seed)}
    start = time.perf_counter()
    trainer_folder = paths.trainer_folder(trainer=args.trainer)
    if not args.no_reference:
        from universalclassifier.radiomics.reference import run_radiomics_reference

        run_radiomics_reference(root, task, folds=folds, num_workers=args.workers, show_progress=False)
    summary = summarize_cross_validation(trainer_folder, num_resamples=1000, seed=seed)
    result["heads"] = _head_figures(summary)
    splits = json.loads(paths.splits_file.read_text())
    dataset = json.loads((paths.raw / "dataset.json").read_text())
    labels = {Path(c["image"]).name.removesuffix(".nii.gz"): c for c in dataset["training"]}
    _, deep = pool_folds(trainer_folder, plans.classification_labels)
    result["volume_baseline"] = _volume_baseline(
        paths.raw / "labelsTr", labels, [splits[f] for f in folds], seed, deep
    )
    result["summary_seconds"] = round(time.perf_counter() - start, 1)
    return result


def _official_split(root: Path, task: int) -> None:
    """Use the importer's official train -> val split as the task's only fold (fold 0)."""
    paths = TaskPaths.find(root, task)
    paths.preprocessed.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.raw / "splits_official.json", paths.splits_file)


def _fold_figures(trainer_folder: Path, fold: int) -> dict:
    summary = json.loads((trainer_folder / f"fold_{fold}" / "validation" / "summary.json").read_text())
    head = next(iter(summary["heads"].values()))
    return {key: head[key] for key in ("auc", "auc_ci_95", "accuracy", "balanced_accuracy", "num_cases") if key in head}


def run_adrenal(root: Path, data: Path, recipe: Recipe, args: argparse.Namespace, seed: int) -> dict:
    """Train on the official train split, evaluate on val; with --adrenal_cv also 5-fold CV on train + val."""
    source = data / "adrenalmnist3d" / f"adrenalmnist3d{'_64' if args.adrenal_size == 64 else ''}_dev.npz"
    result: dict = {"set": "adrenal", "seed": seed, "resolution": args.adrenal_size}
    tasks = [(ADRENAL_TASK + 10 * seed, "official")]
    if args.adrenal_cv:
        tasks.append((ADRENAL_CV_TASK + 10 * seed, "cv"))
    for task, kind in tasks:
        if not _imported(root, task):
            code = import_main([str(root), "--from", "medmnist", str(source), "-t", str(task), "--name", "Adrenal",
                                "--quiet"])
            if code != 0:
                raise SystemExit(f"uc_import of {source} failed (exit {code})")
        if kind == "official":
            _official_split(root, task)
        plans = _plan(root, task, args)
        folds: list[int | str] = [0] if kind == "official" else list(range(5))
        timing = _train_folds(root, task, folds, recipe, args, seed)
        trainer_folder = TaskPaths.find(root, task).trainer_folder(trainer=args.trainer)
        if kind == "official":
            result["official_val"] = {**_fold_figures(trainer_folder, 0), **timing, "image_size": plans.image_size}
        else:
            summary = summarize_cross_validation(trainer_folder, num_resamples=1000, seed=seed)
            result["cv"] = {**_head_figures(summary)["target"], **timing}
    return result


def _cell(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(head: dict, metric: str) -> str:
    value, ci = head.get(metric), head.get(f"{metric}_ci_95")
    if value is None:
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else f"{value:.3f}"


def markdown_tables(results: list[dict], title: str) -> str:
    """One LIDC table (per seed: deep model, radiomics reference, mask volume) and one AdrenalMNIST3D table."""
    lines = [f"### {title}", ""]
    lidc = [r for r in results if r["set"] == "lidc"]
    if lidc:
        lines += [
            "| seed | malignant AUC (deep) | acc. | radiomics AUC | acc. | volume AUC | acc. | deep − radiomics | "
            "deep − volume | score QWK (deep / radiomics) | diameter R² (deep / radiomics / volume) | "
            "train s | cases/s (all layers) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in lidc:
            m, q, d = r["heads"]["malignant"], r["heads"]["malignancy_score"], r["heads"]["diameter_mm"]
            v = r["volume_baseline"]
            ref_diff = m.get("deep_minus_reference_auc", {})
            vol_diff = v["malignant"]["deep_minus_volume_auc"]

            def diff(paired: dict) -> str:
                if paired.get("difference") is None:
                    return "n/a"
                low, high = paired.get("ci_95", [None, None])
                return f"{paired['difference']:+.3f} [{_cell(low)}, {_cell(high)}]"

            lines.append(
                f"| {r['seed']} | {_ci(m, 'auc')} | {_cell(m.get('accuracy'))} | {_ci(m['reference'], 'auc')} | "
                f"{_cell(m['reference'].get('accuracy'))} | {_ci(v['malignant'], 'auc')} | "
                f"{_cell(v['malignant']['accuracy'])} | {diff(ref_diff)} | {diff(vol_diff)} | "
                f"{_cell(q.get('quadratic_weighted_kappa'))} / "
                f"{_cell(q['reference'].get('quadratic_weighted_kappa'))} | "
                f"{_cell(d.get('r2'))} / {_cell(d['reference'].get('r2'))} / {_cell(v['diameter_mm']['r2'])} | "
                f"{r['train_seconds']:.0f} | {_cell(r['cases_per_second_all_layers'], 2)} |"
            )
        lines.append("")
    adrenal = [r for r in results if r["set"] == "adrenal"]
    if adrenal:
        lines += ["| seed | official val AUC | val acc. (0.5) | val bal. acc. | CV AUC | CV acc. | train s |",
                  "|---|---|---|---|---|---|---|"]
        for r in adrenal:
            val, cv = r["official_val"], r.get("cv", {})
            seconds = val["train_seconds"] + cv.get("train_seconds", 0)
            lines.append(
                f"| {r['seed']} | {_ci(val, 'auc')} | {_cell(val.get('accuracy'))} | "
                f"{_cell(val.get('balanced_accuracy'))} | {_ci(cv, 'auc') if cv else 'not run'} | "
                f"{_cell(cv.get('accuracy'))} | {seconds:.0f} |"
            )
        lines += ["", "Published (official test split, AUC / ACC): " + "; ".join(
            f"{name} {auc:.3f} / {acc:.3f}" for name, (auc, acc) in PUBLISHED_ADRENAL.items()), ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="folder holding lidc_nodules/ and adrenalmnist3d/ (default ../shared/data)")
    parser.add_argument("--sets", nargs="+", choices=("lidc", "adrenal"), default=["lidc", "adrenal"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", default="30x10", help="EPOCHSxBATCHES per epoch (default 30x10)")
    parser.add_argument("--val_batches", type=int, default=4, help="validation batches per epoch")
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="LIDC folds to train (default all 5)")
    parser.add_argument("--adrenal_size", type=int, choices=(28, 64), default=28, help="AdrenalMNIST3D resolution")
    parser.add_argument("--adrenal_cv", action="store_true", help="also 5-fold CV on AdrenalMNIST3D train + val")
    parser.add_argument("--trainer", default=TRAINER, help="registered trainer (recipe) to evaluate")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override recipe fields")
    parser.add_argument("--size_rule", choices=("percentile", "max"), default="percentile")
    parser.add_argument("--size_percentile", type=float, default=DEFAULT_SIZE_PERCENTILE)
    parser.add_argument("--roi_margin_mm", type=float, default=0.0)
    parser.add_argument("--no_body_roi", action="store_true", help="without ROI files: the whole crop is the ROI")
    parser.add_argument("--pretrained_weights", type=Path, default=None, metavar="FOLD",
                        help="start every backbone from this trained fold (uc_train --pretrained_weights)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no_reference", action="store_true", help="skip the radiomics reference (LIDC)")
    parser.add_argument("--output", type=Path, help="write results JSON and a markdown table (.md beside it)")
    parser.add_argument("--keep", type=Path, help="keep imported tasks and models in this folder")
    parser.add_argument("--verbose", action="store_true", help="log every training epoch")
    args = parser.parse_args()
    args.epochs, args.batches = (int(v) for v in args.budget.lower().split("x"))
    percentile = 100.0 if args.size_rule == "max" else args.size_percentile
    args.planning = PlanningOptions(
        args.size_rule, percentile, roi_margin_mm=args.roi_margin_mm, body_roi=not args.no_body_roi
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("universalclassifier").setLevel(logging.INFO if args.verbose else logging.WARNING)
    recipe = _override(recipe_for(args.trainer), args.set)
    runners = {"lidc": run_lidc, "adrenal": run_adrenal}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        results = [runners[name](root, args.data, recipe, args, seed) for seed in args.seeds for name in args.sets]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    report = {
        "benchmark": "real", "device": device, "threads": torch.get_num_threads(), "trainer": args.trainer,
        "recipe": recipe.to_dict(), "planning": dataclasses.asdict(args.planning),
        "budget": {"epochs": args.epochs, "batches_per_epoch": args.batches},
        "pretrained_weights": None if args.pretrained_weights is None else str(args.pretrained_weights),
        "results": results,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    title = (f"{args.trainer} {' '.join(args.set)} ({args.epochs}x{args.batches}, size rule {args.size_rule} "
             f"{percentile:g}, margin {args.roi_margin_mm:g} mm, body ROI {not args.no_body_roi})")
    table = markdown_tables(results, title)
    print(json.dumps(report, indent=2))
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        args.output.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
