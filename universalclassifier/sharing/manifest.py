"""The manifest of an exported model zip (`manifest.json` at its root): where the trainer folder lies in the zip, and
the size and SHA-256 of every other member.

A zip is only used when its members are exactly the manifest's files plus the manifest itself, each with the listed
size and hash (see `sharing/safe_zip.py`). Member names are relative POSIX paths below the trainer folder's chain
`nnUNet/3d_fullres/TaskXXX_Name/<Trainer>__<plans>/`, which is the chain of the `trained_models` folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from universalclassifier.errors import UserInputError
from universalclassifier.paths import NETWORK, TASK_PREFIXES, TRAINER

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "universalclassifier-model-zip"
MANIFEST_FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 2**20  # about 200 bytes per file; an export holds tens of files
MAX_MEMBER_NAME_LENGTH = 1024
_CHUNK_BYTES = 2**20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TASK_FOLDER = re.compile(rf"^(?:{'|'.join(TASK_PREFIXES)})\d{{3}}_\S+$")


@dataclass(frozen=True)
class ManifestEntry:
    """One listed member: its name in the zip, its size in bytes and the SHA-256 of its content (hex)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` holds: the trainer folder's path in the zip, the package version that exported it and the
    listed files (every member except the manifest itself)."""

    trainer_folder: str
    files: tuple[ManifestEntry, ...]
    package_version: str

    @property
    def task_name(self) -> str:
        """The task folder name (TaskXXX_Name or DatasetXXX_Name) of the exported model."""
        return PurePosixPath(self.trainer_folder).parts[2]

    def by_path(self) -> dict[str, ManifestEntry]:
        """The listed files by member name."""
        return {entry.path: entry for entry in self.files}

    def to_dict(self) -> dict:
        """The JSON form written to `manifest.json`."""
        return {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_FORMAT_VERSION,
            "package_version": self.package_version,
            "trainer_folder": self.trainer_folder,
            "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.files],
        }

    def to_json(self) -> bytes:
        """The bytes of `manifest.json` (indented, UTF-8, final newline)."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, content: bytes, source: str) -> Manifest:
        """Parse and check the bytes of a `manifest.json`; `source` (e.g. "model.zip: manifest.json") names it in
        errors. Refuses other formats, unsafe or duplicate paths, paths outside the trainer folder, and sizes or hashes
        that are not well formed."""
        fix = "the zip was not written by uc_export or was changed afterwards; export the model again."
        try:
            raw = json.loads(content.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise UserInputError(f"{source} is not valid JSON ({exc}); {fix}") from None
        if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
            raise UserInputError(f"{source} is not a manifest of {MANIFEST_FORMAT!r}; {fix}")
        if raw.get("format_version") != MANIFEST_FORMAT_VERSION:
            raise UserInputError(
                f"{source} has format_version {raw.get('format_version')!r}; this universalclassifier reads version "
                f"{MANIFEST_FORMAT_VERSION}. Install the version that exported it (package_version "
                f"{raw.get('package_version')!r}), or export the model again with this one."
            )
        trainer_folder, files, version = raw.get("trainer_folder"), raw.get("files"), raw.get("package_version")
        problem = trainer_folder_problem(trainer_folder)
        if problem:
            raise UserInputError(f"{source}: 'trainer_folder' {problem}; {fix}")
        if not isinstance(files, list) or not files or not isinstance(version, str):
            raise UserInputError(f"{source} needs a non-empty list 'files' and a string 'package_version'; {fix}")
        entries = tuple(_entry(item, str(trainer_folder), source, fix) for item in files)
        duplicates = sorted(path for path, count in Counter(e.path for e in entries).items() if count > 1)
        if duplicates:
            raise UserInputError(f"{source} lists {duplicates[:3]} more than once; {fix}")
        return cls(str(trainer_folder), entries, version)


def _entry(item: object, trainer_folder: str, source: str, fix: str) -> ManifestEntry:
    """One checked entry of the manifest's 'files'."""
    if not isinstance(item, dict) or set(item) != {"path", "size", "sha256"}:
        raise UserInputError(f"{source}: every entry of 'files' must hold exactly 'path', 'size' and 'sha256'; {fix}")
    path, size, digest = item["path"], item["size"], item["sha256"]
    problem = member_name_problem(path)
    if problem:
        raise UserInputError(f"{source}: the listed file {path!r} {problem}; {fix}")
    if not str(path).startswith(trainer_folder + "/"):
        raise UserInputError(f"{source}: the listed file {path!r} is not below the trainer folder; {fix}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UserInputError(f"{source}: the listed file {path!r} has the size {size!r}, not a byte count; {fix}")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise UserInputError(f"{source}: the listed file {path!r} has no SHA-256 (64 lowercase hex digits); {fix}")
    return ManifestEntry(path, size, digest)


def member_name_problem(name: object) -> str | None:
    """Why `name` cannot be a member of a model zip (None if it can): it must be a relative POSIX path of plain
    components, without '..', '.', empty components, backslashes, drive letters or control characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_MEMBER_NAME_LENGTH:
        return f"is not a path of 1 to {MAX_MEMBER_NAME_LENGTH} characters"
    if name.startswith("/") or "\\" in name or ":" in name:
        return "is an absolute path or holds '\\' or ':' (a Windows drive); members must be relative POSIX paths"
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name):
        return "holds control characters"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "holds an empty, '.' or '..' component (it could write outside the target folder)"
    return None


def trainer_folder_problem(trainer_folder: object) -> str | None:
    """Why `trainer_folder` is not the chain `nnUNet/3d_fullres/TaskXXX_Name/<Trainer>__<plans>` (None if it is)."""
    problem = member_name_problem(trainer_folder)
    if problem:
        return problem
    parts = str(trainer_folder).split("/")
    if (
        len(parts) != 4
        or parts[:2] != ["nnUNet", NETWORK]
        or not _TASK_FOLDER.match(parts[2])
        or not parts[3].startswith(TRAINER)
        or "__" not in parts[3]
    ):
        return (
            f"is {trainer_folder!r}, not nnUNet/{NETWORK}/TaskXXX_Name/{TRAINER}<variant>__<plans> (the trained_models "
            "chain)"
        )
    return None


def sha256_of_stream(stream: IO[bytes]) -> tuple[str, int]:
    """The SHA-256 (hex) and the number of bytes of what `stream` yields to its end."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_of_file(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a file."""
    with Path(path).open("rb") as stream:
        return sha256_of_stream(stream)


def differing_files(
    folder: Path, expected: Mapping[str, ManifestEntry], allowed_extra: tuple[str, ...] = ()
) -> list[str]:
    """The files that make `folder` differ from `expected` (paths relative to `folder`, POSIX): expected files that
    are missing, symbolic links or of another size or hash, and files that are neither expected nor `allowed_extra`."""
    found = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()}
    differing = sorted(found - set(expected) - set(allowed_extra))
    for relative, entry in sorted(expected.items()):
        path = folder / relative
        if relative not in found or path.is_symlink() or not path.is_file():
            differing.append(relative)
        elif path.stat().st_size != entry.size or sha256_of_file(path)[0] != entry.sha256:
            differing.append(relative)
    return differing
