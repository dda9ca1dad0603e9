"""Entity bases: one device per accelerator, one per camera linked to it."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from .accelerator import CoralVisionConfigEntry
from .const import DEVICE_CPU, DOMAIN
from .processor import CameraProcessor


def accelerator_device_info(entry: CoralVisionConfigEntry) -> DeviceInfo:
    """The accelerator's device."""
    device = entry.runtime_data.device
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Coral Vision" if device == DEVICE_CPU else "Google Coral",
        model="CPU" if device == DEVICE_CPU else f"Edge TPU ({device})",
        sw_version=entry.runtime_data.model.name,
    )


class AcceleratorEntity(Entity):
    """An entity of the accelerator's device; updated when the backend changes."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: CoralVisionConfigEntry, key: str) -> None:
        """Bind to the entry's accelerator."""
        self.accelerator = entry.runtime_data
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_translation_key = key
        self._attr_device_info = accelerator_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow backend changes."""
        self.async_on_remove(self.accelerator.async_add_listener(self.async_write_ha_state))


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
