"""Loading models and learning their task, input and outputs without running them."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from custom_components.coral_vision.engine.errors import LabelsError, ModelError
from custom_components.coral_vision.engine.models.inspect import inspect_model
from custom_components.coral_vision.engine.models.labels import Labels
from custom_components.coral_vision.engine.models.model import TF1_LAYOUT, Model, load_model

from .conftest import DETECT_DIR
from .hostile import Parts, build, labels_zip


def test_classifier(mobilenet: Model) -> None:
    assert mobilenet.task == "classification"
    assert mobilenet.name == "mobilenet_v2_1.0_224_quant"
    assert (mobilenet.input.width, mobilenet.input.height, mobilenet.input.channels) == (
        224,
        224,
        3,
    )
    assert mobilenet.input.dtype == np.uint8
    assert (mobilenet.input.scale, mobilenet.input.zero_point) == (0.0078125, 128)
    assert mobilenet.num_classes == 1001
    assert mobilenet.detection_layout is None
    assert not mobilenet.edgetpu
    assert mobilenet.labels.name(286) == "Egyptian cat"
    assert len(mobilenet.outputs) == 1
    assert mobilenet.outputs[0].scale == pytest.approx(1 / 256)


def test_detector(ssd_model: Model, models_dir: Path) -> None:
    assert ssd_model.task == "detection"
    assert ssd_model.detection_layout == TF1_LAYOUT
    assert (ssd_model.input.width, ssd_model.input.height) == (300, 300)
    assert ssd_model.labels.name(0) == "person"
    assert ssd_model.path == models_dir / DETECT_DIR / "detect.tflite"
    assert ssd_model.num_classes is None
    assert len(ssd_model.outputs) == 4


def test_labels_default_to_metadata(models_dir: Path) -> None:
    model = load_model(models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite")
    assert len(model.labels) == 965
    assert any(name.endswith("(Scarlet Macaw)") for name in model.labels.names())


def test_no_labels_anywhere_means_ids(models_dir: Path) -> None:
    model = load_model(models_dir / DETECT_DIR / "detect.tflite")
    assert len(model.labels) == 0
    assert model.labels.name(0) == "id 0"


def test_labels_object_and_name_and_bytes(models_dir: Path) -> None:
    content = (models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    model = load_model(content, labels=Labels({1: "one"}), name="tiny")
    assert (model.name, model.path, model.labels.name(1)) == ("tiny", None, "one")
    assert (model.input.width, model.input.height) == (128, 128)
    assert load_model(content).name == "model"


def test_edgetpu_model_is_recognised(models_dir: Path) -> None:
    model = load_model(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert model.edgetpu
    assert model.task == "classification"
    assert model.labels.name(0) == "background"


def test_tf2_model_input(models_dir: Path) -> None:
    model = load_model(models_dir / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert model.input.dtype == np.uint8
    assert model.input.scale == pytest.approx(1 / 127.5)
    assert model.input.zero_point == 127


def test_labels_that_do_not_fit(models_dir: Path) -> None:
    with pytest.raises(LabelsError, match="outputs only 965 classes"):
        load_model(
            models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
            labels=models_dir / "imagenet_labels.txt",
        )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model file"):
        load_model(tmp_path / "missing.tflite")


@pytest.mark.parametrize(
    "content", [b"", b"not a model at all", bytes(range(256)) * 64], ids=["empty", "text", "junk"]
)
def test_garbage_is_not_a_model(content: bytes) -> None:
    with pytest.raises(ModelError, match="not a TensorFlow Lite file"):
        load_model(content)


def test_truncated_model_is_rejected_by_the_interpreter(ssd_model: Model) -> None:
    # The tables sit at the end of the file: cutting it is a malformed flatbuffer for our reader.
    with pytest.raises(ModelError, match="malformed flatbuffer"):
        load_model(ssd_model.content[:5000])
    # A weights buffer claiming more bytes than the file holds: only the interpreter checks those.
    with pytest.raises(ModelError, match="rejected the model"):
        load_model(oversized_buffer(ssd_model.content))


def oversized_buffer(content: bytes) -> bytes:
    """The model with its largest weights buffer's length set past the end of the file."""
    data = bytearray(content)

    def u32(pos: int) -> int:
        return int(struct.unpack_from("<I", data, pos)[0])

    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", data, table)[0]
        size, offset = struct.unpack_from("<H", data, vtable)[0], 4 + 2 * index
        found = struct.unpack_from("<H", data, vtable + offset)[0] if offset < size else 0
        return table + found if found else None

    buffers = field(u32(0), 4)
    assert buffers is not None
    vector = buffers + u32(buffers)
    lengths = {}
    for i in range(u32(vector)):
        slot = vector + 4 + 4 * i
        data_field = field(slot + u32(slot), 0)
        if data_field is not None:
            start = data_field + u32(data_field)
            lengths[start] = u32(start)
    largest = max(lengths, key=lengths.__getitem__)
    struct.pack_into("<I", data, largest, len(data))
    return bytes(data)


def test_raw_output_face_detector_is_refused(models_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"unsupported model.*regressors \[1, 896, 16\]"):
        load_model(models_dir / "face" / "face_detection_short_range.tflite")


@pytest.mark.parametrize(
    "name", ["movenet_single_pose_lightning_ptq", "movenet_single_pose_lightning_ptq_edgetpu"]
)
def test_pose_model_is_refused(models_dir: Path, name: str) -> None:
    with pytest.raises(ModelError, match=r"unsupported model.*\[1, 1, 17, 3\]"):
        load_model(models_dir / f"{name}.tflite")


def test_invalid_model_is_refused(models_dir: Path) -> None:
    # Its one output is a scalar: neither detections nor class scores.
    with pytest.raises(ModelError, match="unsupported model"):
        load_model(models_dir / "invalid" / "model_invoking_error.tflite")


def test_embedded_labels_that_do_not_fit_are_ignored_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A 10-class model whose metadata names 12 classes: the model loads, numbered.
    path = tmp_path / "tiny.tflite"
    path.write_bytes(build(Parts(tail=labels_zip(b"\n".join(b"c%d" % i for i in range(12))))))
    with caplog.at_level(logging.WARNING):
        model = load_model(path)
    assert (model.task, model.num_classes, len(model.labels)) == ("classification", 10, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "tiny: embedded labels ignored: the labels name class 11 "
        "but the model outputs only 10 classes"
    ]
    report = inspect_model(path)
    assert report.supported
    assert report.labels == ()
    assert any("embedded labels ignored" in w for w in report.warnings)


def test_embedded_labels_that_fail_to_parse_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "binary.tflite"
    path.write_bytes(build(Parts(tail=labels_zip(b"\x00\x01\x02"))))
    with caplog.at_level(logging.WARNING):
        model = load_model(path)
        fitting = load_model(build(Parts(tail=labels_zip(b"a\nb\nc\n"))))
    assert len(model.labels) == 0
    assert fitting.labels.names() == ["a", "b", "c"]
    assert len(caplog.records) == 1
    assert "binary: embedded labels ignored: not a labels file" in caplog.records[0].getMessage()
