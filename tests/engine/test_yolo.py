"""YOLO detection end to end: the real YOLOv8n files in ../shared/models/yolo through the real
interpreter (the Edge TPU one through the fake TPU boundary), the model reader, the decoder
with hostile outputs, the command line and the model check."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert import schema_py_generated as schema

from custom_components.coral_vision.engine.cli import main
from custom_components.coral_vision.engine.errors import LabelsError, ModelError
from custom_components.coral_vision.engine.inference.delegate import Backend, open_backend
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.catalog import load_catalog
from custom_components.coral_vision.engine.models.inspect import format_report, inspect_model
from custom_components.coral_vision.engine.models.labels import (
    Labels,
    load_labels,
    read_metadata_labels,
    ultralytics_names,
)
from custom_components.coral_vision.engine.models.model import (
    MAX_YOLO_VALUES,
    InputSpec,
    Model,
    OutputSpec,
    YoloLayout,
    load_model,
)
from custom_components.coral_vision.engine.results import Detection
from custom_components.coral_vision.engine.vision.detect import decode_outputs, get_detections
from custom_components.coral_vision.engine.vision.preprocess import PreparedFrame, prepare_frame
from custom_components.coral_vision.engine.vision.yolo import (
    MAX_NMS_CANDIDATES,
    get_yolo_detections,
    non_max_suppression,
)

from .fakes import FakeEdgeTpu, make_usb_tpu

FLOAT = "yolov8n_int8.tflite"  # float32 in and out (int8 weights), names in its metadata
INT8 = "yolov8n_320_int8_det_from_seg.tflite"
PERSON = "yolov8n_320_person_uint8_int8out.tflite"
EDGETPU = "yolov8n_320_full_integer_quant_edgetpu.tflite"
# The person-only model's int8 output saturates: its best person scores 0.865 on any photo.
PERSON_SCORE = {FLOAT: 0.9, INT8: 0.9, EDGETPU: 0.9, PERSON: 0.85}


@pytest.fixture(scope="module")
def yolo_dir(models_dir: Path) -> Path:
    return models_dir / "yolo"


@pytest.fixture(scope="module")
def models(yolo_dir: Path) -> dict[str, Model]:
    """Every YOLO file, loaded with labels: its metadata's, else the labels file beside it."""
    return {
        FLOAT: load_model(yolo_dir / FLOAT),
        INT8: load_model(yolo_dir / INT8, labels=yolo_dir / "coco80_labels.txt"),
        PERSON: load_model(yolo_dir / PERSON, labels=yolo_dir / "person_labels.txt"),
        EDGETPU: load_model(yolo_dir / EDGETPU),
    }


@pytest.fixture(scope="module")
def fake_tpu(models: dict[str, Model]) -> FakeEdgeTpu:
    """The Edge TPU plays the compiled file with its nearest CPU equivalent (PROVENANCE.md)."""
    return FakeEdgeTpu(cpu_twin=models[INT8].content)


@pytest.fixture(scope="module")
def usb_tpu(tmp_path_factory: pytest.TempPathFactory) -> EdgeTpu:
    sys_root = tmp_path_factory.mktemp("sys")
    return EdgeTpu("usb", 0, str(make_usb_tpu(sys_root, "1-1")), "usb:0", None)


@pytest.fixture(scope="module")
def backends(
    models: dict[str, Model], fake_tpu: FakeEdgeTpu, usb_tpu: EdgeTpu
) -> dict[str, Backend]:
    opened = {name: open_backend(model, None) for name, model in models.items() if name != EDGETPU}
    opened[EDGETPU] = open_backend(models[EDGETPU], usb_tpu, runtime=fake_tpu.runtime())
    return opened


def detect(
    backend: Backend, data: bytes, threshold: float = 0.25
) -> tuple[PreparedFrame, tuple[Detection, ...]]:
    """One photo through a YOLO backend, prepared as the model wants (letterboxed)."""
    frame = prepare_frame(data, backend.model.input)
    outputs = backend.invoke(frame)
    found, classes = decode_outputs(backend.model, outputs, frame, threshold=threshold, top_k=100)
    assert classes == ()
    return frame, found


@pytest.mark.parametrize("name", [FLOAT, INT8, PERSON, EDGETPU])
def test_person_on_grace_hopper(
    backends: dict[str, Backend], image_bytes: dict[str, bytes], name: str
) -> None:
    frame, found = detect(backends[name], image_bytes["grace_hopper.bmp"])
    person = found[0]
    assert (person.label, person.id) == ("person", 0)
    assert person.score > PERSON_SCORE[name]
    width, height = frame.image_size
    assert person.box.area > 0.6 * width * height
    assert person.box.xmin < width / 2 < person.box.xmax
    for d in found:
        assert 0 <= d.box.xmin < d.box.xmax <= width
        assert 0 <= d.box.ymin < d.box.ymax <= height
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@pytest.mark.parametrize("name", [FLOAT, INT8, EDGETPU])
def test_cat(backends: dict[str, Backend], image_bytes: dict[str, bytes], name: str) -> None:
    frame, found = detect(backends[name], image_bytes["cat.bmp"], threshold=0.5)
    assert [(d.label, d.id) for d in found] == [("cat", 15)]
    assert found[0].score > 0.85
    assert found[0].box.area > 0.4 * frame.image_size[0] * frame.image_size[1]


@pytest.mark.parametrize("name", [FLOAT, INT8, PERSON, EDGETPU])
def test_nothing_on_the_sunflower(
    backends: dict[str, Backend], image_bytes: dict[str, bytes], name: str
) -> None:
    assert detect(backends[name], image_bytes["sunflower.bmp"])[1] == ()


# The int8 head's step is 0.0204 of the input: 26 px of kite_and_cold's 1280, so its small
# kites and people overlap their float boxes less than the large objects of the other photos.
@pytest.mark.parametrize(
    ("photo", "overlap"), [("grace_hopper.bmp", 0.8), ("cat.bmp", 0.8), ("kite_and_cold.jpg", 0.6)]
)
def test_int8_agrees_with_float(
    backends: dict[str, Backend], image_bytes: dict[str, bytes], photo: str, overlap: float
) -> None:
    """The confident objects are the same, in the same places."""
    _, floats = detect(backends[FLOAT], image_bytes[photo], threshold=0.6)
    _, ints = detect(backends[INT8], image_bytes[photo], threshold=0.45)
    assert floats
    for wanted in floats:
        match = max(ints, key=lambda d: d.box.iou(wanted.box) if d.label == wanted.label else 0)
        assert match.label == wanted.label, photo
        assert match.box.iou(wanted.box) > overlap, (photo, wanted, match)
        assert match.score == pytest.approx(wanted.score, abs=0.15)


def test_letterbox_is_the_default_and_stretch_still_works(
    backends: dict[str, Backend], image_bytes: dict[str, bytes]
) -> None:
    backend = backends[FLOAT]
    letterboxed = prepare_frame(image_bytes["grace_hopper.bmp"], backend.model.input)
    assert letterboxed.resize == "letterbox"
    assert letterboxed.content[0] > 0  # portrait: bars left and right
    stretched = prepare_frame(
        image_bytes["grace_hopper.bmp"], backend.model.input, resize="stretch"
    )
    a = get_yolo_detections(backend.model, backend.invoke(letterboxed), letterboxed)[0]
    b = get_yolo_detections(backend.model, backend.invoke(stretched), stretched)[0]
    assert a.label == b.label == "person"
    assert a.box.iou(b.box) > 0.9


def test_the_executor_decodes_yolo_letterboxed(
    models: dict[str, Model], image_bytes: dict[str, bytes], backends: dict[str, Backend]
) -> None:
    data = image_bytes["grace_hopper.bmp"]
    with Executor(models[FLOAT], threshold=0.5, top_k=5) as executor:
        result = executor.run_sync("hall", data)
    assert result.task == "detection"
    _, expected = detect(backends[FLOAT], data, threshold=0.5)
    assert result.detections == expected


def test_the_edge_tpu_yolo_runs_through_the_executor(
    models: dict[str, Model], image_bytes: dict[str, bytes], usb_tpu: EdgeTpu
) -> None:
    fake = FakeEdgeTpu(cpu_twin=models[INT8].content)
    with Executor(models[EDGETPU], usb_tpu, runtime=fake.runtime(), threshold=0.5) as executor:
        assert executor.backend_info is not None
        assert executor.backend_info.device == "usb:0"
        result = executor.run_sync("hall", image_bytes["grace_hopper.bmp"])
    assert fake.invokes == 1
    assert result.detections[0].label == "person"
    assert result.detections[0].score > 0.9


# -- the model reader ------------------------------------------------------------------------


def test_the_reader_recognises_every_yolo_file(models: dict[str, Model], yolo_dir: Path) -> None:
    for name, model in models.items():
        assert model.task == "detection", name
        assert model.input.resize == "letterbox"
        assert model.input.pixels == "unit"
        assert (model.input.width, model.input.height) == (320, 320)
        classes = 1 if name == PERSON else 80
        assert model.detection_layout == YoloLayout(classes, 2100, channels_first=True)
        assert model.num_classes == classes
        assert model.edgetpu == (name == EDGETPU)
    # Ultralytics' names: a Python dict's text in one file, JSON in the other.
    for name in (FLOAT, EDGETPU):
        bare = load_model(yolo_dir / name)
        assert len(bare.labels) == 80
        assert (bare.labels.name(0), bare.labels.name(15), bare.labels.name(79)) == (
            "person",
            "cat",
            "toothbrush",
        )
    assert len(load_model(yolo_dir / INT8).labels) == 0


@pytest.mark.parametrize(
    ("name", "compiled"), [(FLOAT, False), (INT8, False), (PERSON, False), (EDGETPU, True)]
)
def test_the_model_check_report(yolo_dir: Path, name: str, compiled: bool) -> None:
    report = inspect_model(yolo_dir / name)
    assert report.supported
    assert report.task == "yolo"
    assert report.task_name == "object detection (YOLO)"
    assert report.edgetpu_compiled is compiled
    assert report.resize == "letterbox"
    text = format_report(report)
    assert text.splitlines()[0].startswith("task: yolo (object detection (YOLO): ")
    assert "2100 candidates" in text
    record = report.as_dict()
    assert record["task_name"] == "object detection (YOLO)"
    assert record["detection_layout"]["candidates"] == 2100
    json.dumps(record)
    if compiled:
        # The head's last ops (the box decoding) stay on the CPU.
        assert "edgetpu-custom-op" not in dict(report.cpu_ops)
        assert report.cpu_operators > 0
        assert "LOGISTIC" in dict(report.cpu_ops)
        assert report.labels_source == "metadata"


def rewrite(content: bytes, change: Callable[[Any], None]) -> bytes:
    """The model with `change` applied to its object form, packed again."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    change(model)
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def output_shape(shape: list[int]) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        graph = model.subgraphs[0]
        graph.tensors[graph.outputs[0]].shape = np.array(shape, np.int32)

    return change


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ([1, 4, 2100], "boxes (4) but no class scores"),
        ([1, 84, 6300], "3 anchors per grid cell"),
        ([1, 300, 6], "end-to-end export"),
        ([1, 84, 200_000], f"more than the {MAX_YOLO_VALUES}"),
        ([1, 10, 20], "neither class scores, SSD detections nor a YOLO head"),
    ],
)
def test_yolo_shaped_outputs_it_cannot_run_are_refused(
    yolo_dir: Path, shape: list[int], reason: str
) -> None:
    content = rewrite((yolo_dir / INT8).read_bytes(), output_shape(shape))
    report = inspect_model(content)
    assert not report.supported
    assert report.reason is not None
    assert reason in report.reason
    with pytest.raises(ModelError, match="unsupported model"):
        load_model(content)


def test_candidates_last_and_off_grid_heads(yolo_dir: Path) -> None:
    last = inspect_model(rewrite((yolo_dir / INT8).read_bytes(), output_shape([1, 2100, 84])))
    assert last.detection_layout == YoloLayout(80, 2100, channels_first=False)
    assert "[1, N, 4 + C]" in format_report(last)
    odd = inspect_model(rewrite((yolo_dir / INT8).read_bytes(), output_shape([1, 84, 1000])))
    assert odd.detection_layout == YoloLayout(80, 1000, channels_first=True)
    assert any("not the 2100" in w for w in odd.warnings)


# -- the decoder on crafted outputs ----------------------------------------------------------


def yolo_model(
    classes: int = 2,
    candidates: int = 2100,
    *,
    channels_first: bool = True,
    dtype: Any = np.float32,
    scale: float = 0.0,
    zero_point: int = 0,
) -> Model:
    layout = YoloLayout(classes, candidates, channels_first)
    return Model(
        name="crafted",
        content=b"",
        path=None,
        task="detection",
        input=InputSpec(320, 320, 3, np.dtype(np.float32), 0.0, 0, 0, "letterbox", "unit"),
        outputs=(OutputSpec(1, "head", np.dtype(dtype), scale, zero_point),),
        labels=Labels({0: "person", 1: "cat"}),
        edgetpu=False,
        detection_layout=layout,
        num_classes=classes,
    )


FRAME = PreparedFrame(np.zeros((1, 320, 320, 3), np.float32), (640, 480), (0.0, 0.125, 1.0, 0.875))


def head(
    boxes: list[tuple[float, float, float, float]], scores: list[list[float]], n: int = 2100
) -> npt.NDArray[np.float32]:
    """A [1, 4 + C, n] output holding these candidates, the rest scoring 0."""
    out = np.zeros((1, 4 + len(scores[0]), n), np.float32)
    for i, (box, score) in enumerate(zip(boxes, scores, strict=True)):
        out[0, :4, i] = box
        out[0, 4:, i] = score
    return out


def test_nms_is_class_aware_and_capped() -> None:
    model = yolo_model()
    same = (0.5, 0.5, 0.4, 0.4)
    near = (0.52, 0.5, 0.4, 0.4)
    far = (0.1, 0.2, 0.1, 0.1)
    out = head([same, near, near, far], [[0.9, 0.1], [0.8, 0.0], [0.0, 0.7], [0.6, 0.0]])
    found = get_yolo_detections(model, [out], FRAME, threshold=0.5)
    # The second person overlaps the first and goes; the cat in the same place stays.
    assert [(d.label, round(d.score, 2)) for d in found] == [
        ("person", 0.9),
        ("cat", 0.7),
        ("person", 0.6),
    ]
    # Letterbox undone: x spans the width, y the 0.125..0.875 band mapped onto 480 rows.
    assert found[0].box.as_list() == pytest.approx([192.0, 112.0, 448.0, 368.0], abs=0.1)
    assert len(get_yolo_detections(model, [out], FRAME, threshold=0.5, top_k=2)) == 2
    assert get_yolo_detections(model, [out], FRAME, threshold=0.5, top_k=0) == ()
    assert len(get_yolo_detections(model, [out], FRAME, threshold=0.5, iou=0.99)) == 4


def test_candidates_last_and_pixel_boxes_decode_alike() -> None:
    out = head([(0.5, 0.5, 0.4, 0.4), (0.2, 0.3, 0.1, 0.2)], [[0.9, 0.0], [0.0, 0.8]])
    expected = get_yolo_detections(yolo_model(), [out], FRAME)
    transposed = np.ascontiguousarray(out.transpose(0, 2, 1))
    assert get_yolo_detections(yolo_model(channels_first=False), [transposed], FRAME) == expected
    pixels = out.copy()
    pixels[0, :4] *= 320
    pixels[0, 0, 2:] = np.linspace(0, 320, 2098)  # the other candidates still cover the input
    found = get_yolo_detections(yolo_model(), [pixels], FRAME)
    assert [d.label for d in found] == [d.label for d in expected]
    for a, b in zip(found, expected, strict=True):
        assert a.box.iou(b.box) > 0.999


def test_quantized_outputs_dequantize_only_what_passes() -> None:
    scale, zero_point = 1 / 255, -128
    real = head([(0.5, 0.5, 0.4, 0.4), (0.2, 0.3, 0.1, 0.2)], [[0.9, 0.0], [0.0, 0.3]])
    quantized = np.clip(np.round(real / scale + zero_point), -128, 127).astype(np.int8)
    model = yolo_model(dtype=np.int8, scale=scale, zero_point=zero_point)
    found = get_yolo_detections(model, [quantized], FRAME, threshold=0.25)
    assert [(d.label, round(d.score, 2)) for d in found] == [("person", 0.9), ("cat", 0.3)]
    assert get_yolo_detections(model, [quantized], FRAME, threshold=0.5)[0].label == "person"
    # A negative scale (hostile) reverses the order: scores are dequantized before comparing,
    # so the result is the float decoding of the same real values.
    flipped = yolo_model(dtype=np.int8, scale=-scale, zero_point=127)
    as_float = (quantized.astype(np.float32) - 127) * np.float32(-scale)
    expected = get_yolo_detections(yolo_model(), [as_float], FRAME, threshold=0.9)
    assert expected
    assert get_yolo_detections(flipped, [quantized], FRAME, threshold=0.9) == expected
    unsigned = yolo_model(dtype=np.uint8, scale=scale)
    as_uint8 = np.clip(np.round(real / scale), 0, 255).astype(np.uint8)
    assert get_yolo_detections(unsigned, [as_uint8], FRAME)[0].score == pytest.approx(0.9, 0.01)


def test_hostile_values_give_nothing() -> None:
    model = yolo_model()
    nan = np.full((1, 6, 2100), np.nan, np.float32)
    assert get_yolo_detections(model, [nan], FRAME) == ()
    inf = np.full((1, 6, 2100), np.inf, np.float32)
    assert get_yolo_detections(model, [inf], FRAME) == ()
    # Finite scores, non-finite or inside-out boxes, and boxes wholly outside the image.
    boxes = [(np.inf, 0.5, 0.2, 0.2), (0.5, 0.5, np.inf, 0.2), (0.5, 0.5, -0.2, 0.2)]
    boxes += [(5.0, 5.0, 0.1, 0.1), (0.5, 0.02, 0.2, 0.04), (np.nan, 0.5, 0.2, 0.2)]
    scores = [[0.9, 0.0]] * 5 + [[np.inf, 0.0]]
    out = head(boxes, scores)
    out[0, 0, 6:] = np.linspace(0, 1, 2094)
    assert get_yolo_detections(model, [out], FRAME) == ()
    # A box partly outside is clipped to the image.
    partly = head([(0.0, 0.5, 0.4, 0.4)], [[0.9, 0.0]])
    (found,) = get_yolo_detections(model, [partly], FRAME)
    assert found.box.as_list() == pytest.approx([0.0, 112.0, 128.0, 368.0], abs=0.1)


def test_outputs_that_do_not_fit_the_model_are_model_errors() -> None:
    with pytest.raises(ModelError, match="not the \\[1, 6, 2100\\]"):
        get_yolo_detections(yolo_model(), [np.zeros((1, 6, 10), np.float32)], FRAME)
    with pytest.raises(ModelError, match="not a YOLO detection model"):
        get_yolo_detections(yolo_model(), [], FRAME)
    no_classes = dataclasses.replace(yolo_model(), detection_layout=YoloLayout(0, 2100, True))
    with pytest.raises(ModelError, match="not a YOLO detection model"):
        get_yolo_detections(no_classes, [np.zeros((1, 4, 2100), np.float32)], FRAME)
    # The SSD decoder refuses a YOLO model rather than misreading it.
    with pytest.raises(ModelError, match="not a detection model with SSD outputs"):
        get_detections(yolo_model(), [np.zeros((1, 6, 2100), np.float32)], FRAME)


def test_a_huge_all_scoring_output_is_bounded() -> None:
    """1.6 M candidates all scoring 1: time and memory stay bounded by the NMS cap and top_k."""
    n = MAX_YOLO_VALUES // 5
    model = yolo_model(classes=1, candidates=n)
    out = np.empty((1, 5, n), np.float32)
    rng = np.random.default_rng(0)
    out[0, :2] = rng.random((2, n), np.float32)
    out[0, 2:4] = 0.001  # tiny boxes: few overlap, so NMS keeps top_k of them
    out[0, 4] = 1.0
    tracemalloc.start()
    started = time.perf_counter()
    try:
        found = get_yolo_detections(model, [out], FRAME, threshold=0.25, top_k=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 100
    assert time.perf_counter() - started < 30
    assert peak < 4 * out.nbytes  # a few arrays the size of the output, not candidates squared
    assert n > MAX_NMS_CANDIDATES


def test_non_max_suppression_alone() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    classes = np.array([0, 0, 0])
    assert non_max_suppression(boxes, scores, classes) == [1, 2]
    assert non_max_suppression(boxes, scores, np.array([0, 1, 0])) == [1, 2, 0]
    assert non_max_suppression(boxes[:0], scores[:0], classes[:0]) == []


# -- labels Ultralytics embeds ---------------------------------------------------------------


def test_ultralytics_names_in_every_form() -> None:
    as_json = ultralytics_names(
        '{"task": "detect", "names": {"0": "caf\\u00e9 \\"x\\"", "1": "b"}}'
    )
    assert as_json is not None
    assert as_json.names() == ['café "x"', "b"]
    as_dict = ultralytics_names("{'names': {0: 'it\\'s', 1: \"two\\\\three\"}, 'imgsz': [320]}")
    assert as_dict is not None
    assert as_dict.names() == ["it's", "two\\three"]
    as_yaml = ultralytics_names("task: detect\nnames:\n  0: person\n  1: 'big car'\nimgsz: 3\n")
    assert as_yaml is not None
    assert as_yaml.names() == ["person", "big car"]
    pair = ultralytics_names('{"names": {"0": "\\ud83d\\ude00"}}')
    assert pair is not None
    assert pair.names() == ["😀"]
    assert ultralytics_names("person\ncar\n") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"names": {}}', "empty"),
        ('{"names": {"0": "person", "1": unquoted}}', "not id: 'name' pairs"),
        ('{"names": {"0": "person"', "not id: 'name' pairs"),
        ('{"names": {"0": "' + "x" * 600 + '"}}', "at most 512"),
        ('{"names": {"0": "\\u0000"}}', "NUL bytes"),
        ('{"names": {' + ", ".join(f'"{i}": "c"' for i in range(100_001)) + "}}", "more than"),
    ],
)
def test_bad_ultralytics_names_are_labels_errors(text: str, error: str) -> None:
    started = time.perf_counter()
    with pytest.raises(LabelsError, match=error):
        ultralytics_names(text)
    assert time.perf_counter() - started < 10


def test_a_long_yaml_names_list_is_capped() -> None:
    text = "names:\n" + "".join(f"  {i}: c\n" for i in range(100_002))
    with pytest.raises(LabelsError, match="more than"):
        ultralytics_names(text)


def test_a_metadata_zip_without_names_or_labels() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", '{"task": "detect"}')
    assert read_metadata_labels(b"model" + buffer.getvalue()) is None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", '{"names": {"0": "a"}}')
        archive.writestr("labels.txt", "x\ny\n")
    found = read_metadata_labels(b"model" + buffer.getvalue())
    assert found is not None
    assert found.names() == ["x", "y"]  # a labels file wins over the metadata's names


# -- pixels for YOLO inputs ------------------------------------------------------------------


def test_yolo_inputs_take_pixels_as_0_to_1(
    models: dict[str, Model], image_bytes: dict[str, bytes]
) -> None:
    data = image_bytes["cat.bmp"]
    floats = prepare_frame(data, models[FLOAT].input).tensor
    ints = prepare_frame(data, models[INT8].input).tensor  # scale 1/255, zero point -128
    uints = prepare_frame(data, models[PERSON].input).tensor  # scale 1/255, zero point 0
    assert floats.dtype == np.float32
    assert floats.min() >= 0.0
    assert floats.max() <= 1.0
    assert np.array_equal(ints.astype(np.int16) + 128, uints.astype(np.int16))
    assert np.allclose(floats * 255, uints, atol=1e-3)


# -- the command line ------------------------------------------------------------------------


def test_cli_detects_with_a_yolo_model(
    capfd: pytest.CaptureFixture[str], yolo_dir: Path, images_dir: Path
) -> None:
    status = main(
        [
            *("detect", "--model", str(yolo_dir / FLOAT), "--device", "cpu", "--json"),
            *(str(images_dir / "grace_hopper.bmp"), str(images_dir / "cat.bmp")),
        ]
    )
    out, err = capfd.readouterr()
    assert status == 0, err
    hopper, cat = (json.loads(line) for line in out.splitlines())
    assert hopper["detections"][0]["label"] == "person"
    assert hopper["detections"][0]["score"] > 0.9
    assert [d["label"] for d in cat["detections"]] == ["cat"]
    status = main(
        [
            *("detect", "--model", str(yolo_dir / INT8)),
            *("--labels", str(yolo_dir / "coco80_labels.txt")),
            *("--device", "cpu", str(images_dir / "grace_hopper.bmp")),
        ]
    )
    out, err = capfd.readouterr()
    assert status == 0, err
    assert "person (0)" in out


def test_cli_inspects_a_yolo_model(capfd: pytest.CaptureFixture[str], yolo_dir: Path) -> None:
    assert main(["inspect", str(yolo_dir / EDGETPU)]) == 0
    out, _ = capfd.readouterr()
    assert "task: yolo (object detection (YOLO): 80 classes" in out
    assert "Edge TPU: compiled" in out
    assert main(["inspect", str(yolo_dir / PERSON), "--json"]) == 0
    record = json.loads(capfd.readouterr()[0])
    assert (record["task"], record["num_classes"]) == ("yolo", 1)


# -- the catalog and Ultralytics' metadata.yaml as a labels file -----------------------------


def test_the_catalog_entry_says_agpl(yolo_dir: Path) -> None:
    entry = load_catalog()["yolov8n_coco"]
    assert entry.task == "detection"
    assert entry.license.startswith("AGPL-3.0")
    assert "AGPL-3.0" in entry.label
    assert entry.edgetpu is None
    assert entry.cpu.url.startswith("https://github.com/ultralytics/yolo-flutter-app/raw/")
    assert entry.cpu.sha256 == hashlib.sha256((yolo_dir / FLOAT).read_bytes()).hexdigest()
    assert entry.labels is not None
    assert entry.labels.path.endswith("metadata.yaml")


def test_a_metadata_yaml_is_a_labels_file(tmp_path: Path, yolo_dir: Path) -> None:
    names = (yolo_dir / "coco80_labels.txt").read_text().splitlines()
    yaml = tmp_path / "metadata.yaml"
    lines = "".join(f"  {i}: {name}\n" for i, name in enumerate(names))
    yaml.write_text(f"task: detect\nimgsz:\n- 320\n- 320\nnames:\n{lines}")
    labels = load_labels(yaml)
    assert labels.names() == names
    model = load_model(yolo_dir / INT8, labels=yaml)
    assert model.labels.name(15) == "cat"
    # A YAML without names is read as a plain labels file, line by line.
    other = tmp_path / "other.yaml"
    other.write_text("person\ncar\n")
    assert load_labels(other).names() == ["person", "car"]
