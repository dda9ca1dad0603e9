"""The image-processing entity of each camera: `image_processing.scan` runs it on demand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.image_processing import ImageProcessingEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .data import CoralVisionConfigEntry
from .entity import CameraEntity, add_camera_entities
from .processor import CameraProcessor, CameraState

# Scans run through the accelerator's executor, which orders them itself.
PARALLEL_UPDATES = 0

# Attributes that change with every frame even when the objects seen do not.
TIMINGS = frozenset({"process_time_ms", "last_detection"})
VOLATILE_ATTRIBUTES = TIMINGS | {"matches"}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add one entity per camera."""
    add_camera_entities(
        entry, async_add_entities, lambda processor: [CoralVisionImageProcessing(processor)]
    )


class CoralVisionImageProcessing(CameraEntity, ImageProcessingEntity):
    """Objects seen by a camera: the count (detection) or the top class (classification)."""

    _attr_name = None
    # Boxes, scores and timings differ from frame to frame: the database keeps the count and the
    # summary, not a new set of attributes per scan.
    _unrecorded_attributes = VOLATILE_ATTRIBUTES

    def __init__(self, processor: CameraProcessor) -> None:
        """Name it after the camera."""
        super().__init__(processor, "image_processing")
        self._attr_camera_entity = processor.settings.camera_entity
        self._attr_state, self._attr_extra_state_attributes = shown(processor.state)

    async def async_added_to_hass(self) -> None:
        """Tell the processor which entity its events are about."""
        await super().async_added_to_hass()
        self.processor.image_entity_id = self.entity_id

    async def async_update(self) -> None:
        """Scan now (`image_processing.scan`)."""
        await self.processor.async_process()

    def _async_frame_processed(self) -> None:
        """Show the frame if what it shows differs; a frame that only took longer writes nothing."""
        state, attributes = shown(self.processor.state)
        if (state, seen(attributes)) != (self._attr_state, seen(self._attr_extra_state_attributes)):
            self._attr_state, self._attr_extra_state_attributes = state, attributes
        # Home Assistant writes no new state when neither the state nor an attribute changed.
        self.async_write_ha_state()


def shown(state: CameraState) -> tuple[StateType, dict[str, Any]]:
    """The entity's state (count, or top class) and attributes for a camera's last frame."""
    matches: dict[str, list[dict[str, Any]]] = {}
    for detection in state.matches:
        matches.setdefault(detection.label, []).append(
            {"score": round(detection.score, 3), "box": detection.box.as_list()}
        )
    value: StateType = len(state.matches)
    if state.task == "classification":
        value = state.matches[0].label if state.matches else None
    return value, {
        "matches": matches,
        "summary": {label: len(items) for label, items in matches.items()},
        "total_matches": len(state.matches),
        "process_time_ms": state.process_time_ms,
        "last_detection": state.last_detection.isoformat() if state.last_detection else None,
        # Scanned at the burst interval because a motion source is (or was within the hold) on.
        "bursting": state.bursting,
    }


def seen(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What the attributes say, timings only as whether there is one yet (the first frame's)."""
    return {k: (v is not None) if k in TIMINGS else v for k, v in attributes.items()}
