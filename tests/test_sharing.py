"""uc_export / uc_install_model and predict() on a model zip: the round trip, the model card, and every refusal of a
zip that is not exactly what uc_export wrote (changed bytes, zip-slip, symbolic links, oversize members)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import universalclassifier.sharing.cache as cache_module
from helpers import assert_self_contained, html_tables, markdown_tables, run_script
from universalclassifier.artifact.checkpoint import MAX_CHECKPOINT_BYTES
from universalclassifier.cli import predict_main
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.evaluation.validation_files import write_validation_files
from universalclassifier.inference.predict import predict
from universalclassifier.paths import REFERENCE_FOLDER, ArtifactLayout, TaskPaths
from universalclassifier.plans import Plans
from universalclassifier.sharing.cache import artifact_folder
from universalclassifier.sharing.cli import export_main, install_model_main
from universalclassifier.sharing.export import export_model
from universalclassifier.sharing.install import install_model
from universalclassifier.sharing.manifest import MANIFEST_NAME
from universalclassifier.sharing.model_card import MODEL_CARD_HTML, MODEL_CARD_JSON, MODEL_CARD_MD
from universalclassifier.sharing.safe_zip import MAX_MEMBER_BYTES, ZipLimits
from universalclassifier.version import __version__
from untrained_artifact import held_out_case, make_untrained_artifact

TASK_ID = 41
CHAIN = "nnUNet/3d_fullres/Task041_TinyUntrained/ClassifierTrainer__UniversalClassifierPlansv1.0"
PLANS_MEMBER = f"{CHAIN}/plans.json"
INTENDED_USE = "Research only: ranks synthetic lesions by contrast; never for patient care.\n"


def _fake_validation(folder: Path, plans: Plans, case_ids: list[str], seed: int) -> None:
    """Out-of-fold predictions of `case_ids` (targets cycling through the values, probabilities random)."""
    rng = np.random.default_rng(seed)
    labels = plans.classification_labels
    targets = {head.name: [n % head.num_values for n in range(len(case_ids))] for head in labels}
    predictions = {head.name: rng.dirichlet(np.ones(head.num_values), size=len(case_ids)) for head in labels}
    write_validation_files(folder, case_ids, labels, targets, predictions, {"fold": folder.parent.name})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TaskPaths:
    """An untrained model with folds 0 and 1 (copies of fold `all`), their out-of-fold predictions summarized by
    uc_summarize's function (cv report, plots, calibration.json) beside a radiomics reference, and files that are not
    exported (model_latest, validation/)."""
    paths = make_untrained_artifact(tmp_path_factory.mktemp("sharing"), TASK_ID)
    trainer = paths.trainer_folder()
    plans = Plans.load(trainer / ArtifactLayout.PLANS)
    for fold in (0, 1):
        shutil.copytree(trainer / "all", trainer / f"fold_{fold}")
        shutil.copy(trainer / "all" / ArtifactLayout.FINAL, trainer / f"fold_{fold}" / ArtifactLayout.LATEST)
        case_ids = [f"case_{fold}_{n:03d}" for n in range(12)]
        _fake_validation(trainer / f"fold_{fold}" / ArtifactLayout.VALIDATION, plans, case_ids, fold)
        reference = trainer.parent / REFERENCE_FOLDER / f"fold_{fold}" / ArtifactLayout.VALIDATION
        _fake_validation(reference, plans, case_ids, 10 + fold)
    summarize_cross_validation(trainer, num_resamples=50, planned=["fold_0", "fold_1"])
    return paths


@pytest.fixture(scope="module")
def exported(trained: TaskPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip of folds 0 and 1, with an intended-use text."""
    output = tmp_path_factory.mktemp("export") / "model.zip"
    export_model(trained.data_root, TASK_ID, output, intended_use=INTENDED_USE)
    return output


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache (XDG_CACHE_HOME in tmp_path) and an empty in-process memo of extracted zips."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache_module, "_EXTRACTED", {})
    return tmp_path / "xdg" / "universalclassifier" / "models"


def _rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """Copy a zip member by member, replacing (bytes) or dropping (None) the members named in `change`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename not in change:
                new.writestr(info, old.read(info))
            elif change[info.filename] is not None:
                new.writestr(info, change[info.filename])


def _small_zip(
    path: Path,
    members: dict[str, bytes],
    extra: dict[str, zipfile.ZipInfo | None] | None = None,
    written: dict[str, bytes] | None = None,
) -> Path:
    """A zip of `members` (full names) with a manifest listing them, plus unlisted `extra` members (a ZipInfo, or None
    for a regular file of that name) and, for the names in `written`, other content than the manifest lists."""
    files = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in members.items()
    ]
    manifest = {
        "format": "universalclassifier-model-zip", "format_version": 1, "package_version": __version__,
        "trainer_folder": CHAIN, "files": files,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, (written or {}).get(name, data))
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
        for name, info in (extra or {}).items():
            archive.writestr(info if info is not None else name, name.encode())
    return path


def _declare_size(path: Path, name: str, size: int) -> None:
    """Make a zip declare `size` uncompressed bytes for member `name`, in its local header and central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    data[local + 22:local + 26] = struct.pack("<I", size)
    start = data.find(b"PK\x01\x02")
    while start >= 0:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46:start + 46 + name_length] == name.encode():
            data[start + 24:start + 28] = struct.pack("<I", size)
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------- export and model card


def test_export_holds_the_chosen_folds_card_reports_and_manifest(exported: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(MANIFEST_NAME))
        contents = {name: archive.read(name) for name in names}
    below = {name.removeprefix(CHAIN + "/") for name in names if name != MANIFEST_NAME}
    plots = {name for name in below if name.startswith("cv_plots/")}
    assert plots and all(name.endswith(".png") for name in plots)
    assert below - plots == {
        "plans.json", "calibration.json", "cv_summary.json", "cv_report.md", "cv_report.html", MODEL_CARD_MD,
        MODEL_CARD_HTML, MODEL_CARD_JSON,
        *(f"fold_{k}/model_final_checkpoint.model{suffix}" for k in (0, 1) for suffix in ("", ".json")),
    }  # not fold `all`, model_latest, validation/ or anything of preprocessed/
    assert manifest["trainer_folder"] == CHAIN and manifest["package_version"] == __version__
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == names - {MANIFEST_NAME}
    for name, entry in listed.items():
        assert entry["size"] == len(contents[name])
        assert entry["sha256"] == hashlib.sha256(contents[name]).hexdigest()


def test_model_card_names_heads_values_counts_metrics_and_versions(trained: TaskPaths, exported: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        card = json.loads(archive.read(f"{CHAIN}/{MODEL_CARD_JSON}"))
        markdown = archive.read(f"{CHAIN}/{MODEL_CARD_MD}").decode()
        page = archive.read(f"{CHAIN}/{MODEL_CARD_HTML}").decode()
        plots = [name for name in archive.namelist() if name.startswith(f"{CHAIN}/cv_plots/")]
    dataset = json.loads((trained.raw / "dataset.json").read_text())
    summary = json.loads((trained.trainer_folder() / "cv_summary.json").read_text())

    assert card["task"]["name"] == "Task041_TinyUntrained"
    assert card["inputs"]["modalities"] == {"0": "CT"}
    assert card["inputs"]["roi"]["required"] is True and card["inputs"]["roi"]["labels"] == dataset["labels"]
    assert [(h["name"], h["type"], h["values"]) for h in card["heads"]] == [
        (label["name"], "ordinal" if label["ordinal"] else "nominal", label["values"])
        for label in dataset["classification_labels"]
    ]
    for head, label in zip(card["heads"], dataset["classification_labels"], strict=True):
        expected = {
            name: sum(case[label["name"]] == int(value) for case in dataset["training"])
            for value, name in label["values"].items()
        }
        assert head["training_cases_per_value"] == expected and sum(expected.values()) == 6
    assert card["training_data"]["num_training_cases"] == 6
    assert card["training_data"]["fingerprint"]["num_cases"] == 6
    assert card["training"]["trainer"] == "ClassifierTrainer"
    assert card["training"]["recipe"]["all_folds"]["optimizer"] == "adamw"
    assert card["training"]["budget"]["all_folds"]["max_num_epochs"] == 1
    assert list(card["training"]["folds"]) == ["fold_0", "fold_1"] == card["exported"]["folds"]
    assert card["exported"]["versions"]["universalclassifier"] == __version__
    assert card["exported"]["versions"]["torch"] == torch.__version__
    for name, head in card["cross_validation"]["heads"].items():
        assert head["auc"] == summary["heads"][name]["auc"]
        assert head["auc_ci_95"] == summary["heads"][name]["auc_ci_95"]
        assert head["num_cases"] == 24
    reference = card["radiomics_reference"]
    assert reference["num_cases"] == 24
    assert reference["heads"]["lesion_contrast"]["deep_minus_reference_auc"]["num_cases"] == 24
    assert card["calibration"]["fitted_on_folds"] == ["fold_0", "fold_1"]
    assert card["calibration"]["applied_to_exported_folds"] is True
    assert card["intended_use"] == INTENDED_USE

    for text in ("## Intended use", INTENDED_USE.strip(), "lesion_contrast", "darker = 3, brighter = 3",
                 "small = 2, medium = 2, large = 2", f"universalclassifier {__version__}", f"torch {torch.__version__}",
                 "| lesion_size | 24 |", "## Radiomics reference", "Deep model minus reference", "## Calibration"):
        assert text in markdown, text
    assert "case_0" not in markdown + json.dumps(card)  # no case ids of the training data
    assert str(trained.data_root) not in markdown + json.dumps(card)  # and no paths
    # the same card as one page: the same tables, and the cross-validation plots the markdown links embedded
    linked = [head["plots"][kind] for head in card["cross_validation"]["heads"].values() for kind in head["plots"]]
    assert linked and all(f"({path})" in markdown and f"{CHAIN}/{path}" in plots for path in linked)
    assert_self_contained(page, len(linked))
    assert html_tables(page) == markdown_tables(markdown) and "Intended use" in page


def test_model_card_placeholder_without_intended_use(trained: TaskPaths, tmp_path: Path) -> None:
    export_model(trained.data_root, TASK_ID, tmp_path / "one_fold.zip", folds=[1])
    with zipfile.ZipFile(tmp_path / "one_fold.zip") as archive:
        card = json.loads(archive.read(f"{CHAIN}/{MODEL_CARD_JSON}"))
        markdown = archive.read(f"{CHAIN}/{MODEL_CARD_MD}").decode()
        names = archive.namelist()
    assert card["intended_use"] is None and "Not written yet" in markdown
    assert card["exported"]["folds"] == ["fold_1"] and not any("fold_0" in name for name in names)
    assert card["calibration"]["fitted_on_folds"] == ["fold_0", "fold_1"]


def test_export_refuses_unknown_trainer_missing_folds_and_other_suffixes(trained: TaskPaths, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="trained: ClassifierTrainer__UniversalClassifierPlansv1.0"):
        export_model(trained.data_root, TASK_ID, tmp_path / "m.zip", trainer="ClassifierTrainerAUC23")
    with pytest.raises(UserInputError, match="fold_3"):
        export_model(trained.data_root, TASK_ID, tmp_path / "m.zip", folds=[3])
    with pytest.raises(UserInputError, match=r"must be a \.zip file"):
        export_model(trained.data_root, TASK_ID, tmp_path / "m.tar")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ install and predict on zip


def test_round_trip_export_install_predict_gives_identical_probabilities(
    trained: TaskPaths, exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("installing must not load (unpickle) anything")

    monkeypatch.setattr(torch, "load", refuse)
    installed = install_model(exported, tmp_path / "elsewhere")
    monkeypatch.undo()
    assert installed == (tmp_path / "elsewhere" / "trained_models" / CHAIN).resolve()
    assert (installed / MODEL_CARD_MD).is_file() and not (installed / "all").exists()
    images, roi = held_out_case(trained)
    original = predict(trained.data_root / "trained_models", images, roi, device="cpu")
    assert predict(tmp_path / "elsewhere" / "trained_models", images, roi, task=TASK_ID, device="cpu") == original


def test_predict_and_uc_predict_accept_the_zip_path(
    trained: TaskPaths, exported: Path, model_cache: Path, tmp_path: Path
) -> None:
    images, roi = held_out_case(trained)
    original = predict(trained.data_root / "trained_models", images, roi, device="cpu")
    assert predict(exported, images, roi, device="cpu") == original
    digest = hashlib.sha256(exported.read_bytes()).hexdigest()
    assert [p.name for p in model_cache.iterdir()] == [digest]  # extracted once, keyed by the zip's SHA-256
    assert predict(str(exported), images, roi, device="cpu") == original

    inputs, seg, out = tmp_path / "in", tmp_path / "seg", tmp_path / "out"
    inputs.mkdir(), seg.mkdir()
    shutil.copy(images[0], inputs / "case_0006_0000.nii.gz")
    shutil.copy(roi, seg / "case_0006.nii.gz")
    argv = [str(exported), "-i", str(inputs), "-s", str(seg), "-o", str(out), "--quiet"]
    assert predict_main(argv) == 0
    result = json.loads((out / "case_0006.json").read_text())
    assert [result["lesion_contrast"], result["lesion_size"]] == original


def test_a_changed_cached_copy_is_extracted_again(exported: Path, model_cache: Path) -> None:
    folder = artifact_folder(exported)
    plans = folder / CHAIN / "plans.json"
    original = plans.read_bytes()
    plans.write_bytes(original.replace(b"TinyUntrained", b"TinyChanged__"))
    (folder / CHAIN / "fold_0" / "extra.txt").write_text("not from the zip")
    cache_module._EXTRACTED.clear()  # a new process
    assert artifact_folder(exported) == folder
    assert plans.read_bytes() == original and not (folder / CHAIN / "fold_0" / "extra.txt").exists()


def test_install_twice_is_a_no_op_and_a_different_model_needs_force(exported: Path, tmp_path: Path) -> None:
    installed = install_model(exported, tmp_path)
    assert install_model(exported, tmp_path) == installed
    (installed / "fold_0" / ArtifactLayout.LATEST).write_bytes(b"my own training")
    with pytest.raises(UserInputError, match=r"already holds a different model .*fold_0/model_latest.model.*--force"):
        install_model(exported, tmp_path)
    assert install_model(exported, tmp_path, force=True) == installed
    assert not (installed / "fold_0" / ArtifactLayout.LATEST).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["trained_models"]  # no staging folder left behind


# ----------------------------------------------------------------------------------------------------- refusals


def test_a_changed_member_is_refused_by_install_and_predict(
    trained: TaskPaths, exported: Path, tmp_path: Path, model_cache: Path
) -> None:
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(exported) as archive:
        plans = archive.read(f"{CHAIN}/plans.json")
    _rewrite(exported, tampered, {f"{CHAIN}/plans.json": plans.replace(b'"batch_size": 4', b'"batch_size": 5')})
    message = rf"tampered.zip: member '{PLANS_MEMBER}' does not match its SHA-256"
    with pytest.raises(UserInputError, match=message):
        install_model(tampered, tmp_path / "data")
    with pytest.raises(UserInputError, match=message):
        predict(tampered, *held_out_case(trained), device="cpu")
    assert not (tmp_path / "data" / "trained_models" / "nnUNet").exists()
    assert not list(model_cache.iterdir())  # the refused extraction left nothing behind


def test_a_flipped_byte_in_a_stored_checkpoint_is_refused(exported: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.zip"
    shutil.copy(exported, damaged)
    name = f"{CHAIN}/fold_1/model_final_checkpoint.model"
    with zipfile.ZipFile(damaged) as archive:
        info = archive.getinfo(name)
    with damaged.open("r+b") as stream:
        stream.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
        stream.seek(info.header_offset + 30 + name_length + extra_length + info.compress_size // 2)
        byte = stream.read(1)
        stream.seek(-1, 1)
        stream.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(UserInputError, match=rf"damaged.zip: member '{name}' is damaged"):
        install_model(damaged, tmp_path / "data")


def test_unlisted_missing_and_resized_members_are_refused(exported: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.zip"
    _small_zip(extra, {PLANS_MEMBER: b"{}"}, {f"{CHAIN}/fold_0/model_latest.model": None})
    with pytest.raises(UserInputError, match=r"member '.*fold_0/model_latest.model' is not in its manifest.json"):
        install_model(extra, tmp_path / "data")
    missing = tmp_path / "missing.zip"
    _rewrite(exported, missing, {f"{CHAIN}/cv_report.md": None})
    with pytest.raises(UserInputError, match=r"manifest.json lists '.*cv_report.md', which the zip lacks"):
        install_model(missing, tmp_path / "data")
    resized = tmp_path / "resized.zip"
    with zipfile.ZipFile(exported) as archive:
        report = archive.read(f"{CHAIN}/cv_report.md")
    _rewrite(exported, resized, {f"{CHAIN}/cv_report.md": report + b"\nextra line\n"})
    with pytest.raises(UserInputError, match=r"member '.*cv_report.md' declares .* bytes, its manifest.json"):
        install_model(resized, tmp_path / "data")
    no_manifest = tmp_path / "no_manifest.zip"
    _rewrite(exported, no_manifest, {MANIFEST_NAME: None})
    with pytest.raises(UserInputError, match="has no manifest.json; it was not written by uc_export"):
        install_model(no_manifest, tmp_path / "data")
    not_zip = tmp_path / "not_a.zip"
    not_zip.write_bytes(b"PK but not a zip")
    with pytest.raises(UserInputError, match="not_a.zip is not a zip archive"):
        install_model(not_zip, tmp_path / "data")
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["trained_models"]
    assert not list((tmp_path / "data" / "trained_models").iterdir())


@pytest.mark.parametrize(
    "member",
    ["../../escaped.txt", "/tmp/escaped.txt", f"{CHAIN}/../../../../escaped.txt", "C:/escaped.txt", "..\\escaped.txt"],
)
def test_zip_slip_members_are_refused(member: str, tmp_path: Path) -> None:
    evil = _small_zip(tmp_path / "evil.zip", {PLANS_MEMBER: b"{}"}, {member: None})
    with pytest.raises(UserInputError, match=rf"evil.zip: member {re.escape(repr(member))} .*; refused"):
        install_model(evil, tmp_path / "data" / "root")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in (tmp_path / "data" / "root").iterdir()] == ["trained_models"]
    assert not list((tmp_path / "data" / "root" / "trained_models").iterdir())


def test_manifest_paths_outside_the_trainer_folder_are_refused(tmp_path: Path) -> None:
    evil = _small_zip(tmp_path / "evil.zip", {PLANS_MEMBER: b"{}", "nnUNet/3d_fullres/elsewhere.txt": b"x"})
    with pytest.raises(UserInputError, match=r"evil.zip: manifest.json: the listed file .*elsewhere.txt' is not below"):
        install_model(evil, tmp_path / "data")


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo(f"{CHAIN}/fold_0/model_final_checkpoint.model")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    evil = _small_zip(tmp_path / "link.zip", {PLANS_MEMBER: b"{}"}, {"link": link})
    with pytest.raises(UserInputError, match=r"link.zip: member '.*model_final_checkpoint.model' is a symbolic link"):
        install_model(evil, tmp_path / "data")


def test_oversize_members_and_totals_are_refused(tmp_path: Path) -> None:
    big = _small_zip(tmp_path / "big.zip", {PLANS_MEMBER: b"{}", f"{CHAIN}/fold_0/weights.bin": bytes(5000)})
    with pytest.raises(UserInputError, match=r"member '.*weights.bin' declares 5,000 bytes, more than the 4,000"):
        install_model(big, tmp_path / "data", limits=ZipLimits(max_member_bytes=4000))
    with pytest.raises(UserInputError, match=r"big.zip declares 5,\d{3} bytes in all, more than the 4,500"):
        install_model(big, tmp_path / "data", limits=ZipLimits(max_total_bytes=4500))
    with pytest.raises(UserInputError, match="big.zip has 3 members, more than 2"):
        install_model(big, tmp_path / "data", limits=ZipLimits(max_members=2))


def test_member_cap_is_the_checkpoint_readers_limit_and_reading_a_zip_needs_no_torch() -> None:
    assert MAX_MEMBER_BYTES == MAX_CHECKPOINT_BYTES
    modules = "universalclassifier.sharing.cache, universalclassifier.sharing.install"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_a_member_decompressing_beyond_its_declared_size_is_refused(tmp_path: Path) -> None:
    """A zip bomb's declared size is a lie: extraction stops at it, and the member's CRC then refuses it."""
    bomb = _small_zip(tmp_path / "bomb.zip", {PLANS_MEMBER: bytes(100)}, written={PLANS_MEMBER: bytes(10**7)})
    assert bomb.stat().st_size < 10**5  # ten megabytes of zeros deflate to kilobytes
    _declare_size(bomb, PLANS_MEMBER, 100)
    with pytest.raises(UserInputError, match=rf"bomb.zip: member '{PLANS_MEMBER}' is damaged"):
        install_model(bomb, tmp_path / "data")
    assert not list((tmp_path / "data").rglob("plans.json"))


# ----------------------------------------------------------------------------------------------- command line


def test_command_line_entry_points(
    trained: TaskPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for script, usage in (("uc_export.sh", "usage: uc_export"), ("uc_install_model.sh", "usage: uc_install_model")):
        result = run_script(script, "--help")
        assert result.returncode == 0 and usage in result.stdout, result.stderr
    output = tmp_path / "model.zip"
    assert export_main([str(trained.data_root), "-d", str(TASK_ID), "-f", "0", "-o", str(output), "--quiet"]) == 0
    assert install_model_main([str(output), str(tmp_path / "data"), "--quiet"]) == 0
    installed = tmp_path / "data" / "trained_models" / CHAIN
    assert (installed / "fold_0" / ArtifactLayout.FINAL).is_file() and not (installed / "fold_1").exists()
    (installed / "plans.json").write_text("{}")
    capsys.readouterr()
    assert install_model_main([str(output), str(tmp_path / "data"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "plans.json" in error and "--force" in error


def test_export_with_onnx_ships_model_onnx_and_predicts_from_the_zip_with_onnxruntime(
    trained: TaskPaths, tmp_path: Path, model_cache: Path
) -> None:
    pytest.importorskip("onnxruntime")
    output = tmp_path / "with_onnx.zip"
    assert export_main([str(trained.data_root), "-t", str(TASK_ID), "-o", str(output), "--onnx", "--quiet"]) == 0
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(MANIFEST_NAME))
    assert {f"{CHAIN}/fold_0/model.onnx", f"{CHAIN}/fold_1/model.onnx"} <= names
    assert "fold_0/model.onnx" in json.dumps(manifest)  # listed with its SHA-256 like every other file
    images, roi = held_out_case(trained)
    original = predict(trained.data_root / "trained_models", images, roi, device="cpu")
    from_zip = predict(output, images, roi, engine="onnx")
    assert np.allclose(np.concatenate([np.ravel(v) for v in from_zip]),
                       np.concatenate([np.ravel(v) for v in original]), atol=1e-4)
