"""The wire form of a frame result: a real result survives the trip; anything else is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import load_model
from custom_components.coral_vision.engine.results import (
    BBox,
    Classification,
    Detection,
    FrameResult,
)
from custom_components.coral_vision.engine.wire import WireError, from_wire, to_wire
from tests.engine.conftest import DETECT_DIR


def test_a_real_detection_round_trips_exactly(models_dir: Path, photos: dict[str, bytes]) -> None:
    model = load_model(
        models_dir / DETECT_DIR / "detect.tflite", labels=models_dir / DETECT_DIR / "labelmap.txt"
    )
    executor = Executor(model, None, threshold=0.3)
    try:
        result = executor.run_sync("cam", photos["grace_hopper.bmp"])
    finally:
        executor.close()
    assert result.detections
    text = json.dumps(to_wire(result))
    assert from_wire(json.loads(text)) == result


def test_a_classification_round_trips() -> None:
    result = FrameResult(
        "cam",
        "classification",
        (640, 480),
        "Edge TPU (USB)",
        3.25,
        1.5,
        classes=(Classification("tabby", 282, 0.8125), Classification("cat", 1, 1e-9)),
    )
    assert from_wire(json.loads(json.dumps(to_wire(result)))) == result


GOOD = to_wire(
    FrameResult(
        "cam",
        "detection",
        (10, 20),
        "CPU",
        1.0,
        2.0,
        detections=(Detection("person", 0, 0.5, BBox(1.0, 2.0, 3.0, 4.0)),),
    )
)


@pytest.mark.parametrize(
    "change",
    [
        {"task": "segmentation"},
        {"task": 3},
        {"image_size": [1]},
        {"image_size": [1, True]},
        {"image_size": [1, -2]},
        {"inference_ms": "1"},
        {"inference_ms": float("nan")},
        {"preprocess_ms": None},
        {"source_id": 5},
        {"detections": {}},
        {"detections": [1]},
        {"detections": [{**GOOD["detections"][0], "box": [1, 2, 3]}]},
        {"detections": [{**GOOD["detections"][0], "box": [1, 2, 3, "4"]}]},
        {"detections": [{**GOOD["detections"][0], "id": 1.5}]},
        {"detections": [{**GOOD["detections"][0], "score": False}]},
        {"classes": [{"label": "x", "id": 1}]},
    ],
)
def test_what_is_not_a_result_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(WireError):
        from_wire({**GOOD, **change})


def test_not_an_object_is_refused() -> None:
    with pytest.raises(WireError, match="JSON object"):
        from_wire([GOOD])
    assert from_wire({**GOOD, "model": "extra keys are ignored"}).source_id == "cam"
