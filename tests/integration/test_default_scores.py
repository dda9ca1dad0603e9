"""A camera added with the form's defaults reports the people in front, not specks far away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.coral_vision.const import EVENT_DETECTED, SUBENTRY_CAMERA

from .conftest import CAMERA, PhotoCamera

# The two children in the foreground of kite_and_cold.jpg (1352 x 900), drawn by hand; SSD
# MobileNet v1 scores them 0.55 and 0.52.
CHILDREN = ((113, 612, 165, 762), (217, 698, 270, 852))


def defaults(result: Any) -> dict[str, Any]:
    """Each form field's default."""
    return {str(k): k.default() for k in result["data_schema"].schema if callable(k.default)}


async def add_camera_with_defaults(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add camera.front_door watching people, accepting every default the form offers."""
    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": SOURCE_USER}
    )
    result = await flows.async_configure(
        result["flow_id"], {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 0}
    )
    assert result["step_id"] == "scores"
    result = await flows.async_configure(result["flow_id"], defaults(result))
    assert result["step_id"] == "filters"
    result = await flows.async_configure(result["flow_id"], defaults(result))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


def on(box: list[float], child: tuple[int, int, int, int]) -> bool:
    """Whether a reported box is on a child: the child's centre inside it."""
    x, y = (child[0] + child[2]) / 2, (child[1] + child[3]) / 2
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


async def test_default_settings_report_the_children_in_front_and_no_specks(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    photo_camera.photo = images_dir / "kite_and_cold.jpg"
    await add_camera_with_defaults(hass, accelerator)
    detected = async_capture_events(hass, EVENT_DETECTED)
    await hass.services.async_call(
        "image_processing", "scan", {"entity_id": "image_processing.front_door"}, blocking=True
    )
    await hass.async_block_till_done()

    people = [e.data for e in detected if e.data["label"] == "person"]
    for child in CHILDREN:
        assert any(on(p["box"], child) for p in people), f"the child at {child} is not reported"
    # The distant people and the kite taken for a person are each under 0.1 % of the frame.
    assert all(p["area"] >= 0.001 for p in people), people
