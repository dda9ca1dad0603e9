"""End to end: a real camera, the real engine on the CPU, real photos, real entities and events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.components.recorder.db_schema import StateAttributes, States, StatesMeta
from homeassistant.components.recorder.util import session_scope
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.coral_vision.const import EVENT_CLEARED, EVENT_DETECTED

from .conftest import PhotoCamera
from .helpers import IP, scan

EVENT_ENTITY = "event.front_door_detection"


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: Any) -> None:
    """Let a test start the real recorder (`recorder_mock`), which must come before hass."""


async def enable_event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Turn on the camera's event entity (off by default) the way a user does."""
    er.async_get(hass).async_update_entity(EVENT_ENTITY, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


async def test_person_detected_once_while_in_view(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    await enable_event_entity(hass, loaded_entry)
    detected = async_capture_events(hass, EVENT_DETECTED)
    cleared = async_capture_events(hass, EVENT_CLEARED)

    await scan(hass)
    assert hass.states.get(IP).state == "0"
    assert detected == []

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    for _ in range(3):
        await scan(hass)
    state = hass.states.get(IP)
    assert int(state.state) >= 1
    assert state.attributes["summary"]["person"] == 1
    assert state.attributes["total_matches"] == int(state.state)
    person = state.attributes["matches"]["person"][0]
    assert person["score"] >= 0.5
    xmin, ymin, xmax, ymax = person["box"]
    assert 0 <= xmin < xmax <= 517
    assert 0 <= ymin < ymax <= 606
    assert state.attributes["process_time_ms"] > 0
    assert state.attributes["last_detection"] is not None

    people = [e for e in detected if e.data["label"] == "person"]
    assert len(people) == 1, "one event per object while it stays in view"
    event = people[0].data
    assert event["entity_id"] == IP
    assert event["camera_entity"] == "camera.front_door"
    assert 0 < event["area"] <= 1
    assert event["snapshot"] is None
    assert hass.states.get("binary_sensor.front_door_person_detected").state == "on"
    assert hass.states.get("sensor.front_door_objects").state == state.state
    assert hass.states.get(EVENT_ENTITY).attributes["event_type"] in ("person", "tie")
    assert hass.states.get("image.front_door_last_detection").state != "unknown"

    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == "0"
    assert hass.states.get("binary_sensor.front_door_person_detected").state == "off"
    assert [e.data["label"] for e in cleared if e.data["label"] == "person"] == ["person"]


async def test_sunflower_fires_nothing(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    detected = async_capture_events(hass, EVENT_DETECTED)
    for _ in range(3):
        await scan(hass)
    assert detected == []
    assert hass.states.get("binary_sensor.front_door_person_detected").state == "off"


async def test_devices_and_entities(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    devices = {
        next(iter(d.identifiers))[1]: d
        for d in dr.async_entries_for_config_entry(device_registry, loaded_entry.entry_id)
    }
    subentry_id = next(iter(loaded_entry.subentries))
    assert set(devices) == {loaded_entry.entry_id, subentry_id}
    accelerator, camera = devices[loaded_entry.entry_id], devices[subentry_id]
    assert camera.via_device_id == accelerator.id
    camera_entities = {
        e.entity_id
        for e in er.async_entries_for_device(
            entity_registry, camera.id, include_disabled_entities=True
        )
    }
    assert camera_entities == {
        IP,
        "sensor.front_door_objects",
        "binary_sensor.front_door_person_detected",
        "binary_sensor.front_door_tie_detected",
        EVENT_ENTITY,
        "image.front_door_last_detection",
    }
    # The event entity repeats coral_vision_detected in the logbook and the database: off until
    # a user turns it on.
    event_entity = entity_registry.async_get(EVENT_ENTITY)
    assert event_entity is not None
    assert event_entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get(EVENT_ENTITY) is None
    diagnostics = {
        e.entity_id for e in er.async_entries_for_device(entity_registry, accelerator.id)
    }
    assert "sensor.coral_vision_cpu_backend" in diagnostics
    assert hass.states.get("sensor.coral_vision_cpu_backend").state == "cpu"


def recorded(
    hass: HomeAssistant, entity_id: str, since: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """The (state, attributes) rows the recorder wrote for an entity since a moment."""
    with session_scope(hass=hass, read_only=True) as session:
        rows = (
            session.query(States.state, StateAttributes.shared_attrs)
            .join(StatesMeta, States.metadata_id == StatesMeta.metadata_id)
            .outerjoin(StateAttributes, States.attributes_id == StateAttributes.attributes_id)
            .filter(StatesMeta.entity_id == entity_id)
            .filter(States.last_updated_ts >= since.timestamp())
            .order_by(States.last_updated_ts)
            .all()
        )
    return [(state, json.loads(attributes or "{}")) for state, attributes in rows]


async def test_same_picture_writes_one_state(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    await scan(hass)  # nothing to see, but the first frame's time is news
    assert hass.states.get(IP).state == "0"
    assert hass.states.get(IP).attributes["process_time_ms"] > 0
    await scan(hass)
    assert len([c for c in changes if c.data["entity_id"] == IP]) == 1
    changes.clear()
    since = dt_util.utcnow()
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    scans = 8
    for _ in range(scans):
        await scan(hass)
    assert photo_camera.frames >= scans, "every scan took a new frame"
    writes = [c for c in changes if c.data["entity_id"] == IP]
    assert len(writes) == 1, "only the first frame changed what the entity shows"
    state = hass.states.get(IP)
    assert state.attributes["summary"]["person"] == 1
    assert state.attributes["process_time_ms"] > 0
    assert state.attributes["matches"]["person"][0]["score"] >= 0.5

    await async_wait_recording_done(hass)
    rows = await get_instance(hass).async_add_executor_job(recorded, hass, IP, since)
    assert len(rows) == 1
    row_state, attributes = rows[0]
    assert row_state == state.state
    assert attributes["summary"] == state.attributes["summary"]
    assert attributes["total_matches"] == state.attributes["total_matches"]
    assert not {"matches", "process_time_ms", "last_detection"} & set(attributes)

    # A different picture is a different state, and the camera lost is one more.
    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == "0"
    photo_camera.photo = None
    await scan(hass)
    assert hass.states.get(IP).state == "unavailable"
    assert len([c for c in changes if c.data["entity_id"] == IP]) == 3
