"""Class labels: Coral's "id  name" files, plain line lists, TF label maps and model metadata."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabelsError

# Names that label files use for ids the model never outputs.
_PLACEHOLDERS = frozenset({"???", "n/a"})
_CORAL_LINE = re.compile(r"^\s*(\d+)[\s:]+(\S.*?)\s*$")
_MAX_METADATA_LABELS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, repr=False)
class Labels:
    """Class names by class id; ids without a name read as "id N"."""

    by_id: Mapping[int, str] = field(default_factory=dict)

    def name(self, class_id: int) -> str:
        """Return the name of a class id, or "id N" when the labels do not name it."""
        return self.by_id.get(class_id, f"id {class_id}")

    def names(self) -> list[str]:
        """Every name, in class id order."""
        return [self.by_id[i] for i in sorted(self.by_id)]

    def __len__(self) -> int:
        """How many class ids have a name."""
        return len(self.by_id)

    def __repr__(self) -> str:
        """Summarize: a model's labels can run to thousands of names."""
        return f"Labels({len(self.by_id)} names)"


def parse_labels(text: str) -> Labels:
    """Labels from the text of a labels file, whichever of the three formats it uses."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    filled = [line for line in lines if line]
    if not filled:
        raise LabelsError("the labels file is empty")
    matches = [_CORAL_LINE.match(line) for line in filled]
    if all(matches):
        by_id = {int(m.group(1)): m.group(2) for m in matches if m}
    else:
        # A TF label map puts "???" (background) on line 0, so class c is on line c + 1.
        offset = 1 if lines[0] == "???" else 0
        by_id = {number - offset: line for number, line in enumerate(lines) if line}
    return Labels({i: name for i, name in by_id.items() if name not in _PLACEHOLDERS and i >= 0})


def load_labels(path: Path) -> Labels:
    """Labels from a file; LabelsError when it cannot be read or holds none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise LabelsError(f"cannot read labels file {path}: {err.strerror or err}") from err
    try:
        return parse_labels(text)
    except LabelsError as err:
        raise LabelsError(f"{path}: {err}") from err


def labels_from_metadata(model_content: bytes) -> Labels | None:
    """Read the labels a TFLite model carries in its metadata (a zip after the flatbuffer)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_content)) as archive:
            members = [
                info
                for info in archive.infolist()
                if info.filename.lower().endswith(".txt")
                and info.file_size <= _MAX_METADATA_LABELS_BYTES
            ]
            # Prefer a member named like a labels file when the model carries several.
            members.sort(key=lambda info: "label" not in info.filename.lower())
            if not members:
                return None
            text = archive.read(members[0]).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
        return None
    try:
        return parse_labels(text)
    except LabelsError:
        return None
