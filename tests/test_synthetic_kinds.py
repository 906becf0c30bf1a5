"""The quality suite's synthetic task kinds: valid raw tasks whose oracle feature separates the classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import roc_auc_score

from universalclassifier.dataset.validation import validate_task
from universalclassifier.synthetic_kinds import KINDS, SPECS, generate_kind_task


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    return root, {
        kind: generate_kind_task(root, kind, 40 + i, num_cases=24, num_test=12, seed=i) for i, kind in enumerate(KINDS)
    }


def _labels(folder) -> tuple[str, np.ndarray, np.ndarray]:
    dataset = json.loads((folder / "dataset.json").read_text())
    head = dataset["classification_labels"][0]["name"]
    test = json.loads((folder / "test_targets.json").read_text())
    y = np.array([c[head] for c in dataset["training"]] + [test[c][head] for c in sorted(test)])
    values = json.loads((folder / "oracle_features.json").read_text())["values"]
    return head, y, np.array([values[f"case_{i:04d}"] for i in range(len(y))])


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_valid_task_with_a_separating_oracle(tasks, kind):
    root, folders = tasks
    folder = folders[kind]
    validated = validate_task(folder, show_progress=False)
    assert len(validated.cases) == 24
    head, y, oracle = _labels(folder)
    assert head == SPECS[kind].head["name"] and len(y) == 36
    if kind == "size":
        # ordinal: the oracle (lesion volume) must order the three classes
        assert all(oracle[y == v].max() < oracle[y == v + 1].min() * 1.2 for v in range(2))
        assert roc_auc_score(y >= 1, oracle) > 0.95 and roc_auc_score(y == 2, oracle) > 0.95
    else:
        assert roc_auc_score(y, oracle) > 0.9
    image = sitk.ReadImage(str(next((folder / "imagesTr").glob("case_0000_0000.*"))))
    if kind == "ct_lesion":  # made unlike the others: thick slices, air at -1000 HU around the body
        x, y_, z = image.GetSize()
        assert 14 <= z <= 20 and 56 <= x <= 71 and 56 <= y_ <= 71
        assert image.GetSpacing()[2] >= 2.0 and image.GetSpacing()[0] <= 0.9
        array = sitk.GetArrayFromImage(image)
        assert np.median(array[array < -500]) == pytest.approx(-1000, abs=20)
        assert abs(np.median(array[array > -500]) - 40) < 15
    else:
        assert all(32 <= s <= 48 for s in image.GetSize())
    if SPECS[kind].with_roi:
        roi = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "case_0000.nii.gz")))
        assert set(np.unique(roi)) == {0, 1, 2}
        lesion_radius = (3 * (roi == 2).sum() / (4 * np.pi)) ** (1 / 3)
        assert 1.5 <= lesion_radius <= 6.5
    else:
        assert not (folder / "labelsTr").exists()


def test_kind_specific_properties(tasks):
    _, folders = tasks
    _, y, _ = _labels(folders["imbalanced"])
    assert 0.1 <= y.mean() <= 0.2
    _, y, _ = _labels(folders["size"])
    assert sorted(set(y)) == [0, 1, 2]
    dataset = json.loads((folders["multimodal"] / "dataset.json").read_text())
    assert dataset["modality"] == {"0": "T1", "1": "T2"}
    assert len(list((folders["multimodal"] / "imagesTr").glob("case_0000_*"))) == 2


def test_same_seed_same_task(tmp_path):
    a = generate_kind_task(tmp_path / "a", "texture", 1, num_cases=6, num_test=2, seed=3)
    b = generate_kind_task(tmp_path / "b", "texture", 1, num_cases=6, num_test=2, seed=3)
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(a / "imagesTs" / "case_0007_0000.nii.gz")))
    second = sitk.GetArrayFromImage(sitk.ReadImage(str(b / "imagesTs" / "case_0007_0000.nii.gz")))
    np.testing.assert_array_equal(first, second)
    assert (a / "oracle_features.json").read_text() == (b / "oracle_features.json").read_text()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown kind 'noise'"):
        generate_kind_task(tmp_path, "noise", 1)
    with pytest.raises(ValueError, match="at least 6"):
        generate_kind_task(tmp_path, "texture", 1, num_cases=4)
