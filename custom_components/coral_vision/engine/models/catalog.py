"""The catalog of ready-made Coral models and the variant that fits a device."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import ModelError

type CatalogTask = Literal["detection", "classification", "face_detection"]
type Variant = Literal["cpu", "edgetpu"]

CATALOG_FILE = "catalog.json"

# Device kinds that mean "an Edge TPU runs the model"; "cpu" means the plain interpreter.
EDGETPU_KINDS = frozenset({"edgetpu", "tpu", "usb", "pci"})

# What each task is called where a person reads it.
TASK_NAMES: dict[CatalogTask, str] = {
    "detection": "object detection",
    "classification": "image classification",
    "face_detection": "face detection",
}
_TASKS = frozenset(TASK_NAMES)


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a catalog entry: where it lives locally/in a mirror and where upstream."""

    path: str
    url: str
    sha256: str | None = None
    size: int | None = None
    member: str | None = None

    @property
    def name(self) -> str:
        """The file's own name."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A ready-made model: its CPU file, its Edge TPU file (if compiled) and its labels."""

    id: str
    name: str
    task: CatalogTask
    dataset: str
    input_size: tuple[int, int]
    cpu: ModelFile
    edgetpu: ModelFile | None
    labels: ModelFile | None
    # How the entry differs from one of the same name and task; empty when nothing needs saying.
    description: str = ""
    # The weights' licence where it binds the user more than Apache-2.0 (e.g. AGPL-3.0).
    license: str = ""

    @property
    def label(self) -> str:
        """The entry as a model picker lists it: name, task in words, and what sets it apart."""
        text = f"{self.name} — {TASK_NAMES[self.task]}"
        return f"{text}: {self.description}" if self.description else text

    def files(self) -> tuple[ModelFile, ...]:
        """Every file the entry can use."""
        return tuple(f for f in (self.cpu, self.edgetpu, self.labels) if f is not None)


def is_edgetpu_kind(device_kind: str) -> bool:
    """Whether a device kind ("cpu", "usb", "pci", "edgetpu") runs models on an Edge TPU."""
    kind = device_kind.lower()
    if kind == "cpu":
        return False
    if kind in EDGETPU_KINDS:
        return True
    raise ValueError(f"unknown device kind {device_kind!r}: expected cpu, usb, pci or edgetpu")


def variant_for(entry: CatalogEntry, device_kind: str) -> ModelFile:
    """The model file to run on a device: the _edgetpu file on a TPU, the plain file on the CPU."""
    if is_edgetpu_kind(device_kind) and entry.edgetpu is not None:
        return entry.edgetpu
    return entry.cpu


def variant_name(entry: CatalogEntry, file: ModelFile) -> Variant:
    """Which variant a file of an entry is."""
    return "edgetpu" if file == entry.edgetpu else "cpu"


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """The catalog by entry id, from `path` or the catalog.json shipped with the engine."""
    try:
        text = (path or Path(__file__).with_name(CATALOG_FILE)).read_text("utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read the model catalog: {err}") from err
    return parse_catalog(document)


def parse_catalog(document: Any) -> dict[str, CatalogEntry]:
    """Validate a decoded catalog document and build its entries."""
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ModelError("model catalog: expected an object with a 'models' list")
    entries: dict[str, CatalogEntry] = {}
    for raw in document["models"]:
        entry = _entry(raw)
        if entry.id in entries:
            raise ModelError(f"model catalog: duplicate id {entry.id!r}")
        entries[entry.id] = entry
    return entries


def _entry(raw: Any) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise ModelError("model catalog: every model must be an object")
    ident = _text(raw, "id", "?")
    task = _text(raw, "task", ident)
    if task not in _TASKS:
        raise ModelError(f"model catalog: {ident}: unknown task {task!r}")
    size = raw.get("input_size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ModelError(f"model catalog: {ident}: input_size must be [width, height]")
    cpu = _file(raw.get("cpu"), ident)
    if cpu is None:
        raise ModelError(f"model catalog: {ident}: a cpu file is required")
    return CatalogEntry(
        id=ident,
        name=_text(raw, "name", ident),
        task=task,  # type: ignore[arg-type]  # checked against _TASKS above
        dataset=_text(raw, "dataset", ident),
        input_size=(size[0], size[1]),
        cpu=cpu,
        edgetpu=_file(raw.get("edgetpu"), ident),
        labels=_file(raw.get("labels"), ident),
        description=_text(raw, "description", ident) if "description" in raw else "",
        license=_text(raw, "license", ident) if "license" in raw else "",
    )


def _file(raw: Any, ident: str) -> ModelFile | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelError(f"model catalog: {ident}: files must be objects")
    path = _text(raw, "path", ident)
    pure = PurePosixPath(path)
    # The path is joined onto the models folder and mirrors: it must stay inside them.
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or not pure.parts:
        raise ModelError(f"model catalog: {ident}: unsafe path {path!r}")
    sha256 = raw.get("sha256")
    if sha256 is not None and not (
        isinstance(sha256, str) and len(sha256) == 64 and set(sha256) <= set("0123456789abcdef")
    ):
        raise ModelError(f"model catalog: {ident}: sha256 must be 64 lowercase hex digits")
    size = raw.get("size")
    if size is not None and not (isinstance(size, int) and size > 0):
        raise ModelError(f"model catalog: {ident}: size must be a positive integer")
    member = raw.get("member")
    if member is not None and not isinstance(member, str):
        raise ModelError(f"model catalog: {ident}: member must be a string")
    return ModelFile(
        path=path, url=_text(raw, "url", ident), sha256=sha256, size=size, member=member
    )


def _text(raw: dict[str, Any], key: str, ident: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ModelError(f"model catalog: {ident}: {key!r} must be a non-empty string")
    return value
