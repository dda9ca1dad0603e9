"""Sensors: each camera's object count, the accelerator's diagnostics, and each pooled TPU's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTemperature, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .coordinator import AcceleratorCoordinator, DeviceStats
from .data import CoralVisionConfigEntry
from .entity import CameraEntity, add_camera_entities, tpu_device_info
from .processor import CameraProcessor


@dataclass(frozen=True, kw_only=True)
class AcceleratorSensorDescription(SensorEntityDescription):
    """A diagnostic sensor of the accelerator (or of one pooled TPU), read from its statistics."""

    value_fn: Callable[[DeviceStats], float | str | None]


def _tenths(value: float | None) -> float | None:
    """A measurement rounded to a tenth: the state itself, not only its display, stays short."""
    return None if value is None else round(value, 1)


INFERENCE_TIME = AcceleratorSensorDescription(
    key="inference_time",
    translation_key="inference_time",
    native_unit_of_measurement=UnitOfTime.MILLISECONDS,
    device_class=SensorDeviceClass.DURATION,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=1,
    value_fn=lambda s: _tenths(s.executor.inference_p50_ms),
)
FRAMES_PER_MINUTE = AcceleratorSensorDescription(
    key="frames_per_minute",
    translation_key="frames_per_minute",
    entity_registry_enabled_default=False,  # noisy: enable it to watch the load
    native_unit_of_measurement="frames/min",
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=1,
    value_fn=lambda s: _tenths(s.frames_per_minute),
)
QUEUE_DEPTH = AcceleratorSensorDescription(
    key="queue_depth",
    translation_key="queue_depth",
    entity_registry_enabled_default=False,  # noisy: enable it to watch the load
    state_class=SensorStateClass.MEASUREMENT,
    value_fn=lambda s: s.executor.queue_depth,
)
DROPPED_FRAMES = AcceleratorSensorDescription(
    key="dropped_frames",
    translation_key="dropped_frames",
    entity_registry_enabled_default=False,  # noisy: enable it to watch the load
    state_class=SensorStateClass.TOTAL_INCREASING,
    value_fn=lambda s: s.executor.frames_dropped,
)
BACKEND = AcceleratorSensorDescription(
    key="backend",
    translation_key="backend",
    device_class=SensorDeviceClass.ENUM,
    options=["edgetpu_usb", "edgetpu_pci", "cpu"],
    value_fn=lambda s: s.executor.backend.kind.replace("-", "_") if s.executor.backend else None,
)
TEMPERATURE_SENSOR = AcceleratorSensorDescription(
    key="temperature",
    translation_key="temperature",
    native_unit_of_measurement=UnitOfTemperature.CELSIUS,
    device_class=SensorDeviceClass.TEMPERATURE,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=1,
    value_fn=lambda s: _tenths(s.temperature_c),
)
# One device: all on the accelerator's device. A pool: the totals on the pool's device, and
# each TPU's own on its device.
ACCELERATOR_SENSORS = (INFERENCE_TIME, FRAMES_PER_MINUTE, QUEUE_DEPTH, DROPPED_FRAMES, BACKEND)
POOL_SENSORS = (INFERENCE_TIME, FRAMES_PER_MINUTE, QUEUE_DEPTH, DROPPED_FRAMES)
TPU_SENSORS = (BACKEND, INFERENCE_TIME, FRAMES_PER_MINUTE)


# State comes from the camera's processor or the coordinator: nothing to poll in parallel.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the accelerator's diagnostics, each pooled TPU's, and one object counter per camera."""
    coordinator = entry.runtime_data.coordinator
    if entry.runtime_data.accelerator.pooled:
        async_add_entities(AcceleratorSensor(entry, coordinator, d) for d in POOL_SENSORS)
        _async_follow_members(entry, async_add_entities)
    else:
        descriptions = list(ACCELERATOR_SENSORS)
        if coordinator.data.temperature_c is not None:
            descriptions.append(TEMPERATURE_SENSOR)
        async_add_entities(AcceleratorSensor(entry, coordinator, d) for d in descriptions)
    add_camera_entities(entry, async_add_entities, lambda processor: [ObjectCountSensor(processor)])


def _async_follow_members(
    entry: CoralVisionConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add each pooled TPU's sensors now, and those of TPUs that join later."""
    coordinator = entry.runtime_data.coordinator
    added: set[str] = set()

    @callback
    def _async_add_new() -> None:
        members = coordinator.data.devices
        added.intersection_update(members)  # a TPU removed and plugged in again comes back
        for device, stats in members.items():
            if device in added:
                continue
            added.add(device)
            descriptions = list(TPU_SENSORS)
            if stats.temperature_c is not None:
                descriptions.append(TEMPERATURE_SENSOR)
            async_add_entities(
                AcceleratorSensor(entry, coordinator, d, member=device) for d in descriptions
            )

    _async_add_new()
    entry.async_on_unload(coordinator.async_add_listener(_async_add_new))


class AcceleratorSensor(CoordinatorEntity[AcceleratorCoordinator], SensorEntity):
    """One diagnostic value of the accelerator, or of one TPU of its pool (`member`)."""

    _attr_has_entity_name = True
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    entity_description: AcceleratorSensorDescription

    def __init__(
        self,
        entry: CoralVisionConfigEntry,
        coordinator: AcceleratorCoordinator,
        description: AcceleratorSensorDescription,
        member: str | None = None,
    ) -> None:
        """Describe the sensor."""
        super().__init__(coordinator)
        self.entity_description = description
        self.member = member
        accelerator = entry.runtime_data.accelerator
        if member is None:
            self._attr_unique_id = f"{entry.entry_id}_{description.key}"
            self._attr_device_info = accelerator.device_info
        else:
            self._attr_unique_id = f"{entry.entry_id}_{member}_{description.key}"
            self._attr_device_info = tpu_device_info(accelerator, member)

    @property
    def _stats(self) -> DeviceStats | None:
        """The statistics this sensor reads: the total, or its TPU's while in the pool."""
        data = self.coordinator.data
        return data.total if self.member is None else data.devices.get(self.member)

    @property
    def available(self) -> bool:
        """Unavailable once its TPU has left the pool, or while its server is away."""
        return (
            super().available and self.coordinator.accelerator.available and self._stats is not None
        )

    @property
    def native_value(self) -> float | str | None:
        """Read the value from the latest statistics."""
        stats = self._stats
        return None if stats is None else self.entity_description.value_fn(stats)


class ObjectCountSensor(CameraEntity, SensorEntity):
    """How many matching objects the camera sees now."""

    _attr_translation_key = "objects"
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, processor: CameraProcessor) -> None:
        """Bind to the camera."""
        super().__init__(processor, "objects")

    @property
    def native_value(self) -> int:
        """The number of confirmed matching objects in the last frame."""
        return len(self.processor.state.matches)
