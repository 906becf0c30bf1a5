"""examples/grand_challenge/process.py (the container entry point) on a tiny model trained in-process."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, series_from_file
from universalclassifier.errors import UserInputError
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.sharing.export import export_model
from universalclassifier.synthetic import generate_task
from universalclassifier.training.trainer import ClassifierTrainer, TrainingOptions

EXAMPLE = REPO / "examples" / "grand_challenge"
PROCESS = EXAMPLE / "process.py"
CONFIG = EXAMPLE / "task_config.json"
TINY = TrainingOptions(
    max_num_epochs=1, num_batches_per_epoch=1, num_val_batches_per_epoch=1, num_workers=0, show_progress=False
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> TaskPaths:
    """A synthetic CT task with ROIs (one test case), fold 0 trained for one batch."""
    root = tmp_path_factory.mktemp("gc_model")
    generate_task(root, 21, "GcDemo", num_cases=6, base_size=(10, 24, 24), num_test=1, extension=".mha", seed=7)
    plan_and_preprocess(root, 21, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 21)
    ClassifierTrainer(paths, 0, TINY).run_training()
    return paths


@pytest.fixture
def input_dir(model, tmp_path) -> Path:
    """The grand-challenge input layout for the task's test case."""
    folder = tmp_path / "input"
    for interface, source in (
        ("ct-image", model.raw / "imagesTs" / "case_0006_0000.mha"),
        ("organ-segmentation", model.raw / "labelsTs" / "case_0006.mha"),
    ):
        (folder / "images" / interface).mkdir(parents=True)
        shutil.copy(source, folder / "images" / interface / "1b2c3d4e-0000-4000-8000-000000000000.mha")
    return folder


def _process(model: TaskPaths, input_dir: Path, output_dir: Path) -> subprocess.CompletedProcess:
    """process.py with the baked-in model (nothing uploaded: the model mount does not exist)."""
    command = [sys.executable, str(PROCESS), "--input", str(input_dir), "--output", str(output_dir)]
    command += ["--model_mount", str(input_dir.parent / "no_model_uploaded")]
    command += ["--artifact", str(model.data_root / "trained_models"), "--config", str(CONFIG)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=input_dir.parent)


def test_writes_one_json_per_output(model, input_dir, tmp_path):
    result = _process(model, input_dir, tmp_path / "output")
    assert result.returncode == 0, result.stderr
    output = tmp_path / "output"
    assert sorted(p.name for p in output.iterdir()) == [
        "lesion-contrast-likelihood.json",
        "lesion-size-likelihoods.json",
    ]
    contrast = json.loads((output / "lesion-contrast-likelihood.json").read_text())
    sizes = json.loads((output / "lesion-size-likelihoods.json").read_text())
    assert isinstance(contrast, float) and 0 <= contrast <= 1
    assert len(sizes) == 3 and all(isinstance(v, float) for v in sizes) and sum(sizes) == pytest.approx(1, abs=1e-6)


def _assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_interface_folder(model, input_dir, tmp_path):
    shutil.rmtree(input_dir / "images" / "organ-segmentation")
    result = _process(model, input_dir, tmp_path / "output")
    _assert_one_line_error(result, "organ-segmentation", "No folder")
    assert not (tmp_path / "output").exists()


def test_two_files_in_one_interface_folder(model, input_dir, tmp_path):
    folder = input_dir / "images" / "ct-image"
    shutil.copy(next(folder.iterdir()), folder / "second.mha")
    result = _process(model, input_dir, tmp_path / "output")
    _assert_one_line_error(result, "ct-image", "exactly one image file", "found 2")


@pytest.fixture(scope="module")
def process_module():
    spec = importlib.util.spec_from_file_location("gc_process", PROCESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"input_interfaces": ["ct-image"]}, "'output_interfaces' must be a non-empty list"),
        ({"input_interfaces": ["a", "a"], "output_interfaces": ["b"]}, "lists an interface twice"),
        ({"input_interfaces": ["../x"], "output_interfaces": ["b"]}, "'input_interfaces' must be"),
        (
            {"input_interfaces": ["a"], "output_interfaces": ["b"], "roi_interface": "c"},
            r"unknown key\(s\) \['roi_interface'\]",
        ),
        (
            {"input_interfaces": ["a"], "output_interfaces": ["b"], "covariate_interfaces": ["age"]},
            "'covariate_interfaces' must map covariate names to interface slugs",
        ),
        (
            {"input_interfaces": ["a"], "output_interfaces": ["b"], "impute_missing_covariates": "yes"},
            "'impute_missing_covariates' must be true or false",
        ),
    ],
)
def test_config_errors(process_module, tmp_path, config, message):
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match=message):
        process_module.load_config(tmp_path / "config.json")


def test_output_count_must_match_the_model(process_module, model, input_dir, tmp_path):
    config = {**json.loads(CONFIG.read_text()), "output_interfaces": ["only-one"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match=r"predicts 2 classification label\(s\) but .* lists 1 output"):
        process_module.run(input_dir, tmp_path / "output", model.data_root / "trained_models", tmp_path / "config.json")
    assert process_module.main(["--config", str(tmp_path / "missing.json")]) == 2


def test_covariates_come_from_value_interfaces(process_module, tmp_path):
    """A model trained with covariates reads each one from its <input>/<interface>.json."""
    root = tmp_path / "data"
    generate_task(root, 22, "GcCovariates", num_cases=10, base_size=(8, 20, 20), num_test=1, seed=2, label_types=True)
    plan_and_preprocess(root, 22, num_workers=1, show_progress=False)
    paths = TaskPaths.find(root, 22)
    ClassifierTrainer(paths, "all", TINY).run_training()
    folder = tmp_path / "input"
    for interface, source in (
        ("ct-image", paths.raw / "imagesTs" / "case_0010_0000.nii.gz"),
        ("organ-segmentation", paths.raw / "labelsTs" / "case_0010.nii.gz"),
    ):
        (folder / "images" / interface).mkdir(parents=True)
        shutil.copy(source, folder / "images" / interface / "image.nii.gz")
    (folder / "patient-age.json").write_text("67.5\n")
    (folder / "patient-sex.json").write_text('"F"\n')
    outputs = ["contrast", "size", "volume", "strength", "risk"]
    config = {
        "input_interfaces": ["ct-image"], "roi_segmentation_interface": "organ-segmentation",
        "output_interfaces": outputs, "covariate_interfaces": {"age": "patient-age", "sex": "patient-sex"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    artifact = root / "trained_models"
    written = process_module.run(folder, tmp_path / "output", artifact, tmp_path / "config.json")
    from universalclassifier import predict

    images = [folder / "images" / "ct-image" / "image.nii.gz"]
    roi = folder / "images" / "organ-segmentation" / "image.nii.gz"
    assert list(written.values()) == predict(artifact, images, roi, covariates={"age": 67.5, "sex": "F"})
    assert json.loads((tmp_path / "output" / "volume.json").read_text()) == written["volume"]
    (folder / "patient-age.json").unlink()
    with pytest.raises(UserInputError, match=r"No file .*patient-age.json for covariate 'age'"):
        process_module.run(folder, tmp_path / "output", artifact, tmp_path / "config.json")


def test_a_dicom_series_interface_folder_is_read_as_the_image(process_module, model, input_dir, tmp_path):
    """grand-challenge may deliver an input as DICOM slices: the interface folder is then read as one series."""
    expected = process_module.run(input_dir, tmp_path / "from_mha", model.data_root / "trained_models", CONFIG)
    image_folder = input_dir / "images" / "ct-image"
    (mha,) = list(image_folder.iterdir())
    series_from_file(mha, tmp_path / "series", "1.2.826.0.1.3680043.2.1125.9.77")
    mha.unlink()
    for slice_file in (tmp_path / "series").iterdir():
        shutil.copy(slice_file, image_folder)
    assert process_module.find_interface_image(input_dir, "ct-image") == image_folder
    written = process_module.run(input_dir, tmp_path / "from_dicom", model.data_root / "trained_models", CONFIG)
    for interface, value in expected.items():
        assert written[interface] == pytest.approx(value, abs=1e-5)
    roi_file = next((input_dir / "images" / "organ-segmentation").iterdir())
    other = series_from_file(roi_file, tmp_path / "other", "1.2.826.0.1.3680043.2.1125.9.78")
    for number, slice_file in enumerate(sorted(other.iterdir())):
        shutil.copy(slice_file, image_folder / f"other_{number}.dcm")
    with pytest.raises(UserInputError, match=r"holds 2 DICOM series"):
        process_module.run(input_dir, tmp_path / "bad", model.data_root / "trained_models", CONFIG)


def test_the_uploaded_model_wins_over_the_baked_in_one(process_module, tmp_path):
    """choose_model: /opt/ml/model (here a temporary folder) when something was uploaded, else the baked-in model."""
    mount, baked_in = tmp_path / "opt_ml_model", tmp_path / "artifact"
    (baked_in / "nnUNet").mkdir(parents=True)
    assert process_module.choose_model(mount, baked_in) == baked_in  # nothing mounted
    mount.mkdir()
    assert process_module.choose_model(mount, baked_in) == baked_in  # mounted, but empty
    (mount / "model.zip").write_bytes(b"PK")
    assert process_module.choose_model(mount, baked_in) == mount / "model.zip"  # a tarball holding a model zip
    assert process_module.choose_model(mount / "model.zip", baked_in) == mount / "model.zip"
    (mount / "other.zip").write_bytes(b"PK")
    with pytest.raises(UserInputError, match=r"holds several model zips \(model.zip, other.zip\)"):
        process_module.choose_model(mount, baked_in)
    for zip_file in mount.iterdir():
        zip_file.unlink()
    (mount / "nnUNet").mkdir()
    assert process_module.choose_model(mount, baked_in) == mount  # a trained_models folder
    shutil.rmtree(mount)
    shutil.rmtree(baked_in / "nnUNet")
    with pytest.raises(UserInputError, match=r"No model: nothing in .*opt_ml_model .* none baked into the image at"):
        process_module.choose_model(mount, baked_in)


def test_predicts_with_an_uploaded_model_zip_or_folder(process_module, model, input_dir, tmp_path, monkeypatch):
    """The entry point on a model mount holding a uc_export zip, and one holding a trained_models folder, with no
    baked-in model: the same outputs as the baked-in run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where predict() extracts the zip
    expected = process_module.run(input_dir, tmp_path / "baked_in", model.data_root / "trained_models", CONFIG)
    mount = tmp_path / "opt_ml_model"
    mount.mkdir()
    export_model(model.data_root, 21, mount / "model.zip")
    absent = tmp_path / "no_baked_in_model"
    for uploaded, output in ((mount, "from_zip"), (model.data_root / "trained_models", "from_folder")):
        argv = ["--input", str(input_dir), "--output", str(tmp_path / output), "--config", str(CONFIG)]
        assert process_module.main([*argv, "--model_mount", str(uploaded), "--artifact", str(absent)]) == 0
        written = {p.stem: json.loads(p.read_text()) for p in (tmp_path / output).iterdir()}
        assert written == expected
    assert any((tmp_path / "cache" / "universalclassifier" / "models").iterdir())
