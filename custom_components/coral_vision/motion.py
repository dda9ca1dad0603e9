"""A camera's motion sources: when motion starts, and when it ended a hold time ago."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from homeassistant.const import STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later, async_track_state_change_event


class MotionWatch:
    """Follows binary sensors (motion while `on`) and event entities (motion when they fire).

    `on_start` is called when motion begins, `on_end` once no source has been active for the
    hold time; an event entity's motion is a moment, so it ends at once and only the hold lasts.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        sources: Sequence[str],
        hold: float,
        on_start: Callable[[], None],
        on_end: Callable[[], None],
    ) -> None:
        """Nothing is followed until async_start."""
        self.hass = hass
        self.sources = tuple(sources)
        self.hold = hold
        self._on_start = on_start
        self._on_end = on_end
        self._on: set[str] = set()
        self._hold_timer: CALLBACK_TYPE | None = None
        self._unsub: CALLBACK_TYPE | None = None

    @property
    def active(self) -> bool:
        """Whether a source shows motion now or did within the hold time."""
        return bool(self._on) or self._hold_timer is not None

    @callback
    def async_start(self) -> None:
        """Follow the sources; a binary sensor already on is motion that starts now."""
        self._unsub = async_track_state_change_event(self.hass, self.sources, self._async_changed)
        for entity_id in self.sources:
            state = self.hass.states.get(entity_id)
            if entity_id.startswith("binary_sensor.") and state is not None:
                self._set(entity_id, on=state.state == STATE_ON)

    @callback
    def async_stop(self) -> None:
        """Stop following the sources (without calling on_end)."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._cancel_hold()
        self._on.clear()

    @callback
    def _async_changed(self, event: Event[EventStateChangedData]) -> None:
        """A source changed: a binary sensor turned on or off, or an event entity fired."""
        entity_id = event.data["entity_id"]
        new = event.data["new_state"]
        if not entity_id.startswith("event."):
            self._set(entity_id, on=new is not None and new.state == STATE_ON)
        elif _fired(event.data):
            self._pulse()

    def _set(self, entity_id: str, *, on: bool) -> None:
        """Record a binary sensor's motion; the last one to end starts the hold."""
        if on == (entity_id in self._on):
            return
        was_active = self.active
        if on:
            self._on.add(entity_id)
            self._cancel_hold()
            if not was_active:
                self._on_start()
            return
        self._on.discard(entity_id)
        if not self._on:
            self._start_hold()

    def _pulse(self) -> None:
        """A moment of motion: start if idle, and hold from now unless a sensor is still on."""
        was_active = self.active
        if not self._on:
            self._start_hold()
        if not was_active:
            self._on_start()

    def _start_hold(self) -> None:
        """End the motion after the hold time, unless more comes."""
        self._cancel_hold()
        self._hold_timer = async_call_later(self.hass, self.hold, self._async_held)

    def _cancel_hold(self) -> None:
        """Forget a running hold."""
        if self._hold_timer is not None:
            self._hold_timer()
            self._hold_timer = None

    @callback
    def _async_held(self, _now: datetime) -> None:
        """The hold time passed with no motion."""
        self._hold_timer = None
        self._on_end()


def _fired(data: EventStateChangedData) -> bool:
    """Whether an event entity's change is a new event, not it appearing or coming back."""
    old, new = data["old_state"], data["new_state"]
    if old is None or new is None or old.state == STATE_UNAVAILABLE:
        return False
    return new.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN) and new.state != old.state
