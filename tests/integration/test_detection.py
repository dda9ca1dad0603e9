"""End to end: a real camera, the real engine on the CPU, real photos, real entities and events."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.coral_vision.const import EVENT_CLEARED, EVENT_DETECTED

from .conftest import PhotoCamera

IP = "image_processing.front_door"


async def scan(hass: HomeAssistant) -> None:
    await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    await hass.async_block_till_done()


async def test_person_detected_once_while_in_view(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
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
    assert hass.states.get("event.front_door_detection").attributes["event_type"] in (
        "person",
        "tie",
    )
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
    camera_entities = {e.entity_id for e in er.async_entries_for_device(entity_registry, camera.id)}
    assert camera_entities == {
        IP,
        "sensor.front_door_objects",
        "binary_sensor.front_door_person_detected",
        "binary_sensor.front_door_tie_detected",
        "event.front_door_detection",
        "image.front_door_last_detection",
    }
    diagnostics = {
        e.entity_id for e in er.async_entries_for_device(entity_registry, accelerator.id)
    }
    assert "sensor.coral_vision_cpu_backend" in diagnostics
    assert hass.states.get("sensor.coral_vision_cpu_backend").state == "cpu"
