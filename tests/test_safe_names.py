"""Names and paths in dataset.json: head, covariate and case names are the user's words (anything but empty, blank,
control characters or over 100 characters), the files made from them use a safe file-name form, paths must stay
inside the task folder, and every problem ends in the validation report (TaskValidationError)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import assert_in, edit_json, entry, make_task, validate, validation_error
from universalclassifier.dataset.dataset_json import (
    MAX_HEAD_VALUES,
    MAX_ROI_LABELS,
    MODALITY_NAME_RULE,
    RESERVED_ENTRY_KEYS,
    RESERVED_NAMES,
)
from universalclassifier.evaluation.head_summary import plot_head
from universalclassifier.names import NAME_RULE, SAFE_NAME_PATTERN, file_name_clashes, file_name_for, is_name
from universalclassifier.plans import ClassificationLabel

SEVERE = "Severe COVID-19 (≥ 1 month)"
# the user's vocabulary, also what a name must not do to a path: each is a name, and its file-name form is safe
NAMES = [
    SEVERE, "COVID-19", "a b", "läsion", "名前", "x/../../escaped", "..", ".hidden", "-dash", "a\\b", "a;b", "x" * 100
]
NOT_NAMES = ["", "   ", "a\x00b", "a\n", "tab\there", "a\u2028b", "\ud800", "x" * 101, 5, None]


@pytest.mark.parametrize("name", NAMES)
def test_names_are_accepted_and_their_file_names_stay_in_the_folder(tmp_path, name):
    assert is_name(name)
    form = file_name_for(name)
    assert SAFE_NAME_PATTERN.fullmatch(form) and form == file_name_for(name)
    assert (tmp_path / f"roc_{form}.png").resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("name", NOT_NAMES)
def test_what_cannot_be_a_name_is_recognised(name):
    assert not is_name(name)


@pytest.mark.parametrize("name", ["CT", "lesion_size", "grade-2.v1", "LIDC-IDRI-0001", "0", "x" * 100])
def test_safe_names_are_their_own_file_names(name):
    assert file_name_for(name) == name


def test_file_names_are_readable_and_tell_names_apart():
    assert file_name_for(SEVERE).startswith("Severe_COVID-19_1_month-")
    assert file_name_for("läsion").startswith("lasion-") and len(file_name_for("名前")) == 8
    assert file_name_for("a b") != file_name_for("a_b") == "a_b"
    assert file_name_clashes(["a b", "a_b", "a;b", "läsion", "lasion"]) == []
    assert file_name_clashes(["Grade", "grade"]) == []
    assert file_name_clashes(["Grade", "x", "grade"], ignore_case=True) == [("Grade", "grade", "grade")]


def _rename_head(task, old: str, new: str) -> dict:
    def rename(dataset: dict) -> None:
        next(h for h in dataset["classification_labels"] if h["name"] == old)["name"] = new
        for item in dataset["training"]:
            item[new] = item.pop(old)

    return edit_json(task, rename)


def test_the_auc23_example_heads_and_roi_labels_are_accepted(tmp_path):
    # the AUC23 README's dataset.json: heads "COVID-19" and "Severe COVID-19", lobe and lesion ROI labels
    task = make_task(tmp_path / "data root ü")
    _rename_head(task, "lesion_contrast", "COVID-19")
    _rename_head(task, "lesion_size", "Severe COVID-19")
    lobes = ["left upper lobe", "left lower lobe", "right upper lobe", "right middle lobe", "right lower lobe"]
    names = ["background"] + lobes + [f"lesion in {lobe}" for lobe in lobes]
    edit_json(task, lambda d: d.__setitem__("labels", {str(i): name for i, name in enumerate(names)}))
    result = validate(task)
    assert [h.name for h in result.description.classification_labels] == ["COVID-19", "Severe COVID-19"]
    assert len(result.description.roi_labels) == 11


def test_head_and_covariate_names_with_spaces_and_non_ascii_pass(tmp_path):
    task = make_task(tmp_path, num_cases=12, label_types=True)
    _rename_head(task, "lesion_contrast", SEVERE)
    _rename_head(task, "lesion_size", "x/../../escaped")

    def rename_covariate(dataset: dict) -> None:
        dataset["covariates"][0]["name"] = "Alter (Jahre)"
        for item in dataset["training"]:
            item["covariates"]["Alter (Jahre)"] = item["covariates"].pop("age")

    edit_json(task, rename_covariate)
    result = validate(task)
    assert [h.name for h in result.description.classification_labels][:2] == [SEVERE, "x/../../escaped"]
    assert result.description.covariates[0].name == "Alter (Jahre)"
    assert result.cases[0].targets[SEVERE] in (0, 1)


@pytest.mark.parametrize("name", ["   ", "a\nb", "x" * 101])
def test_names_that_are_no_names_are_refused(tmp_path, name):
    task = make_task(tmp_path)
    _rename_head(task, "lesion_contrast", name)
    assert_in(str(validation_error(task)), "classification_labels[0]", "is not allowed", NAME_RULE)


@pytest.mark.parametrize("name", RESERVED_NAMES)
def test_reserved_head_names_are_refused(tmp_path, name):
    assert set(RESERVED_ENTRY_KEYS) < set(RESERVED_NAMES) and "case_id" in RESERVED_NAMES
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["classification_labels"][0].__setitem__("name", name))
    message = str(validation_error(task))
    assert_in(message, f"classification_labels[0]: name '{name}' is not allowed: the pipeline uses")
    assert "has 1 problem(s)" in message, message  # one message, not one per case


def test_reserved_covariate_name_is_refused(tmp_path):
    task = make_task(tmp_path, num_cases=12, label_types=True)
    edit_json(task, lambda d: d["covariates"][0].__setitem__("name", "case_id"))
    assert_in(str(validation_error(task)), "covariates[0]: name 'case_id' is not allowed: the pipeline uses")


def test_heads_whose_file_names_differ_only_in_case_are_refused(tmp_path):
    task = make_task(tmp_path)
    _rename_head(task, "lesion_contrast", "Grade")
    _rename_head(task, "lesion_size", "grade")
    assert_in(str(validation_error(task)), "classification labels 'Grade' and 'grade' would share the file name")


def test_too_many_head_values_are_refused(tmp_path):
    task = make_task(tmp_path)
    values = {str(i): f"v{i}" for i in range(MAX_HEAD_VALUES + 1)}
    edit_json(task, lambda d: d["classification_labels"][0].__setitem__("values", values))
    assert_in(
        str(validation_error(task)),
        f"classification label 'lesion_contrast' has {MAX_HEAD_VALUES + 1} values, more than MAX_HEAD_VALUES",
    )


def test_a_head_name_that_looks_like_a_path_writes_inside_the_folder(tmp_path):
    label = ClassificationLabel(name="x/../../escaped", type="nominal", values=("no", "yes"))
    folder = tmp_path / "out" / "fold_0"
    folder.mkdir(parents=True)
    path = plot_head(label, [0, 1, 0, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]]), "t", folder)
    assert path is not None and path.parent == folder and path.is_file()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_unsafe_modality_names_are_refused(tmp_path):
    task = make_task(tmp_path, modalities=("T1", "T2"))
    edit_json(task, lambda d: d.__setitem__("modality", {"0": "T1/../x", "1": 5}))
    assert_in(str(validation_error(task)), "'modality' names ['T1/../x', 5] are not allowed", MODALITY_NAME_RULE)


def test_modality_names_are_display_text(tmp_path):
    # modality names never become paths: spaces and non-ASCII letters are fine
    task = make_task(tmp_path, modalities=("T1", "T2"))
    edit_json(task, lambda d: d.__setitem__("modality", {"0": "T1 post-contrast", "1": "T2 gewichtet ä"}))
    validate(task)


def _rename_case(task, old: str, new: str) -> None:
    for folder, suffix in [("imagesTr", "_0000"), ("labelsTr", "")]:
        (task / folder / f"{old}{suffix}.nii.gz").rename(task / folder / f"{new}{suffix}.nii.gz")

    def rename(dataset: dict) -> None:
        item = entry(dataset, old)
        item["image"], item["label"] = f"./imagesTr/{new}.nii.gz", f"./labelsTr/{new}.nii.gz"

    edit_json(task, rename)


@pytest.mark.parametrize("stem", ["bad name", "fälle", "a;b"])
def test_case_ids_with_spaces_and_non_ascii_are_accepted(tmp_path, stem):
    task = make_task(tmp_path)
    _rename_case(task, "case_0001", stem)
    assert stem in [case.case_id for case in validate(task).cases]


def test_a_case_id_with_a_control_character_is_refused(tmp_path):
    task = make_task(tmp_path)
    _rename_case(task, "case_0001", "bad\tname")
    assert_in(str(validation_error(task)), "case id 'bad\\tname'", "is not allowed", NAME_RULE)


def test_case_ids_that_would_share_a_file_name_are_refused(tmp_path):
    task = make_task(tmp_path)
    _rename_case(task, "case_0001", "a b")
    _rename_case(task, "case_0002", file_name_for("a b"))
    assert_in(str(validation_error(task)), f"cases 'a b' and '{file_name_for('a b')}' would share the file name")


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
