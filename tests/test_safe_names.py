"""Names and paths in dataset.json: head names, modality names and case ids must be safe file-name components,
paths must stay inside the task folder, and every problem ends in the validation report (TaskValidationError)."""

from __future__ import annotations

import json

import pytest

from helpers import assert_in, edit_json, entry, make_task, validate, validation_error
from universalclassifier.dataset.dataset_json import MAX_ROI_LABELS, MODALITY_NAME_RULE, SAFE_NAME_RULE, is_safe_name

UNSAFE_NAMES = [
    "x/../../escaped", "..", ".hidden", "-dash", "a b", "läsion", "名前", "a\\b", "a\x00b", "a\n", "", "x" * 101
]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_names_are_recognised(name):
    assert not is_safe_name(name)


@pytest.mark.parametrize("name", ["CT", "T2", "noNorm", "lesion_size", "grade-2.v1", "LIDC-IDRI-0001", "0", "x" * 100])
def test_safe_names_are_accepted(name):
    assert is_safe_name(name)


def test_head_name_that_is_a_path_is_refused(tmp_path):
    task = make_task(tmp_path)

    def rename(dataset: dict) -> None:
        dataset["classification_labels"][0]["name"] = "x/../../escaped"
        for item in dataset["training"]:
            item["x/../../escaped"] = item.pop("lesion_contrast")

    edit_json(task, rename)
    message = str(validation_error(task))
    assert_in(message, "classification label name 'x/../../escaped' is not allowed", SAFE_NAME_RULE)


def test_unsafe_modality_names_are_refused(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"))
    edit_json(task, lambda d: d.__setitem__("modality", {"0": "T1/../x", "1": 5}))
    assert_in(str(validation_error(task)), "'modality' names ['T1/../x', 5] are not allowed", MODALITY_NAME_RULE)


def test_modality_names_are_display_text(tmp_path):
    # modality names never become paths: spaces and non-ASCII letters are fine
    task = make_task(tmp_path, modalities=("T1", "T2"))
    edit_json(task, lambda d: d.__setitem__("modality", {"0": "T1 post-contrast", "1": "T2 gewichtet ä"}))
    validate(task)


@pytest.mark.parametrize("stem", ["bad name", "fälle", "a;b"])
def test_unsafe_case_ids_are_refused(tmp_path, stem):
    task = make_task(tmp_path)
    for old, new in [("imagesTr/case_0001_0000", f"imagesTr/{stem}_0000"), ("labelsTr/case_0001", f"labelsTr/{stem}")]:
        (task / f"{old}.nii.gz").rename(task / f"{new}.nii.gz")

    def rename(dataset: dict) -> None:
        item = entry(dataset, "case_0001")
        item["image"], item["label"] = f"./imagesTr/{stem}.nii.gz", f"./labelsTr/{stem}.nii.gz"

    edit_json(task, rename)
    assert_in(str(validation_error(task)), f"case id {stem!r}", "is not allowed", SAFE_NAME_RULE)


@pytest.mark.parametrize(
    "key, path",
    [
        ("image", "/nonexistent/folder/case_0001.nii.gz"),
        ("image", "../Task002_Other/imagesTr/case_0001.nii.gz"),
        ("label", "/etc/case_0001.nii.gz"),
        ("label", "./labelsTr/../../case_0001.nii.gz"),
    ],
)
def test_paths_outside_the_task_folder_are_reported(tmp_path, key, path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: entry(d, "case_0001").__setitem__(key, path))
    assert_in(str(validation_error(task)), f"'{key}' {path!r} must be a relative path inside the task folder")


def test_ordinal_must_be_a_boolean(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["classification_labels"][1].__setitem__("ordinal", "yes"))
    assert_in(str(validation_error(task)), "classification label 'lesion_size': 'ordinal' is 'yes'; use true or false")


def test_too_many_roi_labels_are_refused(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d.__setitem__("labels", {str(i): f"region{i}" for i in range(MAX_ROI_LABELS + 1)}))
    assert_in(
        str(validation_error(task)), f"has {MAX_ROI_LABELS + 1} labels, more than MAX_ROI_LABELS = {MAX_ROI_LABELS}"
    )


def test_unreadable_dataset_json_is_reported(tmp_path):
    task = make_task(tmp_path)
    (task / "dataset.json").unlink()
    (task / "dataset.json").mkdir()
    assert_in(str(validation_error(task)), "dataset.json cannot be read")


def test_deeply_nested_dataset_json_is_reported(tmp_path):
    task = make_task(tmp_path)
    (task / "dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_in(str(validation_error(task)), "is not valid JSON")


def test_names_with_dots_and_hyphens_pass(tmp_path):
    task = make_task(tmp_path, modalities=("T1-ce.v2",))

    def rename(dataset: dict) -> None:
        dataset["classification_labels"][0]["name"] = "grade-2.v1"
        for item in dataset["training"]:
            item["grade-2.v1"] = item.pop("lesion_contrast")

    dataset = edit_json(task, rename)
    result = validate(task)
    assert [h.name for h in result.description.classification_labels] == ["grade-2.v1", "lesion_size"]
    assert json.loads((task / "dataset.json").read_text()) == dataset
