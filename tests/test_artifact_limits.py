"""Bounded artifacts (issue 21, findings 2 and 3): every plans and checkpoint field is checked when it is read, JSON
only from bounded regular files, weights capped in size and checked for shape and finiteness, and predict() refuses
what would give NaN instead of returning it."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from artifact_mutations import canonical_hash
from helpers import make_plans
from universalclassifier.covariates import Covariate
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict import predict
from universalclassifier.network.i3d import network_for
from universalclassifier.paths import ArtifactLayout, TaskPaths
from universalclassifier.plans import (
    MAX_HEAD_VALUES,
    MAX_HEADS,
    MAX_MODALITIES,
    ClassificationLabel,
    Plans,
)
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions
from untrained_artifact import TASK_ID, held_out_case, shared_untrained_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return shared_untrained_artifact(tmp_path_factory)


def _copy(artifact: TaskPaths, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the artifact's trained_models folder and its trainer folder."""
    trained_models = Path(shutil.copytree(artifact.data_root / "trained_models", tmp_path / "trained_models"))
    return trained_models, next(trained_models.glob("**/plans.json")).parent


def _edit_json(path: Path, edit: Callable[[dict], object]) -> dict:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))
    return content


def _modalities(plans: dict, count: int) -> None:
    plans.update(
        modalities=[f"m{i}" for i in range(count)],
        normalization_schemes=["noNorm"] * count,
        use_mask_for_norm=[False] * count,
        intensity_properties={},
        num_modalities=count,
    )


def _values(plans: dict, count: int) -> None:
    plans["classification_labels"][0]["values"] = {str(i): f"v{i}" for i in range(count)}


HOSTILE_PLANS: dict[str, tuple[Callable[[dict], object], str]] = {
    "image_size of 477 GiB": (lambda p: p.update(image_size=[4000, 4000, 4000]), "'image_size'"),
    "image_size of floats": (lambda p: p.update(image_size=[4.5, 6, 6]), "'image_size'"),
    "too many modalities": (lambda p: _modalities(p, MAX_MODALITIES + 1), "'modalities'"),
    "too many heads": (
        lambda p: p.update(classification_labels=[
            {"name": f"h{i}", "ordinal": False, "values": {"0": "a", "1": "b"}} for i in range(MAX_HEADS + 1)
        ]),
        "'classification_labels'",
    ),
    "too many values": (lambda p: _values(p, MAX_HEAD_VALUES + 1), "MAX_HEAD_VALUES"),
    "a head of one value": (lambda p: _values(p, 1), r"classification_labels\[0\]"),
    "ten million ROI classes": (lambda p: p.update(num_roi_classes=10**7), "'num_roi_classes'"),
    "negative spacing": (lambda p: p.update(target_spacing=[-1.0, 1.0, 1.0]), "'target_spacing'"),
    "infinite spacing": (lambda p: p.update(target_spacing=[math.inf, 1.0, 1.0]), "'target_spacing'"),
    "uses_roi 'no'": (lambda p: p.update(uses_roi="no"), "'uses_roi'"),
    "huge batch": (lambda p: p.update(batch_size=10**9), "'batch_size'"),
    "NaN intensity sd": (lambda p: p["intensity_properties"]["0"].update(sd=math.nan), "intensity_properties.0"),
    "no intensity statistics": (lambda p: p.update(intensity_properties={}), "intensity_properties.0"),
    "unknown normalization": (lambda p: p.update(normalization_schemes=["nonCT"]), "'normalization_schemes'"),
    "repeated axis": (lambda p: p.update(transpose_forward=[0, 0, 1]), "'transpose_forward'"),
    "NaN regression sd": (
        lambda p: p["classification_labels"][0].update(type="regression", values={}, target_mean=0, target_sd=math.nan),
        "target_sd",
    ),
    "NaN covariate mean": (
        lambda p: p.update(covariates=[{"name": "age", "type": "numeric", "mean": math.nan, "sd": 1.0, "fill": 1.0}]),
        r"covariates \(age\)",
    ),
    "a network of billions of parameters": (
        lambda p: (p.update(num_roi_classes=256), _values(p, MAX_HEAD_VALUES), p["classification_labels"].extend(
            {**p["classification_labels"][0], "name": f"copy {i}"} for i in range(9))),
        "MAX_NETWORK_PARAMETERS",
    ),
}


@pytest.mark.parametrize("name", HOSTILE_PLANS)
def test_hostile_plans_fields_are_refused_naming_the_file(artifact, tmp_path, name):
    edit, field = HOSTILE_PLANS[name]
    path = tmp_path / "plans.json"
    shutil.copy(artifact.plans_file, path)
    _edit_json(path, edit)
    with pytest.raises(UserInputError, match=re.escape(str(path)) + f".*{field}"):
        Plans.load(path)


def test_plans_that_are_not_a_regular_bounded_file_are_refused(tmp_path):
    for name, make in {
        "dev_zero.json": lambda p: p.symlink_to("/dev/zero"),
        "fifo.json": lambda p: os.mkfifo(p),
        "sparse.json": lambda p: p.open("wb").truncate(2**30),
    }.items():
        path = tmp_path / name
        make(path)
        with pytest.raises(UserInputError, match=re.escape(str(path))):
            Plans.load(path)


def test_hostile_plans_with_their_hash_fixed_are_refused_before_any_allocation(artifact, tmp_path):
    """The issue's first example: image_size [4000, 4000, 4000] tried to allocate 477 GiB."""
    trained_models, trainer_folder = _copy(artifact, tmp_path)
    plans = _edit_json(trainer_folder / "plans.json", lambda p: p.update(image_size=[4000, 4000, 4000]))
    metadata = trainer_folder / "all" / f"{ArtifactLayout.FINAL}.json"
    _edit_json(metadata, lambda m: m.update(plans_hash=canonical_hash(plans)))
    images, roi = held_out_case(artifact)
    with pytest.raises(UserInputError, match=re.escape(str(trainer_folder / "plans.json")) + ".*'image_size'"):
        predict(trained_models, images, roi)


def test_network_parameter_bound_holds_for_the_largest_variants():
    largest = {"roi_pooling": True, "fine_roi_features": True, "roi_descriptors": True, "roi_volume": True,
               "roi_extremes": True, "standardize_features": True, "normalization": "batch", "dropout": 0.3}
    plain = {"roi_pooling": False, "normalization": "group", "dropout": 0.3}
    many = replace(
        make_plans(4, (8, 8, 8)),
        num_roi_classes=12,
        covariates=[Covariate("age", "numeric"), Covariate("site", "categorical", ("a", "b", "c"))],
        classification_labels=[
            ClassificationLabel("a", "nominal", tuple(str(i) for i in range(300))),
            ClassificationLabel("b", "ordinal", ("1", "2", "3", "4")),
            ClassificationLabel("c", "regression", ()),
        ],
    )
    for plans in (make_plans(1, (8, 8, 8)), many):
        sizes = [sum(t.numel() for t in network_for(plans, r).state_dict().values()) for r in (largest, plain)]
        assert max(sizes) <= plans.network_parameter_bound <= 1.1 * sizes[0]  # an upper bound, not a loose one


@pytest.fixture
def damaged(artifact, tmp_path):
    """A copy of the artifact, its checkpoint, and a function predicting one case with it."""
    trained_models, trainer_folder = _copy(artifact, tmp_path)
    images, roi = held_out_case(artifact)
    return trainer_folder / "all" / ArtifactLayout.FINAL, lambda: predict(trained_models, images, roi)


def _edit_weights(checkpoint: Path, edit: Callable[[dict], object]) -> None:
    tensors = torch.load(checkpoint, weights_only=True)
    edit(tensors["network"])
    torch.save(tensors, checkpoint)


def test_weights_of_another_shape_are_refused_naming_the_checkpoint(damaged):
    checkpoint, run = damaged
    _edit_weights(checkpoint, lambda n: n.update({"heads.0.weight": torch.zeros(3, n["heads.0.weight"].shape[1])}))
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + r".*heads\.0\.weight has shape \[3, "):
        run()


def test_metadata_without_a_recipe_is_refused_naming_the_checkpoint(damaged):
    checkpoint, run = damaged
    _edit_json(checkpoint.with_name(checkpoint.name + ".json"), lambda m: m.pop("recipe"))
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + ".*usable training recipe"):
        run()


def test_metadata_that_is_not_a_regular_file_is_refused(damaged):
    checkpoint, run = damaged
    metadata = checkpoint.with_name(checkpoint.name + ".json")
    metadata.unlink()
    metadata.symlink_to("/dev/zero")
    with pytest.raises(UserInputError, match=re.escape(str(metadata)) + " is not a regular file"):
        run()


def test_compressed_and_oversized_weights_are_refused_before_torch_reads_them(damaged):
    """A deflate-compressed member could expand far beyond the file (the issue: 1.6 MB became a 2 GB peak)."""
    checkpoint, run = damaged
    source = zipfile.ZipFile(io.BytesIO(checkpoint.read_bytes()))
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + " holds compressed members"):
        run()
    checkpoint.unlink()
    with checkpoint.open("wb") as stream:
        stream.truncate(8 * 2**30)  # sparse: no disk space
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + r" has 8,589,934,592 bytes, more than"):
        run()


def test_nan_weights_are_refused_instead_of_predicting_nan(damaged):
    checkpoint, run = damaged
    _edit_weights(checkpoint, lambda n: n["heads.1.score.weight"].view(-1).__setitem__(0, math.nan))
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + r" holds NaN or infinite weights \(heads"):
        run()


def test_predictions_that_overflow_are_refused_naming_the_fold(damaged):
    checkpoint, run = damaged
    _edit_weights(checkpoint, lambda n: n["heads.0.weight"].fill_(3e38))  # finite, but the logits overflow
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint.parent)) + " predicts NaN or infinite values"):
        run()


def test_resuming_from_metadata_without_an_epoch_is_a_user_error(artifact, tmp_path):
    shutil.copytree(artifact.data_root, tmp_path / "data")
    paths = TaskPaths.find(tmp_path / "data", TASK_ID)
    options = TrainingOptions(max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0,
                              show_progress=False)
    trainer = ClassifierTrainer(paths, "all", options)
    checkpoint = trainer.output_folder / ArtifactLayout.FINAL
    trainer.load(ArtifactLayout.FINAL, with_optimizer=False)
    assert trainer.epoch == 0
    _edit_json(checkpoint.with_name(checkpoint.name + ".json"), lambda m: m.update(epoch="last"))
    with pytest.raises(UserInputError, match=re.escape(str(checkpoint)) + ".*no usable epoch"):
        trainer.load(ArtifactLayout.FINAL, with_optimizer=False)
