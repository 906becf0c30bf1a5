"""Label types at the demo's budget: does each head type learn, and do covariates help the head that needs them?

Generates the `label_types` synthetic task (`universalclassifier.synthetic.generate_task(label_types=True)`: binary
`lesion_contrast`, ordinal `lesion_size`, regression `lesion_volume` in ml, `contrast_strength` known only for brighter
lesions, `high_risk` = a brighter lesion in a patient aged 60 or more, covariates `age` (10% unknown) and `sex`, two
scans per patient), trains fold `all` at the demo's budget (10 epochs x 14 batches) and predicts a held-out test set
through `predict()`. Then the same again on a copy of the task without its covariates. Prints one JSON object: per
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
    truth = {name: [test[c][name] for c in test] for name in heads}
    result: dict = {"train_seconds": round(trained, 1)}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40, help="training cases (the demo has 40)")
    parser.add_argument("--test_cases", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batches", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
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
    print(json.dumps({"benchmark": "label_types", **vars(args), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
