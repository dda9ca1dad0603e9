"""Refreshes an accelerator's statistics for its diagnostic sensors."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .accelerator import Accelerator
from .const import DEVICE_CPU, LOGGER
from .engine.inference.devices import list_edge_tpus, read_temperature
from .engine.inference.stats import ExecutorStats

UPDATE_INTERVAL = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class AcceleratorStats:
    """The executor's counters, its frame rate, and the TPU temperature where reported."""

    executor: ExecutorStats
    frames_per_minute: float | None
    temperature_c: float | None


class AcceleratorCoordinator(DataUpdateCoordinator[AcceleratorStats]):
    """Samples the executor's statistics every 30 seconds."""

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
        self._mark: tuple[float, int] | None = None
        # Removed at unload, so that the accelerator keeps no reference back to its coordinator.
        entry.async_on_unload(accelerator.async_add_listener(self._async_backend_changed))

    @callback
    def _async_backend_changed(self) -> None:
        """Show a new backend now rather than at the next sample."""
        if self.data is not None:
            stats = self.accelerator.executor.stats()
            self.async_set_updated_data(replace(self.data, executor=stats))

    async def _async_update_data(self) -> AcceleratorStats:
        """Take a snapshot; the rate is frames done since the previous one."""
        if self.data is not None:
            # Not on the first refresh: setup has just opened the backend.
            await self.accelerator.async_retry_tpu()
        stats = self.accelerator.executor.stats()
        now = time.monotonic()
        rate = None
        if self._mark is not None and now > self._mark[0]:
            rate = round((stats.frames_done - self._mark[1]) * 60 / (now - self._mark[0]), 1)
        self._mark = (now, stats.frames_done)
        temperature = None
        if self.accelerator.device != DEVICE_CPU:
            temperature = await self.hass.async_add_executor_job(self._temperature)
        return AcceleratorStats(stats, rate, temperature)

    def _temperature(self) -> float | None:
        """The configured TPU's temperature (PCIe/M.2 only)."""
        for tpu in list_edge_tpus():
            if tpu.device == self.accelerator.device:
                return read_temperature(tpu)
        return None
