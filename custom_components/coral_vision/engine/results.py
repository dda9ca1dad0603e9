"""Immutable result values: boxes, detections, classifications and a frame's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Task = Literal["detection", "classification"]


@dataclass(frozen=True, slots=True)
class BBox:
    """An axis-aligned box in source-image pixels."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        """Width, never negative."""
        return max(0.0, self.xmax - self.xmin)

    @property
    def height(self) -> float:
        """Height, never negative."""
        return max(0.0, self.ymax - self.ymin)

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return self.width * self.height

    def scale(self, sx: float, sy: float) -> BBox:
        """The box with x scaled by sx and y by sy."""
        return BBox(self.xmin * sx, self.ymin * sy, self.xmax * sx, self.ymax * sy)

    def clip(self, width: float, height: float) -> BBox:
        """The box clipped to an image of the given size."""
        return BBox(
            min(max(self.xmin, 0.0), width),
            min(max(self.ymin, 0.0), height),
            min(max(self.xmax, 0.0), width),
            min(max(self.ymax, 0.0), height),
        )

    def intersect(self, other: BBox) -> BBox:
        """The overlap of two boxes (empty when they do not overlap)."""
        return BBox(
            max(self.xmin, other.xmin),
            max(self.ymin, other.ymin),
            min(self.xmax, other.xmax),
            min(self.ymax, other.ymax),
        )

    def iou(self, other: BBox) -> float:
        """Intersection over union, 0.0 for disjoint or empty boxes."""
        inter = self.intersect(other).area
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        """[xmin, ymin, xmax, ymax], rounded to a tenth of a pixel."""
        return [round(float(v), 1) for v in (self.xmin, self.ymin, self.xmax, self.ymax)]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object."""

    label: str
    id: int
    score: float
    box: BBox


@dataclass(frozen=True, slots=True)
class Classification:
    """One class of an image classification."""

    label: str
    id: int
    score: float


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one frame produced, with where and how fast it ran."""

    source_id: str
    task: Task
    image_size: tuple[int, int]
    backend: str
    inference_ms: float
    preprocess_ms: float
    detections: tuple[Detection, ...] = field(default_factory=tuple)
    classes: tuple[Classification, ...] = field(default_factory=tuple)
