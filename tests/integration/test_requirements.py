"""manifest.json declares what the engine imports, in ranges Home Assistant's own pins satisfy."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import homeassistant
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.requirements import async_get_integration_with_requirements
from packaging.requirements import Requirement

from custom_components.coral_vision.const import DOMAIN

MANIFEST = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN / "manifest.json"


def ha_pins() -> dict[str, str]:
    """The versions Home Assistant pins in its package_constraints.txt, by lower-case name."""
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    pins = {}
    for line in constraints.read_text("utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.split(";")[0].strip()
    return pins


def test_numpy_and_pillow_are_declared_as_ranges_home_assistant_satisfies() -> None:
    requirements = [Requirement(r) for r in json.loads(MANIFEST.read_text("utf-8"))["requirements"]]
    assert sorted(r.name.lower() for r in requirements) == ["numpy", "pillow"]
    pins = ha_pins()
    for requirement in requirements:
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), requirement
        assert requirement.specifier.contains(pins[requirement.name.lower()]), (
            f"{requirement} conflicts with Home Assistant's {pins[requirement.name.lower()]}"
        )


async def test_loading_with_requirements_installs_nothing(hass: HomeAssistant) -> None:
    # The harness skips requirements; a real Home Assistant processes them: they must already
    # be met (Home Assistant ships both), so nothing is installed.
    hass.config.skip_pip = False
    with patch("homeassistant.util.package.install_package", return_value=False) as install:
        integration = await async_get_integration_with_requirements(hass, DOMAIN)
    install.assert_not_called()
    assert integration is await async_get_integration(hass, DOMAIN)
    assert [Requirement(r).name for r in integration.requirements] == ["numpy", "Pillow"]
