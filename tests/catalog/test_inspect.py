"""The model check: every shared model, invalid inputs, fuzzed bytes, URLs and the CLI."""

from __future__ import annotations

import dataclasses
import json
import random
import struct
from collections import Counter
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.cli import run_inspect as main
from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.models.flatbuffer import parse_model
from custom_components.coral_vision.engine.models.inspect import (
    ModelReport,
    format_report,
    inspect_model,
)

from .conftest import TF_DIR

SMALL = "mobilenet_v1_0.25_128_quant.tflite"


def expected_task(name: str) -> str:
    if name == "detect.tflite":
        return "ssd_postprocess"
    if name.startswith(("mobilenet", "tf2_mobilenet")):
        return "classification"
    if name.startswith("yolov8n"):
        return "yolo"
    return "unsupported"


def test_every_shared_model(models_dir: Path) -> None:
    models = sorted(models_dir.rglob("*.tflite"))
    assert len(models) >= 15
    for path in models:
        report = inspect_model(path)
        assert report.task == expected_task(path.name), (path.name, report.reason)
        assert report.edgetpu_compiled == path.name.endswith("_edgetpu.tflite"), path.name
        assert report.supported == (report.reason is None)
        assert format_report(report)
        json.dumps(report.as_dict())
        if report.edgetpu_compiled:
            assert report.operators == report.cpu_operators + 1, path.name


def test_reports_in_detail(models_dir: Path) -> None:
    ssd = inspect_model(
        models_dir / TF_DIR / "detect.tflite", labels=models_dir / TF_DIR / "labelmap.txt"
    )
    assert ssd.input_size == (300, 300)
    assert ssd.input is not None
    assert (ssd.input.dtype, ssd.input.scale, ssd.input.zero_point) == ("uint8", 0.0078125, 128)
    assert ssd.quantized
    assert len(ssd.outputs) == 4
    assert ssd.labels_source == "file"
    assert ssd.labels[:2] == ("person", "bicycle")
    assert dict(ssd.cpu_ops)["TFLite_Detection_PostProcess"] == 1

    compiled = inspect_model(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert compiled.edgetpu_compiled
    assert (compiled.operators, compiled.cpu_operators, compiled.cpu_ops) == (1, 0, ())
    assert compiled.num_classes == 1001
    assert compiled.labels_source == "metadata"
    assert compiled.labels[:2] == ("background", "tench, Tinca tinca")
    assert compiled.has_metadata

    bird = inspect_model(models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite")
    assert (bird.task, bird.input_size, bird.num_classes) == ("classification", (224, 224), 965)
    assert not bird.edgetpu_compiled
    assert bird.cpu_operators == bird.operators == 65

    pose = inspect_model(models_dir / "movenet_single_pose_lightning_ptq_edgetpu.tflite")
    assert pose.task == "unsupported"
    assert "pose" in str(pose.reason)
    assert pose.edgetpu_compiled
    assert pose.cpu_operators == 59
    assert dict(pose.cpu_ops)["QUANTIZE"] == 7

    face = inspect_model(models_dir / "face" / "face_detection_short_range.tflite")
    assert face.task == "unsupported"
    assert "TFLite_Detection_PostProcess" in str(face.reason)
    assert face.input is not None
    assert face.input.dtype == "float32"
    assert not face.quantized


def test_parser_agrees_with_the_interpreter(models_dir: Path) -> None:
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    for path in sorted(models_dir.rglob("*.tflite")):
        model = parse_model(path.read_bytes())
        interpreter = interpreter_module.Interpreter(model_path=str(path))
        details = interpreter.get_input_details()
        assert [tuple(d["shape"]) for d in details] == [
            model.tensor(i).shape for i in model.inputs
        ], path.name
        assert [d["dtype"].__name__ for d in details] == [
            model.tensor(i).dtype for i in model.inputs
        ], path.name
        assert len(interpreter.get_output_details()) == len(model.outputs)
        ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
        assert ops == Counter(model.operator_name(op) for op in model.operators), path.name


def test_invalid_model_is_refused_with_a_reason(models_dir: Path) -> None:
    report = inspect_model(models_dir / "invalid" / "model_invoking_error.tflite")
    assert report.task == "unsupported"
    assert report.reason == "its input [1, 3] is not one RGB image or one gray image"
    assert dict(report.cpu_ops) == {"fake-op-double": 1}


@pytest.mark.parametrize(
    "name", ["coco_labels.txt", "invalid/README.md", "LICENSE.coral-test-data"]
)
def test_non_models_are_model_errors(models_dir: Path, name: str) -> None:
    with pytest.raises(ModelError, match="TFL3"):
        inspect_model(models_dir / name)


def test_missing_file_and_tiny_inputs(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        inspect_model(tmp_path / "absent.tflite")
    for data in (b"", b"TFL3", b"\0\0\0\0TFL3", b"\xff\xff\xff\xffTFL3\0\0\0\0"):
        with pytest.raises(ModelError):
            inspect_model(data)


def test_hostile_offsets_are_model_errors() -> None:
    # Root table at 8 whose soffset points its vtable far outside the buffer.
    far = struct.pack("<I4si", 8, b"TFL3", -(1 << 30))
    # A valid vtable claiming fields beyond the table; then a vector of 2**31 subgraphs.
    vtable = struct.pack("<HHHHH", 10, 8, 0, 0, 8)
    table_pos = 8 + len(vtable)
    vector_pos = table_pos + 12
    body = (
        struct.pack("<i", table_pos - 8)
        + b"\0" * 4
        + struct.pack("<I", vector_pos - (table_pos + 8))
    )
    huge = struct.pack("<I4s", table_pos, b"TFL3") + vtable + body + struct.pack("<I", 1 << 31)
    for data in (far, huge):
        with pytest.raises(ModelError, match="malformed"):
            inspect_model(data)


def test_fuzzed_models_never_crash(models_dir: Path) -> None:
    data = (models_dir / SMALL).read_bytes()
    rng = random.Random(20240611)
    outcomes: Counter[str] = Counter()
    for _ in range(150):
        cut = data[: rng.randrange(len(data))]
        outcomes[_outcome(cut)] += 1
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 16)):
            # Flip bytes in the flatbuffer's head, where the tables and offsets live.
            mutated[rng.randrange(min(len(mutated), 4096))] = rng.randrange(256)
        outcomes[_outcome(bytes(mutated))] += 1
    for _ in range(50):
        outcomes[_outcome(b"\0\0\0\0TFL3" + rng.randbytes(rng.randrange(1, 4096)))] += 1
    assert outcomes["error"] > 0
    assert sum(outcomes.values()) == 350


def _outcome(data: bytes) -> str:
    try:
        report = inspect_model(data)
    except ModelError:
        return "error"
    assert isinstance(report, ModelReport)
    format_report(report)
    json.dumps(report.as_dict())
    return "report"


def test_cli_json(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = models_dir / "mobilenet_v1_0.5_160_quant_edgetpu.tflite"
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "classification"
    assert report["input_size"] == [160, 160]
    assert report["edgetpu_compiled"] is True
    assert report["cpu_operators"] == 0
    assert report["labels_count"] == 1001
    assert report["input"]["zero_point"] == 128


def test_cli_text_and_failures(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(models_dir / "movenet_single_pose_lightning_ptq.tflite")]) == 1
    assert "task: unsupported" in capsys.readouterr().out
    assert main(["inspect", str(models_dir / "coco_labels.txt")]) == 2
    assert "TFL3" in capsys.readouterr().err
    assert main(["inspect", str(models_dir / "coco_labels.txt"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["supported"] is False


def test_labels_from_a_file_win_over_metadata(models_dir: Path, tmp_path: Path) -> None:
    model = models_dir / "mobilenet_v1_0.25_128_quant.tflite"
    report = inspect_model(model, labels=models_dir / "imagenet_labels.txt")
    assert report.labels_source == "file"
    assert report.labels[0] == "background"
    assert not report.warnings

    fallback = inspect_model(model, labels=tmp_path / "missing.txt")
    assert any("labels file unusable" in w for w in fallback.warnings)
    assert fallback.labels_source in ("metadata", None)


def test_forms_and_the_cli_echo_only_short_samples(models_dir: Path) -> None:
    from custom_components.coral_vision.flow_local import report_placeholders

    report = dataclasses.replace(
        inspect_model(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"),
        labels=tuple("x" * 512 for _ in range(2000)),
        cpu_ops=tuple((f"op{i:04d}" + "y" * 200, 1) for i in range(500)),
        cpu_operators=500,
    )
    placeholders = report_placeholders(report)
    assert all(len(text) < 600 for text in placeholders.values()), placeholders
    assert "and 490 more" in placeholders["edgetpu"]
    assert placeholders["labels"].startswith("2000 from the model's metadata (xxx")
    text = format_report(report)
    assert len(text) < 2000
    assert all(len(name) <= 40 for name in report.as_dict()["labels_sample"])
