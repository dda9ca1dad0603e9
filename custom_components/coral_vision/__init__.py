"""Coral Vision: TensorFlow Lite detection and classification on Coral Edge TPUs, in Home Assistant."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .runtime_support import async_ensure_runtime

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

type CoralVisionConfigEntry = ConfigEntry[str]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the integration (nothing to do before entries)."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> bool:
    """Set up one accelerator."""
    runtime = await async_ensure_runtime(hass)
    if runtime is None:
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="runtime_missing")
    entry.runtime_data = runtime
    return True


async def async_unload_entry(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> bool:
    """Unload one accelerator."""
    return True
