"""Demo camera: serves the photos of a folder, moving to the next one every few seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.components.camera import PLATFORM_SCHEMA, Camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.entity_platform import AddEntitiesCallback

PLATFORM_SCHEMA = PLATFORM_SCHEMA.extend(
    {
        vol.Required("folder"): cv.string,
        vol.Optional("name", default="Demo camera"): cv.string,
        vol.Optional("seconds_per_photo", default=8): cv.positive_int,
    }
)
_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


async def async_setup_platform(
    hass: HomeAssistant,
    config: dict[str, Any],
    async_add_entities: AddEntitiesCallback,
    discovery_info: dict[str, Any] | None = None,
) -> None:
    """Set up the demo camera from YAML."""
    folder = Path(config["folder"])
    photos = await hass.async_add_executor_job(
        lambda: sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)
    )
    async_add_entities([DemoCamera(config["name"], photos, config["seconds_per_photo"])])


class DemoCamera(Camera):
    """A camera whose picture is the next photo of a folder every few seconds."""

    def __init__(self, name: str, photos: list[Path], seconds: int) -> None:
        """Remember the photos."""
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = f"coral_vision_demo_{name}"
        self._photos = photos
        self._seconds = seconds

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return the photo for the current time slot."""
        if not self._photos:
            return None
        photo = self._photos[int(time.time() // self._seconds) % len(self._photos)]
        return await self.hass.async_add_executor_job(photo.read_bytes)
