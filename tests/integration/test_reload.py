"""Reloading and unloading: no threads left behind, no entity left answering."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from homeassistant.components.image_processing import DOMAIN as IMAGE_PROCESSING
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_component import DATA_INSTANCES
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import PhotoCamera

IP = "image_processing.front_door"


def our_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("coral-vision"))


def all_threads() -> int:
    # Home Assistant's own executor grows on demand, up to its limit: leave it out.
    return sum(1 for t in threading.enumerate() if not t.name.startswith("SyncWorker"))


async def scan(hass: HomeAssistant) -> None:
    await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    await hass.async_block_till_done()


async def test_reloads_leave_no_threads(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    running = our_threads()
    assert any(name.startswith("coral-vision-infer") for name in running)
    await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    await scan(hass)
    baseline = all_threads()
    for _ in range(10):
        assert await hass.config_entries.async_reload(loaded_entry.entry_id)
        await hass.async_block_till_done()
        await scan(hass)
    assert our_threads() == running
    assert all_threads() == baseline
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert int(hass.states.get(IP).state) >= 1


async def test_unload_removes_every_entity(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    entity_registry: er.EntityRegistry,
) -> None:
    entities = er.async_entries_for_config_entry(entity_registry, loaded_entry.entry_id)
    ids = {e.entity_id for e in entities}
    assert IP in ids
    assert "sensor.coral_vision_cpu_backend" in ids
    await scan(hass)
    frames = photo_camera.frames

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    for entity_id in ids:
        state = hass.states.get(entity_id)
        assert state is None or state.state == STATE_UNAVAILABLE, entity_id
    component = hass.data[DATA_INSTANCES][IMAGE_PROCESSING]
    assert component.get_entity(IP) is None
    assert our_threads() == []

    await scan(hass)
    assert photo_camera.frames == frames, "the scan reached nothing"

    # The registry keeps the entities; loading again brings them back under the same ids.
    after = er.async_entries_for_config_entry(entity_registry, loaded_entry.entry_id)
    assert {e.entity_id for e in after} == ids
    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert component.get_entity(IP) is not None
    for entity_id in ids:
        assert hass.states.get(entity_id).state != STATE_UNAVAILABLE, entity_id
    await scan(hass)
    assert photo_camera.frames == frames + 1


async def test_stopping_home_assistant_closes_the_engine(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    # Home Assistant does not unload entries when it stops: its threads must end anyway.
    await scan(hass)
    assert our_threads()
    await hass.async_stop(force=True)
    assert our_threads() == []
    assert loaded_entry.runtime_data.executor.closed


async def test_unload_after_stop_listener_removed_quietly(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    hass.bus.async_fire("homeassistant_stop")
    await hass.async_block_till_done()
    assert "Unable to remove unknown job listener" not in caplog.text
    assert our_threads() == []
