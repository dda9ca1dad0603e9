"""Logbook lines for real detection events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from homeassistant.core import Event, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.coral_vision.const import DOMAIN, EVENT_CLEARED, EVENT_DETECTED
from custom_components.coral_vision.logbook import async_describe_events

from .conftest import PhotoCamera


async def test_detection_and_clearing_read_well(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    describers: dict[str, Callable[[Event], dict[str, str | None]]] = {}

    def collect(domain: str, event_type: str, fn: Callable[[Event], dict[str, str | None]]) -> None:
        assert domain == DOMAIN
        describers[event_type] = fn

    async_describe_events(hass, collect)
    assert set(describers) == {EVENT_DETECTED, EVENT_CLEARED}

    detected = async_capture_events(hass, EVENT_DETECTED)
    cleared = async_capture_events(hass, EVENT_CLEARED)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await hass.services.async_call(
        "image_processing", "scan", {"entity_id": "image_processing.front_door"}, blocking=True
    )
    photo_camera.photo = images_dir / "sunflower.bmp"
    await hass.services.async_call(
        "image_processing", "scan", {"entity_id": "image_processing.front_door"}, blocking=True
    )
    await hass.async_block_till_done()

    person = next(e for e in detected if e.data["label"] == "person")
    line = describers[EVENT_DETECTED](person)
    assert line["name"] == "Front door"
    assert line["entity_id"] == "image_processing.front_door"
    assert line["message"] is not None
    assert line["message"].startswith("detected person (")
    assert line["message"].endswith("%)")

    gone = next(e for e in cleared if e.data["label"] == "person")
    assert describers[EVENT_CLEARED](gone)["message"] == "no longer sees person"
