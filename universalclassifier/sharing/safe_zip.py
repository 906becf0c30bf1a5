"""Reading an exported model zip without trusting it: every member is checked before anything is written, and every
byte written is checked while it is written.

Refused, each with a UserInputError naming the zip and the member: members that would land outside the target
folder (absolute paths, '..', drive letters), symbolic links and other non-regular members, encrypted members or
compression methods uc_export does not write, duplicate names, more members or more bytes than `ZipLimits` allows (by
the sizes the zip declares, and again by the bytes actually decompressed: a zip bomb stops at its declared size), and
any difference from the manifest: a member it does not list, a listed file that is missing, another size or another
SHA-256. Nothing is unpickled; the checkpoints are only copied.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from universalclassifier.errors import UserInputError
from universalclassifier.plans import MAX_NETWORK_PARAMETERS
from universalclassifier.sharing.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestEntry,
    member_name_problem,
)

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 2**20
# The largest checkpoint the artifact reader accepts (artifact.checkpoint.MAX_CHECKPOINT_BYTES: float32 tensors and
# three optimizer copies of them, plus 64 MiB), written out here because that module imports torch and reading a zip
# must not; tests/test_sharing.py keeps the two equal.
MAX_MEMBER_BYTES = 4 * 4 * MAX_NETWORK_PARAMETERS + 64 * 2**20
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what uc_export writes
_FIX = "use the zip exactly as uc_export wrote it (download it again), or export the model again."


@dataclass(frozen=True)
class ZipLimits:
    """The most a model zip may hold: bytes per member (default: the largest checkpoint the artifact reader accepts),
    bytes over all members, and members."""

    max_member_bytes: int = MAX_MEMBER_BYTES
    max_total_bytes: int = 64 * 2**30
    max_members: int = 100_000


DEFAULT_LIMITS = ZipLimits()


def open_model_zip(zip_path: Path) -> zipfile.ZipFile:
    """The zip archive at `zip_path` opened for reading; a UserInputError when it is not a readable zip file."""
    if not zip_path.is_file():
        raise UserInputError(f"No model zip at {zip_path}; pass the .zip file that uc_export wrote.")
    try:
        return zipfile.ZipFile(zip_path)
    except Exception as exc:  # zipfile raises several types for files that are not (intact) zip archives
        raise UserInputError(
            f"{zip_path} is not a zip archive ({exc}); pass the .zip file that uc_export wrote (predict() and "
            "uc_predict also take a trained_models folder)."
        ) from None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member cannot be extracted, judged by its name and header alone (None if it can)."""
    problem = member_name_problem(info.filename)
    if problem or info.orig_filename != info.filename:  # zipfile cuts a name at its first NUL
        return problem or "holds a NUL character"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 for zips made where files have no Unix mode
    if kind == stat.S_IFLNK:
        return "is a symbolic link; a model zip holds regular files only"
    if info.is_dir() or (kind and kind != stat.S_IFREG):
        return "is not a regular file (a folder entry, device or pipe); a model zip holds regular files only"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in _COMPRESSIONS:
        return f"uses compression method {info.compress_type}, which uc_export never writes"
    return None


def _check_members(archive: zipfile.ZipFile, zip_path: Path, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Every member, checked by name, type and declared size (see the module docstring)."""
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise UserInputError(f"{zip_path} has {len(members):,} members, more than {limits.max_members:,}; {_FIX}")
    for info in members:
        problem = _member_problem(info)
        if problem:
            raise UserInputError(f"{zip_path}: member {info.filename!r} {problem}; refused. {_FIX}")
        if info.file_size > limits.max_member_bytes:
            raise UserInputError(
                f"{zip_path}: member {info.filename!r} declares {info.file_size:,} bytes, more than the "
                f"{limits.max_member_bytes:,} a file of a model may have; refused. {_FIX}"
            )
    duplicates = sorted(name for name, count in Counter(m.filename for m in members).items() if count > 1)
    if duplicates:
        raise UserInputError(f"{zip_path}: member {duplicates[0]!r} appears more than once; refused. {_FIX}")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise UserInputError(
            f"{zip_path} declares {total:,} bytes in all, more than the {limits.max_total_bytes:,} a model may have; "
            f"refused. {_FIX}"
        )
    return members


def _read_manifest(archive: zipfile.ZipFile, zip_path: Path) -> Manifest:
    """The parsed manifest (bounded: a manifest is read only up to MAX_MANIFEST_BYTES)."""
    source = f"{zip_path}: {MANIFEST_NAME}"
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise UserInputError(f"{zip_path} has no {MANIFEST_NAME}; it was not written by uc_export. {_FIX}") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise UserInputError(f"{source} declares {info.file_size:,} bytes, more than {MAX_MANIFEST_BYTES:,}. {_FIX}")
    try:
        with archive.open(info) as stream:
            content = stream.read(MAX_MANIFEST_BYTES + 1)
    except Exception as exc:  # a damaged member: CRC or decompression errors of several types
        raise UserInputError(f"{source} cannot be read ({exc}); {_FIX}") from None
    return Manifest.from_json(content, source)


def read_checked_manifest(archive: zipfile.ZipFile, zip_path: Path, limits: ZipLimits = DEFAULT_LIMITS) -> Manifest:
    """The manifest of a model zip whose members are exactly the manifest and the files it lists, with the sizes it
    lists, within `limits` (the content is checked while extracting, see `extract_model_zip`)."""
    members = _check_members(archive, zip_path, limits)
    manifest = _read_manifest(archive, zip_path)
    listed = manifest.by_path()
    for info in members:
        if info.filename == MANIFEST_NAME:
            continue
        entry = listed.get(info.filename)
        if entry is None:
            raise UserInputError(f"{zip_path}: member {info.filename!r} is not in its {MANIFEST_NAME}; refused. {_FIX}")
        if entry.size != info.file_size:
            raise UserInputError(
                f"{zip_path}: member {info.filename!r} declares {info.file_size:,} bytes, its {MANIFEST_NAME} "
                f"{entry.size:,}; refused. {_FIX}"
            )
    missing = sorted(set(listed) - set(archive.namelist()))
    if missing:
        raise UserInputError(
            f"{zip_path}: {MANIFEST_NAME} lists {missing[0]!r}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, which the zip lacks. {_FIX}"
        )
    return manifest


def _extract_member(archive: zipfile.ZipFile, zip_path: Path, entry: ManifestEntry, destination: Path) -> None:
    """Write one listed member below `destination`, counting and hashing the bytes as they are decompressed."""
    target = destination / entry.path
    if not target.resolve().is_relative_to(destination.resolve()):  # the name checks already exclude this
        raise UserInputError(f"{zip_path}: member {entry.path!r} would be written outside {destination}; refused.")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(entry.path) as source, target.open("xb") as out:
            while chunk := source.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > entry.size:
                    break
                digest.update(chunk)
                out.write(chunk)
    except OSError:  # writing failed (a full disk, ...): its own message names the file
        raise
    except Exception as exc:  # a damaged member: CRC or decompression errors of several types
        raise UserInputError(f"{zip_path}: member {entry.path!r} is damaged ({exc}); refused. {_FIX}") from None
    if size != entry.size:
        raise UserInputError(
            f"{zip_path}: member {entry.path!r} decompresses to {'more than ' if size > entry.size else ''}{size:,} "
            f"bytes, its {MANIFEST_NAME} lists {entry.size:,}; refused. {_FIX}"
        )
    if digest.hexdigest() != entry.sha256:
        raise UserInputError(
            f"{zip_path}: member {entry.path!r} does not match its SHA-256 in {MANIFEST_NAME} (it was changed after "
            f"export or damaged in transfer); refused. {_FIX}"
        )


def extract_model_zip(zip_path: Path, destination: Path, limits: ZipLimits = DEFAULT_LIMITS) -> Manifest:
    """Extract a model zip into the new folder `destination` (its manifest too), checking everything the module
    docstring lists; returns the manifest. On any refusal `destination` is removed again."""
    destination.mkdir(parents=True)
    try:
        with open_model_zip(zip_path) as archive:
            manifest = read_checked_manifest(archive, zip_path, limits)
            for entry in manifest.files:
                _extract_member(archive, zip_path, entry, destination)
        (destination / MANIFEST_NAME).write_bytes(manifest.to_json())
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    logger.debug("Extracted %d file(s) of %s into %s", len(manifest.files), zip_path, destination)
    return manifest
