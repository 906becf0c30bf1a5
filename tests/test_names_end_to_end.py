"""A task that speaks its user's language end to end: head names like "Severe COVID-19 (≥ 1 month)", a case id with a
space and an umlaut, in a data root whose path holds a space and "ü" (plan, train, summarize, predict, evaluate,
explain, radiomics). Names stay as written in every table and JSON; every file made from one has a safe ASCII name."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

from helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from universalclassifier.evaluation.external import dataset_test_cases, evaluate
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.inference.predict_folder import predict_folder
from universalclassifier.names import file_name_for
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import Plans
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

SEVERE = "Severe COVID-19 (≥ 1 month)"
GRADE = "Läsion grade 1/2/3"  # ordinal, with a slash
HEADS = {"lesion_contrast": SEVERE, "lesion_size": GRADE}
TRAINING_CASE, TEST_CASE = "case 0001 ü", "case 0010 ü"


def _rename_files(folder: Path, old: str, new: str) -> None:
    for path in folder.glob(f"{old}*"):
        path.rename(path.with_name(new + path.name[len(old) :]))


def _task_in_the_users_words(root: Path) -> Path:
    """The synthetic task with its heads, one training case and one test case renamed."""
    task = generate_task(root, 1, "Covid", num_cases=10, base_size=(8, 20, 20), num_test=2, seed=5)
    for sub, old, new in [("Tr", "case_0001", TRAINING_CASE), ("Ts", "case_0010", TEST_CASE)]:
        _rename_files(task / f"images{sub}", old, new)
        _rename_files(task / f"labels{sub}", old, new)
    dataset = json.loads((task / "dataset.json").read_text())
    for head in dataset["classification_labels"]:
        head["name"] = HEADS[head["name"]]
    for item in dataset["training"]:
        for old, new in HEADS.items():
            item[new] = item.pop(old)
        for key in ("image", "label"):
            item[key] = item[key].replace("case_0001", TRAINING_CASE)
    dataset["test"] = [image.replace("case_0010", TEST_CASE) for image in dataset["test"]]
    (task / "dataset.json").write_text(json.dumps(dataset, ensure_ascii=False, indent=2), encoding="utf-8")
    targets = json.loads((task / "test_targets.json").read_text())
    renamed = {case: {HEADS[k]: v for k, v in values.items()} for case, values in targets.items()}
    renamed[TEST_CASE] = renamed.pop("case_0010")
    (task / "test_targets.json").write_text(json.dumps(renamed, ensure_ascii=False), encoding="utf-8")
    return task


def test_heads_and_cases_named_in_the_users_words_go_through_every_command(tmp_path):
    root = tmp_path / "data root ü"
    task = _task_in_the_users_words(root)
    plan_and_preprocess(root, 1, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 1)
    assert (paths.stage_folder / f"{file_name_for(TRAINING_CASE)}.npy").is_file()

    options = TrainingOptions(
        max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
    )
    for fold in (0, 1):
        ClassifierTrainer(paths, fold, options).run_training()
    trainer_folder = paths.trainer_folder()
    plans = Plans.load(trainer_folder / "plans.json")
    assert plans.head_names == [SEVERE, GRADE]

    summary = summarize_cross_validation(trainer_folder, num_resamples=20)
    assert set(summary["heads"]) == {SEVERE, GRADE}
    assert summary["heads"][SEVERE]["plots"]["roc"] == f"cv_plots/roc_{file_name_for(SEVERE)}.png"
    assert (trainer_folder / summary["heads"][GRADE]["plots"]["roc"]).is_file()
    assert SEVERE in (trainer_folder / "cv_report.md").read_text(encoding="utf-8")

    predictions = root / "predictions"
    predict_folder(root / "trained_models", task / "imagesTs", predictions, task / "labelsTs", show_progress=False)
    table = (predictions / "summary.csv").read_text(encoding="utf-8")
    assert SEVERE in table and GRADE in table and TEST_CASE in table

    evaluation = evaluate(
        root / "trained_models", dataset_test_cases(task, plans), root / "evaluation", num_resamples=20,
        show_progress=False,
    )  # fmt: skip
    assert evaluation["num_cases"] == 2 and set(evaluation["heads"]) == {SEVERE, GRADE}

    if find_spec("captum") is not None:
        from universalclassifier.explain import explain

        maps = explain(
            root / "trained_models", sorted((task / "imagesTs").glob(f"{TEST_CASE}_*")),
            task / "labelsTs" / f"{TEST_CASE}.nii.gz", output_folder=root / "saliency", method="gradcam",
        )  # fmt: skip
        assert set(maps) == {SEVERE, GRADE}
        png = Path(maps[GRADE]["gradcam"]["png"])
        assert png == root / "saliency" / f"{file_name_for(TEST_CASE)}_{file_name_for(GRADE)}_gradcam.png"
        assert png.is_file()

    if find_spec("mirp") is not None:
        from universalclassifier.radiomics import run_radiomics_reference

        reference = run_radiomics_reference(root, 1, num_workers=1, show_progress=False)
        assert set(reference["heads"]) == {SEVERE, GRADE}

    # every file the pipeline made from a name has an ASCII name, and all of them lie inside the data root
    made = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(task)]
    assert made and all(p.is_relative_to(root) for p in made)
    derived = [p.relative_to(root) for p in made if not p.is_relative_to(predictions)]
    assert all(str(p).isascii() for p in derived), [p for p in derived if not str(p).isascii()]
