"""Saliency maps (universalclassifier.explain): back on the input's exact grid, on the lesion, and the command line."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.ndimage import binary_dilation, binary_fill_holes, zoom

from helpers import one_torch_thread, run_script  # noqa: F401  (one_torch_thread: autouse fixture)
from universalclassifier.dataset.image_io import Geometry, read_image, write_image
from universalclassifier.errors import UserInputError
from universalclassifier.explain.backmapping import resize_axis, to_original_grid, unpad
from universalclassifier.explain.cli import explain_main
from universalclassifier.inference.predict import predict
from universalclassifier.paths import ArtifactLayout, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.padding import center_pad_or_crop
from universalclassifier.preprocessing.preprocessor import preprocess_case
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

logger = logging.getLogger(__name__)

needs_captum = pytest.mark.skipif(
    importlib.util.find_spec("captum") is None, reason="captum is not installed (universalclassifier[explain])"
)
# permuted and flipped axes, an origin off zero: nothing of it may be lost on the way back
ODD_DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
ODD_ORIGIN = (12.5, -30.25, 7.75)
ODD_SPACING_SCALE = (0.8, 0.7, 0.9)  # finer than the training cases: resampled to fewer voxels, then padded


def _save_untrained(paths: TaskPaths, fold: int | str = "all", seed: int = 1) -> None:
    """A fold at its initial weights (drawn with `seed`): the trainer's plans.json and final checkpoint."""
    options = TrainingOptions(
        max_num_epochs=1,
        num_batches_per_epoch=1,
        num_val_batches_per_epoch=1,
        num_workers=0,
        show_progress=False,
        seed=seed,
    )
    trainer = ClassifierTrainer(paths, fold, options)
    trainer.output_folder.mkdir(parents=True)
    trainer.plans.save(trainer.output_folder.parent / "plans.json")
    trainer.save(ArtifactLayout.FINAL, with_optimizer=False)


@pytest.fixture(scope="module")
def anisotropic(tmp_path_factory) -> TaskPaths:
    """A task whose x axis is 3.5 times coarser (so the plans transpose it first and resample it on its own), with an
    untrained artifact of two folds."""
    root = tmp_path_factory.mktemp("explain_geometry")
    generate_task(root, 41, "ExplainGeometry", num_cases=6, base_size=(16, 28, 10), spacing=(1.0, 1.0, 3.5), num_test=1)
    plan_and_preprocess(root, 41, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 41)
    _save_untrained(paths, 0, seed=1)
    _save_untrained(paths, 1, seed=2)
    return paths


def _rewrite(source: Path, target: Path) -> None:
    """Copy an image's voxels with the odd spacing, direction and origin."""
    array, geometry = read_image(source)
    spacing = tuple(s * f for s, f in zip(geometry.spacing, ODD_SPACING_SCALE, strict=True))
    write_image(array.astype(np.int16), Geometry(geometry.size, spacing, ODD_ORIGIN, ODD_DIRECTION), target)


@pytest.fixture
def odd_case(anisotropic, tmp_path) -> tuple[Path, Path]:
    """The task's test case with the odd spacing, direction and origin: image and ROI."""
    image, roi = tmp_path / "odd_0000.nii.gz", tmp_path / "odd_roi.nii.gz"
    _rewrite(anisotropic.raw / "imagesTs" / "case_0006_0000.nii.gz", image)
    _rewrite(anisotropic.raw / "labelsTs" / "case_0006.nii.gz", roi)
    return image, roi


def _box(mask: np.ndarray) -> list[list[int]]:
    """The half-open bounding box of a mask, computed here independently of the cropping module."""
    return [[int(hits.min()), int(hits.max()) + 1] for hits in np.nonzero(mask)]


def _expected_crop(image: Path, roi: Path) -> np.ndarray:
    """The voxels the network input was cut from: the ROI box widened by 5% per side inside the nonzero box."""
    data, _ = read_image(image)
    labels, _ = read_image(roi)
    nonzero = _box(binary_fill_holes(data != 0))
    inside = labels[tuple(slice(a, b) for a, b in nonzero)] > 0
    box = []
    for (start, stop), (low, _), size in zip(_box(inside), nonzero, inside.shape, strict=True):
        margin = int((stop - start) * 0.05)
        box.append([low + max(0, start - margin), low + min(size, stop + margin)])
    expected = np.zeros(data.shape, dtype=bool)
    expected[tuple(slice(a, b) for a, b in box)] = True
    return expected


def test_the_geometry_task_is_transposed_and_resampled_per_axis(anisotropic):
    plans = Plans.load(anisotropic.plans_file)
    assert plans.transpose_forward[0] == 2 and plans.transpose_forward != [0, 1, 2]


def test_an_indicator_of_the_network_input_lands_on_the_crop(anisotropic, odd_case):
    image, roi = odd_case
    plans = Plans.load(anisotropic.plans_file)
    array, properties = preprocess_case("odd", [image], roi, plans)
    assert properties.separate_z_axis == 0
    back = to_original_grid(np.ones(plans.image_size, dtype=np.float32), properties, plans)
    expected = _expected_crop(image, roi)
    assert back.shape == expected.shape == tuple(properties.original_size)
    np.testing.assert_array_equal(back, expected.astype(np.float32))
    # the ROI channel goes back onto the ROI
    roi_back = to_original_grid(np.maximum(array[-1], 0), properties, plans) > 0.5
    labels = read_image(roi)[0] > 0
    dice = 2 * (roi_back & labels).sum() / (roi_back.sum() + labels.sum())
    assert dice > 0.9 and not roi_back[~expected].any()


def test_back_mapping_pieces():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(9, 12, 7)).astype(np.float32)
    fitted, offsets = center_pad_or_crop(volume, (5, 16, 7))  # cropped on z, padded on y
    restored = unpad(fitted, offsets, fill=-5.0)
    assert restored.shape == volume.shape
    np.testing.assert_array_equal(restored[2:7], volume[2:7])
    assert (restored[:2] == -5).all() and (restored[7:] == -5).all()
    # voxel centres as the preprocessing's scipy zoom(grid_mode=True) places them
    for axis, size in ((0, 14), (1, 5), (2, 7)):
        factors = [1.0] * 3
        factors[axis] = size / volume.shape[axis]
        ours = resize_axis(volume, axis, size, order=1)
        np.testing.assert_allclose(ours, zoom(volume, factors, order=1, mode="nearest", grid_mode=True), atol=1e-5)


@needs_captum
def test_written_maps_have_the_input_geometry(anisotropic, odd_case, tmp_path):
    from universalclassifier.explain import explain

    image, roi = odd_case
    result = explain(
        anisotropic.data_root / "trained_models", [image], roi, output_folder=tmp_path / "maps", head="lesion_size"
    )
    assert list(result) == ["lesion_size"] and list(result["lesion_size"]) == ["gradcam"]
    entry = result["lesion_size"]["gradcam"]
    assert entry["map"] == str(tmp_path / "maps" / "odd_lesion_size_gradcam.nii.gz")
    assert Path(entry["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written, source = sitk.ReadImage(entry["map"]), sitk.ReadImage(str(image))
    assert written.GetSize() == source.GetSize()
    assert written.GetSpacing() == source.GetSpacing()
    assert written.GetOrigin() == source.GetOrigin()
    assert written.GetDirection() == source.GetDirection()
    saliency = sitk.GetArrayFromImage(written)
    expected = _expected_crop(image, roi)
    assert not saliency[~expected].any() and (saliency[expected] != 0).mean() > 0.5
    assert expected[tuple(entry["max_voxel"])]
    assert abs(saliency[tuple(entry["max_voxel"])]) == np.abs(saliency).max()


@needs_captum
def test_maps_are_averaged_over_the_folds(anisotropic, odd_case, tmp_path):
    from universalclassifier.explain import explain

    image, roi = odd_case
    artifact = anisotropic.data_root / "trained_models"
    maps = []
    for folds in ([0], [1], None):
        entry = explain(artifact, [image], roi, output_folder=tmp_path / str(folds), folds=folds, head="lesion_size")
        maps.append(sitk.GetArrayFromImage(sitk.ReadImage(entry["lesion_size"]["gradcam"]["map"])))
    assert not np.allclose(maps[0], maps[1])
    np.testing.assert_allclose(maps[2], (maps[0] + maps[1]) / 2, rtol=1e-4, atol=1e-6 * np.abs(maps[2]).max())


@needs_captum
def test_api_errors(anisotropic, odd_case, tmp_path):
    from universalclassifier.explain import explain

    image, roi = odd_case
    artifact = anisotropic.data_root / "trained_models"
    choices = r"\['gradcam', 'occlusion', 'both'\]"
    with pytest.raises(UserInputError, match=rf"Unknown method 'lime'; choose one of {choices}"):
        explain(artifact, [image], roi, output_folder=tmp_path, method="lime")
    with pytest.raises(UserInputError, match=r"Unknown head\(s\) \['size'\]; this model has the heads"):
        explain(artifact, [image], roi, output_folder=tmp_path, head="size")
    with pytest.raises(UserInputError, match="got 2 image file"):
        explain(artifact, [image, image], roi, output_folder=tmp_path)
    with pytest.raises(UserInputError, match="Unknown Grad-CAM layer 'Mixed_9z'"):
        explain(artifact, [image], roi, output_folder=tmp_path, gradcam_layer="Mixed_9z")
    assert not list(tmp_path.glob("*.png"))


@pytest.fixture(scope="module")
def every_head_type(tmp_path_factory) -> TaskPaths:
    """A task with nominal, ordinal and regression heads and covariates, with an untrained artifact."""
    root = tmp_path_factory.mktemp("explain_head_types")
    generate_task(root, 43, "ExplainTypes", num_cases=10, base_size=(8, 16, 16), num_test=1, seed=2, label_types=True)
    plan_and_preprocess(root, 43, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 43)
    _save_untrained(paths)
    return paths


@needs_captum
def test_every_head_type_and_covariates(every_head_type, tmp_path):
    from universalclassifier.explain import explain

    artifact = every_head_type.data_root / "trained_models"
    image = every_head_type.raw / "imagesTs" / "case_0010_0000.nii.gz"
    roi = every_head_type.raw / "labelsTs" / "case_0010.nii.gz"
    with pytest.raises(UserInputError, match="trained with the covariates"):
        explain(artifact, [image], roi, output_folder=tmp_path)
    result = explain(
        artifact,
        [image],
        roi,
        output_folder=tmp_path,
        method="both",
        covariates={"age": 63, "sex": "F"},
        occlusion_window=0.5,
        occlusion_stride=0.5,
    )
    targets = {head: entry["occlusion"]["target"] for head, entry in result.items()}
    assert targets == {
        "lesion_contrast": "log-odds of lesion_contrast = 'brighter' (value 1)",
        "lesion_size": "ordinal score (sum of the cumulative logits)",
        "lesion_volume": "predicted value (target units)",
        "contrast_strength": "log-odds of contrast_strength = 'strong' (value 1)",
        "high_risk": "log-odds of high_risk = 'yes' (value 1)",
    }
    for head, entry in result.items():
        for method in ("gradcam", "occlusion"):
            saliency = sitk.GetArrayFromImage(sitk.ReadImage(entry[method]["map"]))
            assert np.isfinite(saliency).all() and np.abs(saliency).max() > 0, (head, method)


def test_targets_per_head_type():
    from universalclassifier.explain.targets import HeadTarget
    from universalclassifier.plans import ClassificationLabel

    outputs = [
        torch.tensor([[0.5, 2.0]]),
        torch.tensor([[0.1, 0.7, 0.3]]),
        torch.tensor([[1.0, -0.5]]),
        torch.tensor([[0.25]]),
    ]
    labels = [
        ClassificationLabel("binary", "nominal", ("a", "b")),
        ClassificationLabel("three", "nominal", ("a", "b", "c")),
        ClassificationLabel("grade", "ordinal", ("g1", "g2", "g3")),
        ClassificationLabel("volume", "regression", (), target_mean=10.0, target_sd=4.0),
    ]
    predictions = [np.array([0.2, 0.8]), np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.3, 0.4]), np.array([11.0])]
    targets = [HeadTarget.for_head(i, label, p) for i, (label, p) in enumerate(zip(labels, predictions, strict=True))]
    assert [t.value for t in targets] == [None, 2, None, None]
    values = [float(t.reduce(outputs)[0]) for t in targets]
    assert values == pytest.approx([1.5, 0.3, 0.5, 11.0])


def test_missing_captum_says_how_to_install(monkeypatch):
    from universalclassifier.explain.attribution import require_captum

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(UserInputError, match=r"pip install 'universalclassifier\[explain\]'"):
        require_captum()


# ------------------------------------------------------------------------------------------ the lesion


LESION_GRID = (24, 24, 24)
LESION_TASK = 42
NUM_TRAINING = 12
HELD_OUT = range(NUM_TRAINING, NUM_TRAINING + 4)  # brighter, darker, brighter, darker


def _lesion_case(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, organ (the ROI) and lesion of case `index`: a lesion of radius 2.5-3.2 voxels in an organ of radius
    about 8, brighter (odd index, label 1) or darker (even) than the organ by 8 noise SDs."""
    rng = np.random.default_rng([7, index])
    grid = np.meshgrid(*[np.arange(n) + 0.5 for n in LESION_GRID], indexing="ij", sparse=True)
    extent = np.asarray(LESION_GRID, dtype=float)

    def ellipsoid(center: np.ndarray, radii: np.ndarray) -> np.ndarray:
        return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True)) <= 1

    body = ellipsoid(extent / 2, extent * 0.47)
    organ_center, organ_radii = extent / 2 + rng.uniform(-1, 1, 3), extent * rng.uniform(0.32, 0.36, 3)
    organ = ellipsoid(organ_center, organ_radii) & body
    radius = rng.uniform(2.5, 3.2)
    lesion_center = organ_center + rng.uniform(-0.5, 0.5, 3) * (organ_radii - radius - 1)
    lesion = ellipsoid(lesion_center, np.full(3, radius)) & organ
    image = np.zeros(LESION_GRID, dtype=np.float32)
    image[body], image[organ], image[lesion] = 40, 90, 90 + (80 if index % 2 else -80)
    image[body] += rng.normal(0, 10, int(body.sum()))
    return np.round(image).astype(np.int16), organ.astype(np.uint8), lesion


def _write_lesion_task(root: Path) -> Path:
    folder = root / "raw" / "nnUNet_raw_data" / f"Task{LESION_TASK:03d}_ExplainLesion"
    geometry = Geometry(LESION_GRID, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    for split in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / split).mkdir(parents=True)
    training = []
    for index in [*range(NUM_TRAINING), *HELD_OUT]:
        image, organ, _ = _lesion_case(index)
        split = "Tr" if index < NUM_TRAINING else "Ts"
        write_image(image, geometry, folder / f"images{split}" / f"case_{index:04d}_0000.nii.gz")
        write_image(organ, geometry, folder / f"labels{split}" / f"case_{index:04d}.nii.gz")
        if split == "Tr":
            training.append(
                {
                    "image": f"./imagesTr/case_{index:04d}.nii.gz",
                    "label": f"./labelsTr/case_{index:04d}.nii.gz",
                    "lesion_brighter": index % 2,
                }
            )
    dataset = {
        "name": "ExplainLesion",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "organ"},
        "classification_labels": [{"name": "lesion_brighter", "values": {"0": "darker", "1": "brighter"}}],
        "numTraining": len(training),
        "training": training,
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return folder


@pytest.fixture(scope="module")
def lesion_model(tmp_path_factory) -> TaskPaths:
    """The lesion task with fold `all` trained briefly (6 epochs of 6 batches, the default recipe)."""
    root = tmp_path_factory.mktemp("explain_lesion")
    _write_lesion_task(root)
    plan_and_preprocess(root, LESION_TASK, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, LESION_TASK)
    options = TrainingOptions(
        max_num_epochs=6, num_batches_per_epoch=6, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
    )
    ClassifierTrainer(paths, "all", options).run_training()
    return paths


def _held_out(paths: TaskPaths, index: int) -> tuple[Path, Path]:
    return paths.raw / "imagesTs" / f"case_{index:04d}_0000.nii.gz", paths.raw / "labelsTs" / f"case_{index:04d}.nii.gz"


@needs_captum
def test_positive_attribution_lies_on_the_lesion(lesion_model, tmp_path):
    from universalclassifier.explain import explain

    artifact = lesion_model.data_root / "trained_models"
    for index in HELD_OUT:  # the model has learned the task
        probability = predict(artifact, [_held_out(lesion_model, index)[0]], _held_out(lesion_model, index)[1])[0]
        assert (probability > 0.5) == bool(index % 2), (index, probability)
    for index in [i for i in HELD_OUT if i % 2]:
        image, roi = _held_out(lesion_model, index)
        maps = explain(artifact, [image], roi, output_folder=tmp_path, method="both", occlusion_stride=0.25)
        _, _, lesion = _lesion_case(index)
        near = binary_dilation(lesion, iterations=2)
        fractions = {}
        for method, entry in maps["lesion_brighter"].items():
            saliency = sitk.GetArrayFromImage(sitk.ReadImage(entry["map"]))
            positive = np.clip(saliency, 0, None)
            fractions[method] = float(positive[near].sum() / positive.sum())
            chance = near.sum() / (saliency != 0).sum()  # the dilated lesion's share of the voxels with a value
            assert fractions[method] > 2 * chance, (index, method, fractions, chance)
        logger.info("case %d: positive attribution within 2 voxels of the lesion: %s", index, fractions)
        assert max(fractions.values()) > 0.5, (index, fractions)


# ------------------------------------------------------------------------------------------ command line


@pytest.fixture
def input_folders(anisotropic, tmp_path) -> tuple[Path, Path]:
    """A flat input folder with two cases (.nii.gz and .mha) and their ROIs."""
    images, rois = tmp_path / "in", tmp_path / "seg"
    images.mkdir()
    rois.mkdir()
    raw = anisotropic.raw
    shutil.copy(raw / "imagesTs" / "case_0006_0000.nii.gz", images / "first_0000.nii.gz")
    shutil.copy(raw / "labelsTs" / "case_0006.nii.gz", rois / "first.nii.gz")
    array, geometry = read_image(raw / "imagesTr" / "case_0001_0000.nii.gz")
    write_image(array.astype(np.int16), geometry, images / "second_0000.mha")
    labels, _ = read_image(raw / "labelsTr" / "case_0001.nii.gz")
    write_image(labels.astype(np.uint8), geometry, rois / "second.mha")
    return images, rois


@needs_captum
def test_uc_explain_writes_a_map_and_png_per_case_and_head(anisotropic, input_folders, tmp_path):
    images, rois = input_folders
    out = tmp_path / "out"
    result = run_script("uc_explain.sh", str(anisotropic.data_root), "-i", str(images), "-o", str(out), "-s", str(rois))
    assert result.returncode == 0, result.stderr
    expected = [
        f"{case}_{head}_gradcam.{ext}"
        for case, suffix in (("first", "nii.gz"), ("second", "mha"))
        for head in ("lesion_contrast", "lesion_size")
        for ext in (suffix, "png")
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    written = sitk.ReadImage(str(out / "second_lesion_size_gradcam.mha"))
    assert written.GetSize() == sitk.ReadImage(str(images / "second_0000.mha")).GetSize()


@needs_captum
def test_uc_explain_errors(anisotropic, input_folders, tmp_path, capsys):
    images, rois = input_folders
    common = [str(anisotropic.data_root), "-i", str(images), "-o", str(tmp_path / "out"), "-s", str(rois), "--quiet"]
    assert explain_main([*common, "--head", "lesion_contrast", "nope"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    heads = "['lesion_contrast', 'lesion_size']"
    assert error == [f"error: Unknown head(s) ['nope']; this model has the heads {heads}."], error
    with pytest.raises(SystemExit) as exit_info:
        explain_main([*common, "--method", "lime"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'lime'" in capsys.readouterr().err
    assert explain_main(common[:-3] + ["--quiet"]) == 2  # a model trained with ROIs needs -s
    assert "pass the ROI folder with -s" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
