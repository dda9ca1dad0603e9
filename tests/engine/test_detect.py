"""Detection end to end on real photos, and decoding both SSD output orders."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.inference.delegate import Backend, open_backend
from custom_components.coral_vision.engine.models.labels import Labels
from custom_components.coral_vision.engine.models.model import (
    DetectionLayout,
    InputSpec,
    Model,
    OutputSpec,
    load_model,
)
from custom_components.coral_vision.engine.results import Detection
from custom_components.coral_vision.engine.vision.detect import decode_outputs, get_detections
from custom_components.coral_vision.engine.vision.preprocess import PreparedFrame

from .conftest import DETECT_DIR, detect_photo, infer


@pytest.fixture(scope="module")
def ssd(ssd_model: Model) -> Backend:
    """The COCO SSD on the CPU."""
    return open_backend(ssd_model, None)


def labels_of(detections: Sequence[Detection]) -> list[str]:
    return [d.label for d in detections]


def test_grace_hopper_person_and_tie(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    frame, found = detect_photo(ssd, image_bytes["grace_hopper.bmp"])
    assert frame.image_size == (512, 600)
    assert labels_of(found)[:2] == ["person", "tie"]
    person, tie = found[0], found[1]
    assert person.id == 0
    assert person.score == pytest.approx(0.71, abs=0.05)
    assert tie.id == 31
    width, height = frame.image_size
    for d in found:
        assert 0 <= d.box.xmin < d.box.xmax <= width
        assert 0 <= d.box.ymin < d.box.ymax <= height
    # The person fills most of the portrait and covers its centre; the tie sits inside it.
    assert person.box.xmin < width / 2 < person.box.xmax
    assert person.box.ymin < height / 2 < person.box.ymax
    assert person.box.area > 0.3 * width * height
    assert tie.box.intersect(person.box).area == pytest.approx(tie.box.area)
    assert tie.box.area < 0.1 * width * height


def test_coral_labels_give_the_same_names(models_dir: Path, image_bytes: dict[str, bytes]) -> None:
    model = load_model(
        models_dir / DETECT_DIR / "detect.tflite", labels=models_dir / "coco_labels.txt"
    )
    _, found = detect_photo(open_backend(model, None), image_bytes["grace_hopper.bmp"])
    assert labels_of(found)[:2] == ["person", "tie"]


def test_kites_and_people(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    _, found = detect_photo(ssd, image_bytes["kite_and_cold.jpg"], threshold=0.3)
    names = labels_of(found)
    assert names.count("person") >= 2
    assert names.count("kite") >= 2


def test_cat(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    _, found = detect_photo(ssd, image_bytes["cat.bmp"])
    assert labels_of(found)[0] == "cat"


def test_sunflower_has_no_person(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    _, found = detect_photo(ssd, image_bytes["sunflower.bmp"], threshold=0.3)
    assert "person" not in labels_of(found)


def test_sorted_thresholded_and_capped(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    frame, outputs = infer(ssd, image_bytes["kite_and_cold.jpg"])
    everything = get_detections(ssd.model, outputs, frame, threshold=0.0)
    scores = [d.score for d in everything]
    assert scores == sorted(scores, reverse=True)
    assert len(everything) > 5
    middle = scores[len(scores) // 2]
    some = get_detections(ssd.model, outputs, frame, threshold=middle)
    assert all(d.score >= middle for d in some)
    assert 0 < len(some) < len(everything)
    assert get_detections(ssd.model, outputs, frame, threshold=0.0, top_k=3) == everything[:3]
    assert get_detections(ssd.model, outputs, frame, threshold=1.01) == ()


def test_letterbox_finds_the_same_person(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    _, stretched = detect_photo(ssd, image_bytes["grace_hopper.bmp"], "stretch")
    frame, boxed = detect_photo(ssd, image_bytes["grace_hopper.bmp"], "letterbox", 0.4)
    assert frame.resize == "letterbox"
    assert frame.content[0] > 0  # a portrait photo: bars left and right
    person = next(d for d in boxed if d.label == "person")
    assert person.box.iou(stretched[0].box) > 0.7


def synthetic(
    order: str,
) -> tuple[Model, tuple[npt.NDArray[Any], ...], PreparedFrame]:
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]], "f4")
    classes = np.array([[1, 0, 5]], "f4")
    scores = np.array([[0.9, 0.6, 0.2]], "f4")
    count = np.array([3], "f4")
    outputs = (boxes, classes, scores, count) if order == "tf1" else (scores, boxes, count, classes)
    frame = PreparedFrame(np.zeros((1, 2, 2, 3), np.uint8), (200, 100))
    return synthetic_model(), outputs, frame


def synthetic_model() -> Model:
    spec = InputSpec(2, 2, 3, np.dtype(np.uint8), 0.0, 0, 0)
    outs = tuple(OutputSpec(i, f"o{i}", np.dtype(np.float32), 0.0, 0) for i in range(4))
    return Model(
        "synthetic",
        b"",
        None,
        "detection",
        spec,
        outs,
        Labels({0: "person", 1: "bicycle"}),
        False,
        DetectionLayout(0, 1, 2, 3),
    )


@pytest.mark.parametrize("order", ["tf1", "tf2"])
def test_both_ssd_output_orders(order: str) -> None:
    model, outputs, frame = synthetic(order)
    found = get_detections(model, outputs, frame, threshold=0.1)
    assert [(d.label, d.id, round(d.score, 2)) for d in found] == [
        ("bicycle", 1, 0.9),
        ("person", 0, 0.6),
        ("id 5", 5, 0.2),
    ]
    # [ymin, xmin, ymax, xmax] normalized -> pixels of a 200x100 image.
    assert found[0].box.as_list() == [40.0, 10.0, 120.0, 50.0]


def test_signature_layout_is_used_as_given() -> None:
    model, outputs, frame = synthetic("tf2")
    named = dataclasses.replace(
        model, detection_layout=DetectionLayout(1, 3, 0, 2, from_signature=True)
    )
    assert get_detections(named, outputs, frame, threshold=0.5)[0].label == "bicycle"


def test_count_limits_and_padding_boxes_are_dropped() -> None:
    model, (boxes, classes, scores, _), _ = synthetic("tf1")
    letterboxed = PreparedFrame(np.zeros((1, 2, 2, 3), np.uint8), (200, 100), (0.0, 0.25, 1, 0.75))
    boxes = boxes.copy()
    boxes[0, 0] = [0.0, 0.0, 0.2, 1.0]  # wholly in the top bar
    found = get_detections(
        model, (boxes, classes, scores, np.array([2], "f4")), letterboxed, threshold=0.1
    )
    assert [d.label for d in found] == ["person"]


def test_decode_outputs_dispatches(ssd: Backend, image_bytes: dict[str, bytes]) -> None:
    frame, outputs = infer(ssd, image_bytes["grace_hopper.bmp"])
    detections, classes = decode_outputs(ssd.model, outputs, frame, threshold=0.5, top_k=10)
    assert classes == ()
    assert labels_of(detections)[:2] == ["person", "tie"]


def test_detections_need_a_detector(mobilenet: Model) -> None:
    frame = PreparedFrame(np.zeros((1, 2, 2, 3), np.uint8), (2, 2))
    with pytest.raises(ModelError, match="not a detection model"):
        get_detections(mobilenet, (np.zeros((1, 1001), np.uint8),), frame)
