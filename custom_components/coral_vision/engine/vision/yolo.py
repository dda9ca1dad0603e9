"""Read objects out of an anchor-free YOLO head (YOLOv5u, v8, v9, v11), in source-image pixels.

The head is one output, [1, 4 + C, N] or [1, N, 4 + C]: per candidate a box as centre x, centre
y, width and height (normalized to 0..1 or in input pixels), then one score per class and no
objectness. Each candidate keeps its best class; scores are compared with the threshold in the
output's own integers, so only the few candidates that pass are dequantized. Then class-aware
non-maximum suppression keeps at most top_k boxes: each round keeps the best box left and drops
the boxes of its class overlapping it, so the rounds are at most top_k, each one numpy pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..models.model import YOLO_BOX_ROWS, Model, OutputSpec, YoloLayout
from ..results import BBox, Detection
from .preprocess import PreparedFrame

DEFAULT_IOU = 0.45
# Candidates kept for NMS, the best first (Ultralytics' max_nms): bounds a hostile output's cost.
MAX_NMS_CANDIDATES = 30_000
# Normalized box centres stay near 0..1; centres beyond this are in input pixels.
_PIXEL_CENTRES = 2.0


def get_yolo_detections(
    model: Model,
    outputs: Sequence[npt.NDArray[Any]],
    frame: PreparedFrame,
    *,
    threshold: float = 0.25,
    top_k: int = 100,
    iou: float = DEFAULT_IOU,
) -> tuple[Detection, ...]:
    """Objects scoring at least threshold after NMS, best first, boxes clipped to the image."""
    layout = model.detection_layout
    if not isinstance(layout, YoloLayout) or layout.classes < 1 or len(outputs) != 1:
        raise ModelError(f"{model.name} is not a YOLO detection model")
    raw = np.asarray(outputs[0])
    if raw.shape != layout.shape:
        raise ModelError(
            f"{model.name}: its output is {list(raw.shape)}, not the {list(layout.shape)} "
            "the model declares"
        )
    if top_k <= 0:
        return ()
    spec = model.outputs[0]
    rows = raw[0] if layout.channels_first else raw[0].T  # a (4 + C, N) view either way
    picked, scores, classes = _best_scores(rows[YOLO_BOX_ROWS:], spec, threshold)
    boxes = _source_boxes(rows, spec, picked, model, frame)
    usable = _usable(boxes, scores)
    boxes, scores, classes = boxes[usable], scores[usable], classes[usable]
    kept = non_max_suppression(boxes, scores, classes, iou=iou, top_k=top_k)
    return tuple(
        Detection(
            model.labels.name(int(classes[i])),
            int(classes[i]),
            float(scores[i]),
            BBox(*(float(v) for v in boxes[i])),
        )
        for i in kept
    )


def _best_scores(
    class_rows: npt.NDArray[Any], spec: OutputSpec, threshold: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Candidates whose best class scores at least threshold: indices, real scores, classes."""
    floor = _integer_floor(spec, threshold, class_rows.dtype)
    if floor is None:  # float, or a quantization that does not keep the order: all of it
        class_rows = spec.dequantize(class_rows)
    with np.errstate(invalid="ignore"):
        classes = class_rows.argmax(axis=0)
        best = np.take_along_axis(class_rows, classes[np.newaxis], axis=0)[0]
        # A loose test in the output's integers first: only those pass on to be dequantized.
        picked = np.flatnonzero(best >= floor) if floor is not None else np.arange(best.size)
        scores = spec.dequantize(best[picked])
        exact = np.flatnonzero(np.isfinite(scores) & (scores >= threshold))
    if exact.size > MAX_NMS_CANDIDATES:
        exact = exact[np.argpartition(-scores[exact], MAX_NMS_CANDIDATES)[:MAX_NMS_CANDIDATES]]
    return picked[exact], scores[exact], classes[picked[exact]]


def _integer_floor(spec: OutputSpec, threshold: float, dtype: np.dtype[Any]) -> int | None:
    """The least quantized score that may reach threshold; None when scores must be dequantized."""
    if not np.issubdtype(dtype, np.integer) or not (math.isfinite(spec.scale) and spec.scale > 0):
        return None
    info = np.iinfo(dtype)
    # One step below the exact bound: rounding can only let a few too many through.
    return int(
        min(max(math.floor(threshold / spec.scale + spec.zero_point) - 1, info.min), info.max)
    )


def _source_boxes(
    rows: npt.NDArray[Any],
    spec: OutputSpec,
    picked: npt.NDArray[np.intp],
    model: Model,
    frame: PreparedFrame,
) -> npt.NDArray[np.float32]:
    """The picked candidates' boxes as (K, 4) corners in source pixels, clipped to the image."""
    centre, size = spec.dequantize(rows[:2, picked]), spec.dequantize(rows[2:4, picked])
    half = size / np.float32(2)
    corners = np.concatenate([centre - half, centre + half]).T  # (K, 4): x0, y0, x1, y1
    if _in_pixels(rows, spec):
        width, height = model.input.width, model.input.height
        corners = corners / np.array([width, height, width, height], np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        mapped = frame.to_source_array(corners)
    # A non-finite coordinate clips into a plausible box: mark it so _usable drops it.
    mapped[~np.isfinite(corners).all(axis=1)] = np.nan
    return mapped


def _in_pixels(rows: npt.NDArray[Any], spec: OutputSpec) -> bool:
    """Whether boxes are in input pixels: candidates cover the input, so some centre is large."""
    with np.errstate(invalid="ignore"):
        return bool(np.nanmax(np.abs(spec.dequantize(rows[:2])), initial=0.0) > _PIXEL_CENTRES)


def _usable(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """Boxes with an area left inside the image (not NaN, not wholly in letterbox padding)."""
    with np.errstate(invalid="ignore"):
        width = boxes[:, 2] - boxes[:, 0]
        height = boxes[:, 3] - boxes[:, 1]
        return np.asarray((width > 0) & (height > 0) & np.isfinite(scores))


def non_max_suppression(
    boxes: npt.NDArray[np.floating[Any]],
    scores: npt.NDArray[np.floating[Any]],
    classes: npt.NDArray[np.integer[Any]],
    *,
    iou: float = DEFAULT_IOU,
    top_k: int = 100,
) -> list[int]:
    """Indices of the boxes kept, best first: per class, none overlaps a better one above `iou`."""
    if scores.size == 0 or top_k <= 0:
        return []
    order = np.argsort(-scores, kind="stable")
    corners = boxes[order].astype(np.float64)
    # Shifting each class to its own region keeps boxes of different classes from overlapping.
    span = float(np.max(corners)) + 1.0
    corners += (classes[order].astype(np.float64) * span)[:, np.newaxis]
    x0, y0, x1, y1 = (np.ascontiguousarray(corners[:, i]) for i in range(4))
    areas = (x1 - x0) * (y1 - y0)
    left = np.arange(order.size)
    kept: list[int] = []
    while left.size and len(kept) < top_k:
        best, rest = left[0], left[1:]
        kept.append(int(order[best]))
        width = np.minimum(x1[rest], x1[best]) - np.maximum(x0[rest], x0[best])
        height = np.minimum(y1[rest], y1[best]) - np.maximum(y0[rest], y0[best])
        overlap = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        left = rest[overlap <= iou * (areas[rest] + areas[best] - overlap)]
    return kept
