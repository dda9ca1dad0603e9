"""A Coral Vision server entry when things go wrong: real server processes on loopback, real HA.

The server goes away during frames, comes back refusing the key, changes its Edge TPUs, or is
asked again while the entry unloads; a key is refused by restarting the server on the same port
and data folder (the same id) with another key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.client import ServerAuthError, ServerUnreachable
from custom_components.coral_vision.engine.results import FrameResult
from custom_components.coral_vision.server import RemoteAccelerator
from tests.server_process import ServerProcess

from . import test_server_entry
from .helpers import later
from .test_server_entry import (
    CLASSIFIER,
    DETECTOR,
    Servers,
    device_of,
    server_entry,
    setup,
    unreachable,
    warnings,
)

# test_server_entry's fixtures: pytest finds them in this module's namespace.
servers = test_server_entry.servers
no_runtime = test_server_entry.no_runtime  # autouse: Home Assistant has no TFLite runtime
unloaded_after = test_server_entry.unloaded_after

NEW_KEY = "the-new-key"
BACKEND = "sensor.coral_vision_server_backend"


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The integration's log, down to its retries' debug lines."""
    caplog.set_level(logging.DEBUG, logger="custom_components.coral_vision")
    return caplog


async def served(
    hass: HomeAssistant,
    servers: Servers,
    unloaded_after: list[MockConfigEntry],
    *arguments: str,
    tpus: int = 0,
    model: str = DETECTOR,
) -> tuple[ServerProcess, MockConfigEntry]:
    """A server started with `arguments` and its entry, set up and unloaded after the test."""
    server = await servers.start(*arguments, tpus=tpus)
    entry = server_entry(servers, server, model=model)
    unloaded_after.append(entry)
    await setup(hass, entry)
    return server, entry


async def restart_with_new_key(servers: Servers, server: ServerProcess) -> None:
    """Restart the server on its port and data folder (the same id), with another key."""
    await asyncio.to_thread(server.stop)
    await servers.start("--api-key", NEW_KEY, port=server.port)


def remote_of(entry: MockConfigEntry) -> RemoteAccelerator:
    """The entry's accelerator, the server's side in Home Assistant."""
    remote = entry.runtime_data.accelerator
    assert isinstance(remote, RemoteAccelerator)
    return remote


def reauth_flows(hass: HomeAssistant) -> list[str]:
    """The entries a reauthentication flow is open for."""
    flows = hass.config_entries.flow.async_progress_by_handler(
        DOMAIN, match_context={"source": SOURCE_REAUTH}
    )
    return [f["context"]["entry_id"] for f in flows]


def issue_of(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    """The entry's repair issue of its server being away."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"server_unreachable_{entry.entry_id}")


def logged(caplog: pytest.LogCaptureFixture, pattern: str) -> int:
    """How many of the integration's log lines match `pattern`."""
    return sum(
        r.name.startswith("custom_components.coral_vision")
        and re.search(pattern, r.getMessage()) is not None
        for r in caplog.records
    )


async def test_frames_as_the_server_goes_then_refuses_the_key(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server, entry = await served(hass, servers, unloaded_after)
    remote = remote_of(entry)
    image = (images_dir / "grace_hopper.bmp").read_bytes()

    await asyncio.to_thread(server.stop)
    # Two cameras' frames go at once; both find it gone, which is news only once.
    results = await asyncio.gather(
        remote.run("front", image), remote.run("back", image), return_exceptions=True
    )
    assert [type(r) for r in results] == [ServerUnreachable] * 2, results
    assert unreachable(caplog) == 1
    assert issue_of(hass, entry) is not None
    assert not remote.available
    assert hass.states.get(BACKEND).state == STATE_UNAVAILABLE
    with pytest.raises(ServerUnreachable, match="does not answer"):
        await remote.run("front", image)  # nothing sent while it is away

    # It comes back with another key: the retry asks for the new key, not more retries.
    await servers.start("--api-key", NEW_KEY, port=server.port)
    await later(hass, 2)
    assert issue_of(hass, entry) is None  # it answers: no longer away
    assert reauth_flows(hass) == [entry.entry_id]
    assert not remote.available
    assert hass.states.get(BACKEND).state == STATE_UNAVAILABLE
    with pytest.raises(ServerAuthError, match="refuses the API key"):
        await remote.run("front", image)
    assert len(warnings(caplog)) == 1
    assert "API key" in warnings(caplog)[0]
    await later(hass, 60)  # no retry follows a refused key
    assert issue_of(hass, entry) is None
    assert unreachable(caplog) == 1


async def test_a_key_refused_at_the_statistics_refresh(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server, entry = await served(hass, servers, unloaded_after)
    assert hass.states.get(BACKEND).state == "cpu"
    await restart_with_new_key(servers, server)

    await entry.runtime_data.coordinator.async_refresh()  # the 30 s sample
    assert reauth_flows(hass) == [entry.entry_id]
    assert hass.states.get(BACKEND).state == STATE_UNAVAILABLE
    assert issue_of(hass, entry) is None  # it answers: not away
    with pytest.raises(ServerAuthError):
        await remote_of(entry).run("camera", (images_dir / "grace_hopper.bmp").read_bytes())
    await entry.runtime_data.coordinator.async_refresh()  # not asked again
    assert len(warnings(caplog)) == 1
    assert unreachable(caplog) == 0


async def test_two_cameras_refused_at_once_ask_for_the_key_once(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server, entry = await served(hass, servers, unloaded_after)
    remote = remote_of(entry)
    image = (images_dir / "grace_hopper.bmp").read_bytes()
    await restart_with_new_key(servers, server)

    results = await asyncio.gather(
        remote.run("front", image), remote.run("back", image), return_exceptions=True
    )
    assert [type(r) for r in results] == [ServerAuthError] * 2, results
    assert len(warnings(caplog)) == 1
    assert reauth_flows(hass) == [entry.entry_id]
    assert not remote.available


async def test_an_edge_tpu_joining_the_server_shows_at_once(
    hass: HomeAssistant, servers: Servers, unloaded_after: list[MockConfigEntry]
) -> None:
    server, entry = await served(
        hass,
        servers,
        unloaded_after,
        "--devices",
        "all",
        "--model",
        CLASSIFIER,
        tpus=1,
        model=CLASSIFIER,
    )
    port = server.port
    remote = remote_of(entry)
    assert remote.devices == ("usb:0",)

    def backends() -> list[str]:
        return sorted(
            s.state for s in hass.states.async_all("sensor") if s.entity_id.endswith("_backend")
        )

    assert backends() == ["edgetpu_usb"]
    await asyncio.to_thread(server.stop)
    await servers.start("--devices", "all", "--model", CLASSIFIER, port=port, tpus=2)

    assert await remote.async_check_tpus() == ["usb:1"]
    await hass.async_block_till_done()
    # Its listeners heard of it: the new Edge TPU's device and sensors, before the next sample.
    assert backends() == ["edgetpu_usb", "edgetpu_usb"]
    usb1 = device_of(hass, entry, f"{entry.entry_id}:usb:1")
    assert usb1.via_device_id == device_of(hass, entry, entry.entry_id).id
    assert await remote.async_check_tpus() == []  # nothing new since


async def test_unloaded_while_the_server_is_away(
    hass: HomeAssistant, servers: Servers, debug_log: pytest.LogCaptureFixture
) -> None:
    server = await servers.start()
    entry = server_entry(servers, server)
    await setup(hass, entry)
    await asyncio.to_thread(server.stop)
    await entry.runtime_data.coordinator.async_refresh()
    assert issue_of(hass, entry) is not None
    await later(hass, 2)
    assert logged(debug_log, "still away") == 1  # and the next retry is due in 2 s

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issue_of(hass, entry) is None
    await later(hass, 60)
    assert logged(debug_log, "still away") == 1  # no retry outlives the entry


async def test_unloaded_while_the_server_is_asked_again(
    hass: HomeAssistant, servers: Servers, debug_log: pytest.LogCaptureFixture
) -> None:
    server = await servers.start()
    port = server.port
    entry = server_entry(servers, server)
    await setup(hass, entry)
    await asyncio.to_thread(server.stop)
    await entry.runtime_data.coordinator.async_refresh()
    assert issue_of(hass, entry) is not None

    # Back, but frozen: it takes the connection and does not answer, so the retry waits.
    frozen = await servers.start(port=port)
    frozen.signal(signal.SIGSTOP)
    try:
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2))
        await asyncio.sleep(0)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
    finally:
        frozen.signal(signal.SIGCONT)
    assert issue_of(hass, entry) is None
    await later(hass, 60)
    assert logged(debug_log, r"server at \S+ answers again$") == 0
    assert logged(debug_log, "still away") == 0


async def test_a_frame_handed_its_turn_then_cancelled_frees_the_line(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    unloaded_after: list[MockConfigEntry],
) -> None:
    _, entry = await served(hass, servers, unloaded_after)
    remote = remote_of(entry)
    image = (images_dir / "grace_hopper.bmp").read_bytes()
    await remote.async_check_tpus()
    before = remote.stats().total.frames_done

    async def first_then_cancel_the_next() -> FrameResult:
        """Run a frame; then cancel the next, which was just handed the turn and not yet run."""
        result = await remote.run("camera", image)
        waiting.cancel()
        return result

    running = asyncio.ensure_future(first_then_cancel_the_next())
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(remote.run("camera", image))
    await asyncio.sleep(0)
    assert (await running).detections[0].label == "person"
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The camera's line is free again: its next frame runs rather than waiting for ever.
    async with asyncio.timeout(60):
        assert (await remote.run("camera", image)).detections[0].label == "person"
    await remote.async_check_tpus()
    assert remote.stats().total.frames_done - before == 2  # the cancelled frame never went
