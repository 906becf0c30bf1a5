"""uc_export: one zip holding a trained model, its model card and a manifest, ready for `uc_install_model` and for
`predict()` on the zip itself.

The zip holds the trainer folder under its `trained_models` chain,
`nnUNet/3d_fullres/TaskXXX_Name/<Trainer>__<plans>/`: plans.json, each chosen fold's final checkpoint with its JSON
metadata, and when present calibration.json, cv_summary.json, cv_report.md, cv_report.html and cv_plots/; beside them
MODEL_CARD.md, MODEL_CARD.html (the card as one page with the cross-validation plots embedded) and model_card.json;
at the root manifest.json with the size and SHA-256 of every other member. Not exported: model_latest and
model_best, training logs, the folds' validation predictions (they name the training cases) and anything of
preprocessed/.
"""

from __future__ import annotations

import hashlib
import json
import logging
import stat
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.artifact import check_folds_match_plans, find_fold_folders, load_network_weights, load_plans
from universalclassifier.artifact.checkpoint import metadata_file
from universalclassifier.atomic import atomic_path
from universalclassifier.dataset.dataset_json import DatasetDescription, read_dataset_json
from universalclassifier.errors import UserInputError
from universalclassifier.evaluation.summarize import PLOTS_FOLDER, REPORT_FILE, REPORT_HTML_FILE, SUMMARY_FILE
from universalclassifier.inference.calibration import CALIBRATION_FILE
from universalclassifier.json_files import read_json_file
from universalclassifier.paths import PLANS_IDENTIFIER, TRAINER, ArtifactLayout, TaskPaths
from universalclassifier.planning.fingerprint import DatasetFingerprint
from universalclassifier.planning.plan_and_preprocess import FINGERPRINT_FILENAME
from universalclassifier.reporting.to_html import render_html
from universalclassifier.reporting.to_markdown import render_markdown
from universalclassifier.sharing.manifest import MANIFEST_NAME, Manifest, ManifestEntry
from universalclassifier.sharing.model_card import (
    MODEL_CARD_HTML,
    MODEL_CARD_JSON,
    MODEL_CARD_MD,
    build_model_card,
    model_card_report,
)
from universalclassifier.version import __version__

logger = logging.getLogger(__name__)

# exported from the trainer folder when present
OPTIONAL_FILES = (CALIBRATION_FILE, SUMMARY_FILE, REPORT_FILE, REPORT_HTML_FILE)
MAX_INTENDED_USE_BYTES = 2**20
_CHUNK_BYTES = 2**20


def _dataset(paths: TaskPaths) -> DatasetDescription | None:
    """The task's dataset.json (raw, else the copy in preprocessed/), or None with a warning."""
    for path in (paths.raw / "dataset.json", paths.preprocessed / "dataset.json"):
        if path.is_file():
            try:
                return read_dataset_json(path)[0]
            except UserInputError as exc:
                logger.warning("%s cannot be read (%s); trying the next copy.", path, exc)
    logger.warning(
        "No readable dataset.json of %s in %s or %s: the model card lacks the training cases per value and the ROI "
        "label names.", paths.task_name, paths.raw, paths.preprocessed,
    )
    return None


def _fingerprint(paths: TaskPaths) -> DatasetFingerprint | None:
    """The task's dataset fingerprint, or None with a warning."""
    path = paths.preprocessed / FINGERPRINT_FILENAME
    try:
        return DatasetFingerprint.from_dict(read_json_file(path, "dataset fingerprint"), str(path))
    except UserInputError as exc:
        logger.warning("The model card has no data fingerprint: %s", exc)
        return None


def _trainer_folder(paths: TaskPaths, trainer: str) -> Path:
    """The trained trainer folder of the task, or a UserInputError listing the trained ones."""
    folder = paths.trainer_folder(PLANS_IDENTIFIER, trainer)
    if ArtifactLayout(folder).plans_file.is_file():
        return folder
    parent = folder.parent
    siblings = parent.iterdir() if parent.is_dir() else iter(())
    trained = sorted(p.name for p in siblings if (p / ArtifactLayout.PLANS).is_file())
    listing = f"trained: {', '.join(trained)}" if trained else "no trainer of this task is trained yet"
    raise UserInputError(
        f"No trained model at {folder} ({listing}); train it first, or pass the trainer that was trained with -tr."
    )


def _artifact_files(
    trainer_folder: Path, fold_folders: Sequence[Path], onnx_files: Sequence[Path] = ()
) -> list[tuple[str, Path]]:
    """(path below the trainer folder, file) of everything exported from the trainer folder (with `onnx_files`, the
    folds' fresh model.onnx exports)."""
    final = ArtifactLayout.FINAL
    files = [(ArtifactLayout.PLANS, ArtifactLayout(trainer_folder).plans_file)]
    for fold in fold_folders:
        files += [(f"{fold.name}/{final}", fold / final), (f"{fold.name}/{metadata_file(fold / final).name}",
                                                          metadata_file(fold / final))]
    files += [(f"{path.parent.name}/{path.name}", path) for path in onnx_files]
    files += [(name, trainer_folder / name) for name in OPTIONAL_FILES if (trainer_folder / name).is_file()]
    plots = trainer_folder / PLOTS_FOLDER
    if plots.is_dir():
        files += [
            (f"{PLOTS_FOLDER}/{p.name}", p) for p in sorted(plots.iterdir()) if p.is_file() and not p.is_symlink()
        ]
    return files


def _member_info(name: str, modified: float, compress: int) -> zipfile.ZipInfo:
    """A zip member header: a regular file (rw-r--r--) with the given modification time and compression."""
    info = zipfile.ZipInfo(name, date_time=time.localtime(modified)[:6])
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.compress_type = compress
    return info


def _write_zip(
    output: Path, chain: str, files: Sequence[tuple[str, Path]], generated: dict[str, bytes]
) -> Manifest:
    """Write the zip atomically: `files` (copied and hashed in one pass), `generated` contents and the manifest.
    Checkpoints are stored as they are (torch archives of float tensors barely compress), the rest deflated."""
    entries = []
    with atomic_path(output) as temporary, zipfile.ZipFile(temporary, "w", allowZip64=True) as archive:
        for relative, source in files:
            name = f"{chain}/{relative}"
            compress = zipfile.ZIP_STORED if relative.endswith(ArtifactLayout.FINAL) else zipfile.ZIP_DEFLATED
            info = _member_info(name, source.stat().st_mtime, compress)
            info.file_size = source.stat().st_size  # lets zipfile choose ZIP64 for a checkpoint beyond 2 GiB
            digest, size = hashlib.sha256(), 0
            with source.open("rb") as stream, archive.open(info, "w") as member:
                while chunk := stream.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    member.write(chunk)
            entries.append(ManifestEntry(name, size, digest.hexdigest()))
        now = time.time()
        for relative, content in generated.items():
            name = f"{chain}/{relative}"
            archive.writestr(_member_info(name, now, zipfile.ZIP_DEFLATED), content)
            entries.append(ManifestEntry(name, len(content), hashlib.sha256(content).hexdigest()))
        manifest = Manifest(chain, tuple(entries), __version__)
        archive.writestr(_member_info(MANIFEST_NAME, now, zipfile.ZIP_DEFLATED), manifest.to_json())
    return manifest


def read_intended_use(path: Path) -> str:
    """The text of an intended-use file (markdown, UTF-8, at most MAX_INTENDED_USE_BYTES)."""
    try:
        content = Path(path).read_bytes()[: MAX_INTENDED_USE_BYTES + 1]
        text = content.decode("utf-8")
    except OSError as exc:
        raise UserInputError(f"Cannot read the intended-use file {path}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise UserInputError(f"The intended-use file {path} is not UTF-8 text; save it as UTF-8 markdown.") from None
    if len(content) > MAX_INTENDED_USE_BYTES or not text.strip():
        raise UserInputError(
            f"The intended-use file {path} is empty or longer than {MAX_INTENDED_USE_BYTES:,} bytes; write a few "
            "paragraphs of markdown."
        )
    return text


def export_model(
    data_root: Path | str,
    task: str | int,
    output: Path | str,
    trainer: str = TRAINER,
    folds: Sequence[int | str] | None = None,
    intended_use: str | None = None,
    onnx: bool = False,
) -> Manifest:
    """Export the trained folds of a task as one zip (see the module docstring); returns its manifest.

    Args:
        data_root: the data root holding raw/, preprocessed/ and trained_models/.
        task: task id or name.
        output: the zip to write (must end in .zip; replaced if it exists).
        trainer: the trainer (recipe) whose folds to export.
        folds: the folds to export (default: every trained fold_N, else `all`).
        intended_use: the author's markdown for the model card's "Intended use" section (None: a placeholder).
        onnx: also export each fold to model.onnx (`network.onnx_export.export_onnx`) and ship those files, so that
            the installed model predicts with engine="onnx" (needs the onnx extra here).

    Every exported fold's checkpoint is loaded first (weights only, checked against the plans), so a damaged or stale
    fold is refused here rather than by whoever installs the zip.
    """
    import torch

    output = Path(output).expanduser()
    if output.suffix.lower() != ".zip":
        raise UserInputError(f"The export {output} must be a .zip file, e.g. {output.with_suffix('.zip').name}.")
    paths = TaskPaths.find(data_root, task)
    trainer_folder = _trainer_folder(paths, trainer)
    plans = load_plans(trainer_folder)
    fold_folders = find_fold_folders(trainer_folder, None if folds is None else list(folds))
    fold_metadata = {
        folder.name: load_network_weights(folder, torch.device("cpu"), plans)[1] for folder in fold_folders
    }
    check_folds_match_plans(trainer_folder, plans, fold_metadata)
    card = build_model_card(plans, trainer_folder, fold_metadata, _dataset(paths), _fingerprint(paths), intended_use)
    report = model_card_report(card)
    generated = {
        MODEL_CARD_MD: render_markdown(report).encode("utf-8"),
        MODEL_CARD_HTML: render_html(report, trainer_folder).encode("utf-8"),
        MODEL_CARD_JSON: (json.dumps(card, indent=2) + "\n").encode("utf-8"),
    }
    chain = trainer_folder.relative_to(paths.data_root / "trained_models").as_posix()
    onnx_files: list[Path] = []
    if onnx:
        from universalclassifier.network.onnx_export import export_onnx

        onnx_files = export_onnx(trainer_folder, folds)  # the same folds as fold_folders
    manifest = _write_zip(output, chain, _artifact_files(trainer_folder, fold_folders, onnx_files), generated)
    size = output.stat().st_size
    logger.info(
        "Exported %s (%s; %s) to %s: %d files, %.1f MB. Install it with: uc_install_model %s DATA",
        paths.task_name, trainer_folder.name, ", ".join(fold_metadata), output, len(manifest.files), size / 1e6, output,
    )
    if intended_use is None:
        logger.warning(
            "The model card's 'Intended use' section is a placeholder: write it in a markdown file and export again "
            "with --intended_use FILE before sharing the model."
        )
    return manifest
