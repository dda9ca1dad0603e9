"""Captions on real detections of real photos: none overlaps another, none is drawn over."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import ImageColor, ImageDraw

from custom_components.coral_vision.engine.inference.delegate import Backend, open_backend
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.results import Detection
from custom_components.coral_vision.engine.vision import annotate as annotate_module
from custom_components.coral_vision.engine.vision.preprocess import decode_image

from .conftest import detect_photo

# (photo, lowest score drawn): the kite photo's people stand close together on the beach; the cat
# photo at a low score has ten boxes on a small picture.
PHOTOS = [("kite_and_cold.jpg", 0.5), ("cat.bmp", 0.2), ("grace_hopper.bmp", 0.3)]

type Rect = tuple[int, int, int, int]


@pytest.fixture(scope="module")
def ssd(ssd_model: Model) -> Backend:
    """The COCO SSD on the CPU."""
    return open_backend(ssd_model, None)


def detections_of(ssd: Backend, data: bytes, threshold: float) -> tuple[Detection, ...]:
    """The model's detections on a photo scoring at least threshold."""
    return detect_photo(ssd, data, threshold=threshold)[1]


@pytest.fixture
def filled_rectangles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Rect, Any]]:
    """Every filled rectangle drawn (captions' backgrounds), in pixels with edges included."""
    drawn: list[tuple[Rect, Any]] = []
    rectangle = ImageDraw.ImageDraw.rectangle

    def spy(self: ImageDraw.ImageDraw, xy: Any, fill: Any = None, **kwargs: Any) -> None:
        if fill is not None:
            left, top, right, bottom = (round(v) for v in xy)
            drawn.append(((left, top, right, bottom), fill))
        rectangle(self, xy, fill=fill, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle", spy)
    return drawn


def meets(a: Rect, b: Rect) -> bool:
    """Whether two rectangles with edges included share a pixel."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


@pytest.mark.parametrize(("photo", "threshold"), PHOTOS)
def test_drawn_captions_never_overlap_and_stay_in_the_picture(
    ssd: Backend,
    image_bytes: dict[str, bytes],
    filled_rectangles: list[tuple[Rect, Any]],
    photo: str,
    threshold: float,
) -> None:
    data = image_bytes[photo]
    detections = detections_of(ssd, data, threshold)
    assert len(detections) >= 5
    picture = decode_image(data)
    annotate_module.draw_detections(picture, detections)
    rects = [rect for rect, _ in filled_rectangles]
    assert len(rects) == len(detections), "one caption per detection"
    width, height = picture.size
    for i, rect in enumerate(rects):
        assert 0 <= rect[0] <= rect[2] < width, rect
        assert 0 <= rect[1] <= rect[3] < height, rect
        for other in rects[i + 1 :]:
            assert not meets(rect, other), f"captions {rect} and {other} overlap"


@pytest.mark.parametrize(("photo", "threshold"), PHOTOS)
def test_nothing_is_drawn_over_a_caption(
    ssd: Backend,
    image_bytes: dict[str, bytes],
    filled_rectangles: list[tuple[Rect, Any]],
    photo: str,
    threshold: float,
) -> None:
    """A caption's margin keeps its own colour: no box line, leader or caption crosses it."""
    data = image_bytes[photo]
    picture = decode_image(data)
    annotate_module.draw_detections(picture, detections_of(ssd, data, threshold))
    assert filled_rectangles
    for (left, top, right, bottom), fill in filled_rectangles:
        want = ImageColor.getrgb(fill)
        ring = [(x, y) for x in range(left + 1, right) for y in (top + 1, bottom - 1)]
        ring += [(x, y) for y in range(top + 1, bottom) for x in (left + 1, right - 1)]
        crossed = [p for p in ring if picture.getpixel(p) != want]
        assert not crossed, (
            f"caption at {(left, top, right, bottom)} is drawn over at {crossed[:3]}"
        )


def test_the_layout_is_what_is_drawn(
    ssd: Backend, image_bytes: dict[str, bytes], filled_rectangles: list[tuple[Rect, Any]]
) -> None:
    data = image_bytes["kite_and_cold.jpg"]
    detections = detections_of(ssd, data, 0.5)
    picture = decode_image(data)
    layout = annotate_module.caption_layout(picture.size, detections)
    annotate_module.draw_detections(picture, detections)
    assert [rect for rect, _ in filled_rectangles] == [
        (c.rect[0], c.rect[1], c.rect[2] - 1, c.rect[3] - 1) for c in layout
    ]
    # Each caption sits by its own box (touching it, or tied to it by a line of its colour).
    shown = 0
    for detection, caption in zip(detections, layout, strict=True):
        box = detection.box
        assert caption.rect[0] <= box.xmax
        assert caption.rect[2] >= box.xmin
        if caption.leader:
            start, end = caption.leader
            assert start[0] == end[0], "straight down or up to the box"
            covered = [c.rect for c in layout]
            visible = [
                (start[0], y)
                for y in range(min(start[1], end[1]) + 1, max(start[1], end[1]))
                if not any(r[0] <= start[0] < r[2] and r[1] <= y < r[3] for r in covered)
            ]
            want = ImageColor.getrgb(caption.colour)
            assert all(picture.getpixel(p) == want for p in visible)
            shown += len(visible)
    assert shown, "the people on the beach push a caption away from its box"
