"""Batch loading and augmentation on small fake preprocessed cases: shapes, values, seeding, shutdown, errors."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from batchgenerators.transforms.abstract_transforms import Compose
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

from helpers import NUM_ROI_CLASSES, make_plans, write_cases
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.preprocessor import to_network_input
from universalclassifier.training.augmentation import (
    Convert2DTo3DTransform,
    Convert3DTo2DTransform,
    RoiToChannel,
    make_batch_generator,
    training_transforms,
    validation_transforms,
)
from universalclassifier.training.data_loading import CaseBatchLoader

ROI_CHANNEL_VALUES = {0.0, np.float32(1 / 3), np.float32(2 / 3)}
# (number of image channels, image size)
LAYOUTS = [(1, (8, 24, 24)), (2, (12, 20, 16))]


@pytest.fixture(params=LAYOUTS, ids=["1ch-8x24x24", "2ch-12x20x16"])
def cases(request, tmp_path) -> tuple[list[Path], np.ndarray, Plans]:
    num_modalities, size = request.param
    files, targets = write_cases(tmp_path, num_modalities, size)
    return files, targets, make_plans(num_modalities, size)


def expected_input(files: list[Path], key: str) -> np.ndarray:
    return to_network_input(np.load(files[0].parent / f"{key}.npy"), NUM_ROI_CLASSES)


def draw(generator, count: int) -> list[dict]:
    try:
        return [next(generator) for _ in range(count)]
    finally:
        generator.shutdown()


def test_loader_copies_the_drawn_cases(cases):
    files, targets, plans = cases
    loader = CaseBatchLoader(files, targets, batch_size=6)
    np.random.seed(0)
    drawn = set()
    for _ in range(10):
        batch = loader.generate_train_batch()
        assert batch["data"].dtype == np.float32 and batch["data"].shape == (6, plans.num_modalities, *plans.image_size)
        assert batch["seg"].dtype == np.float32 and batch["seg"].shape == (6, 1, *plans.image_size)
        assert batch["target"].dtype == np.float32 and batch["target"].shape == (6, 2)
        for b, key in enumerate(batch["keys"]):
            array = np.load(files[0].parent / f"{key}.npy")
            np.testing.assert_array_equal(batch["data"][b], array[:-1])
            np.testing.assert_array_equal(batch["seg"][b, 0], array[-1])
            np.testing.assert_array_equal(batch["target"][b], targets[int(key[-4:])])
        drawn.update(batch["keys"])
    # six draws from four cases: with replacement, and every case comes up
    assert drawn == {f.stem for f in files}


def test_loader_uses_given_case_ids(cases):
    files, targets, _ = cases
    loader = CaseBatchLoader(files, targets, batch_size=3, case_ids=["a", "b", "c", "d"])
    np.random.seed(1)
    batch = loader.generate_train_batch()
    for b, key in enumerate(batch["keys"]):
        np.testing.assert_array_equal(batch["target"][b], targets["abcd".index(key)])


def test_validation_batches_are_the_network_input(cases):
    files, targets, plans = cases
    for batch in draw(make_batch_generator(files, targets, plans, 3, train=False, num_workers=0, seed=0), 4):
        assert batch["data"].dtype == torch.float32
        assert tuple(batch["data"].shape) == (3, plans.num_modalities + 1, *plans.image_size)
        assert batch["target"].dtype == torch.float32 and tuple(batch["target"].shape) == (3, 2)
        assert "seg" not in batch
        roi = batch["data"][:, -1].numpy()
        assert set(np.unique(roi)) == ROI_CHANNEL_VALUES
        for b, key in enumerate(batch["keys"]):
            np.testing.assert_array_equal(batch["data"][b].numpy(), expected_input(files, key))
            np.testing.assert_array_equal(batch["target"][b].numpy(), targets[int(key[-4:])])


def test_training_batches_are_augmented_and_keep_roi_labels(cases):
    files, targets, plans = cases
    changed = 0
    for batch in draw(make_batch_generator(files, targets, plans, 2, train=True, num_workers=0, seed=3), 10):
        assert batch["data"].dtype == torch.float32
        assert tuple(batch["data"].shape) == (2, plans.num_modalities + 1, *plans.image_size)
        assert batch["target"].dtype == torch.float32 and tuple(batch["target"].shape) == (2, 2)
        roi = batch["data"][:, -1].numpy()
        assert roi.min() >= 0 and roi.max() < 1
        # labels are interpolated as labels (argmax of per-label linear interpolation): no blends appear
        assert set(np.unique(roi)) <= ROI_CHANNEL_VALUES
        for b, key in enumerate(batch["keys"]):
            np.testing.assert_array_equal(batch["target"][b].numpy(), targets[int(key[-4:])])
            changed += not np.array_equal(batch["data"][b].numpy(), expected_input(files, key))
    assert changed > 0


def test_spatial_transforms_move_image_and_roi_together(tmp_path):
    size = (12, 20, 16)
    files, targets = write_cases(tmp_path, 1, size, num_cases=1)
    array = np.load(files[0])
    transforms = training_transforms(make_plans(1, size)).transforms
    spatial_only = Compose([t for t in transforms if isinstance(t, (SpatialTransform, MirrorTransform))])
    label_two = (array[-1] == 2).astype(np.float32)
    np.random.seed(5)
    batch = spatial_only(data=np.repeat(label_two[None, None], 16, 0), seg=np.repeat(array[None, -1:], 16, 0))
    for image, seg in zip(batch["data"][:, 0], batch["seg"][:, 0], strict=True):
        assert set(np.unique(seg)) <= {-1.0, 0.0, 1.0, 2.0}
        overlap = ((image > 0.5) & (seg == 2)).sum()
        assert 2 * overlap / ((image > 0.5).sum() + (seg == 2).sum()) > 0.9


@pytest.mark.parametrize("num_workers", [0, 2])
def test_seeded_batches_are_reproducible(tmp_path, num_workers):
    size = (12, 20, 16)
    files, targets = write_cases(tmp_path, 2, size)
    plans = make_plans(2, size)

    def first_batches(seed: int) -> list[dict]:
        return draw(make_batch_generator(files, targets, plans, 2, train=True, num_workers=num_workers, seed=seed), 4)

    first, again, other = first_batches(11), first_batches(11), first_batches(12)
    for a, b in zip(first, again, strict=True):
        assert a["keys"] == b["keys"]
        torch.testing.assert_close(a["data"], b["data"], rtol=0, atol=0)
        torch.testing.assert_close(a["target"], b["target"], rtol=0, atol=0)
    assert any(not torch.equal(a["data"], c["data"]) for a, c in zip(first, other, strict=True))


def test_dummy_2d_pipeline_keeps_shapes_and_rotates_in_plane(tmp_path):
    size = (4, 32, 32)
    files, targets = write_cases(tmp_path, 1, size)
    plans = make_plans(1, size, dummy_2d=True)
    transforms = training_transforms(plans).transforms
    spatial = next(t for t in transforms if isinstance(t, SpatialTransform))
    assert spatial.patch_size == [32, 32] and spatial.angle_y == spatial.angle_z == (0.0, 0.0)
    assert next(t for t in transforms if isinstance(t, SimulateLowResolutionTransform)).ignore_axes == (0,)

    for batch in draw(make_batch_generator(files, targets, plans, 2, train=True, num_workers=0, seed=2), 8):
        assert tuple(batch["data"].shape) == (2, 2, *size)
        roi = batch["data"][:, -1].numpy()
        assert roi.min() >= 0 and roi.max() < 1

    # slice-wise: a ROI that is constant per slice keeps its slice's label (or the border value) after the transform
    slice_labels = np.array([0.0, 1.0, 2.0, 1.0], dtype=np.float32)
    seg = np.broadcast_to(slice_labels[:, None, None], size)[None, None].repeat(16, 0).copy()
    spatial_2d = Compose([Convert3DTo2DTransform(), spatial, Convert2DTo3DTransform()])
    np.random.seed(4)
    batch = spatial_2d(data=np.zeros((16, 1, *size), dtype=np.float32), seg=seg)
    assert batch["seg"].shape == (16, 1, *size) and batch["data"].shape == (16, 1, *size)
    for z, label in enumerate(slice_labels):
        assert set(np.unique(batch["seg"][:, 0, z])) <= {label, -1.0}
    assert (batch["seg"] == -1).any()  # some sample was rotated or scaled


def test_worker_processes_end_at_shutdown(cases):
    files, targets, plans = cases
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    generator = make_batch_generator(files, targets, plans, 2, train=True, num_workers=2, seed=0)
    batch = next(generator)
    assert tuple(batch["data"].shape) == (2, plans.num_modalities + 1, *plans.image_size)
    workers = {p.pid for p in me.children(recursive=True)} - before
    assert len(workers) == 2
    generator.shutdown()
    assert multiprocessing.active_children() == []
    assert not workers & {p.pid for p in me.children(recursive=True)}
    # a generator that never started and a single-process one shut down as no-ops
    make_batch_generator(files, targets, plans, 2, train=False, num_workers=2, seed=0).shutdown()
    make_batch_generator(files, targets, plans, 2, train=False, num_workers=0, seed=0).shutdown()
    assert multiprocessing.active_children() == []


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_repeated_shutdowns_leave_no_thread_errors(tmp_path):
    # batches sent as torch tensors made the results thread fail on about a third of shutdowns
    size = (12, 20, 16)
    files, targets = write_cases(tmp_path, 2, size)
    plans = make_plans(2, size)
    for seed in range(10):
        draw(make_batch_generator(files, targets, plans, 2, train=True, num_workers=2, seed=seed), 4)
    assert multiprocessing.active_children() == []


def test_roi_to_channel_maps_like_the_inference_input():
    seg = np.array([-1, 0, 1, 2], dtype=np.float32).reshape(1, 1, 4, 1, 1)
    data = np.ones((1, 1, 4, 1, 1), dtype=np.float32)
    result = RoiToChannel(3)(data=data.copy(), seg=seg.copy())
    assert "seg" not in result
    np.testing.assert_allclose(result["data"][0, :, :, 0, 0], [[1, 1, 1, 1], [0, 0, 1 / 3, 2 / 3]], rtol=1e-6)
    validated = validation_transforms(make_plans(1, (4, 1, 1)))(data=data.copy(), seg=seg.copy())
    np.testing.assert_array_equal(validated["data"][0], to_network_input(np.concatenate([data, seg], 1)[0], 3))


def test_invalid_inputs_are_refused(tmp_path):
    files, targets = write_cases(tmp_path, 1, (8, 24, 24), num_cases=3)
    with pytest.raises(ValueError, match="at least one case"):
        CaseBatchLoader([], np.zeros((0, 2), dtype=np.int64), 2)
    with pytest.raises(ValueError, match=r"3 array file\(s\) but 2 row\(s\) of targets"):
        CaseBatchLoader(files, targets[:2], 2)
    with pytest.raises(ValueError, match=r"3 array file\(s\) but 2 case id\(s\)"):
        CaseBatchLoader(files, targets, 2, case_ids=["a", "b"])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        CaseBatchLoader(files, targets, 0)
    with pytest.raises(ValueError, match=r"2D array \(num_cases, num_heads\)"):
        CaseBatchLoader(files, targets[:, 0], 2)
    with pytest.raises(ValueError, match=r"targets must be numbers \(NaN where unknown\)"):
        CaseBatchLoader(files, targets.astype(str), 2)
    with pytest.raises(ValueError, match="does not exist"):
        CaseBatchLoader([*files[:2], tmp_path / "missing.npy"], targets, 2)
    np.save(tmp_path / "odd.npy", np.zeros((2, 8, 24, 20), dtype=np.float32))
    with pytest.raises(ValueError, match="all cases must share one shape"):
        CaseBatchLoader([*files[:2], tmp_path / "odd.npy"], targets, 2)
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0"):
        make_batch_generator(files, targets, make_plans(1, (8, 24, 24)), 2, train=True, num_workers=-1, seed=0)
    with pytest.raises(ValueError, match="num_roi_classes must be an integer >= 1"):
        RoiToChannel(0)
