"""Draw detections on a frame: the picture behind the image entity and saved snapshots."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .preprocess import decode_image
from .results import Detection

# Distinct, readable colours; a label keeps its colour between frames.
_PALETTE = ("#ff3b30", "#34c759", "#007aff", "#ffcc00", "#af52de", "#ff9500", "#5ac8fa", "#ff2d55")


def label_colour(label: str) -> str:
    """A stable colour for a label."""
    return _PALETTE[sum(label.encode()) % len(_PALETTE)]


def annotate(image: bytes, detections: Sequence[Detection], *, quality: int = 85) -> bytes:
    """A JPEG of the image with each detection's box, label and score drawn on it."""
    picture = decode_image(image)
    draw_detections(picture, detections)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def draw_detections(picture: Image.Image, detections: Sequence[Detection]) -> None:
    """Draw boxes and captions in place, sized to the picture."""
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(picture.size) / 30)))
    for detection in detections:
        colour = label_colour(detection.label)
        box = detection.box
        draw.rectangle((box.xmin, box.ymin, box.xmax, box.ymax), outline=colour, width=line)
        caption = f"{detection.label} {detection.score:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        text_w, text_h = right - left, bottom - top
        y = box.ymin - text_h - 2 * line if box.ymin >= text_h + 2 * line else box.ymin
        draw.rectangle(
            (box.xmin, y, box.xmin + text_w + 2 * line, y + text_h + 2 * line), fill=colour
        )
        draw.text((box.xmin + line - left, y + line - top), caption, fill="white", font=font)
