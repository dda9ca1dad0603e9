"""One binary sensor per watched label and camera: "Person detected"."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
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
    """Add a binary sensor per watched label of each camera."""
    add_camera_entities(
        entry,
        async_add_entities,
        lambda processor: (
            LabelDetectedSensor(processor, lbl) for lbl in processor.settings.labels
        ),
    )


class LabelDetectedSensor(CameraEntity, BinarySensorEntity):
    """On while an object of the label is confirmed, and for the off-delay after."""

    _attr_translation_key = "detected"
    _attr_device_class = BinarySensorDeviceClass.OCCUPANCY

    def __init__(self, processor: CameraProcessor, label: str) -> None:
        """Bind to a label of the camera."""
        super().__init__(processor, f"detected_{label}")
        self.label = label
        self._attr_translation_placeholders = {"label": label.capitalize()}

    @property
    def is_on(self) -> bool:
        """Whether the label is active."""
        return self.label in self.processor.state.active_labels
