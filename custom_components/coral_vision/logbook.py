"""Logbook entries for detections: "Front door detected person (71 %)"."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback

from .const import DOMAIN, EVENT_CLEARED, EVENT_DETECTED


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str | None]]], None],
) -> None:
    """Describe coral_vision_detected and coral_vision_cleared."""

    @callback
    def describe(event: Event) -> dict[str, str | None]:
        data = event.data
        entity_id = data.get("entity_id")
        state = hass.states.get(entity_id) if entity_id else None
        name = state.name if state is not None else data.get("camera_entity", "Coral Vision")
        if event.event_type == EVENT_DETECTED:
            message = f"detected {data.get('label')} ({float(data.get('score', 0)):.0%})"
        else:
            message = f"no longer sees {data.get('label')}"
        return {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: message,
            LOGBOOK_ENTRY_ENTITY_ID: entity_id,
        }

    async_describe_event(DOMAIN, EVENT_DETECTED, describe)
    async_describe_event(DOMAIN, EVENT_CLEARED, describe)
