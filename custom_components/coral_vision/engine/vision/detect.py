"""Read objects out of an SSD model's post-processed outputs, in source-image pixels.

`decode_outputs` is the one entry for every model: it hands a YOLO head to `yolo.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..models.model import TF1_LAYOUT, TF2_LAYOUT, DetectionLayout, Model, YoloLayout
from ..results import BBox, Classification, Detection
from .classify import get_classes
from .preprocess import PreparedFrame
from .yolo import get_yolo_detections


def get_detections(
    model: Model,
    outputs: Sequence[npt.NDArray[Any]],
    frame: PreparedFrame,
    *,
    threshold: float = 0.5,
    top_k: int = 100,
) -> tuple[Detection, ...]:
    """Objects scoring at least threshold, best first, with boxes clipped to the source image."""
    if not isinstance(model.detection_layout, DetectionLayout) or len(outputs) != 4:
        raise ModelError(f"{model.name} is not a detection model with SSD outputs")
    layout = _layout(model.detection_layout, outputs)
    real = [spec.dequantize(np.asarray(o)) for spec, o in zip(model.outputs, outputs, strict=True)]
    boxes = real[layout.boxes].reshape(-1, 4)
    classes = real[layout.classes].ravel()
    scores = real[layout.scores].ravel()
    count = min(int(real[layout.count].ravel()[0]), len(scores), len(classes), len(boxes))
    found: list[Detection] = []
    for i in range(max(count, 0)):
        score = float(scores[i])
        if not score >= threshold:  # also drops NaN
            continue
        ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
        box = frame.to_source(BBox(xmin, ymin, xmax, ymax))
        if box.area <= 0:
            continue  # wholly outside the image, e.g. in letterbox padding
        class_id = int(classes[i])
        found.append(Detection(model.labels.name(class_id), class_id, score, box))
    found.sort(key=lambda d: -d.score)
    return tuple(found[: max(top_k, 0)])


def decode_outputs(
    model: Model,
    outputs: Sequence[npt.NDArray[Any]],
    frame: PreparedFrame,
    *,
    threshold: float,
    top_k: int,
) -> tuple[tuple[Detection, ...], tuple[Classification, ...]]:
    """Decode detections or classes, whichever the model's task produces."""
    if isinstance(model.detection_layout, YoloLayout):
        return get_yolo_detections(model, outputs, frame, threshold=threshold, top_k=top_k), ()
    if model.task == "detection":
        return get_detections(model, outputs, frame, threshold=threshold, top_k=top_k), ()
    return (), get_classes(model, outputs, threshold=threshold, top_k=top_k)


def _layout(layout: DetectionLayout, outputs: Sequence[npt.NDArray[Any]]) -> DetectionLayout:
    """Pick the signature's roles, else TF1 (count last) or TF2 (scores first) order by shape."""
    if layout.from_signature:
        return layout
    return TF1_LAYOUT if np.asarray(outputs[3]).size == 1 else TF2_LAYOUT
