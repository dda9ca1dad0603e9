"""Make sure a TFLite runtime is importable, and tell the user the exact fix when it is not."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.system_info import async_get_system_info
from homeassistant.requirements import RequirementsNotFound, async_process_requirements
from packaging.tags import platform_tags

from .const import DOMAIN, LOGGER, RUNTIME_REQUIREMENT
from .engine.errors import RuntimeMissingError
from .engine.runtime import load_runtime

ISSUE_RUNTIME_MISSING = "runtime_missing"


def runs_on_musl() -> bool:
    """Whether this Python runs on the musl C library (Alpine), for which the runtime has no wheel."""
    # packaging reads the C library the interpreter links (its ELF header): musllinux tags there.
    return any(tag.startswith("musllinux_") for tag in platform_tags())


async def async_runtime_installable(hass: HomeAssistant) -> bool:
    """Whether installing the runtime can ever work here: not on musl (HA OS, Container, Supervised)."""
    return not await hass.async_add_executor_job(runs_on_musl)


async def async_runtime_possible(hass: HomeAssistant) -> bool:
    """Whether a local accelerator can ever run here: a runtime is importable or installable."""
    if await async_runtime_installable(hass):
        return True
    try:
        await hass.async_add_executor_job(load_runtime)
    except RuntimeMissingError:
        return False
    return True


async def async_ensure_runtime(hass: HomeAssistant) -> str | None:
    """Return the runtime's name, installing it first if needed; None (and a repair) if impossible."""
    try:
        runtime = await hass.async_add_executor_job(load_runtime)
    except RuntimeMissingError as missing:
        if not await async_runtime_installable(hass):
            await _async_create_runtime_issue(hass, missing, musl=True)
            return None
        LOGGER.info("No TFLite runtime installed; installing %s", RUNTIME_REQUIREMENT)
        try:
            await async_process_requirements(hass, DOMAIN, [RUNTIME_REQUIREMENT])
            runtime = await hass.async_add_executor_job(load_runtime)
        except (RequirementsNotFound, RuntimeMissingError) as err:
            await _async_create_runtime_issue(hass, err, musl=False)
            return None
    ir.async_delete_issue(hass, DOMAIN, ISSUE_RUNTIME_MISSING)
    return runtime.name


async def _async_create_runtime_issue(hass: HomeAssistant, err: Exception, *, musl: bool) -> None:
    """Raise a repair issue whose text gives the fix: the server on musl, else installing it."""
    info = await async_get_system_info(hass)
    install_type = str(info.get("installation_type", "Unknown"))
    key = "runtime_missing_musl" if musl else "runtime_missing_core"
    LOGGER.warning("No TFLite runtime could be installed on %s: %s", install_type, err)
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_RUNTIME_MISSING,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=key,
        translation_placeholders={
            "install_type": install_type,
            "requirement": RUNTIME_REQUIREMENT,
            "python": info.get("python_version", "?"),
        },
        learn_more_url="https://github.com/coral-vision/coral-vision#troubleshooting",
    )
