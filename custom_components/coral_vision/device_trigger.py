"""Device triggers of a camera, per watched label: a new object seen, and none seen any more."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import CONF_LABELS, DOMAIN, EVENT_CLEARED, EVENT_DETECTED, SUBENTRY_CAMERA

CONF_SUBTYPE = "subtype"
EVENTS = {"detected": EVENT_DETECTED, "cleared": EVENT_CLEARED}

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In(tuple(EVENTS)),
        vol.Required(CONF_SUBTYPE): str,
    }
)


@callback
def device_and_entry(
    hass: HomeAssistant, device_id: str
) -> tuple[Collection[tuple[str, str]], ConfigEntry | None]:
    """The device's identifiers (none: no such device) and the Coral Vision entry it belongs to."""
    if (lookup := getattr(dr, "async_get_device_and_config_entry_for_domain", None)) is not None:
        # Newer Home Assistant: a device belongs to one entry; `config_entries` is deprecated.
        found: tuple[dr.DeviceEntry | None, ConfigEntry | None]
        found = lookup(hass, device_id, domain=DOMAIN, include_child_devices=False)
        return (found[0].identifiers if found[0] else ()), found[1]
    # Home Assistant 2025.4 (newer ones type a device as a main or a child one: identifiers only).
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return (), None
    for entry_id in device.config_entries:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is not None and entry.domain == DOMAIN:
            return device.identifiers, entry
    return device.identifiers, None


@callback
def camera_labels(hass: HomeAssistant, device_id: str) -> tuple[str, ...] | None:
    """The labels a camera device watches; None when the device is not a Coral Vision camera."""
    identifiers, entry = device_and_entry(hass, device_id)
    if entry is None:
        return None
    for domain, subentry_id in identifiers:
        subentry = entry.subentries.get(subentry_id) if domain == DOMAIN else None
        if subentry is not None and subentry.subentry_type == SUBENTRY_CAMERA:
            return tuple(subentry.data.get(CONF_LABELS, ()))
    return None


async def async_validate_trigger_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """Check the schema, and that the device is a camera watching the label."""
    config = TRIGGER_SCHEMA(config)
    labels = camera_labels(hass, config[CONF_DEVICE_ID])
    if labels is None:
        raise _invalid("trigger_not_a_camera", device_id=config[CONF_DEVICE_ID])
    if not labels:
        raise _invalid("trigger_no_labels", label=config[CONF_SUBTYPE])
    if config[CONF_SUBTYPE] not in labels:
        raise _invalid(
            "trigger_label_not_watched", label=config[CONF_SUBTYPE], labels=", ".join(labels)
        )
    return config


def _invalid(key: str, **placeholders: str) -> InvalidDeviceAutomationConfig:
    """A translated error for an automation whose trigger this integration cannot attach."""
    return InvalidDeviceAutomationConfig(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """A detected and a cleared trigger per watched label; none for an accelerator."""
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
            CONF_SUBTYPE: label,
        }
        for label in camera_labels(hass, device_id) or ()
        for trigger_type in EVENTS
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for the camera's detected or cleared events of the label."""
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENTS[config[CONF_TYPE]],
            CONF_EVENT_DATA: {
                CONF_DEVICE_ID: config[CONF_DEVICE_ID],
                "label": config[CONF_SUBTYPE],
            },
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
