"""Refreshes an accelerator's statistics for its diagnostic sensors; looks after its TPUs or server."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .accelerator import Accelerator, AcceleratorCounters
from .const import DEVICE_CPU, LOGGER
from .engine.inference.devices import list_edge_tpus, read_temperature
from .engine.inference.stats import ExecutorStats

UPDATE_INTERVAL = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """A device's (or the pool's) counters, its frame rate, and its temperature where reported."""

    executor: ExecutorStats
    frames_per_minute: float | None
    temperature_c: float | None


@dataclass(frozen=True, slots=True)
class AcceleratorStats:
    """The accelerator's total, and each pool member's by device string."""

    total: DeviceStats
    devices: Mapping[str, DeviceStats]

    @property
    def temperature_c(self) -> float | None:
        """The single device's temperature (a pool's total has none)."""
        return self.total.temperature_c


class AcceleratorCoordinator(DataUpdateCoordinator[AcceleratorStats]):
    """Samples the statistics every 30 seconds; reopens lost TPUs and lets new ones join."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry[Any], accelerator: Accelerator
    ) -> None:
        """Sample `accelerator`, which `entry` opened."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"coral_vision {accelerator.device}",
            update_interval=UPDATE_INTERVAL,
        )
        self.accelerator = accelerator
        self._marks: dict[str, tuple[float, int]] = {}
        # Removed at unload, so that the accelerator keeps no reference back to its coordinator.
        entry.async_on_unload(accelerator.async_add_listener(self._async_backend_changed))

    @callback
    def _async_backend_changed(self) -> None:
        """Show a new backend (or a member joining or leaving) now rather than at the next sample."""
        if self.data is not None:
            rates = {d: s.frames_per_minute for d, s in self.data.devices.items()}
            temperatures = {d: s.temperature_c for d, s in self.data.devices.items()}
            self.async_set_updated_data(
                self._combine(self.accelerator.stats(), rates, temperatures)
            )

    async def _async_update_data(self) -> AcceleratorStats:
        """Take a snapshot; the rate is frames done since the previous one."""
        if self.data is not None:
            # Not on the first refresh: setup has just opened the backends.
            await self.accelerator.async_check_tpus()
        counters = self.accelerator.stats()
        now = time.monotonic()
        rates = {d: self._rate(d, s.frames_done, now) for d, s in counters.devices.items()}
        # A server reports its TPUs' temperatures; local ones are read here.
        temperatures = self.accelerator.temperatures
        if temperatures is None:
            tpus = [d for d in counters.devices if d != DEVICE_CPU]
            temperatures = {}
            if tpus:
                temperatures = await self.hass.async_add_executor_job(_temperatures, tpus)
        return self._combine(counters, rates, temperatures)

    def _rate(self, device: str, frames_done: int, now: float) -> float | None:
        """Frames per minute on `device` since the previous sample."""
        mark = self._marks.get(device)
        self._marks[device] = (now, frames_done)
        if mark is None or now <= mark[0]:
            return None
        return round((frames_done - mark[1]) * 60 / (now - mark[0]), 1)

    def _combine(
        self,
        counters: AcceleratorCounters,
        rates: Mapping[str, float | None],
        temperatures: Mapping[str, float | None],
    ) -> AcceleratorStats:
        """Each member's statistics with its rate and temperature, and the total."""
        devices = {
            device: DeviceStats(stats, rates.get(device), temperatures.get(device))
            for device, stats in counters.devices.items()
        }
        known = [s.frames_per_minute for s in devices.values() if s.frames_per_minute is not None]
        single = next(iter(devices.values())) if len(devices) == 1 else None
        total = DeviceStats(
            counters.total,
            round(sum(known), 1) if known else None,
            single.temperature_c if single is not None else None,
        )
        return AcceleratorStats(total, devices)


def _temperatures(devices: list[str]) -> dict[str, float | None]:
    """The members' TPU temperatures (PCIe/M.2 only)."""
    listed = {tpu.device: tpu for tpu in list_edge_tpus()}
    return {d: read_temperature(listed[d]) if d in listed else None for d in devices}
