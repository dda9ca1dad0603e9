"""A frame's result as JSON and back: the one mapping the server writes and its clients read.

`to_wire` gives plain JSON values (floats unrounded, so a result survives the trip exactly);
`from_wire` rebuilds the engine's own FrameResult, Detection and Classification from them and
raises WireError on anything that is not that shape, since a client must not trust its input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from .results import BBox, Classification, Detection, FrameResult, Task

_TASKS = ("detection", "classification")


class WireError(ValueError):
    """A JSON document is not a frame result."""


def to_wire(result: FrameResult) -> dict[str, Any]:
    """The result as a JSON object (boxes in source pixels, times in milliseconds)."""
    return {
        "source_id": result.source_id,
        "task": result.task,
        "image_size": [int(result.image_size[0]), int(result.image_size[1])],
        "backend": result.backend,
        "inference_ms": float(result.inference_ms),
        "preprocess_ms": float(result.preprocess_ms),
        "detections": [
            {
                "label": d.label,
                "id": int(d.id),
                "score": float(d.score),
                "box": [float(d.box.xmin), float(d.box.ymin), float(d.box.xmax), float(d.box.ymax)],
            }
            for d in result.detections
        ],
        "classes": [
            {"label": c.label, "id": int(c.id), "score": float(c.score)} for c in result.classes
        ],
    }


def from_wire(document: Any) -> FrameResult:
    """The FrameResult a JSON object describes; WireError when it is not one."""
    data = _mapping(document, "result")
    task = _field(data, "task", str)
    if task not in _TASKS:
        raise WireError(f"unknown task {task!r}")
    size = _field(data, "image_size", list)
    if len(size) != 2 or not all(_is_int(v) and v >= 0 for v in size):
        raise WireError("image_size must be [width, height]")
    return FrameResult(
        source_id=_field(data, "source_id", str),
        task=cast("Task", task),
        image_size=(int(size[0]), int(size[1])),
        backend=_field(data, "backend", str),
        inference_ms=_number(data, "inference_ms"),
        preprocess_ms=_number(data, "preprocess_ms"),
        detections=tuple(_detection(d) for d in _field(data, "detections", list)),
        classes=tuple(_classification(c) for c in _field(data, "classes", list)),
    )


def _detection(raw: Any) -> Detection:
    data = _mapping(raw, "detection")
    box = _field(data, "box", list)
    if len(box) != 4 or not all(_is_number(v) for v in box):
        raise WireError("box must be [xmin, ymin, xmax, ymax]")
    return Detection(
        label=_field(data, "label", str),
        id=_integer(data, "id"),
        score=_number(data, "score"),
        box=BBox(*(float(v) for v in box)),
    )


def _classification(raw: Any) -> Classification:
    data = _mapping(raw, "class")
    return Classification(
        label=_field(data, "label", str), id=_integer(data, "id"), score=_number(data, "score")
    )


def _mapping(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise WireError(f"a {what} must be a JSON object")
    return raw


def _field[T](data: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise WireError(f"{key!r} must be a {kind.__name__}")
    return value


def _number(data: Mapping[str, Any], key: str) -> float:
    value: Any = data.get(key)
    if not _is_number(value):
        raise WireError(f"{key!r} must be a finite number")
    return float(value)


def _integer(data: Mapping[str, Any], key: str) -> int:
    value: Any = data.get(key)
    if not _is_int(value):
        raise WireError(f"{key!r} must be an integer")
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
