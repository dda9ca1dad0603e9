"""Reloading and unloading: no threads left behind, no entity left answering."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.components.image_processing import DOMAIN as IMAGE_PROCESSING
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
    ConfigSubentry,
)
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_component import DATA_INSTANCES
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN

from .conftest import CAMERA, PhotoCamera, camera_subentry
from .helpers import IP, scan


def our_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("coral-vision"))


def all_threads() -> int:
    # Home Assistant's own executor grows on demand, up to its limit: leave it out.
    return sum(1 for t in threading.enumerate() if not t.name.startswith("SyncWorker"))


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
    for entry in after:
        if entry.disabled_by is None:  # the event entity is off by default: it has no state
            assert hass.states.get(entry.entity_id).state != STATE_UNAVAILABLE, entry.entity_id
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
    assert all(e.closed for e in loaded_entry.runtime_data.accelerator.dispatcher.executors)


async def test_unload_after_stop_listener_removed_quietly(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    hass.bus.async_fire("homeassistant_stop")
    await hass.async_block_till_done()
    assert "Unable to remove unknown job listener" not in caplog.text
    assert our_threads() == []


def count_loads(hass: HomeAssistant, entry: MockConfigEntry) -> list[int]:
    """A list that grows by one each time the entry finishes loading."""
    loads: list[int] = []
    states = [entry.state]

    def changed(_change: ConfigEntryChange, changed: ConfigEntry) -> None:
        if changed.entry_id != entry.entry_id or changed.state is states[-1]:
            return
        states.append(changed.state)
        if changed.state is ConfigEntryState.LOADED:
            loads.append(1)

    async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, changed)
    return loads


async def test_cameras_added_edited_and_removed_apply_at_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    # No update listener: Home Assistant 2026.12 refuses to reload an entry that has one.
    assert loaded_entry.update_listeners == []
    loads = count_loads(hass, loaded_entry)
    front = next(iter(loaded_entry.subentries))

    back = ConfigSubentry(**camera_subentry(labels=["cat"], scores={"cat": 0.5}))
    object.__setattr__(back, "title", "Back door")
    object.__setattr__(back, "unique_id", "camera.back_door")
    hass.config_entries.async_add_subentry(loaded_entry, back)
    await hass.async_block_till_done()
    assert len(loads) == 1
    assert set(loaded_entry.runtime_data.processors) == {front, back.subentry_id}
    assert hass.states.get("binary_sensor.back_door_cat_detected") is not None

    hass.config_entries.async_update_subentry(
        loaded_entry,
        loaded_entry.subentries[front],
        data={**loaded_entry.subentries[front].data, "labels": ["person"]},
    )
    await hass.async_block_till_done()
    assert len(loads) == 2
    assert loaded_entry.runtime_data.processors[front].settings.labels == ("person",)

    hass.config_entries.async_remove_subentry(loaded_entry, back.subentry_id)
    await hass.async_block_till_done()
    assert len(loads) == 3
    assert set(loaded_entry.runtime_data.processors) == {front}
    assert hass.states.get("binary_sensor.back_door_cat_detected") is None
    assert entity_registry.async_get("binary_sensor.back_door_cat_detected") is None
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data.processors[front].settings.camera_entity == CAMERA


async def test_a_reconfigure_reloads_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    # What a reconfigure step ends with: Home Assistant updates the entry and reloads it.
    loads = count_loads(hass, loaded_entry)
    accelerator = loaded_entry.runtime_data
    flow = config_entries.ConfigFlow()
    flow.hass = hass
    flow.handler = DOMAIN
    flow.context = {"source": SOURCE_RECONFIGURE, "entry_id": loaded_entry.entry_id}
    result = flow.async_update_reload_and_abort(loaded_entry, title="Coral Vision desk CPU")
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert len(loads) == 1, "the cameras did not change: no second reload"
    assert loaded_entry.runtime_data is not accelerator
    assert loaded_entry.state is ConfigEntryState.LOADED


@pytest.mark.skipif(
    not hasattr(config_entries.ConfigSubentryFlow, "async_update_reload_and_abort"),
    reason="Home Assistant 2025.4 subentry flows cannot reload the entry themselves",
)
async def test_a_subentry_flow_may_reload_the_entry_itself(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    # Home Assistant's own subentry reload refuses to run while the entry has update listeners.
    front = loaded_entry.subentries[next(iter(loaded_entry.subentries))]
    flow = config_entries.ConfigSubentryFlow()
    flow.hass = hass
    flow.handler = (loaded_entry.entry_id, front.subentry_type)
    flow.context = {"source": SOURCE_RECONFIGURE, "subentry_id": front.subentry_id}
    flow.async_update_reload_and_abort(loaded_entry, front, data={**front.data, "labels": ["tie"]})
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data.processors[front.subentry_id].settings.labels == ("tie",)
