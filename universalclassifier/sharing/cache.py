"""An exported model zip used in place of an artifact folder: predict() and uc_predict read its extracted copy.

The copy lives in the model cache, `$XDG_CACHE_HOME/universalclassifier/models/<SHA-256 of the zip>/` (without
XDG_CACHE_HOME: `~/.cache/...`), and is made once per zip content by `extract_model_zip` (every member checked
against the manifest). A copy found there is used only while it still matches the zip's manifest file by file; one
that does not is extracted again. In one process, a zip whose path, size and modification time are unchanged is not
hashed again.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from pathlib import Path

from universalclassifier.errors import UserInputError
from universalclassifier.sharing.manifest import MANIFEST_NAME, differing_files, sha256_of_file
from universalclassifier.sharing.safe_zip import (
    DEFAULT_LIMITS,
    ZipLimits,
    extract_model_zip,
    open_model_zip,
    read_checked_manifest,
)

logger = logging.getLogger(__name__)

_Stamp = tuple[str, int, int, int]  # resolved path, size, modification time (ns), inode
_EXTRACTED: dict[_Stamp, Path] = {}
_LOCK = threading.Lock()


def model_cache_root() -> Path:
    """Where extracted model zips are kept: `$XDG_CACHE_HOME/universalclassifier/models`, else
    `~/.cache/universalclassifier/models` (read when called, never at import)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "universalclassifier" / "models"


def artifact_folder(artifact_path: Path | str, cache_root: Path | None = None) -> Path:
    """The folder to read a model from: `artifact_path` itself unless it is a file, which must then be a model zip
    (see `extracted_model_zip`)."""
    path = Path(artifact_path).expanduser()
    return extracted_model_zip(path, cache_root) if path.is_file() else path


def _intact(folder: Path, zip_path: Path, limits: ZipLimits) -> bool:
    """Whether `folder` holds exactly the files of the zip's manifest, with their sizes and hashes."""
    with open_model_zip(zip_path) as archive:
        manifest = read_checked_manifest(archive, zip_path, limits)
    return not differing_files(folder, manifest.by_path(), allowed_extra=(MANIFEST_NAME,))


def extracted_model_zip(zip_path: Path, cache_root: Path | None = None, limits: ZipLimits = DEFAULT_LIMITS) -> Path:
    """The checked, extracted copy of the model zip `zip_path` in the model cache (`cache_root`, default
    `model_cache_root()`), made on first use; a UserInputError names the zip and the member it refuses."""
    info = zip_path.stat()
    stamp = (str(zip_path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    with _LOCK:
        known = _EXTRACTED.get(stamp)
    if known is not None and known.is_dir():
        return known
    digest, _ = sha256_of_file(zip_path)
    root = model_cache_root() if cache_root is None else cache_root
    folder = root / digest
    if folder.is_dir() and not _intact(folder, zip_path, limits):
        logger.warning("The cached copy %s of %s was changed; extracting the zip again.", folder, zip_path)
        shutil.rmtree(folder)
    if not folder.is_dir():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserInputError(
                f"Cannot create the model cache {root} for {zip_path} ({exc.strerror or exc}); set XDG_CACHE_HOME to "
                "a writable folder, or install the model with uc_install_model and pass its trained_models folder."
            ) from None
        partial = root / f".{digest}.{uuid.uuid4().hex}.partial"
        extract_model_zip(zip_path, partial, limits)
        try:
            partial.rename(folder)
        except OSError:  # another process extracted the same zip first
            shutil.rmtree(partial, ignore_errors=True)
            if not folder.is_dir():
                raise
        logger.info("Extracted the model zip %s into %s", zip_path, folder)
    with _LOCK:
        _EXTRACTED[stamp] = folder
    return folder
