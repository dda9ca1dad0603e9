"""Entity bases: one device per accelerator, one per camera linked to it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .accelerator import CoralVisionConfigEntry
from .const import DOMAIN
from .processor import CameraProcessor


def add_camera_entities(
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[CameraProcessor], Iterable[Entity]],
) -> None:
    """Add each camera's entities to that camera's subentry."""
    for subentry_id, processor in entry.runtime_data.processors.items():
        async_add_entities(build(processor), config_subentry_id=subentry_id)


class CameraEntity(Entity):
    """An entity of a camera's device; updated after every processed frame."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, processor: CameraProcessor, key: str) -> None:
        """Bind to the camera's processor."""
        self.processor = processor
        self._attr_unique_id = f"{processor.subentry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, processor.subentry_id)},
            name=processor.title,
            manufacturer="Coral Vision",
            model=processor.accelerator.model.name,
            via_device=(DOMAIN, processor.accelerator.entry_id),
        )

    @property
    def available(self) -> bool:
        """Unavailable when the camera or the accelerator's backend is."""
        return self.processor.available

    async def async_added_to_hass(self) -> None:
        """Follow the processor."""
        self.async_on_remove(self.processor.async_add_listener(self._async_frame_processed))

    def _async_frame_processed(self) -> None:
        """Write the new state."""
        self.async_write_ha_state()
