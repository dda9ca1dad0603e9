"""An image entity per camera showing the last frame with matches, boxes drawn."""

from __future__ import annotations

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import CoralVisionConfigEntry
from .entity import CameraEntity, add_camera_entities
from .processor import CameraProcessor

# State comes from the camera's processor or the coordinator: nothing to poll in parallel.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add one image entity per camera."""
    add_camera_entities(
        entry, async_add_entities, lambda processor: [LastDetectionImage(hass, processor)]
    )


class LastDetectionImage(CameraEntity, ImageEntity):
    """The last annotated frame."""

    _attr_translation_key = "last_detection"
    _attr_content_type = "image/jpeg"

    def __init__(self, hass: HomeAssistant, processor: CameraProcessor) -> None:
        """Bind to the camera."""
        CameraEntity.__init__(self, processor, "last_detection")
        ImageEntity.__init__(self, hass)

    def _async_frame_processed(self) -> None:
        """Move the image's timestamp when a new annotated frame exists."""
        self._attr_image_last_updated = self.processor.state.annotated_time
        self.async_write_ha_state()

    async def async_image(self) -> bytes | None:
        """The annotated JPEG."""
        return await self.processor.async_annotated()
