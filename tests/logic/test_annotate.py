"""Annotated frames: boxes and captions drawn on the real photo, as a JPEG of the same size."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageColor

from custom_components.coral_vision.engine.annotate import annotate, label_colour
from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.results import BBox, Detection


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
