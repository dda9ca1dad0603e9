"""An event entity per camera whose event types are its watched labels."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
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
    """Add one event entity per camera."""
    add_camera_entities(
        entry,
        async_add_entities,
        lambda processor: [DetectionEvent(processor)] if processor.settings.labels else [],
    )


class DetectionEvent(CameraEntity, EventEntity):
    """Fires when a watched object newly appears."""

    _attr_translation_key = "detection"
    # Off until wanted: every event is a logbook line and a database row repeating the
    # coral_vision_detected line, while the binary sensors and device triggers cover automations.
    _attr_entity_registry_enabled_default = False

    def __init__(self, processor: CameraProcessor) -> None:
        """Bind to the camera; its watched labels are the event types."""
        super().__init__(processor, "detection")
        self._attr_event_types = list(processor.settings.labels)

    def _async_frame_processed(self) -> None:
        """Trigger once per new object."""
        state = self.processor.state
        for detection in state.new:
            self._trigger_event(
                detection.label,
                {
                    "score": round(detection.score, 3),
                    "box": detection.box.as_list(),
                    "snapshot": state.snapshot,
                },
            )
        self.async_write_ha_state()
