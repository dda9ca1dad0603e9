"""The image-processing entity of each camera: `image_processing.scan` runs it on demand."""

from __future__ import annotations

from typing import Any

from homeassistant.components.image_processing import ImageProcessingEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .accelerator import CoralVisionConfigEntry
from .entity import CameraEntity, add_camera_entities
from .processor import CameraProcessor

# Scans run through the accelerator's executor, which orders them itself.
PARALLEL_UPDATES = 0


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

    def __init__(self, processor: CameraProcessor) -> None:
        """Name it after the camera."""
        super().__init__(processor, "image_processing")
        self._attr_camera_entity = processor.settings.camera_entity

    async def async_added_to_hass(self) -> None:
        """Tell the processor which entity its events are about."""
        await super().async_added_to_hass()
        self.processor.image_entity_id = self.entity_id

    async def async_update(self) -> None:
        """Scan now (`image_processing.scan`)."""
        await self.processor.async_process()

    @property
    def state(self) -> StateType:
        """Number of matching objects, or the top class of a classification."""
        state = self.processor.state
        if state.task == "classification":
            return state.matches[0].label if state.matches else None
        return len(state.matches)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Matches by label, a summary, and timings."""
        state = self.processor.state
        matches: dict[str, list[dict[str, Any]]] = {}
        for detection in state.matches:
            matches.setdefault(detection.label, []).append(
                {"score": round(detection.score, 3), "box": detection.box.as_list()}
            )
        return {
            "matches": matches,
            "summary": {label: len(items) for label, items in matches.items()},
            "total_matches": len(state.matches),
            "process_time_ms": state.process_time_ms,
            "last_detection": state.last_detection.isoformat() if state.last_detection else None,
        }
