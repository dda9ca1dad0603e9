"""A missing TFLite runtime never breaks Home Assistant: a repair explains; musl sends users to the server."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.errors import RuntimeMissingError
from custom_components.coral_vision.runtime_support import runs_on_musl

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


def on_musl() -> Any:
    """Python linked against musl, as on Alpine: packaging finds musllinux platform tags."""
    tags = ["linux_x86_64", "musllinux_1_2_x86_64", "musllinux_1_1_x86_64"]
    return patch(
        "custom_components.coral_vision.runtime_support.platform_tags",
        side_effect=lambda: iter(tags),
    )


def test_musl_is_read_from_the_c_library() -> None:
    assert runs_on_musl() is False  # this machine's Python links glibc
    with on_musl():
        assert runs_on_musl() is True


async def test_missing_runtime_on_glibc_retries_and_raises_a_repair(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    with runtime_unavailable("Home Assistant Core") as install:
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    install.assert_awaited_once()
    issue = issue_registry.async_get_issue(DOMAIN, "runtime_missing")
    assert issue is not None
    assert issue.translation_key == "runtime_missing_core"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["install_type"] == "Home Assistant Core"

    # Once a runtime is there, the next retry loads and the repair goes away.
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, "runtime_missing") is None
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    "install_type", ["Home Assistant OS", "Home Assistant Container", "Home Assistant Supervised"]
)
async def test_missing_runtime_on_musl_fails_for_good_with_the_repair(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, install_type: str
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    with runtime_unavailable(install_type) as install, on_musl():
        assert not await hass.config_entries.async_setup(entry.entry_id)
    # Not retried: no wheel will ever install there; nothing was tried.
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "runtime_unsupported"
    install.assert_not_awaited()
    issue = issue_registry.async_get_issue(DOMAIN, "runtime_missing")
    assert issue is not None
    assert issue.translation_key == "runtime_missing_musl"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["install_type"] == install_type


async def test_musl_with_a_runtime_there_loads(hass: HomeAssistant) -> None:
    # A runtime the user built for musl: nothing stops a local accelerator then.
    entry = MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu")
    entry.add_to_hass(hass)
    with on_musl():
        assert await hass.config_entries.async_setup(entry.entry_id)
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
    assert entry.state is ConfigEntryState.LOADED
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_musl_flow_offers_only_the_server(hass: HomeAssistant) -> None:
    with runtime_unavailable("Home Assistant OS") as install, on_musl():
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        assert result["type"] is FlowResultType.MENU
        assert result["step_id"] == "server_only"
        assert result["menu_options"] == ["server"]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "server"}
        )
    install.assert_not_awaited()
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "server"


async def test_glibc_flow_offers_local_accelerators_without_a_runtime(hass: HomeAssistant) -> None:
    # Core on glibc: the runtime installs when a model is chosen, so local choices stay.
    with runtime_unavailable("Home Assistant Core"):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"


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
