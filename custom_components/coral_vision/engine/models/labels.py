"""Class labels: Coral's "id  name" files, plain line lists, TF label maps and model metadata.

A model's metadata is a zip appended to the file: TFLite metadata's labels file, or the
`names` mapping Ultralytics writes there as JSON (metadata.json) or as a Python dict's text
(temp_meta.txt) — read by a linear scanner, never evaluated.

Labels files and the labels a model embeds are untrusted: their size, the number of names and
the length of a name are capped, binary data is refused, parsing is linear in the text, and
errors quote at most a short sample of it.
"""

from __future__ import annotations

import io
import logging
import re
import stat
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabelsError

_LOGGER = logging.getLogger(__name__)

MAX_LABELS_BYTES = 4 * 1024 * 1024
MAX_LABELS = 100_000  # lines of a labels file, so also names and class ids
MAX_LABEL_CHARS = 512
# Names that label files use for ids the model never outputs.
_PLACEHOLDERS = frozenset({"???", "n/a"})
# A Coral "id  name" line: an id of at most 9 digits, then spaces or colons. Each pattern is one
# repeated character class matched at a fixed start, so it cannot backtrack.
_MAX_ID_DIGITS = 9
_ID = re.compile(r"\d+")
_SEPARATOR = re.compile(r"[\s:]+")
# Control characters other than whitespace, and what invalid UTF-8 decodes to.
_NON_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")
_MAX_NON_TEXT = 0.1  # of the characters
# Members a model's metadata zip may hold before it is not worth reading.
_MAX_ZIP_MEMBERS = 1024
_SAMPLE_CHARS = 40
# What a model's metadata zip may name its labels or its Ultralytics metadata.
_METADATA_FILES = (".json", ".yaml", ".yml")
_TEXT_FILES = (".txt", *_METADATA_FILES)
# Ultralytics' `names` mapping in JSON, a Python dict's text or YAML: the key, then one
# `id: 'name'` entry at a time. Each quoted string is the unrolled `[^q\\]*(\\.[^q\\]*)*`, so
# matching stays linear.
_NAMES_KEY = re.compile(r"""(?:["']names["']\s*:\s*\{)|(?:^names:[ \t]*$)""", re.MULTILINE)
_NAME_ENTRY = re.compile(
    r"""\s*["']?(\d{1,9})["']?\s*:\s*"""
    r"""(?:'([^'\\]*(?:\\.[^'\\]*)*)'|"([^"\\]*(?:\\.[^"\\]*)*)")\s*([,}])"""
)
_YAML_ENTRY = re.compile(r"""\n[ \t]+(\d{1,9}):[ \t]*([^\n]*)""")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/"}


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


def sample(text: str, limit: int = _SAMPLE_CHARS) -> str:
    """`text` cut to `limit` characters (with an ellipsis), for messages, forms and logs."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample_names(names: Sequence[str], count: int = 3, limit: int = _SAMPLE_CHARS) -> str:
    """The first `count` names, each cut short, joined for a one-line summary."""
    return "; ".join(sample(name, limit) for name in names[:count])


def parse_labels(text: str) -> Labels:
    """Labels from the text of a labels file, whichever of the three formats it uses."""
    text = text.lstrip("\ufeff")
    _refuse_non_text(text)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > MAX_LABELS:
        raise LabelsError(f"{len(lines)} lines: a labels file has at most {MAX_LABELS}")
    filled = [line for line in lines if line]
    if not filled:
        raise LabelsError("the labels file is empty")
    coral = [_coral_line(line) for line in filled]
    if all(coral):
        by_id = dict(pair for pair in coral if pair)
    else:
        # A TF label map puts "???" (background) on line 0, so class c is on line c + 1.
        offset = 1 if lines[0] == "???" else 0
        by_id = {number - offset: line for number, line in enumerate(lines) if line}
    for name in by_id.values():
        if len(name) > MAX_LABEL_CHARS:
            raise LabelsError(
                f"a label of {len(name)} characters ({sample(name)!r}): "
                f"a label has at most {MAX_LABEL_CHARS}"
            )
    return Labels({i: name for i, name in by_id.items() if name not in _PLACEHOLDERS and i >= 0})


def _refuse_non_text(text: str) -> None:
    """LabelsError for binary data: NUL bytes, or many control or undecodable characters."""
    if "\x00" in text:
        raise LabelsError("not a labels file: it holds NUL bytes (binary data)")
    if len(text) > MAX_LABELS_BYTES:
        raise LabelsError(f"{len(text)} characters: a labels file has at most {MAX_LABELS_BYTES}")
    # Counted by deleting: one linear pass in C, no list of matches.
    bad = len(text) - len(_NON_TEXT.sub("", text))
    if bad > _MAX_NON_TEXT * len(text):
        raise LabelsError(
            f"not a labels file: {bad} of its {len(text)} characters are control characters "
            "or invalid UTF-8"
        )


def _coral_line(line: str) -> tuple[int, str] | None:
    """(id, name) of a stripped Coral "id  name" or "id: name" line, else None; linear time."""
    digits = _ID.match(line)
    if digits is None or digits.end() > _MAX_ID_DIGITS:
        return None
    separator = _SEPARATOR.match(line, digits.end())
    if separator is None or separator.end() == len(line):
        return None  # no separator after the id, or nothing after it
    return int(digits.group()), line[separator.end() :]


def load_labels(path: Path) -> Labels:
    """Labels from a file; LabelsError when it cannot be read, is too large or holds none."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise LabelsError(f"{path} is not a regular file")
        if info.st_size > MAX_LABELS_BYTES:
            raise LabelsError(
                f"{path}: {info.st_size} bytes; a labels file has at most {MAX_LABELS_BYTES}"
            )
        with path.open("rb") as handle:
            data = handle.read(info.st_size)  # what it held when checked, if it grows meanwhile
    except OSError as err:
        raise LabelsError(f"cannot read labels file {path}: {err.strerror or err}") from err
    text = data.decode("utf-8", errors="replace")
    try:
        # Ultralytics' metadata.yaml (or .json) beside a model names its classes too.
        names = ultralytics_names(text) if path.suffix.lower() in _METADATA_FILES else None
        return names if names is not None else parse_labels(text)
    except LabelsError as err:
        raise LabelsError(f"{path}: {err}") from err


def labels_from_metadata(model_content: bytes) -> Labels | None:
    """The labels in a model's metadata zip; None without any, and unusable ones logged once."""
    try:
        return read_metadata_labels(model_content)
    except LabelsError as err:
        _LOGGER.warning("Ignoring the labels embedded in the model: %s", err)
        return None


def read_metadata_labels(model_content: bytes) -> Labels | None:
    """The labels in a model's metadata zip, None without one; LabelsError when they are bad."""
    members = _zip_members(model_content)
    if members is None:
        return None  # no metadata zip: the usual case
    if members > _MAX_ZIP_MEMBERS:
        raise LabelsError(f"its metadata zip lists {members} files, more than {_MAX_ZIP_MEMBERS}")
    try:
        with zipfile.ZipFile(io.BytesIO(model_content)) as archive:
            texts = [i for i in archive.infolist() if i.filename.lower().endswith(_TEXT_FILES)]
            if not texts:
                return None
            member = min(texts, key=_member_rank)
            if member.file_size > MAX_LABELS_BYTES:
                raise LabelsError(
                    f"{sample(member.filename)}: {member.file_size} bytes; "
                    f"a labels file has at most {MAX_LABELS_BYTES}"
                )
            # A bounded read: the declared size does not bound what read() would inflate.
            with archive.open(member) as handle:
                data = handle.read(MAX_LABELS_BYTES + 1)
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
        EOFError,
        RuntimeError,
        NotImplementedError,
    ) as err:
        raise LabelsError(f"its metadata zip is unreadable: {sample(str(err), 120)}") from err
    text = data.decode("utf-8", errors="replace")
    names = ultralytics_names(text)
    if names is not None:
        return names
    return parse_labels(text) if member.filename.lower().endswith(".txt") else None


def _member_rank(info: zipfile.ZipInfo) -> int:
    """A labels file first, then Ultralytics' metadata, then any other text (in zip order)."""
    name = info.filename.lower()
    if "label" in name and name.endswith(".txt"):
        return 0
    return 1 if name.endswith(_METADATA_FILES) or "meta" in name else 2


def ultralytics_names(text: str) -> Labels | None:
    """The `names` Ultralytics metadata holds, None without one; LabelsError when it is bad."""
    key = _NAMES_KEY.search(text)
    if key is None:
        return None
    if key.group().startswith("names"):
        pairs = _yaml_names(text, key.end())
    else:
        pairs = _mapping_names(text, key.end())
    if not pairs:
        raise LabelsError("its metadata's names mapping is empty")
    labels: dict[int, str] = {}
    for class_id, name in pairs:
        if len(name) > MAX_LABEL_CHARS:
            raise LabelsError(
                f"a label of {len(name)} characters ({sample(name)!r}): "
                f"a label has at most {MAX_LABEL_CHARS}"
            )
        _refuse_non_text(name)
        labels[class_id] = name
    return Labels(labels)


def _mapping_names(text: str, position: int) -> list[tuple[int, str]]:
    """`id: 'name'` entries of a JSON or Python dict up to its closing brace."""
    pairs: list[tuple[int, str]] = []
    if text[position:].lstrip().startswith("}"):
        return pairs
    while len(pairs) < MAX_LABELS:
        entry = _NAME_ENTRY.match(text, position)
        if entry is None:
            raise LabelsError(
                f"its metadata's names are not id: 'name' pairs near "
                f"{sample(text[position : position + 60])!r}"
            )
        quoted = entry.group(2) if entry.group(2) is not None else entry.group(3)
        pairs.append((int(entry.group(1)), _unescape(quoted)))
        if entry.group(4) == "}":
            return pairs
        position = entry.end()
    raise LabelsError(f"its metadata names more than {MAX_LABELS} classes")


def _yaml_names(text: str, position: int) -> list[tuple[int, str]]:
    """Indented `id: name` lines after a YAML `names:` line."""
    pairs: list[tuple[int, str]] = []
    while len(pairs) <= MAX_LABELS:
        entry = _YAML_ENTRY.match(text, position)
        if entry is None:
            return pairs
        pairs.append((int(entry.group(1)), entry.group(2).strip().strip("'\"")))
        position = entry.end()
    raise LabelsError(f"its metadata names more than {MAX_LABELS} classes")


def _unescape(quoted: str) -> str:
    """A JSON or Python string literal's text: its escapes resolved, surrogate pairs joined."""
    if "\\" not in quoted:
        return quoted
    text = _ESCAPE.sub(_escaped, quoted)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", errors="replace")


def _escaped(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) > 1:
        return chr(int(code[1:], 16))
    return _ESCAPED.get(code, code)


def _zip_members(data: bytes) -> int | None:
    """How many members a trailing zip's end record lists (found as zipfile finds it), or None."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - (1 << 16) - 22))
    if end < 0 or end + 22 > len(data):
        return None
    # 0xFFFF defers to a ZIP64 record, which no labels archive needs: it counts as too many.
    return int.from_bytes(data[end + 10 : end + 12], "little")
