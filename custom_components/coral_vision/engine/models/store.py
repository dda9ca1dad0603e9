"""The models folder: a JSON manifest of what was fetched, listing, and removing unused files.

Functions here touch the disk and block: call them from an executor inside Home Assistant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..errors import ModelError

# A file (absolute, or relative to the models folder) -> names of the users referencing it.
type References = Mapping[Path, Iterable[str]] | Mapping[str, Iterable[str]]

MANIFEST_NAME = "manifest.json"
DAMAGED_MANIFEST_NAME = ".manifest.json.damaged"
PART_SUFFIX = ".part"

# Leftover partial files older than this belong to a download that died with its process.
_STALE_PART_SECONDS = 3600

# One writer at a time: downloads for several entries may finish together.
_manifest_lock = threading.Lock()
# Damaged manifest states already logged: (path, mtime, size).
_warned: set[tuple[str, int, int]] = set()
_warned_lock = threading.Lock()

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the manifest remembers of a fetched file; its sha256 is trusted from then on."""

    path: str
    sha256: str
    size: int
    source: str
    variant: str
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A file in the models folder, as shown to the user."""

    path: str
    size: int
    sha256: str | None
    variant: str | None
    source: str | None
    entry: str | None
    used_by: tuple[str, ...]

    @property
    def in_use(self) -> bool:
        """Whether a configured model references the file."""
        return bool(self.used_by)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {**asdict(self), "used_by": list(self.used_by), "in_use": self.in_use}


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(models_dir: Path) -> dict[str, FileRecord]:
    """The manifest's records by relative path; an absent or damaged manifest is empty.

    A damaged one is logged once (its pinned hashes no longer protect anything) and set aside
    as .manifest.json.damaged when the manifest is next written.
    """
    return _load_manifest(models_dir)[0]


def record_files(models_dir: Path, records: Iterable[FileRecord]) -> None:
    """Add or replace manifest records."""
    with _manifest_lock:
        current = _manifest_for_update(models_dir)
        for record in records:
            current[record.path] = record
        _write_manifest(models_dir, current)


def forget_files(models_dir: Path, paths: Iterable[str]) -> None:
    """Drop manifest records."""
    with _manifest_lock:
        current = _manifest_for_update(models_dir)
        for path in paths:
            current.pop(path, None)
        _write_manifest(models_dir, current)


def _manifest_for_update(models_dir: Path) -> dict[str, FileRecord]:
    records, damaged = _load_manifest(models_dir)
    if damaged:
        # Keep what it held for whoever wants to recover the pins: it is about to be replaced.
        with contextlib.suppress(OSError):
            os.replace(models_dir / MANIFEST_NAME, models_dir / DAMAGED_MANIFEST_NAME)
    return records


def _load_manifest(models_dir: Path) -> tuple[dict[str, FileRecord], bool]:
    """The records, and whether the file was damaged (unreadable, or with unusable records)."""
    path = models_dir / MANIFEST_NAME
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}, False
    except (OSError, ValueError) as err:
        _warn_damaged(path, f"unreadable: {err}")
        return {}, True
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        _warn_damaged(path, 'no "files" table')
        return {}, True
    records = {}
    unusable = []
    for key, raw in files.items():
        try:
            records[key] = FileRecord(
                path=key,
                sha256=str(raw["sha256"]),
                size=int(raw["size"]),
                source=str(raw.get("source", "")),
                variant=str(raw.get("variant", "")),
                entry=raw.get("entry"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            unusable.append(key)  # a hand-edited record we cannot trust is treated as unknown
    if unusable:
        _warn_damaged(path, f"{len(unusable)} unusable record(s), first {unusable[0][:80]!r}")
    return records, bool(unusable)


def _warn_damaged(path: Path, why: str) -> None:
    """One warning per damaged state of the file, however often it is read."""
    try:
        info = path.stat()
        state = (str(path), info.st_mtime_ns, info.st_size)
    except OSError:
        state = (str(path), 0, 0)
    with _warned_lock:
        if state in _warned:
            return
        _warned.add(state)
    _LOGGER.warning(
        "The models manifest %s is damaged (%s): the sha256 pins of its files are ignored, "
        "and it is set aside as %s when next written",
        path,
        why,
        DAMAGED_MANIFEST_NAME,
    )


def _write_manifest(models_dir: Path, records: Mapping[str, FileRecord]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    files = {
        path: {k: v for k, v in asdict(record).items() if k != "path"}
        for path, record in sorted(records.items())
    }
    text = json.dumps({"version": 1, "files": files}, indent=2) + "\n"
    write_atomically(models_dir / MANIFEST_NAME, lambda out: out.write(text.encode()), _accept)


def part_file(folder: Path, name: str) -> tuple[int, Path]:
    """A new hidden partial file for `name` in `folder` (swept once stale): its fd and path."""
    fd, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=PART_SUFFIX)
    return fd, Path(path)


def discard(path: Path) -> None:
    """Remove a file if it is there."""
    with contextlib.suppress(OSError):
        path.unlink()


def write_atomically[T](
    dest: Path, write: Callable[[IO[bytes]], object], check: Callable[[Path], T]
) -> T:
    """Write `dest` through a partial file beside it: written, synced, checked, renamed onto it.

    Whatever fails (the writing, the check, the rename), nothing is left but the old `dest`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, part = part_file(dest.parent, dest.name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        outcome = check(part)
        os.replace(part, dest)
        return outcome
    finally:
        discard(part)


def _accept(_: Path) -> None:
    """A check that takes any file."""


def relative_path(models_dir: Path, path: Path | str) -> str:
    """A path inside the models folder as the manifest keys it ("a/b.tflite")."""
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = models_dir / candidate
    try:
        relative = candidate.resolve().relative_to(models_dir.resolve())
    except ValueError as err:
        raise ModelError(f"{path} is not inside the models folder {models_dir}") from err
    if not relative.parts:
        raise ModelError(f"{path} is the models folder itself")
    return PurePosixPath(*relative.parts).as_posix()


def _is_listed(relative: PurePosixPath) -> bool:
    name = relative.name
    return name != MANIFEST_NAME and not name.startswith(".") and not name.endswith(PART_SUFFIX)


def list_models(models_dir: Path, references: References | None = None) -> list[StoredModel]:
    """Every file in the models folder with what the manifest knows and who uses it."""
    used: dict[str, set[str]] = {}
    for path, users in (references or {}).items():
        with contextlib.suppress(ModelError):
            used.setdefault(relative_path(models_dir, path), set()).update(users)
    manifest = read_manifest(models_dir)
    result: list[StoredModel] = []
    if not models_dir.is_dir():
        return result
    for file in sorted(models_dir.rglob("*")):
        relative = PurePosixPath(*file.relative_to(models_dir).parts)
        if not file.is_file() or not _is_listed(relative):
            continue
        key = relative.as_posix()
        record = manifest.get(key)
        result.append(
            StoredModel(
                path=key,
                size=file.stat().st_size,
                sha256=record.sha256 if record else None,
                variant=record.variant if record else None,
                source=record.source if record else None,
                entry=record.entry if record else None,
                used_by=tuple(sorted(used.get(key, ()))),
            )
        )
    return result


def remove_model(models_dir: Path, path: Path | str) -> str:
    """Delete one file of the models folder and forget it; returns its relative path."""
    key = relative_path(models_dir, path)
    if key == MANIFEST_NAME:
        raise ModelError("the manifest is not a model")
    with contextlib.suppress(FileNotFoundError):
        (models_dir / key).unlink()
    forget_files(models_dir, [key])
    _prune_empty_dirs(models_dir, (models_dir / key).parent)
    return key


def remove_unused(models_dir: Path, references: References | None = None) -> list[str]:
    """Delete every listed file no user references, and stale partial downloads."""
    removed = [
        remove_model(models_dir, stored.path)
        for stored in list_models(models_dir, references)
        if not stored.in_use
    ]
    _remove_stale_parts(models_dir)
    return removed


def _remove_stale_parts(models_dir: Path) -> None:
    cutoff = time.time() - _STALE_PART_SECONDS
    for part in models_dir.rglob(f"*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


def _prune_empty_dirs(models_dir: Path, folder: Path) -> None:
    root = models_dir.resolve()
    current = folder.resolve()
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
