"""The camera subentry flow: the camera, its labels and scores, motion sources, then filters."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector

from .const import (
    CONF_BURST_INTERVAL,
    CONF_CAMERA,
    CONF_CONFIRM_FRAMES,
    CONF_CONFIRM_WINDOW,
    CONF_HOLD_TIME,
    CONF_LABELS,
    CONF_MAX_AREA,
    CONF_MIN_AREA,
    CONF_MIN_SCORE,
    CONF_MOTION_SOURCES,
    CONF_OFF_DELAY,
    CONF_REGION,
    CONF_SAVE_SNAPSHOTS,
    CONF_SCAN_INTERVAL,
    CONF_SCORES,
    DEFAULT_BURST_INTERVAL,
    DEFAULT_HOLD_TIME,
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_SCORE,
    MIN_SCAN_INTERVAL,
    SUBENTRY_CAMERA,
)
from .engine.camera.filters import check_region, parse_region
from .engine.client import ServerModel
from .engine.models.model import Model


def cameras_missing_labels(entry: ConfigEntry, model: Model | ServerModel) -> list[str]:
    """A line for each camera watching labels the model lacks: its title, entity and those labels."""
    known = set(model.labels.names())
    lines = []
    cameras = (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CAMERA)
    for subentry in cameras:
        if missing := [label for label in subentry.data[CONF_LABELS] if label not in known]:
            camera = subentry.data[CONF_CAMERA]
            lines.append(f"- {subentry.title} ({camera}): {', '.join(missing)}")
    return lines


def _seconds(step: float) -> selector.NumberSelector:
    """A 0..3600 s number box."""
    return selector.NumberSelector(
        selector.NumberSelectorConfig(
            min=0,
            max=3600,
            step=step,
            unit_of_measurement="s",
            mode=selector.NumberSelectorMode.BOX,
        )
    )


def _labels_of(entry: ConfigEntry) -> list[str]:
    """The loaded accelerator's model labels."""
    model: Model = entry.runtime_data.accelerator.model
    return model.labels.names()


def _entity_exists(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether an entity has a state or a registry entry (a registered camera may be offline)."""
    return (
        hass.states.get(entity_id) is not None
        or er.async_get(hass).async_get(entity_id) is not None
    )


def _filters_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Why the filters step's input cannot be saved, by field (the most basic error wins)."""
    errors: dict[str, str] = {}
    if user_input[CONF_MIN_AREA] > user_input[CONF_MAX_AREA]:
        errors[CONF_MIN_AREA] = "area_order"
    if user_input[CONF_CONFIRM_FRAMES] > user_input[CONF_CONFIRM_WINDOW]:
        errors[CONF_CONFIRM_FRAMES] = "confirm_order"
    for key in (CONF_CONFIRM_FRAMES, CONF_CONFIRM_WINDOW):
        if not float(user_input[key]).is_integer():  # also nan and inf
            errors[key] = "not_whole"
    for key in (CONF_MIN_AREA, CONF_MAX_AREA, CONF_OFF_DELAY):
        if not math.isfinite(user_input[key]):
            errors[key] = "not_a_number"
    if (region_error := _region_error(user_input.get(CONF_REGION, ""))) is not None:
        errors[CONF_REGION] = region_error
    return errors


def _region_error(text: str) -> str | None:
    """The form error for a region: not points in 0..1, or not a simple polygon with an area."""
    try:
        region = parse_region(text)
    except ValueError:
        return "invalid_region"
    if not region:
        return None
    try:
        check_region(region)
    except ValueError:
        return "region_degenerate"
    return None


# Optional fields, only suggested: a camera without motion sources stores none of them.
MOTION_FIELDS = (CONF_MOTION_SOURCES, CONF_BURST_INTERVAL, CONF_HOLD_TIME)


def _motion_fields(current: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """The camera step's motion fields: sources, and how fast and how long a burst scans."""
    sources = selector.EntitySelectorConfig(domain=["binary_sensor", "event"], multiple=True)
    suggested = {
        CONF_MOTION_SOURCES: [],
        CONF_BURST_INTERVAL: DEFAULT_BURST_INTERVAL,
        CONF_HOLD_TIME: DEFAULT_HOLD_TIME,
    } | {key: current[key] for key in MOTION_FIELDS if key in current}
    fields = (
        selector.EntitySelector(sources),
        _seconds(step=0.1),
        _seconds(step=1),
    )
    return {
        vol.Optional(key, description={"suggested_value": suggested[key]}): field
        for key, field in zip(MOTION_FIELDS, fields, strict=True)
    }


class CameraSubentryFlow(ConfigSubentryFlow):
    """Add or edit a camera: labels to watch, their scores, then filters and confirmation."""

    def __init__(self) -> None:
        """Start empty."""
        self._data: dict[str, Any] = {}

    def _current(self) -> Mapping[str, Any]:
        """The subentry being edited, or nothing for a new one."""
        return self._get_reconfigure_subentry().data if self.source == SOURCE_RECONFIGURE else {}

    def _editing(self) -> str | None:
        """The id of the subentry being edited, if any."""
        return (
            self._get_reconfigure_subentry().subentry_id
            if self.source == SOURCE_RECONFIGURE
            else None
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the camera, the labels to watch and how often to scan."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        labels = _labels_of(entry)
        current = self._current()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = self._camera_errors(entry, user_input)
            if not errors:
                # A motion field left empty is not sent: it goes back to its default.
                kept = {k: v for k, v in current.items() if k not in MOTION_FIELDS}
                self._data = {**kept, **user_input}
                return await self.async_step_scores()
        default_labels = [name for name in ("person",) if name in labels] or labels[:1]
        cameras = selector.EntitySelectorConfig(domain="camera")
        if taken := self._other_cameras(entry):
            cameras["exclude_entities"] = taken
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_CAMERA, default=current.get(CONF_CAMERA, vol.UNDEFINED)
                ): selector.EntitySelector(cameras),
                vol.Required(
                    CONF_LABELS, default=current.get(CONF_LABELS, default_labels)
                ): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=labels, multiple=True, sort=False)
                ),
                # The minimum is 0 (scan on demand); 0 < interval < MIN_SCAN_INTERVAL is refused.
                vol.Required(
                    CONF_SCAN_INTERVAL, default=current.get(CONF_SCAN_INTERVAL, 5)
                ): _seconds(step=MIN_SCAN_INTERVAL),
                **_motion_fields(current),
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    def _other_cameras(self, entry: ConfigEntry) -> list[str]:
        """The cameras of this accelerator's other camera subentries (not the one edited)."""
        editing = self._editing()
        return [
            s.data[CONF_CAMERA]
            for s in entry.subentries.values()
            if s.subentry_id != editing and CONF_CAMERA in s.data
        ]

    def _camera_errors(self, entry: ConfigEntry, user_input: Mapping[str, Any]) -> dict[str, str]:
        """Why the camera step's input cannot be saved, by field."""
        errors: dict[str, str] = {}
        camera = user_input[CONF_CAMERA]
        # The form no longer offers them; another flow may have added one since it was shown.
        if camera in self._other_cameras(entry):
            errors[CONF_CAMERA] = "camera_already_added"
        # A camera being edited keeps its entity even while that entity's integration is down.
        elif camera != self._current().get(CONF_CAMERA) and not _entity_exists(self.hass, camera):
            errors[CONF_CAMERA] = "camera_missing"
        if not user_input.get(CONF_LABELS):
            errors[CONF_LABELS] = "no_labels"
        interval = user_input[CONF_SCAN_INTERVAL]
        if not math.isfinite(interval):
            errors[CONF_SCAN_INTERVAL] = "not_a_number"
        elif 0 < interval < MIN_SCAN_INTERVAL:
            errors[CONF_SCAN_INTERVAL] = "scan_interval_too_short"
        if self._unknown_sources(user_input.get(CONF_MOTION_SOURCES, ())):
            errors[CONF_MOTION_SOURCES] = "motion_source_missing"
        burst = user_input.get(CONF_BURST_INTERVAL, DEFAULT_BURST_INTERVAL)
        if not math.isfinite(burst):
            errors[CONF_BURST_INTERVAL] = "not_a_number"
        elif burst < MIN_SCAN_INTERVAL:  # also 0: a burst is a scan interval, never "none"
            errors[CONF_BURST_INTERVAL] = "burst_interval_too_short"
        if not math.isfinite(user_input.get(CONF_HOLD_TIME, DEFAULT_HOLD_TIME)):
            errors[CONF_HOLD_TIME] = "not_a_number"
        return errors

    def _unknown_sources(self, sources: Collection[str]) -> bool:
        """Whether a newly named motion source does not exist (a kept one may be offline)."""
        known = set(self._current().get(CONF_MOTION_SOURCES, ()))
        return any(s not in known and not _entity_exists(self.hass, s) for s in sources)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit a camera: the same steps, filled in."""
        return await self.async_step_user(user_input)

    async def async_step_scores(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A minimum score for each watched label."""
        labels: list[str] = list(self._data[CONF_LABELS])
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = {
                label: "not_a_number" for label in labels if not math.isfinite(user_input[label])
            }
            if not errors:
                self._data[CONF_SCORES] = {label: float(user_input[label]) for label in labels}
                self._data[CONF_MIN_SCORE] = min(self._data[CONF_SCORES].values())
                return await self.async_step_filters()
        previous = self._data.get(CONF_SCORES, {})
        score = selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=0.05, max=1, step=0.01, mode=selector.NumberSelectorMode.SLIDER
            )
        )
        schema = vol.Schema(
            {
                vol.Required(label, default=previous.get(label, DEFAULT_MIN_SCORE)): score
                for label in labels
            }
        )
        return self.async_show_form(step_id="scores", data_schema=schema, errors=errors)

    async def async_step_filters(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Box area, region of interest, confirmation, off-delay and snapshots."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _filters_errors(user_input)
            if not errors:
                return self._finish({**self._data, **user_input})
        d = {**self._data, **(user_input or {})}
        percent = selector.NumberSelectorConfig(
            min=0, max=100, step=0.1, unit_of_measurement="%", mode=selector.NumberSelectorMode.BOX
        )
        frames = selector.NumberSelectorConfig(
            min=1, max=20, step=1, mode=selector.NumberSelectorMode.BOX
        )
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_MIN_AREA, default=d.get(CONF_MIN_AREA, DEFAULT_MIN_AREA)
                ): selector.NumberSelector(percent),
                vol.Required(
                    CONF_MAX_AREA, default=d.get(CONF_MAX_AREA, 100)
                ): selector.NumberSelector(percent),
                vol.Optional(CONF_REGION, default=d.get(CONF_REGION, "")): selector.TextSelector(
                    selector.TextSelectorConfig(multiline=True)
                ),
                vol.Required(
                    CONF_CONFIRM_FRAMES, default=d.get(CONF_CONFIRM_FRAMES, 1)
                ): selector.NumberSelector(frames),
                vol.Required(
                    CONF_CONFIRM_WINDOW, default=d.get(CONF_CONFIRM_WINDOW, 1)
                ): selector.NumberSelector(frames),
                vol.Required(CONF_OFF_DELAY, default=d.get(CONF_OFF_DELAY, 10)): _seconds(step=1),
                vol.Required(
                    CONF_SAVE_SNAPSHOTS, default=d.get(CONF_SAVE_SNAPSHOTS, False)
                ): selector.BooleanSelector(),
            }
        )
        return self.async_show_form(step_id="filters", data_schema=schema, errors=errors)

    def _finish(self, data: dict[str, Any]) -> SubentryFlowResult:
        """Create the camera, or save the edit (the entry reloads and applies it)."""
        data[CONF_CONFIRM_FRAMES] = int(data[CONF_CONFIRM_FRAMES])
        data[CONF_CONFIRM_WINDOW] = int(data[CONF_CONFIRM_WINDOW])
        state = self.hass.states.get(data[CONF_CAMERA])
        title = state.name if state is not None else data[CONF_CAMERA]
        if self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            self._remove_dropped_labels(subentry.subentry_id, data[CONF_LABELS])
            return self.async_update_and_abort(
                self._get_entry(),
                subentry,
                title=title,
                data=data,
                unique_id=data[CONF_CAMERA],
            )
        return self.async_create_entry(title=title, data=data, unique_id=data[CONF_CAMERA])

    def _remove_dropped_labels(self, subentry_id: str, labels: list[str]) -> None:
        """Forget the binary sensors of labels no longer watched (the reload would orphan them)."""
        registry = er.async_get(self.hass)
        prefix = f"{subentry_id}_detected_"
        for item in er.async_entries_for_config_entry(registry, self._entry_id):
            if (
                item.domain == "binary_sensor"
                and item.config_subentry_id == subentry_id
                and item.unique_id.startswith(prefix)
                and item.unique_id.removeprefix(prefix) not in labels
            ):
                registry.async_remove(item.entity_id)
