"""Reading labels in Coral's, plain and TF label-map formats, and from model metadata."""

from __future__ import annotations

import io
import logging
import re
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import LabelsError
from custom_components.coral_vision.engine.models import labels as labels_module
from custom_components.coral_vision.engine.models.labels import (
    Labels,
    labels_from_metadata,
    load_labels,
    parse_labels,
)

from .conftest import DETECT_DIR
from .hostile import lying_zip


def test_coral_format_with_gaps() -> None:
    labels = parse_labels("0  person\n1  bicycle\n\n12  stop sign\n27: backpack\n")
    assert dict(labels.by_id) == {0: "person", 1: "bicycle", 12: "stop sign", 27: "backpack"}
    assert labels.name(12) == "stop sign"
    assert labels.name(5) == "id 5"
    assert len(labels) == 4


def test_plain_lines_are_numbered_from_zero() -> None:
    labels = parse_labels("\ufeffbackground\r\ntench, Tinca tinca\r\ngoldfish\r\n\r\n")
    assert labels.names() == ["background", "tench, Tinca tinca", "goldfish"]
    assert labels.name(1) == "tench, Tinca tinca"


def test_label_map_with_question_marks_is_shifted_by_one() -> None:
    labels = parse_labels("???\nperson\nbicycle\ncar\n???\nbus\n")
    assert dict(labels.by_id) == {0: "person", 1: "bicycle", 2: "car", 4: "bus"}
    assert labels.name(3) == "id 3"


def test_placeholders_are_gaps() -> None:
    labels = parse_labels("person\nn/a\ncar\n")
    assert dict(labels.by_id) == {0: "person", 2: "car"}


def test_names_follow_class_ids() -> None:
    assert parse_labels("3 c\n1 a\n2 b\n").names() == ["a", "b", "c"]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff"])
def test_empty_labels_are_refused(text: str) -> None:
    with pytest.raises(LabelsError, match="empty"):
        parse_labels(text)


def test_coco_label_map_and_coral_labels_agree(models_dir: Path) -> None:
    label_map = load_labels(models_dir / DETECT_DIR / "labelmap.txt")
    coral = load_labels(models_dir / "coco_labels.txt")
    assert label_map.name(0) == "person"
    assert label_map.name(31) == "tie"
    assert dict(label_map.by_id) == dict(coral.by_id)
    assert len(coral) == 80


def test_imagenet_labels_keep_background_at_zero(models_dir: Path) -> None:
    labels = load_labels(models_dir / "imagenet_labels.txt")
    assert len(labels) == 1001
    assert labels.name(0) == "background"
    assert labels.name(286) == "Egyptian cat"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="cannot read labels file"):
        load_labels(tmp_path / "nope.txt")


def test_empty_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("")
    with pytest.raises(LabelsError, match=r"labels\.txt"):
        load_labels(path)


def test_labels_from_model_metadata(models_dir: Path) -> None:
    content = (models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite").read_bytes()
    labels = labels_from_metadata(content)
    assert labels is not None
    assert len(labels) == 965
    assert labels.name(0) == "Haemorhous cassinii (Cassin's Finch)"


def test_models_without_metadata_have_no_labels(models_dir: Path) -> None:
    content = (models_dir / DETECT_DIR / "detect.tflite").read_bytes()
    assert labels_from_metadata(content) is None
    assert labels_from_metadata(b"") is None
    assert labels_from_metadata(b"PK\x05\x06 broken zip") is None


def test_metadata_prefers_the_labels_member() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("vocab.txt", "x\ny\n")
        archive.writestr("my_labels.txt", "cat\ndog\n")
    labels = labels_from_metadata(b"TFL3 model bytes" + buffer.getvalue())
    assert labels == Labels({0: "cat", 1: "dog"})


def test_metadata_without_text_files() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights.bin", b"\0\1")
    assert labels_from_metadata(buffer.getvalue()) is None


# The parser this module replaced, kept to prove real files still parse identically.
OLD_CORAL_LINE = re.compile(r"^\s*(\d+)[\s:]+(\S.*?)\s*$")


def old_parse(text: str) -> Labels:
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    filled = [line for line in lines if line]
    matches = [OLD_CORAL_LINE.match(line) for line in filled]
    if all(matches):
        by_id = {int(m.group(1)): m.group(2) for m in matches if m}
    else:
        offset = 1 if lines[0] == "???" else 0
        by_id = {number - offset: line for number, line in enumerate(lines) if line}
    return Labels({i: n for i, n in by_id.items() if n not in {"???", "n/a"} and i >= 0})


def test_real_label_files_parse_as_before(models_dir: Path) -> None:
    files = sorted(models_dir.rglob("*.txt"))
    assert len(files) >= 7
    for path in files:
        assert load_labels(path) == old_parse(path.read_text(encoding="utf-8")), path.name
    embedded = 0
    for path in sorted(models_dir.rglob("*.tflite")):
        if path.parent.name == "yolo":
            continue  # Ultralytics' names, not a labels file: test_yolo.py reads them
        content = path.read_bytes()
        labels = labels_from_metadata(content)
        if labels is not None:
            embedded += 1
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                name = next(n for n in archive.namelist() if n.endswith(".txt"))
                assert labels == old_parse(archive.read(name).decode()), path.name
    assert embedded >= 5


@pytest.mark.parametrize(
    "line",
    ["1 a", "1:a", "1 : a", "12abc", "7", "1\t\tb c", "1 ::: x : y", "٣ three", "0 a    b", "a 1"],
)
def test_coral_lines_read_as_the_old_pattern_did(line: str) -> None:
    assert parse_labels(line + "\n2 two\n") == old_parse(line + "\n2 two\n")


def finishes_within(seconds: float, work: Callable[[], object]) -> BaseException | object:
    """What `work` returned or raised; fails the test when it runs longer than `seconds`."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still parsing after {seconds} s: not linear time")
    return outcome[0]


def test_parsing_is_linear_in_the_text() -> None:
    # One long line: the old pattern retried every split of the spaces (minutes for this one).
    one_line = finishes_within(10, lambda: parse_labels("0 a" + " " * 100_000 + "b"))
    assert isinstance(one_line, LabelsError)
    assert "a label has at most 512" in str(one_line)
    # As much as the caps allow of names with inner spaces: read, quickly.
    text = "".join(f"{i} a{' ' * 500}b\n" for i in range(8000))
    many = finishes_within(10, lambda: parse_labels(text))
    assert isinstance(many, Labels)
    assert len(many) == 8000
    assert many.name(7999) == "a" + " " * 500 + "b"


def test_caps_on_names_and_lines() -> None:
    max_chars, max_labels = labels_module.MAX_LABEL_CHARS, labels_module.MAX_LABELS
    assert len(parse_labels("x" * max_chars).names()[0]) == max_chars
    with pytest.raises(LabelsError, match="a label has at most 512") as long_name:
        parse_labels("x" * (max_chars + 1))
    assert len(str(long_name.value)) < 200
    with pytest.raises(LabelsError, match="at most 100000"):
        parse_labels("x\n" * (max_labels + 1))
    assert len(parse_labels("x\n" * max_labels)) == max_labels
    # A class id is a few digits; 5000 of them are a name (too long), not a ValueError.
    with pytest.raises(LabelsError, match="a label has at most"):
        parse_labels("9" * 5000 + " cat\n")


def test_binary_data_is_not_a_labels_file(tmp_path: Path, models_dir: Path) -> None:
    with pytest.raises(LabelsError, match="NUL bytes"):
        load_labels(models_dir / "mobilenet_v1_0.25_128_quant.tflite")
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(bytes(0x80 + (i * 37) % 128 for i in range(60_000)))
    with pytest.raises(LabelsError, match="control characters or invalid UTF-8") as refused:
        load_labels(garbage)
    assert len(str(refused.value)) < 300
    # A Latin-1 file with a few accents is still text.
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(
        "Käfer\nMöwe\nSchwan\nAdler\nEule\nFalke\nTaube\nRabe\nSpecht\nMeise\n".encode("latin-1")
    )
    assert load_labels(latin).name(0) == "K\ufffdfer"


def test_embedded_labels_that_fail_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    binary = zip_with({"labels.txt": b"\x00\x01\x02 not text"})
    with caplog.at_level(logging.WARNING):
        assert labels_from_metadata(b"TFL3 model bytes" + binary) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "NUL bytes" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert labels_from_metadata(b"TFL3 model bytes without metadata") is None
    assert not caplog.records


def test_embedded_labels_are_read_with_a_bounded_inflate() -> None:
    bomb = lying_zip(64 << 20)
    tracemalloc.start()
    try:
        assert labels_from_metadata(bomb) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_metadata_zip_with_thousands_of_members_is_not_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    members = {f"f{i}.bin": b"" for i in range(2000)}
    members["labels.txt"] = b"cat\ndog\n"
    with caplog.at_level(logging.WARNING):
        assert labels_from_metadata(zip_with(members)) is None
    assert "more than 1024" in caplog.text


def zip_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_labels_text_and_members_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(labels_module, "MAX_LABELS_BYTES", 1000)
    with pytest.raises(LabelsError, match="a labels file has at most 1000"):
        parse_labels("cat\n" * 300)
    with caplog.at_level(logging.WARNING):
        assert labels_from_metadata(zip_with({"labels.txt": b"cat\n" * 300})) is None
    assert "labels.txt: 1200 bytes; a labels file has at most 1000" in caplog.text
