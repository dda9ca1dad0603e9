"""The accelerator's diagnostic sensors, sampled by its coordinator every 30 seconds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from .conftest import PhotoCamera, camera_subentry, cpu_entry
from .helpers import scan, set_up, unload

PREFIX = "sensor.coral_vision_cpu_"


async def refresh(hass: HomeAssistant, later: timedelta = timedelta(0)) -> None:
    """Fire the timers due by now (plus `later`): the coordinator samples every 30 s."""
    async_fire_time_changed(hass, dt_util.utcnow() + later)
    await hass.async_block_till_done(wait_background_tasks=True)


def value(hass: HomeAssistant, key: str) -> str:
    return hass.states.get(PREFIX + key).state


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_diagnostics_after_some_frames(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    photo_camera: PhotoCamera,
    images_dir: Path,
    entity_registry: er.EntityRegistry,
) -> None:
    entry = cpu_entry(camera_subentry())
    await set_up(hass, entry)
    assert value(hass, "backend") == "cpu"
    assert value(hass, "frames_per_minute") == "unknown", "no rate before a second sample"
    assert value(hass, "inference_time") == "unknown", "no frame yet"
    assert value(hass, "queue_depth") == "0"
    assert value(hass, "dropped_frames") == "0"
    for key in ("backend", "frames_per_minute", "inference_time", "queue_depth", "dropped_frames"):
        registered = entity_registry.async_get(PREFIX + key)
        assert registered is not None
        assert registered.entity_category is EntityCategory.DIAGNOSTIC
    assert hass.states.get(PREFIX + "temperature") is None, "a CPU has no temperature"

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    for _ in range(4):
        await scan(hass)
    assert value(hass, "frames_per_minute") == "unknown", "sampled every 30 s, not per frame"

    freezer.tick(timedelta(seconds=30))
    await refresh(hass)
    assert float(value(hass, "frames_per_minute")) == 8.0  # 4 frames in 30 s
    assert float(value(hass, "inference_time")) >= 0
    assert hass.states.get(PREFIX + "inference_time").attributes["unit_of_measurement"] == "ms"
    assert value(hass, "queue_depth") == "0"

    freezer.tick(timedelta(seconds=30))
    await refresh(hass)
    assert float(value(hass, "frames_per_minute")) == 0.0
    for key in ("inference_time", "frames_per_minute"):
        registered = entity_registry.async_get(PREFIX + key)
        assert registered is not None
        assert registered.options["sensor"]["suggested_display_precision"] == 1, key
    await unload(hass, entry)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_inference_time_and_dropped_frames(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    photo_camera.photo = images_dir / "kite_and_cold.jpg"
    await scan(hass)
    executor = loaded_entry.runtime_data.accelerator.dispatcher
    photo = (images_dir / "kite_and_cold.jpg").read_bytes()

    def burst() -> None:
        # Three frames of one source in a row: each replaces the one before it still waiting.
        futures = [executor.submit("burst", photo) for _ in range(3)]
        for future in futures:
            future.exception()

    await hass.async_add_executor_job(burst)
    await refresh(hass, timedelta(seconds=31))
    assert float(value(hass, "inference_time")) > 0
    # A median of timings is no round number: the state says 14.9, not 14.9157079999895.
    assert len(value(hass, "inference_time").partition(".")[2]) <= 1
    assert int(value(hass, "dropped_frames")) >= 1
    assert value(hass, "queue_depth") == "0"


async def test_noisy_diagnostics_are_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry
) -> None:
    entry = cpu_entry()
    await set_up(hass, entry)
    for key in ("queue_depth", "dropped_frames", "frames_per_minute"):
        registered = entity_registry.async_get(PREFIX + key)
        assert registered is not None
        assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION, key
        assert hass.states.get(PREFIX + key) is None
    for key in ("backend", "inference_time"):
        assert hass.states.get(PREFIX + key) is not None, key

    # Enabled by the user, one comes with the entry's next load.
    entity_registry.async_update_entity(PREFIX + "queue_depth", disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert value(hass, "queue_depth") == "0"
    await unload(hass, entry)
