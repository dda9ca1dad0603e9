"""Logbook lines for real detection events."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import Event, HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.coral_vision.const import DOMAIN, EVENT_CLEARED, EVENT_DETECTED
from custom_components.coral_vision.logbook import async_describe_events

from .conftest import PhotoCamera, camera_subentry, cpu_entry
from .helpers import IP, loaded, scan

PERSON = "binary_sensor.front_door_person_detected"


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: Any) -> None:
    """The logbook reads the recorder's database, which must start before hass."""


@pytest.fixture
async def logbook(recorder_mock: Recorder, hass: HomeAssistant) -> None:
    """The real logbook on the real recorder."""
    # The logbook registers a frontend panel; the frontend's build is no dependency of the tests.
    hass.config.components.add("frontend")
    assert await async_setup_component(hass, "logbook", {})


@pytest.fixture
async def person_entry(
    hass: HomeAssistant, logbook: None, photo_camera: PhotoCamera
) -> AsyncGenerator[MockConfigEntry]:
    """The front door camera watching people only."""
    entry = cpu_entry(camera_subentry(labels=["person"], scores={"person": 0.5}))
    async with loaded(hass, entry):
        yield entry


async def logbook_lines(
    hass: HomeAssistant, ws: WebSocketGenerator, since: datetime
) -> list[tuple[str, str]]:
    """The logbook since a moment, as the frontend asks for it: (entity or domain, text)."""
    await async_wait_recording_done(hass)
    client = await ws()
    await client.send_json({"id": 1, "type": "logbook/get_events", "start_time": since.isoformat()})
    answer = await client.receive_json()
    assert answer["success"], answer
    return [
        (line.get("domain") or line["entity_id"], line.get("message") or line["state"])
        for line in answer["result"]
        # Home Assistant 2026 leaves image entities out of the logbook; 2025.4 lists each picture.
        if not str(line.get("entity_id", "")).startswith("image.")
    ]


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


async def test_a_detection_reads_once_in_the_logbook(
    hass: HomeAssistant,
    person_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    hass_ws_client: WebSocketGenerator,
) -> None:
    since = dt_util.utcnow()
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    for _ in range(4):
        await scan(hass)
    seen = await logbook_lines(hass, hass_ws_client, since)
    assert Counter(seen) == Counter(
        [
            (DOMAIN, "detected person (71%)"),
            # Home Assistant's own lines for the person sensor turning on and the count changing:
            # no integration can keep a non-sensor's state changes out of the logbook.
            (PERSON, "on"),
            (IP, "1"),
        ]
    ), "one detection: Coral Vision's own line, and no repeat for frames that show the same"

    since = dt_util.utcnow()
    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    seen = await logbook_lines(hass, hass_ws_client, since)
    assert Counter(seen) == Counter([(DOMAIN, "no longer sees person"), (PERSON, "off"), (IP, "0")])
