"""Reading labels in Coral's, plain and TF label-map formats, and from model metadata."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.errors import LabelsError
from custom_components.coral_vision.engine.labels import (
    Labels,
    labels_from_metadata,
    load_labels,
    parse_labels,
)

from .conftest import DETECT_DIR


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
