"""Helpers shared by the integration tests."""

from __future__ import annotations

from homeassistant.core import HomeAssistant

# The camera processor's entity in the integration tests' setup.
IP = "image_processing.front_door"


async def scan(hass: HomeAssistant, *, settle: bool = True) -> None:
    """Ask the camera processor for a scan; `settle`: wait until what it set off is done."""
    await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    if settle:
        await hass.async_block_till_done()
