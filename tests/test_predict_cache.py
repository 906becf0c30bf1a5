"""The predict() model cache: one key per set of weights, one load per key under thread races, bounded size."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import universalclassifier.inference.predict as predict_module
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict import canonical_device, get_predictor
from universalclassifier.paths import NETWORK, PLANS_IDENTIFIER, TRAINER, ArtifactLayout


class FakePredictor:
    """Stands in for the real Predictor: records how it was built and takes a while to 'load'."""

    built: list[tuple] = []
    lock = threading.Lock()

    def __init__(self, artifact_path, folds=None, task=None, device=None) -> None:
        time.sleep(0.2)
        with FakePredictor.lock:
            FakePredictor.built.append((Path(artifact_path), folds, task, device))


@pytest.fixture
def fake_cache(monkeypatch):
    """An empty cache whose loads build FakePredictors."""
    monkeypatch.setattr(predict_module, "Predictor", FakePredictor)
    monkeypatch.setattr(predict_module, "_PREDICTORS", OrderedDict())
    FakePredictor.built = []
    return FakePredictor.built


def make_artifact(root: Path, task: str = "Task001_Cache", folds: tuple[str, ...] = ("fold_0", "fold_1")) -> Path:
    """An artifact layout (no real weights): plans.json and one final checkpoint file per fold."""
    trainer = root / "trained_models" / "nnUNet" / NETWORK / task / f"{TRAINER}__{PLANS_IDENTIFIER}"
    for fold in folds:
        (trainer / fold).mkdir(parents=True)
        (trainer / fold / ArtifactLayout.FINAL).write_bytes(b"")
    (trainer / "plans.json").write_text("{}")
    return trainer


def test_one_set_of_weights_is_cached_once_however_it_is_named(tmp_path, fake_cache, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the default device is the CPU here
    trainer = make_artifact(tmp_path)
    artifact = tmp_path / "trained_models"
    spellings = [
        dict(artifact_path=artifact),
        dict(artifact_path=trainer),
        dict(artifact_path=str(artifact / "nnUNet" / ".." / "nnUNet")),
        dict(artifact_path=artifact, folds=[0, 1]),
        dict(artifact_path=artifact, folds=[1, 0, 1]),
        dict(artifact_path=artifact, folds=("1", 0)),
        dict(artifact_path=artifact, task=1),
        dict(artifact_path=artifact, device="cpu"),
        dict(artifact_path=artifact, device="cpu:0"),
    ]
    predictors = {id(get_predictor(**spelling)) for spelling in spellings}
    assert len(predictors) == 1 and len(fake_cache) == 1
    path, folds, task, device = fake_cache[0]
    assert path == trainer.resolve() and folds == [0, 1] and task is None
    # a subset of the folds is other weights
    get_predictor(artifact, folds=[1])
    assert len(fake_cache) == 2 and fake_cache[1][1] == [1]


@pytest.fixture
def one_gpu(monkeypatch):
    """Let torch report a single CUDA device (nothing is loaded onto it here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_device_is_written_with_its_index(one_gpu):
    assert (
        canonical_device("cuda")
        == canonical_device("cuda:0")
        == canonical_device(torch.device("cuda"))
        == torch.device("cuda", 0)
    )
    assert (
        canonical_device("cpu")
        == canonical_device("cpu:0")
        == canonical_device(torch.device("cpu"))
        == torch.device("cpu")
    )
    assert canonical_device(None) == torch.device("cuda", 0)


@pytest.mark.parametrize(
    "device, message",
    [
        ("graphics-card", "is not a torch device"),
        ("", "is not a torch device"),
        ("meta", "is not supported"),
        ("cuda:1", "only 1 CUDA device"),
    ],
)
def test_unusable_devices_are_refused(one_gpu, device, message):
    with pytest.raises(UserInputError, match=message):
        canonical_device(device)


def test_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserInputError, match="torch sees no CUDA device"):
        canonical_device("cuda")
    assert canonical_device(None) == torch.device("cpu")


def test_cuda_and_cuda0_share_one_entry(tmp_path, fake_cache, one_gpu):
    artifact = make_artifact(tmp_path).parents[3]
    assert get_predictor(artifact, device="cuda") is get_predictor(artifact, device="cuda:0") is get_predictor(artifact)
    assert len(fake_cache) == 1 and fake_cache[0][3] == torch.device("cuda", 0)


def test_racing_threads_load_once(tmp_path, fake_cache):
    artifact = make_artifact(tmp_path).parents[3]
    results: list = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        results.append(get_predictor(artifact))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_cache) == 1 and len({id(r) for r in results}) == 1 and len(results) == 8


def test_cache_is_a_small_lru(tmp_path, fake_cache, monkeypatch):
    assert predict_module.PREDICTOR_CACHE_SIZE == 2
    artifacts = [make_artifact(tmp_path / name, f"Task00{i}_{name}").parents[3] for i, name in enumerate("ABC", 1)]
    a, b, c = artifacts
    first_a = get_predictor(a)
    get_predictor(b)
    assert get_predictor(a) is first_a  # a is now the most recently used
    get_predictor(c)  # evicts b
    assert len(predict_module._PREDICTORS) == 2 and len(fake_cache) == 3
    assert get_predictor(a) is first_a
    get_predictor(b)
    assert len(fake_cache) == 4
    monkeypatch.setattr(predict_module, "PREDICTOR_CACHE_SIZE", 1)
    get_predictor(c)
    assert len(predict_module._PREDICTORS) == 1


@pytest.mark.parametrize("folds", [[], ["x"], [-1], [True], ["fold_0"]])
def test_invalid_folds_are_refused(tmp_path, fake_cache, folds):
    artifact = make_artifact(tmp_path).parents[3]
    with pytest.raises(UserInputError, match="folds must be a non-empty list of fold numbers"):
        get_predictor(artifact, folds=folds)
    assert fake_cache == []
