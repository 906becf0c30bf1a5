"""ONNX export (network/onnx_export.py) and predict(..., engine="onnx") (inference/onnx_engine.py): onnxruntime agrees
with torch for every head type, with ROI descriptors, covariates and zoom, at any batch size; prediction needs no
torch; missing or stale exports and a missing onnxruntime are refused with the fix."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO
from universalclassifier.errors import UserInputError
from universalclassifier.inference.onnx_engine import COVARIATES_INPUT, IMAGE_INPUT, ONNX_MODEL, ZOOM_INPUT
from universalclassifier.network.i3d import adaptive_average, build_network
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import ClassificationLabel
from universalclassifier.synthetic import generate_task
from untrained_artifact import save_untrained_fold

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from universalclassifier.network.onnx_export import (  # noqa: E402  (needs onnx)
    PredictionGraph,
    export_network,
    export_onnx_main,
)

TOLERANCE = 1e-4
LABELS = [
    ClassificationLabel("kind", "nominal", ("a", "b", "c")),
    ClassificationLabel("grade", "ordinal", ("G1", "G2", "G3", "G4")),
    ClassificationLabel("volume", "regression", (), target_mean=12.0, target_sd=3.0),
]
SPATIAL_SIZE = (5, 9, 8)  # odd sizes: the ROI statistics' pooling bins overlap and differ in size
NETWORKS = {
    # every ROI feature, batch norm, standardized features and covariates: all inputs are read
    "roi_descriptors_covariates": dict(
        normalization="batch", num_roi_classes=3, fine_roi_features=True, roi_descriptors=True, roi_volume=True,
        roi_extremes=True, standardize_features=True, num_covariates=4,
    ),
    # the plain backbone with group norm: the graph leaves out the zoom it does not read
    "plain": dict(normalization="group", num_roi_classes=0),
}
COVARIATES = {"age": 63, "sex": "F"}


@pytest.mark.parametrize(
    "size_in, size_out", [((9, 13, 11), (5, 7, 6)), ((7, 8, 5), (3, 4, 5)), ((4, 6, 2), (1, 4, 1))]
)
def test_exported_adaptive_average_equals_torch(monkeypatch, size_in, size_out):
    """The form the ROI statistics' pooling takes while exporting has torch's bins for sizes that do not divide."""
    x = torch.rand(2, 3, *size_in)
    expected = torch.nn.functional.adaptive_avg_pool3d(x, size_out)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert torch.allclose(adaptive_average(x, size_out), expected, atol=1e-6)


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def exported(request, tmp_path_factory) -> tuple[PredictionGraph, object, dict]:
    """A network (random weights and normalization statistics) with its export and onnxruntime session."""
    torch.manual_seed(0)
    options = NETWORKS[request.param]
    network = build_network(
        2, [label.num_values for label in LABELS], head_types=[label.type for label in LABELS], **options
    )
    for module in network.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm3d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    network.heads[1].gaps.data.uniform_(-1.0, 1.0)
    network.eval()
    path = tmp_path_factory.mktemp("onnx") / ONNX_MODEL
    difference = export_network(network, LABELS, SPATIAL_SIZE, path, {"purpose": "test"})
    assert difference <= TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["purpose"] == "test"
    return PredictionGraph(network, LABELS).eval(), session, options


def _inputs(batch_size: int, num_covariates: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(batch_size, 2, *SPATIAL_SIZE)).astype(np.float32)
    image[:, -1] = rng.integers(0, 3, size=(batch_size, *SPATIAL_SIZE)) / 3  # the ROI channel: labels 0-2 / 3
    inputs = {IMAGE_INPUT: image, ZOOM_INPUT: rng.uniform(0.4, 1.0, size=(batch_size, 1)).astype(np.float32)}
    if num_covariates:
        inputs[COVARIATES_INPUT] = rng.normal(size=(batch_size, num_covariates)).astype(np.float32)
    return inputs


def _run_both(graph: PredictionGraph, session, inputs: dict[str, np.ndarray]) -> tuple[list, list]:
    kept = [i.name for i in session.get_inputs()]
    onnx_outputs = session.run(None, {name: inputs[name] for name in kept})
    with torch.inference_mode():
        covariates = inputs.get(COVARIATES_INPUT)
        torch_outputs = graph(
            torch.from_numpy(inputs[IMAGE_INPUT]),
            torch.from_numpy(inputs[ZOOM_INPUT]),
            None if covariates is None else torch.from_numpy(covariates),
        )
    return onnx_outputs, [t.numpy() for t in torch_outputs]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_onnxruntime_matches_torch_for_every_head_type(exported, batch_size):
    graph, session, options = exported
    inputs = _inputs(batch_size, options.get("num_covariates", 0), seed=batch_size)
    onnx_outputs, torch_outputs = _run_both(graph, session, inputs)
    assert [o.shape for o in onnx_outputs] == [(batch_size, 3), (batch_size, 4), (batch_size, 1)]
    for label, onnx_output, torch_output in zip(LABELS, onnx_outputs, torch_outputs, strict=True):
        assert np.abs(onnx_output - torch_output).max() <= TOLERANCE, label.name
    for probabilities in onnx_outputs[:2]:  # nominal and ordinal heads give distributions
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5) and (probabilities >= 0).all()


def test_zoom_and_covariates_reach_the_graph(exported):
    """The ROI size descriptors undo the zoom and the covariates join the features: both change the outputs."""
    graph, session, options = exported
    if "num_covariates" not in options:
        assert {i.name for i in session.get_inputs()} == {IMAGE_INPUT}
        return
    inputs = _inputs(2, 4, seed=7)
    zoomed = {**inputs, ZOOM_INPUT: inputs[ZOOM_INPUT] * 0.5}
    other = {**inputs, COVARIATES_INPUT: inputs[COVARIATES_INPUT] + 1.0}
    base, _ = _run_both(graph, session, inputs)
    for changed in (zoomed, other):
        onnx_outputs, torch_outputs = _run_both(graph, session, changed)
        assert np.abs(onnx_outputs[2] - torch_outputs[2]).max() <= TOLERANCE
        assert np.abs(onnx_outputs[2] - base[2]).max() > 1e-3


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> TaskPaths:
    """Two untrained folds (default recipe: group norm, ROI descriptors) of a task with nominal, ordinal and
    regression heads and covariates, exported with uc_export_onnx."""
    root = tmp_path_factory.mktemp("onnx_artifact")
    generate_task(root, 44, "OnnxTypes", num_cases=10, base_size=(8, 16, 16), num_test=1, seed=2, label_types=True)
    plan_and_preprocess(root, 44, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 44)
    save_untrained_fold(paths, 0, seed=1)
    save_untrained_fold(paths, 1, seed=2)
    assert export_onnx_main([str(root), "-t", "44", "--quiet"]) == 0
    return paths


def _case(paths: TaskPaths) -> tuple[list[Path], Path]:
    return [paths.raw / "imagesTs" / "case_0010_0000.nii.gz"], paths.raw / "labelsTs" / "case_0010.nii.gz"


def _copy_artifact(paths: TaskPaths, target: Path) -> Path:
    """A copy of the artifact's trainer folder (for tests that damage it)."""
    return Path(shutil.copytree(paths.trainer_folder(), target / paths.trainer_folder().name))


def test_predict_with_onnx_equals_torch(onnx_artifact):
    """With mirroring, so that every fold runs eight times (without: see the no-torch test)."""
    from universalclassifier import predict, predict_detailed

    images, roi = _case(onnx_artifact)
    artifact = onnx_artifact.data_root / "trained_models"
    detailed = {
        engine: predict_detailed(artifact, images, roi, covariates=COVARIATES, tta=True, engine=engine)
        for engine in ("torch", "onnx")
    }
    assert [h["head"] for h in detailed["onnx"]] == [h["head"] for h in detailed["torch"]]
    assert {h["type"] for h in detailed["onnx"]} == {"nominal", "ordinal", "regression"}
    for torch_head, onnx_head in zip(detailed["torch"], detailed["onnx"], strict=True):
        assert onnx_head["prediction"] == pytest.approx(torch_head["prediction"], abs=TOLERANCE)
        assert onnx_head.get("probabilities", []) == pytest.approx(torch_head.get("probabilities", []), abs=TOLERANCE)
    values = predict(artifact, images, roi, covariates=COVARIATES, tta=True, engine="onnx")
    assert json.loads(json.dumps(values)) == values  # the contract's plain types


def test_predict_with_onnx_needs_no_torch(onnx_artifact):
    from universalclassifier import predict

    images, roi = _case(onnx_artifact)
    artifact = onnx_artifact.data_root / "trained_models"
    script = textwrap.dedent(
        f"""
        import json, sys
        for name in ("torch", "sklearn", "matplotlib", "batchgenerators"):  # training-only dependencies
            sys.modules[name] = None  # any import of them fails
        from universalclassifier import predict
        from universalclassifier.errors import UserInputError
        arguments = ({str(artifact)!r}, [{str(images[0])!r}], {str(roi)!r})
        values = predict(*arguments, covariates={COVARIATES!r}, engine="onnx")
        assert sys.modules["torch"] is None
        try:
            predict(*arguments, covariates={COVARIATES!r})
        except UserInputError as error:
            assert "engine='torch' needs torch" in str(error), error
        else:
            raise AssertionError("engine='torch' ran without torch")
        print(json.dumps(values))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    without_torch = json.loads(result.stdout.strip().splitlines()[-1])
    with_torch = predict(artifact, images, roi, covariates=COVARIATES)
    for a, b in zip(without_torch, with_torch, strict=True):
        assert np.asarray(a) == pytest.approx(np.asarray(b), abs=TOLERANCE)


def test_a_fold_without_export_is_refused_with_the_fix(onnx_artifact, tmp_path):
    from universalclassifier import predict

    trainer = _copy_artifact(onnx_artifact, tmp_path)
    (trainer / "fold_1" / ONNX_MODEL).unlink()
    images, roi = _case(onnx_artifact)
    with pytest.raises(UserInputError, match=r"fold_1/model\.onnx is missing.*uc_export_onnx DATA -t TASK"):
        predict(trainer, images, roi, covariates=COVARIATES, engine="onnx")
    assert len(predict(trainer, images, roi, covariates=COVARIATES, folds=[0], engine="onnx")) == 5


def test_an_export_of_another_checkpoint_is_refused(onnx_artifact, tmp_path):
    """A fold trained again after its export (here: another fold's export in its place) is not run from it."""
    from universalclassifier import predict

    trainer = _copy_artifact(onnx_artifact, tmp_path)
    shutil.copy(trainer / "fold_1" / ONNX_MODEL, trainer / "fold_0" / ONNX_MODEL)
    images, roi = _case(onnx_artifact)
    with pytest.raises(UserInputError, match=r"fold_0/model\.onnx was exported from another checkpoint.*export"):
        predict(trainer, images, roi, covariates=COVARIATES, engine="onnx")


def test_missing_onnxruntime_and_unknown_engine_are_refused(onnx_artifact, monkeypatch):
    from universalclassifier import predict

    images, roi = _case(onnx_artifact)
    artifact = onnx_artifact.data_root / "trained_models"
    with pytest.raises(UserInputError, match=r"engine must be one of \('torch', 'onnx'\)"):
        predict(artifact, images, roi, covariates=COVARIATES, engine="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserInputError, match=r"needs onnxruntime: pip install 'universalclassifier\[onnx\]'"):
        predict(artifact, images, roi, covariates=COVARIATES, engine="onnx")


def test_export_command_refuses_an_untrained_trainer(onnx_artifact, capsys):
    assert export_onnx_main([str(onnx_artifact.data_root), "-t", "44", "-tr", "ClassifierTrainerAUC23"]) == 2
    assert "No trained model at" in capsys.readouterr().err


def test_uc_predict_with_engine_onnx_matches_torch(onnx_artifact, tmp_path):
    from universalclassifier.cli import predict_main

    covariates = tmp_path / "covariates.csv"
    covariates.write_text("case_id,age,sex\ncase_0010,63,F\n")
    results = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / engine
        code = predict_main([
            str(onnx_artifact.data_root), "-i", str(onnx_artifact.raw / "imagesTs"), "-o", str(out),
            "-s", str(onnx_artifact.raw / "labelsTs"), "-t", "44", "--covariates", str(covariates),
            "--engine", engine, "--quiet",
        ])
        assert code == 0
        results[engine] = json.loads((out / "case_0010.json").read_text())["heads"]
    assert results["onnx"].keys() == results["torch"].keys() and len(results["onnx"]) == 5
    for head, torch_result in results["torch"].items():
        onnx_result = results["onnx"][head]
        assert onnx_result["prediction"] == pytest.approx(torch_result["prediction"], abs=TOLERANCE)
        assert onnx_result.get("probabilities", []) == pytest.approx(
            torch_result.get("probabilities", []), abs=TOLERANCE
        )
