"""Which detections count for a camera: watched labels, minimum scores, box area and a region."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..results import Detection

Point = tuple[float, float]

# A region is drawn by hand: a few dozen corners at most, and checking it is quadratic.
MAX_REGION_POINTS = 100
# A share of the frame below which a region is a line, not an area (0.01 % of the frame).
MIN_REGION_AREA = 1e-4
# Measured with SSD MobileNet v1 on the shared photos (benchmarks/score_distribution.py): real
# objects of at least 0.1 % of the frame score 0.52 or more (0.50 in noisy copies), false people
# that big 0.49 or less; the false ones above 0.5 are smaller, and the minimum area drops them.
DEFAULT_MIN_SCORE = 0.5
_EPS = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectFilter:
    """A camera's rules; areas are shares of the frame, the region is a normalized polygon."""

    scores: Mapping[str, float] = field(default_factory=dict)
    default_score: float = DEFAULT_MIN_SCORE
    min_area: float = 0.0
    max_area: float = 1.0
    region: tuple[Point, ...] = ()

    def accepts(self, detection: Detection, image_size: tuple[int, int]) -> bool:
        """Whether a detection passes every rule."""
        if not self.score_ok(detection.label, detection.score):
            return False
        width, height = image_size
        frame_area = float(width * height) or 1.0
        share = detection.box.area / frame_area
        if not self.min_area <= share <= self.max_area:
            return False
        if self.region:
            # The bottom centre is where an object stands: a person "in the driveway" is one
            # whose feet are in it, whatever their head overlaps.
            box = detection.box
            foot = ((box.xmin + box.xmax) / 2 / width, box.ymax / height)
            return point_in_polygon(foot, self.region)
        return True

    def score_ok(self, label: str, score: float) -> bool:
        """Whether a label is watched and its score reaches the label's minimum."""
        if self.scores:
            min_score = self.scores.get(label)
            return min_score is not None and score >= min_score
        return score >= self.default_score

    def apply(
        self, detections: Iterable[Detection], image_size: tuple[int, int]
    ) -> tuple[Detection, ...]:
        """The detections that pass, in their order."""
        return tuple(d for d in detections if self.accepts(d, image_size))


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Ray casting; a point on the bottom or right edge of an axis-aligned polygon counts as inside."""
    x, y = point
    inside = False
    count = len(polygon)
    for i in range(count):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % count]
        if _on_segment(point, (x1, y1), (x2, y2)):
            return True
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def _on_segment(p: Point, a: Point, b: Point, eps: float = _EPS) -> bool:
    """Whether p lies on the segment from a to b."""
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    if abs(cross) > eps:
        return False
    return (
        min(a[0], b[0]) - eps <= p[0] <= max(a[0], b[0]) + eps
        and min(a[1], b[1]) - eps <= p[1] <= max(a[1], b[1]) + eps
    )


def parse_region(text: str) -> tuple[Point, ...]:
    """Parse "x1,y1; x2,y2; x3,y3 ..." (normalized 0..1); empty text is no region."""
    text = text.strip()
    if not text:
        return ()
    points: list[Point] = []
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        try:
            x_text, y_text = part.split(",")
            point = (float(x_text), float(y_text))
        except ValueError as err:
            raise ValueError(f"'{part.strip()}' is not a point 'x,y'") from err
        if not all(0.0 <= v <= 1.0 for v in point):
            raise ValueError(f"'{part.strip()}' is outside 0..1")
        points.append(point)
    if len(points) < 3:
        raise ValueError("a region needs at least three points")
    return tuple(points)


def check_region(region: Sequence[Point]) -> None:
    """Refuse a region that is not a simple polygon: repeated or too many points, no area, crossing."""
    if len(region) > MAX_REGION_POINTS:
        raise ValueError(f"a region has at most {MAX_REGION_POINTS} points")
    # A point repeated in a row (or the first written again at the end) adds no edge.
    corners = [p for i, p in enumerate(region) if p != region[i - 1]] or list(region[:1])
    if len(set(corners)) < 3:
        raise ValueError("a region needs at least three distinct points")
    if _crosses_itself(corners):
        raise ValueError("the region's edges cross or touch each other")
    if abs(_area(corners)) < MIN_REGION_AREA:
        raise ValueError("the region has no area")


def _area(polygon: Sequence[Point]) -> float:
    """The signed area of a polygon (shoelace formula)."""
    count = len(polygon)
    return (
        sum(
            polygon[i][0] * polygon[(i + 1) % count][1]
            - polygon[(i + 1) % count][0] * polygon[i][1]
            for i in range(count)
        )
        / 2
    )


def _crosses_itself(polygon: Sequence[Point]) -> bool:
    """Whether two edges meet anywhere but at the corner they share (quadratic: few points)."""
    count = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % count]) for i in range(count)]
    for i, (a, b) in enumerate(edges):
        c = edges[(i + 1) % count][1]
        # Neighbouring edges only share b, unless the second one doubles back along the first.
        if (
            abs(_cross(a, b, c)) <= _EPS
            and (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0
        ):
            return True
        for j in range(i + 2, count):
            if i == 0 and j == count - 1:
                continue  # the last edge is the first one's other neighbour
            if _segments_meet((a, b), edges[j]):
                return True
    return False


def _segments_meet(first: tuple[Point, Point], second: tuple[Point, Point]) -> bool:
    """Whether two segments cross or touch."""
    (a, b), (c, d) = first, second
    d1, d2 = _cross(c, d, a), _cross(c, d, b)
    d3, d4 = _cross(a, b, c), _cross(a, b, d)
    if ((d1 > _EPS and d2 < -_EPS) or (d1 < -_EPS and d2 > _EPS)) and (
        (d3 > _EPS and d4 < -_EPS) or (d3 < -_EPS and d4 > _EPS)
    ):
        return True
    return (
        _on_segment(a, c, d) or _on_segment(b, c, d) or _on_segment(c, a, b) or _on_segment(d, a, b)
    )


def _cross(o: Point, a: Point, b: Point) -> float:
    """The z of (a - o) x (b - o): positive when o, a, b turn left."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
