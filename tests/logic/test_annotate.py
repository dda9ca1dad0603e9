"""Annotated frames: boxes and captions drawn on the real photo, as a JPEG of the same size."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, ImageColor

from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.results import BBox, Detection
from custom_components.coral_vision.engine.vision.annotate import (
    Caption,
    annotate,
    caption_layout,
    label_colour,
    text_colour,
)


def test_boxes_are_drawn_in_the_labels_colour(images_dir: Path) -> None:
    photo = (images_dir / "grace_hopper.bmp").read_bytes()
    box = BBox(100, 120, 400, 500)
    out = annotate(photo, [Detection("person", 0, 0.9, box)])
    picture = Image.open(io.BytesIO(out))
    assert picture.format == "JPEG"
    assert picture.size == Image.open(io.BytesIO(photo)).size
    want = ImageColor.getrgb(label_colour("person"))
    # Middle of the box's bottom edge: JPEG is lossy, so compare loosely.
    got = picture.convert("RGB").getpixel((250, 499))
    assert isinstance(got, tuple)
    assert sum(abs(a - b) for a, b in zip(got, want, strict=False)) < 90


def test_no_detections_is_the_plain_frame(images_dir: Path) -> None:
    photo = (images_dir / "cat.bmp").read_bytes()
    assert Image.open(io.BytesIO(annotate(photo, []))).size == Image.open(io.BytesIO(photo)).size


def test_a_corrupt_frame_is_an_image_error() -> None:
    with pytest.raises(ImageError):
        annotate(b"not an image", [])


def boxes_in_a_row(count: int, *, top: int = 200, width: int = 20, gap: int = 5) -> list[Detection]:
    """Small neighbouring people, as in a crowd seen from afar."""
    return [
        Detection(
            "person",
            0,
            0.9 - i / 100,
            BBox(50 + i * (width + gap), top, 50 + i * (width + gap) + width, top + 40),
        )
        for i in range(count)
    ]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_inside(caption: Caption, size: tuple[int, int]) -> None:
    left, top, right, bottom = caption.rect
    assert 0 <= left < right <= size[0], caption
    assert 0 <= top < bottom <= size[1], caption


def assert_legible(captions: Sequence[Caption], size: tuple[int, int]) -> None:
    """No caption overlaps another, and each lies wholly inside the picture."""
    for i, caption in enumerate(captions):
        assert_inside(caption, size)
        for other in captions[i + 1 :]:
            assert not overlap(caption.rect, other.rect), (caption, other)


def test_captions_of_neighbouring_small_boxes_never_overlap() -> None:
    detections = boxes_in_a_row(12)
    captions = caption_layout((640, 480), detections)
    assert [c.text for c in captions] == [f"person {d.score:.0%}" for d in detections]
    assert_legible(captions, (640, 480))


def test_the_best_score_gets_the_spot_above_its_box() -> None:
    detections = boxes_in_a_row(3)
    best = caption_layout((640, 480), detections)[0]
    box = detections[0].box
    assert (best.rect[0], best.rect[3]) == (box.xmin, box.ymin)


def test_a_caption_at_the_top_edge_goes_inside_the_box() -> None:
    caption = caption_layout((640, 480), [Detection("cat", 0, 0.8, BBox(10, 0, 300, 200))])[0]
    assert caption.rect[:2] == (10, 0)


def test_a_caption_at_the_right_edge_stays_in_the_picture() -> None:
    detections = [Detection("person", 0, 0.8, BBox(620, 300, 640, 340))]
    caption = caption_layout((640, 480), detections)[0]
    assert caption.rect[2] == 640
    assert_inside(caption, (640, 480))


def test_a_caption_does_not_hide_a_small_neighbour_when_there_is_room() -> None:
    # The tie's own spot above it would cover the small cup beside it.
    tie = Detection("tie", 0, 0.9, BBox(200, 200, 230, 300))
    cup = Detection("cup", 0, 0.5, BBox(230, 170, 250, 195))
    caption = caption_layout((640, 480), [tie, cup])[0]
    assert not overlap(caption.rect, (230, 170, 250, 195))
    assert caption.rect[0] <= 230, "still beside its own box"
    assert caption.rect[2] >= 200, "still beside its own box"


def test_a_picture_too_crowded_for_every_caption_still_keeps_them_inside() -> None:
    detections = boxes_in_a_row(40, top=5, width=2, gap=0)
    for caption in caption_layout((120, 60), detections):
        assert_inside(caption, (120, 60))


def test_a_caption_wider_than_the_picture_is_cut_to_it() -> None:
    caption = caption_layout((40, 30), [Detection("person", 0, 0.9, BBox(5, 5, 35, 25))])[0]
    assert caption.rect == (0, caption.rect[1], 40, caption.rect[3])


def test_captions_grow_with_the_picture() -> None:
    box = BBox(100, 100, 200, 200)
    small = caption_layout((512, 341), [Detection("cat", 0, 0.7, box)])[0].rect
    large = caption_layout((1920, 1080), [Detection("cat", 0, 0.7, box)])[0].rect
    assert large[3] - large[1] > 2 * (small[3] - small[1])


def test_caption_text_reads_on_its_colour() -> None:
    assert text_colour("#ffcc00") == "black"
    assert text_colour("#007aff") == "white"
    caption = caption_layout((640, 480), [Detection("person", 0, 0.8, BBox(9, 9, 99, 99))])[0]
    assert caption.text_colour == text_colour(label_colour("person"))


def test_a_caption_pushed_away_from_its_box_is_tied_to_it() -> None:
    detections = boxes_in_a_row(12)
    captions = caption_layout((640, 480), detections)
    assert any(c.leader for c in captions), "a crowded row pushes some captions away"
    for detection, caption in zip(detections, captions, strict=True):
        box = detection.box
        left, top, right, bottom = caption.rect
        if caption.leader is None:  # it touches its box
            assert top <= box.ymax
            assert bottom >= box.ymin
            continue
        start, end = caption.leader
        assert left <= start[0] <= right, "starts on the caption"
        assert start[1] in (top, bottom), "starts on the caption"
        assert box.xmin <= end[0] <= box.xmax, "ends on the box"
        assert end[1] in (box.ymin, box.ymax), "ends on the box"
