"""Config flow for Coral Vision."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult

from .const import CONF_DEVICE, DEVICE_CPU, DOMAIN


class CoralVisionConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add an accelerator."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the accelerator."""
        if user_input is not None:
            await self.async_set_unique_id(user_input[CONF_DEVICE])
            self._abort_if_unique_id_configured()
            return self.async_create_entry(title="CPU", data=user_input)
        schema = vol.Schema({vol.Required(CONF_DEVICE, default=DEVICE_CPU): vol.In([DEVICE_CPU])})
        return self.async_show_form(step_id="user", data_schema=schema)
