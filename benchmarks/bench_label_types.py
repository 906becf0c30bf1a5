"""Label types at the demo's budget: does each head type learn, and do covariates help the head that needs them?

Generates the `label_types` synthetic task (`universalclassifier.synthetic.generate_task(label_types=True)`: binary
`lesion_contrast`, ordinal `lesion_size`, regression `lesion_volume` in ml, `contrast_strength` known only for brighter
lesions, `high_risk` = a brighter lesion in a patient aged 60 or more, covariates `age` (10% unknown) and `sex`, two
scans per patient), trains fold `all` at the demo's budget (10 epochs x 14 batches) and predicts a held-out test set
through `predict()`. Then the same again on a copy of the task without its covariates, and the radiomics reference
(`radiomics` extra; image features only) on the same cases. Prints one JSON object: per
run and head the test metrics (AUC, quadratic weighted kappa and MAE for the ordinal head, R², MAE and Spearman for
the regression head), plus the training time.

Example: python benchmarks/bench_label_types.py --cases 40 --test_cases 60
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from universalclassifier.evaluation.graded_metrics import ordinal_metrics, regression_metrics
from universalclassifier.evaluation.metrics import macro_auc
from universalclassifier.inference.predict import get_predictor
from universalclassifier.paths import TRAINER, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

logger = logging.getLogger("bench_label_types")


def _without_covariates(source: Path, target: Path) -> None:
    """Copy a raw task folder, dropping the covariates from its dataset.json."""
    shutil.copytree(source, target)
    dataset = json.loads((target / "dataset.json").read_text())
    dataset.pop("covariates")
    for entry in dataset["training"]:
        entry.pop("covariates")
    (target / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")


def _scores(test: dict, column: dict[str, list]) -> dict:
    """Test metrics per head from `column` (head -> one output per test case, as `predict()` gives them)."""
    truth = {name: [test[c][name] for c in test] for name in column}
    result: dict = {}
    for name in ("lesion_contrast", "contrast_strength", "high_risk"):
        known = [n for n, t in enumerate(truth[name]) if t is not None]
        y = np.array([truth[name][n] for n in known])
        p = np.array([column[name][n] for n in known])
        result[name] = {"auc": macro_auc(y, np.stack([1 - p, p], axis=1)), "num_cases": len(known)}
    size = ordinal_metrics(np.array(truth["lesion_size"]), np.array(column["lesion_size"]), 3, name="lesion_size")
    result["lesion_size"] = {k: size[k] for k in ("auc", "quadratic_weighted_kappa", "mae_grades", "accuracy")}
    volume = regression_metrics(np.array(truth["lesion_volume"]), np.array(column["lesion_volume"]))
    result["lesion_volume"] = {k: volume[k] for k in ("r2", "mae", "spearman", "pearson")}
    return result


def _train_and_test(root: Path, task_id: int, epochs: int, batches: int, test: dict, with_covariates: bool) -> dict:
    start = time.perf_counter()
    plan_and_preprocess(root, task_id, num_workers=2, show_progress=False)
    paths = TaskPaths.find(root, task_id)
    options = TrainingOptions(
        max_num_epochs=epochs, num_batches_per_epoch=batches, num_val_batches_per_epoch=2, num_workers=1,
        show_progress=False,
    )
    ClassifierTrainer(paths, "all", options, trainer_name=TRAINER).run_training()
    trained = time.perf_counter() - start
    predictor = get_predictor(root / "trained_models")
    outputs = {}
    for case_id, truth in test.items():
        images = sorted((paths.raw / "imagesTs").glob(f"{case_id}_*"))
        outputs[case_id] = predictor.predict_case(
            images, paths.raw / "labelsTs" / f"{case_id}.nii.gz",
            covariates=truth["covariates"] if with_covariates else None, impute_missing_covariates=True,
        )
    heads = [h.name for h in predictor.plans.classification_labels]
    column = {name: [outputs[c][i] for c in test] for i, name in enumerate(heads)}
    return {"train_seconds": round(trained, 1), **_scores(test, column)}


def _radiomics_reference(folder: Path, test: dict) -> dict | None:
    """The radiomics reference (mirp features inside each ROI label; logistic or ridge regression per head, no
    covariates) fitted on the training cases and scored on the same test cases, or None without mirp."""
    try:
        from universalclassifier.radiomics import reference_scores
    except ImportError as exc:
        logger.warning("No radiomics reference (%s); install the 'radiomics' extra.", exc)
        return None
    dataset = json.loads((folder / "dataset.json").read_text())
    heads = dataset["classification_labels"]
    train = [(e["image"][2:].replace(".nii.gz", "_0000.nii.gz"), e["label"][2:]) for e in dataset["training"]]
    start = time.perf_counter()
    predictions = reference_scores(
        [([folder / image], folder / roi) for image, roi in train],
        {h["name"]: [entry.get(h["name"]) for entry in dataset["training"]] for h in heads},
        [([folder / "imagesTs" / f"{c}_0000.nii.gz"], folder / "labelsTs" / f"{c}.nii.gz") for c in test],
        {h["name"]: len(h.get("values", {})) for h in heads},
        num_workers=2,
        regression_heads=[h["name"] for h in heads if h.get("type") == "regression"],
    )
    # as predict() gives them: p(1) of a binary head, the probabilities of the ordinal one, the regression value
    column = {
        name: [row[1] if name in ("lesion_contrast", "contrast_strength", "high_risk") else row for row in values]
        for name, values in predictions.items()
    }
    column["lesion_volume"] = [float(row[0]) for row in predictions["lesion_volume"]]
    return {"seconds": round(time.perf_counter() - start, 1), **_scores(test, column)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40, help="training cases (the demo has 40)")
    parser.add_argument("--test_cases", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batches", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_reference", action="store_true", help="skip the radiomics reference")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = generate_task(
            root / "with", 1, "LabelTypes", num_cases=args.cases, num_test=args.test_cases, base_size=(16, 48, 48),
            seed=args.seed, label_types=True,
        )
        test = json.loads((folder / "test_targets.json").read_text())
        _without_covariates(folder, root / "without" / "raw" / "nnUNet_raw_data" / folder.name)
        runs = {
            "with_covariates": _train_and_test(root / "with", 1, args.epochs, args.batches, test, True),
            "without_covariates": _train_and_test(root / "without", 1, args.epochs, args.batches, test, False),
        }
        if not args.no_reference:
            runs["radiomics_reference"] = _radiomics_reference(folder, test)
    print(json.dumps({"benchmark": "label_types", **vars(args), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
