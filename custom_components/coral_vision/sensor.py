"""Sensors: each camera's object count, and the accelerator's diagnostics."""

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
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .accelerator import accelerator_device_info
from .coordinator import AcceleratorCoordinator, AcceleratorStats
from .data import CoralVisionConfigEntry
from .entity import CameraEntity, add_camera_entities
from .processor import CameraProcessor


@dataclass(frozen=True, kw_only=True)
class AcceleratorSensorDescription(SensorEntityDescription):
    """A diagnostic sensor of the accelerator, read from its statistics."""

    value_fn: Callable[[AcceleratorStats], float | str | None]


def _tenths(value: float | None) -> float | None:
    """A measurement rounded to a tenth: the state itself, not only its display, stays short."""
    return None if value is None else round(value, 1)


ACCELERATOR_SENSORS: tuple[AcceleratorSensorDescription, ...] = (
    AcceleratorSensorDescription(
        key="inference_time",
        translation_key="inference_time",
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda s: _tenths(s.executor.inference_p50_ms),
    ),
    AcceleratorSensorDescription(
        key="frames_per_minute",
        translation_key="frames_per_minute",
        native_unit_of_measurement="frames/min",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda s: _tenths(s.frames_per_minute),
    ),
    AcceleratorSensorDescription(
        key="queue_depth",
        translation_key="queue_depth",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.executor.queue_depth,
    ),
    AcceleratorSensorDescription(
        key="dropped_frames",
        translation_key="dropped_frames",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda s: s.executor.frames_dropped,
    ),
    AcceleratorSensorDescription(
        key="backend",
        translation_key="backend",
        device_class=SensorDeviceClass.ENUM,
        options=["edgetpu_usb", "edgetpu_pci", "cpu"],
        value_fn=lambda s: s.executor.backend.kind.replace("-", "_")
        if s.executor.backend
        else None,
    ),
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


# State comes from the camera's processor or the coordinator: nothing to poll in parallel.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CoralVisionConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the accelerator's diagnostics and one object counter per camera."""
    coordinator = entry.runtime_data.coordinator
    descriptions = list(ACCELERATOR_SENSORS)
    if coordinator.data.temperature_c is not None:
        descriptions.append(TEMPERATURE_SENSOR)
    async_add_entities(AcceleratorSensor(entry, coordinator, d) for d in descriptions)
    add_camera_entities(entry, async_add_entities, lambda processor: [ObjectCountSensor(processor)])


class AcceleratorSensor(CoordinatorEntity[AcceleratorCoordinator], SensorEntity):
    """One diagnostic value of the accelerator."""

    _attr_has_entity_name = True
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    entity_description: AcceleratorSensorDescription

    def __init__(
        self,
        entry: CoralVisionConfigEntry,
        coordinator: AcceleratorCoordinator,
        description: AcceleratorSensorDescription,
    ) -> None:
        """Describe the sensor."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = accelerator_device_info(
            entry, entry.runtime_data.accelerator.model.name
        )

    @property
    def native_value(self) -> float | str | None:
        """Read the value from the latest statistics."""
        return self.entity_description.value_fn(self.coordinator.data)


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
