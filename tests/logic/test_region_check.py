"""A camera's region must be a simple polygon with an area: check_region refuses the rest."""

from __future__ import annotations

import math

import pytest

from custom_components.coral_vision.engine.camera.filters import (
    MAX_REGION_POINTS,
    check_region,
    parse_region,
)


def circle(points: int) -> tuple[tuple[float, float], ...]:
    """`points` corners on a circle in the middle of the frame."""
    return tuple(
        (
            0.5 + 0.4 * math.cos(2 * math.pi * i / points),
            0.5 + 0.4 * math.sin(2 * math.pi * i / points),
        )
        for i in range(points)
    )


@pytest.mark.parametrize(
    "text",
    [
        "0,0.5; 1,0.5; 1,1; 0,1",
        "0,0; 1,0; 1,1; 0,1; 0,0;",  # closed by repeating the first point
        "0,0; 0.5,0; 1,0; 1,1; 0,1",  # a straight corner
        "0,0; 0,0; 1,0; 1,1",  # a point written twice in a row
        "0.1,0.1; 0.9,0.1; 0.5,0.9",
        "0,0; 1,0; 1,1; 0.5,0.2; 0,1",  # concave
    ],
)
def test_simple_polygons_pass(text: str) -> None:
    check_region(parse_region(text))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.3,0.3; 0.3,0.3; 0.3,0.3", "three distinct"),
        ("0,0; 1,1; 0,0; 1,1", "three distinct"),
        ("0,0; 0.5,0.5; 1,1", "cross"),  # on one line: the last edge runs back over the others
        ("0.5,0.5; 0.5001,0.5; 0.5,0.5001", "no area"),
        ("0,0; 1,1; 1,0; 0,1", "cross"),  # a bow tie
        ("0,0; 1,0; 0.5,0.5; 1,1; 0,1; 0.5,0.5", "cross"),  # two triangles touching at a corner
        ("0,0; 1,0; 0.5,0; 0.5,1", "cross"),  # an edge doubling back over the one before
        ("0,0; 1,0; 1,1; 0,1; 0.5,0", "cross"),  # a corner on another edge
    ],
)
def test_degenerate_polygons_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_region(parse_region(text))


def test_the_number_of_corners_is_capped() -> None:
    check_region(circle(MAX_REGION_POINTS))
    with pytest.raises(ValueError, match="at most"):
        check_region(circle(MAX_REGION_POINTS + 1))
