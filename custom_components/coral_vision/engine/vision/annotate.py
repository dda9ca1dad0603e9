"""Draw detections on a frame: the picture behind the image entity and saved snapshots."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image, ImageColor, ImageDraw, ImageFont

from ..results import Detection
from .preprocess import decode_image

# Distinct, readable colours; a label keeps its colour between frames.
_PALETTE = ("#ff3b30", "#34c759", "#007aff", "#ffcc00", "#af52de", "#ff9500", "#5ac8fa", "#ff2d55")
# A caption hides a neighbour when it covers this share of the neighbour's box.
_HIDES = 0.2

type Rect = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom excluded
type Point = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Caption:
    """One detection's caption: its text, colours and rectangle in the picture."""

    text: str
    colour: str
    text_colour: str
    rect: Rect
    # A caption pushed away from its box by its neighbours' is tied to it by this line.
    leader: tuple[Point, Point] | None = None


@dataclass(frozen=True, slots=True)
class _Style:
    """Sizes that follow the picture's size."""

    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    line: int


def label_colour(label: str) -> str:
    """A stable colour for a label."""
    return _PALETTE[sum(label.encode()) % len(_PALETTE)]


def text_colour(background: str) -> str:
    """Black on light colours, white on dark ones, whichever reads better."""
    red, green, blue = ImageColor.getrgb(background)[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "white"


def annotate(image: bytes, detections: Sequence[Detection], *, quality: int = 85) -> bytes:
    """A JPEG of the image with each detection's box, label and score drawn on it."""
    picture = decode_image(image)
    draw_detections(picture, detections)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def draw_detections(picture: Image.Image, detections: Sequence[Detection]) -> None:
    """Draw boxes, then captions over them, sized to the picture."""
    style = _style(picture.size)
    draw = ImageDraw.Draw(picture)
    captions = _layout(picture.size, detections, style)
    for detection, caption in zip(detections, captions, strict=True):
        box = detection.box
        draw.rectangle(
            (box.xmin, box.ymin, box.xmax, box.ymax), outline=caption.colour, width=style.line
        )
        if caption.leader:
            draw.line(caption.leader, fill=caption.colour, width=max(1, style.line // 2))
    for caption in captions:
        left, top, right, bottom = caption.rect
        draw.rectangle((left, top, right - 1, bottom - 1), fill=caption.colour)
        text_left, text_top, _, _ = style.font.getbbox(caption.text)
        draw.text(
            (left + style.line - text_left, top + style.line - text_top),
            caption.text,
            fill=caption.text_colour,
            font=style.font,
        )


def caption_layout(size: tuple[int, int], detections: Sequence[Detection]) -> tuple[Caption, ...]:
    """Where draw_detections puts each detection's caption, in the detections' order."""
    return _layout(size, detections, _style(size))


def _style(size: tuple[int, int]) -> _Style:
    """Line width and font for a picture of this size."""
    return _Style(
        font=ImageFont.load_default(size=max(12, round(min(size) / 30))),
        line=max(2, round(min(size) / 200)),
    )


def _layout(
    size: tuple[int, int], detections: Sequence[Detection], style: _Style
) -> tuple[Caption, ...]:
    """Captions inside the picture, clear of each other wherever it has room; best scores first."""
    boxes = [_rect(d) for d in detections]
    placed: dict[int, Caption] = {}
    for index in sorted(range(len(detections)), key=lambda i: -detections[i].score):
        detection = detections[index]
        text = f"{detection.label} {detection.score:.0%}"
        left, top, right, bottom = style.font.getbbox(text)
        caption_size = (int(right - left) + 2 * style.line, int(bottom - top) + 2 * style.line)
        # A box around this one (a person around their tie) cannot be kept clear of its caption.
        others = [b for i, b in enumerate(boxes) if i != index and not _contains(b, boxes[index])]
        rect = _place(boxes[index], caption_size, size, [c.rect for c in placed.values()], others)
        colour = label_colour(detection.label)
        start, end = _leader(rect, boxes[index])
        leader = (start, end) if start != end else None
        placed[index] = Caption(text, colour, text_colour(colour), rect, leader)
    return tuple(placed[i] for i in range(len(detections)))


def _place(
    box: Rect,
    caption_size: tuple[int, int],
    size: tuple[int, int],
    taken: Sequence[Rect],
    others: Sequence[Rect],
) -> Rect:
    """The first free spot near the box: clear of captions, and of other boxes where possible."""
    best: tuple[tuple[int, bool], Rect] | None = None
    for rect in _candidates(box, caption_size, size):
        clash = sum(_overlap(rect, other) for other in taken)
        hides = any(_overlap(rect, other) > _HIDES * _area(other) for other in others)
        if not clash and not hides:
            return rect
        # Crowded: a caption clear of the others that hides a neighbour, else the least overlap.
        key = (clash, hides)
        if best is None or key < best[0]:
            best = (key, rect)
    assert best is not None  # _candidates always yields the spot above the box
    return best[1]


def _candidates(box: Rect, caption_size: tuple[int, int], size: tuple[int, int]) -> Iterator[Rect]:
    """Spots for a caption, nearest first, each moved inside the picture.

    Above the box, inside its top, below it, inside its bottom (left-aligned, then right-aligned),
    then stacked further above and below.
    """
    left, top, right, bottom = box
    width, height = caption_size
    xs = (left, right - width)
    spots = [(x, y) for y in (top - height, top, bottom, bottom - height) for x in xs]
    for step in range(1, size[1] // max(height, 1) + 1):
        spots += [(x, top - height * (step + 1)) for x in xs]
        spots += [(x, bottom + height * step) for x in xs]
    seen: set[Rect] = set()
    for x, y in spots:
        rect = _inside((x, y, x + width, y + height), size)
        if rect not in seen:
            seen.add(rect)
            yield rect


def _leader(caption: Rect, box: Rect) -> tuple[Point, Point]:
    """A short line from the caption's edge to the box's; one point where they touch."""
    centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
    start = _clamp(centre, caption)
    return start, _clamp(start, box)


def _clamp(point: Point, rect: Rect) -> Point:
    """The point of a rectangle (edges included) nearest to a point."""
    return (min(max(point[0], rect[0]), rect[2]), min(max(point[1], rect[1]), rect[3]))


def _inside(rect: Rect, size: tuple[int, int]) -> Rect:
    """The rectangle moved (and, when bigger than the picture, cut) to lie inside it."""
    left, top, right, bottom = rect
    width, height = min(right - left, size[0]), min(bottom - top, size[1])
    left = min(max(left, 0), size[0] - width)
    top = min(max(top, 0), size[1] - height)
    return (left, top, left + width, top + height)


def _rect(detection: Detection) -> Rect:
    """A detection's box in whole pixels."""
    box = detection.box
    return (round(box.xmin), round(box.ymin), round(box.xmax), round(box.ymax))


def _overlap(a: Rect, b: Rect) -> int:
    """The area two rectangles share."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def _area(rect: Rect) -> int:
    """A rectangle's area."""
    return max(rect[2] - rect[0], 0) * max(rect[3] - rect[1], 0)


def _contains(outer: Rect, inner: Rect) -> bool:
    """Whether one rectangle lies wholly inside another."""
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
