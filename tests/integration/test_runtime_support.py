"""A missing TFLite runtime never breaks Home Assistant: the entry retries and a repair explains."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.errors import RuntimeMissingError

from .conftest import runtime_unavailable


async def test_entry_loads_with_the_real_runtime(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.backend is not None
    assert entry.runtime_data.accelerator.backend.runtime == "ai_edge_litert"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize(
    ("install_type", "key"),
    [
        ("Home Assistant OS", "runtime_missing_musl"),
        ("Home Assistant Container", "runtime_missing_musl"),
        ("Home Assistant Core", "runtime_missing_core"),
    ],
)
async def test_missing_runtime_retries_and_raises_a_repair(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, install_type: str, key: str
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    with runtime_unavailable(install_type) as install:
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    install.assert_awaited_once()
    issue = issue_registry.async_get_issue(DOMAIN, "runtime_missing")
    assert issue is not None
    assert issue.translation_key == key
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["install_type"] == install_type

    # Once a runtime is there, the next retry loads and the repair goes away.
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, "runtime_missing") is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_runtime_installed_on_demand(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    real = __import__(
        "custom_components.coral_vision.engine.runtime", fromlist=["load_runtime"]
    ).load_runtime
    calls = iter([RuntimeMissingError("none"), None])

    def first_missing_then_real() -> object:
        if (err := next(calls)) is not None:
            raise err
        return real()

    with (
        patch(
            "custom_components.coral_vision.runtime_support.load_runtime",
            side_effect=first_missing_then_real,
        ),
        patch(
            "custom_components.coral_vision.runtime_support.async_process_requirements"
        ) as install,
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
    install.assert_awaited_once_with(hass, DOMAIN, ["ai-edge-litert==2.3.0"])
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)
