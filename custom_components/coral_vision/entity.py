"""Entity bases: one device per accelerator, one per camera (and pooled Edge TPU) linked to it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .accelerator import Accelerator, tpu_identifier
from .const import DOMAIN
from .data import CoralVisionConfigEntry
from .engine.inference.devices import EdgeTpu
from .processor import CameraProcessor

# Newer Home Assistant (2026.10 is tested) links a device to its parent by the parent's device
# id and deprecates `via_device`, the parent's identifier (removal: 2027.8); 2025.4 has only that.
LINK_BY_DEVICE_ID = "via_device_id" in DeviceInfo.__optional_keys__


def add_camera_entities(
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[CameraProcessor], Iterable[Entity]],
) -> None:
    """Add each camera's entities to that camera's subentry."""
    for subentry_id, processor in entry.runtime_data.processors.items():
        async_add_entities(build(processor), config_subentry_id=subentry_id)


def _linked_device_info(accelerator: Accelerator, **info: object) -> DeviceInfo:
    """A device linked to the accelerator's device."""
    link: dict[str, object] = (
        {"via_device_id": accelerator.device_id}
        if LINK_BY_DEVICE_ID
        else {"via_device": (DOMAIN, accelerator.entry_id)}
    )
    # A cast: each Home Assistant version's DeviceInfo declares only its own link key.
    return cast("DeviceInfo", {**info, **link})


def camera_device_info(processor: CameraProcessor) -> DeviceInfo:
    """A camera's device, linked to its accelerator's device."""
    return _linked_device_info(
        processor.accelerator,
        identifiers={(DOMAIN, processor.subentry_id)},
        name=processor.title,
        manufacturer="Coral Vision",
        model=processor.accelerator.model.name,
    )


def tpu_device_info(accelerator: Accelerator, device: str) -> DeviceInfo:
    """A pooled Edge TPU's device, linked to its pool's device."""
    tpu = EdgeTpu.unlisted(device)
    return _linked_device_info(
        accelerator,
        identifiers={(DOMAIN, tpu_identifier(accelerator.entry_id, device))},
        name=tpu.label,
        manufacturer="Google Coral",
        model=f"Edge TPU ({device})",
    )


class CameraEntity(Entity):
    """An entity of a camera's device; updated after every processed frame."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, processor: CameraProcessor, key: str) -> None:
        """Bind to the camera's processor."""
        self.processor = processor
        self._attr_unique_id = f"{processor.subentry_id}_{key}"
        self._attr_device_info = camera_device_info(processor)

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
