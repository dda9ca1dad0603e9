"""Options of a local accelerator: the mirror its models are downloaded from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant import config_entries
from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.core import HomeAssistant
from homeassistant.helpers import selector

from .const import CONF_MIRROR
from .engine.models.download import is_url

if TYPE_CHECKING:
    _OptionsFlow = OptionsFlow
else:
    # Home Assistant 2025.8+ reloads the entry itself when an options flow changes the options.
    _OptionsFlow = getattr(config_entries, "OptionsFlowWithReload", OptionsFlow)


def path_allowed(hass: HomeAssistant, path: str) -> bool:
    """Whether a path is in an allowed folder (resolves links: blocking); a malformed one is not."""
    try:
        return hass.config.is_allowed_path(path)
    except (OSError, ValueError):
        return False


class CoralVisionOptionsFlow(_OptionsFlow):
    """A mirror (folder or base URL) tried before the models' upstream URLs."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Set or clear the mirror; the entry reloads with it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            mirror = (user_input.get(CONF_MIRROR) or "").strip()
            if mirror and not is_url(mirror):
                # is_allowed_path resolves the path on disk: blocking I/O, off the event loop.
                if not await self.hass.async_add_executor_job(path_allowed, self.hass, mirror):
                    errors[CONF_MIRROR] = "path_not_allowed"
                elif not await self.hass.async_add_executor_job(Path(mirror).is_dir):
                    errors[CONF_MIRROR] = "folder_missing"
            if not errors:
                options = {CONF_MIRROR: mirror}
                if not getattr(self, "automatic_reload", False):
                    # Before OptionsFlowWithReload: save the options first, then reload with them.
                    config = self.hass.config_entries
                    if config.async_update_entry(self.config_entry, options=options):
                        config.async_schedule_reload(self.config_entry.entry_id)
                return self.async_create_entry(data=options)
        current = self.config_entry.options.get(CONF_MIRROR, "")
        schema = vol.Schema(
            {
                vol.Optional(
                    CONF_MIRROR, description={"suggested_value": current}
                ): selector.TextSelector()
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
