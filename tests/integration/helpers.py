"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.coral_vision.const import SUBENTRY_CAMERA

# The camera processor's entity in the integration tests' setup.
IP = "image_processing.front_door"
# The camera flow's filters step, filtering nothing.
FILTERS = {
    "min_area": 0,
    "max_area": 100,
    "region": "",
    "confirm_frames": 1,
    "confirm_window": 1,
    "off_delay": 0,
    "save_snapshots": False,
}


async def scan(hass: HomeAssistant, *, settle: bool = True) -> None:
    """Ask the camera processor for a scan; `settle`: wait until what it set off is done."""
    await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    if settle:
        await hass.async_block_till_done()


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Add the entry and set it up, which must succeed."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload the entry and wait for what that sets off."""
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@contextlib.asynccontextmanager
async def loaded(hass: HomeAssistant, entry: MockConfigEntry) -> AsyncIterator[MockConfigEntry]:
    """The entry, set up for the block and unloaded after it."""
    yield await set_up(hass, entry)
    await unload(hass, entry)


async def later(hass: HomeAssistant, seconds: float) -> None:
    """Let `seconds` pass for Home Assistant's timers and wait for what they set off."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done(wait_background_tasks=True)


async def until(hass: HomeAssistant, done: Callable[[], bool]) -> None:
    """Wait for executor threads' changes to reach the event loop, until `done()`."""
    for _ in range(500):
        await hass.async_block_till_done(wait_background_tasks=True)
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the change never arrived")


async def start_camera(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """Start adding a camera to the entry."""
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA), context={"source": SOURCE_USER}
    )


async def edit_camera(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> Any:
    """Start editing a camera (MockConfigEntry's helper changed its signature in 2026)."""
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CAMERA),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )


async def submit(hass: HomeAssistant, result: Any, user_input: dict[str, Any]) -> Any:
    """Submit a subentry form."""
    return await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
