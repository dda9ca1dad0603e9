"""One model reader: the model check and load_model agree on every model, real or reshaped.

The reshaped variants are real models rewritten with the schema module ai-edge-litert ships:
a gray input, a [1, 1, 1, N] classifier, an SSD with three outputs, and an SSD whose outputs come
in TF2 order with the signature that names them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.inference.delegate import open_backend
from custom_components.coral_vision.engine.models.inspect import ModelReport, inspect_model
from custom_components.coral_vision.engine.models.labels import Labels
from custom_components.coral_vision.engine.models.model import (
    TF1_LAYOUT,
    DetectionLayout,
    InputSpec,
    Model,
    OutputSpec,
    describe_model,
    load_model,
)
from custom_components.coral_vision.engine.runtime import load_runtime
from custom_components.coral_vision.engine.vision.classify import get_classes

from .conftest import DETECT_DIR, classify_photo, detect_photo
from .hostile import Parts, build

TASKS = {"ssd_postprocess": "detection", "yolo": "detection", "classification": "classification"}
SMALL = "mobilenet_v1_0.25_128_quant.tflite"


def rewrite(content: bytes, change: Callable[[Any], None]) -> bytes:
    """The model with `change` applied to its object form, packed again."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    change(model)
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def gray_input(model: Any) -> None:
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = np.array([1, 128, 128, 1], np.int32)


def flat_output(model: Any) -> None:
    graph = model.subgraphs[0]
    graph.tensors[graph.outputs[0]].shape = np.array([1, 1, 1, 1001], np.int32)


def three_outputs(model: Any) -> None:
    graph = model.subgraphs[0]
    graph.outputs = graph.outputs[:3]


def tf2_order_with_signature(model: Any) -> None:
    graph = model.subgraphs[0]
    boxes, classes, scores, count = (int(i) for i in graph.outputs)
    graph.outputs = np.array([scores, boxes, count, classes], np.int32)

    def named(name: str, index: int) -> Any:
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [named("input", int(graph.inputs[0]))]
    signature.outputs = [
        named("output_0", count),
        named("output_1", scores),
        named("output_2", classes),
        named("output_3", boxes),
    ]
    model.signatureDefs = [signature]


def variants(models_dir: Path) -> dict[str, bytes]:
    """Real models reshaped where the check and loading used to disagree."""
    small = (models_dir / SMALL).read_bytes()
    ssd = (models_dir / DETECT_DIR / "detect.tflite").read_bytes()
    return {
        "gray input": rewrite(small, gray_input),
        "[1, 1, 1, N] scores": rewrite(small, flat_output),
        "SSD with 3 outputs": rewrite(ssd, three_outputs),
        "SSD in TF2 order": rewrite(ssd, tf2_order_with_signature),
    }


def assert_agree(report: ModelReport, loaded: Model | ModelError, what: str) -> None:
    """The check's verdict and details are exactly what loading gives."""
    if isinstance(loaded, ModelError):
        assert not report.supported, (what, str(loaded))
        assert report.reason is not None
        assert report.reason in str(loaded), what
        return
    assert report.supported, (what, report.reason)
    assert TASKS[report.task] == loaded.task, what
    assert report.num_classes == loaded.num_classes, what
    assert report.detection_layout == loaded.detection_layout, what
    assert report.edgetpu_compiled == loaded.edgetpu, what
    assert report.labels == tuple(loaded.labels.names()), what
    assert report.input is not None
    spec = loaded.input
    assert report.input.shape == (1, spec.height, spec.width, spec.channels), what
    assert report.input.dtype == spec.dtype.name, what
    assert (report.input.scale or 0.0, report.input.zero_point or 0) == (
        spec.scale,
        spec.zero_point,
    ), what
    assert [o.dtype for o in report.outputs] == [o.dtype.name for o in loaded.outputs], what


def load_or_error(source: Path | bytes) -> Model | ModelError:
    try:
        return load_model(source)
    except ModelError as err:
        return err


def test_check_and_load_agree_on_every_shared_model(models_dir: Path) -> None:
    models = sorted(models_dir.rglob("*.tflite"))
    assert len(models) >= 19, "expected the shared models, including yolo/, face/ and invalid/"
    verdicts = {}
    for path in models:
        report = inspect_model(path)
        loaded = load_or_error(path)
        assert_agree(report, loaded, path.name)
        verdicts[path.relative_to(models_dir).as_posix()] = report.supported
    assert verdicts["invalid/model_invoking_error.tflite"] is False
    assert verdicts[f"{DETECT_DIR}/detect.tflite"] is True
    assert not any(v for k, v in verdicts.items() if k.startswith("face/"))
    assert all(v for k, v in verdicts.items() if k.startswith("yolo/"))


def test_check_and_load_agree_on_reshaped_models(models_dir: Path) -> None:
    for what, content in variants(models_dir).items():
        assert_agree(inspect_model(content), load_or_error(content), what)


def test_gray_inputs_and_flat_score_vectors_are_supported(models_dir: Path) -> None:
    reshaped = variants(models_dir)
    gray = load_model(reshaped["gray input"])
    assert (gray.task, gray.input.channels) == ("classification", 1)
    flat = load_model(reshaped["[1, 1, 1, N] scores"])
    assert (flat.task, flat.num_classes) == ("classification", 1001)


def test_three_output_ssd_is_refused_by_both(models_dir: Path) -> None:
    content = variants(models_dir)["SSD with 3 outputs"]
    report = inspect_model(content)
    assert report.task == "unsupported"
    assert report.reason == (
        "it has TFLite_Detection_PostProcess but 3 outputs, not boxes, classes, scores and count"
    )
    with pytest.raises(ModelError, match="unsupported model: it has TFLite_Detection_PostProcess"):
        load_model(content)


def test_tf2_order_from_the_signature_detects(
    models_dir: Path, image_bytes: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    content = variants(models_dir)["SSD in TF2 order"]
    layout = DetectionLayout(boxes=1, classes=3, scores=0, count=2, from_signature=True)
    assert inspect_model(content).detection_layout == layout
    with caplog.at_level(logging.INFO, logger="custom_components.coral_vision.engine"):
        model = load_model(content, labels=models_dir / DETECT_DIR / "labelmap.txt")
    assert model.detection_layout == layout
    assert "decided from their shapes" not in caplog.text
    _, found = detect_photo(open_backend(model, None), image_bytes["grace_hopper.bmp"])
    assert [d.label for d in found[:2]] == ["person", "tie"]


def test_a_guessed_output_order_is_logged_once_per_load(
    models_dir: Path, image_bytes: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="custom_components.coral_vision.engine"):
        model = load_model(models_dir / DETECT_DIR / "detect.tflite")
        backend = open_backend(model, None)
        for _ in range(3):
            detect_photo(backend, image_bytes["cat.bmp"])
    guessed = [r for r in caplog.records if "decided from their shapes" in r.getMessage()]
    assert len(guessed) == 1
    assert guessed[0].levelno == logging.INFO
    assert guessed[0].getMessage().startswith("detect: ")
    assert model.detection_layout == TF1_LAYOUT


def test_flat_score_vector_classifies(models_dir: Path, image_bytes: dict[str, bytes]) -> None:
    content = variants(models_dir)["[1, 1, 1, N] scores"]
    model = load_model(content, labels=models_dir / "imagenet_labels.txt")
    best = classify_photo(open_backend(model, None), image_bytes["cat.bmp"], top_k=3)
    assert "cat" in " ".join(c.label for c in best)
    # The scores come back however the interpreter shapes them: [1, 1, 1, N] works too.
    synthetic = Model(
        "flat",
        b"",
        None,
        "classification",
        InputSpec(2, 2, 3, np.dtype(np.uint8), 0.0, 0, 0),
        (OutputSpec(0, "scores", np.dtype(np.float32), 0.0, 0),),
        Labels({1: "b"}),
        False,
        num_classes=3,
    )
    scores = np.array([[[[0.1, 0.7, 0.2]]]], np.float32)
    assert [c.label for c in get_classes(synthetic, (scores,), top_k=1)] == ["b"]


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        (Parts(input_shape=(1, -1, -1, 3)), "its input [1, -1, -1, 3] has no fixed size"),
        (Parts(input_shape=(1, 8, 8, 4)), "is not one RGB image or one gray image"),
        (Parts(input_type=2), "its input type int32 is not uint8, int8 or float32"),
        (Parts(output_type=5), "its output scores is string, not numbers"),
        (Parts(output_aliases=7), "[1, 10], and 2 more) are neither class scores"),
    ],
)
def test_small_crafted_models_are_refused_by_both(parts: Parts, reason: str) -> None:
    content = build(parts)
    report = inspect_model(content)
    assert not report.supported
    assert reason in str(report.reason)
    with pytest.raises(ModelError, match=re.escape(reason)):
        load_model(content)


def test_small_crafted_models_that_load(models_dir: Path) -> None:
    floating = build(Parts(input_type=0, output_type=0))
    report = inspect_model(floating)
    assert_agree(report, load_or_error(floating), "float classifier")
    assert "not 8-bit quantized" in " ".join(report.warnings)
    two_graphs = inspect_model(build(Parts(subgraph_aliases=1)))
    assert "2 subgraphs: only the first one is checked" in two_graphs.warnings
    unknown = inspect_model(build(Parts(builtin=250)))
    assert dict(unknown.cpu_ops) == {"BUILTIN_250": 1}
    assert describe_model((models_dir / f"{SMALL[:-7]}_edgetpu.tflite").read_bytes()).edgetpu
    assert not describe_model((models_dir / SMALL).read_bytes()).edgetpu
    with pytest.raises(ModelError):
        describe_model(b"junk")


def no_subgraph(model: Any) -> None:
    model.subgraphs = []


def missing_output(model: Any) -> None:
    model.subgraphs[0].outputs = np.array([9999], np.int32)


def missing_operator_code(model: Any) -> None:
    model.subgraphs[0].operators[0].opcodeIndex = 99


def two_inputs(model: Any) -> None:
    graph = model.subgraphs[0]
    graph.inputs = np.array([graph.inputs[0], graph.inputs[0]], np.int32)


def unnamed_signature(model: Any) -> None:
    tf2_order_with_signature(model)
    for i, entry in enumerate(model.signatureDefs[0].outputs):
        entry.name = f"out{i}"


def huge_signature(model: Any) -> None:
    tf2_order_with_signature(model)
    model.signatureDefs[0].outputs *= 1100


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (no_subgraph, "the model has no subgraph"),
        (missing_output, "input/output tensor 9999 does not exist"),
        (missing_operator_code, "operator code 99 does not exist"),
        (huge_signature, "a signature with 4400 outputs"),
    ],
)
def test_malformed_tables_are_model_errors(models_dir: Path, change: Any, error: str) -> None:
    content = rewrite((models_dir / DETECT_DIR / "detect.tflite").read_bytes(), change)
    with pytest.raises(ModelError, match=error):
        inspect_model(content)
    with pytest.raises(ModelError, match=error):
        load_model(content)


def test_two_inputs_and_unknown_signatures(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ssd = (models_dir / DETECT_DIR / "detect.tflite").read_bytes()
    doubled = rewrite(ssd, two_inputs)
    assert inspect_model(doubled).reason == "it takes 2 inputs; only one image is supported"
    with pytest.raises(ModelError, match="it takes 2 inputs"):
        load_model(doubled)
    # A signature that does not name the SSD outputs: the order is left to the shapes.
    unnamed = rewrite(ssd, unnamed_signature)
    with caplog.at_level(logging.INFO, logger="custom_components.coral_vision.engine"):
        model = load_model(unnamed, name="unnamed")
    assert model.detection_layout == TF1_LAYOUT
    assert "unnamed: no signature names the detection outputs" in caplog.text


class Reordered:
    """A real interpreter whose output details come in another order (a reader bug's effect)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def get_input_details(self) -> Any:
        return self._real.get_input_details()

    def get_output_details(self) -> Any:
        return self._real.get_output_details()[::-1]


def test_the_interpreter_must_read_the_file_as_we_do(models_dir: Path) -> None:
    real = load_runtime()
    reordered = dataclasses.replace(
        real, interpreter_factory=lambda **kw: Reordered(real.interpreter_factory(**kw))
    )
    with pytest.raises(ModelError, match="the interpreter reads other inputs and outputs"):
        load_model(models_dir / DETECT_DIR / "detect.tflite", runtime=reordered)
