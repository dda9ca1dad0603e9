"""A Coral Vision server entry end to end: a real server process on loopback, a real Home Assistant.

No TFLite runtime is needed in Home Assistant (each test runs with none installable): frames,
models and Edge TPUs are the server's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.coral_vision.config_flow import CoralVisionConfigFlow
from custom_components.coral_vision.const import DOMAIN, EVENT_DETECTED
from custom_components.coral_vision.diagnostics import async_get_config_entry_diagnostics
from custom_components.coral_vision.engine.client import ServerClient
from custom_components.coral_vision.engine.errors import (
    ExecutorClosedError,
    FrameSupersededError,
    RequestTimeoutError,
)
from custom_components.coral_vision.server import RemoteAccelerator
from tests.server_process import LAUNCHER, ServerProcess, ServerStarter

from .conftest import CAMERA, PhotoCamera, camera_subentry, runtime_unavailable
from .helpers import IP, scan

DETECTOR = "tf_coco_ssd_mobilenet_v1"
CLASSIFIER = "mobilenet_v1_025_128_imagenet"  # compiled for the Edge TPU, with a CPU twin
GOWN = "academic gown, academic robe, judge's robe"  # Grace Hopper, on MobileNet v1 0.25
KEY = "s3cret-key"
TITLE = "Coral Vision server"


class Servers:
    """Starts the test's server process (CPU, or fake Edge TPUs), keeping its id across restarts."""

    def __init__(self, models_dir: Path, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.starter = ServerStarter(models_dir, folder)

    async def start(self, *extra: str, port: int = 0, tpus: int = 0) -> ServerProcess:
        """A server with the key on `port` (0: any); `tpus` fake Edge TPUs run its models."""
        arguments = ["--port", str(port), "--no-zeroconf", "--api-key", KEY]
        arguments += ["--data-dir", str(self.folder / "data"), *extra]
        if not tpus:
            return await asyncio.to_thread(self.starter, "--devices", "cpu", *arguments)
        twin = str(self.starter.models_dir / "mobilenet_v1_0.25_128_quant.tflite")
        launch = [str(LAUNCHER), "--fake-tpus", str(tpus), "--twin", twin, "--"]
        return await asyncio.to_thread(lambda: self.starter(*arguments, launcher=launch))

    @property
    def server_id(self) -> str:
        """The id the servers keep in their data folder."""
        return (self.folder / "data" / "server_id").read_text().strip()


@pytest.fixture
def servers(socket_enabled: None, models_dir: Path, tmp_path: Path) -> Iterator[Servers]:
    """Server processes for the test, stopped after it."""
    started = Servers(models_dir, tmp_path / "server")
    yield started
    started.starter.stop_all()


@pytest.fixture(autouse=True)
def no_runtime() -> Iterator[None]:
    """Home Assistant has no TFLite runtime and cannot install one (as on Home Assistant OS)."""
    with runtime_unavailable():
        yield


def server_entry(
    servers: Servers, server: ServerProcess, *subentries: Any, key: str = KEY, model: str = DETECTOR
) -> MockConfigEntry:
    """A server entry as the config flow creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        data={
            "device": "server",
            "host": "127.0.0.1",
            "port": server.port,
            "api_key": key,
            "model": model,
        },
        unique_id=servers.server_id,
        subentries_data=list(subentries),
    )


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def detected(hass: HomeAssistant) -> list[Event]:
    """The coral_vision_detected events from now on."""
    events: list[Event] = []
    hass.bus.async_listen(EVENT_DETECTED, events.append)
    return events


def device_of(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> dr.DeviceEntry:
    """The entry's device with this identifier."""
    registry = dr.async_get(hass)
    return next(
        d
        for d in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, key) in d.identifiers
    )


def unreachable(caplog: pytest.LogCaptureFixture) -> int:
    """How many times a server was logged unreachable, at info."""
    return sum(
        r.levelno == logging.INFO and "is unreachable" in r.getMessage() for r in caplog.records
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("custom_components.coral_vision") and r.levelno >= logging.WARNING
    ]


@pytest.fixture
async def unloaded_after(hass: HomeAssistant) -> AsyncIterator[list[MockConfigEntry]]:
    """Entries unloaded after the test (before the servers stop)."""
    entries: list[MockConfigEntry] = []
    yield entries
    for entry in entries:
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_person_on_the_server_once_while_in_view(
    hass: HomeAssistant,
    servers: Servers,
    photo_camera: PhotoCamera,
    images_dir: Path,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server = await servers.start()
    entry = server_entry(
        servers, server, camera_subentry(labels=["person"], scores={"person": 0.5})
    )
    unloaded_after.append(entry)
    await setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    events = detected(hass)

    await scan(hass)
    assert hass.states.get(IP).state == "0"  # sunflower.bmp
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    for _ in range(3):
        await scan(hass)
    assert [e.data["label"] for e in events] == ["person"]
    assert hass.states.get(IP).state == "1"
    assert events[0].data["camera_entity"] == CAMERA

    server_device = device_of(hass, entry, entry.entry_id)
    assert (server_device.name, server_device.serial_number) == (TITLE, servers.server_id)
    assert server_device.sw_version  # the server's version
    camera = next(iter(entry.subentries))
    camera_device = device_of(hass, entry, camera)
    assert camera_device.via_device_id == server_device.id
    assert hass.states.get("sensor.coral_vision_server_backend").state == "cpu"

    await entry.runtime_data.coordinator.async_refresh()  # the 30 s sample reads the server
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    accelerator = diagnostics["accelerator"]
    assert accelerator["server"]["id"] == servers.server_id
    assert accelerator["server"]["reachable"] is True
    assert accelerator["model"]["id"] == DETECTOR
    assert accelerator["executor"]["frames_done"] >= 4

    remote = entry.runtime_data.accelerator
    assert isinstance(remote, RemoteAccelerator)
    threads = set(threading.enumerate())
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    # It left no thread behind (its connections are Home Assistant's shared session's).
    assert set(threading.enumerate()) <= threads


async def test_the_server_going_away_and_coming_back(
    hass: HomeAssistant,
    servers: Servers,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
    unloaded_after: list[MockConfigEntry],
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    server = await servers.start()
    port = server.port
    entry = server_entry(
        servers, server, camera_subentry(labels=["person"], scores={"person": 0.5})
    )
    unloaded_after.append(entry)
    await setup(hass, entry)
    await scan(hass)
    assert hass.states.get(IP).state == "1"
    issues = ir.async_get(hass)
    issue_id = f"server_unreachable_{entry.entry_id}"

    await asyncio.to_thread(server.stop)
    await entry.runtime_data.coordinator.async_refresh()  # the 30 s sample finds it gone
    for _ in range(3):
        await scan(hass)  # nothing sent meanwhile: the frames end at once
    assert hass.states.get(IP).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.coral_vision_server_backend").state == STATE_UNAVAILABLE
    # Once, at info (the quality scale's log-when-unavailable): the repair issue is the alert.
    assert unreachable(caplog) == 1
    assert warnings(caplog) == []
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "server_unreachable"
    listed = await hass.services.async_call(
        DOMAIN, "list_models", {}, blocking=True, return_response=True
    )
    assert "does not answer" in listed["servers"][0]["error"]  # type: ignore[index]
    with pytest.raises(HomeAssistantError, match="could not be changed"):
        await hass.services.async_call(
            DOMAIN, "remove_unused_models", {}, blocking=True, return_response=True
        )
    # Retried while away, less and less often; still one line, nothing else logged.
    for seconds in (2, 5, 10):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
        await hass.async_block_till_done(wait_background_tasks=True)
    assert unreachable(caplog) == 1
    assert warnings(caplog) == []

    await servers.start(port=port)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    assert "answers again" in caplog.text
    assert hass.states.get("sensor.coral_vision_server_backend").state == "cpu"
    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == "0"
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == "1"
    assert unreachable(caplog) == 1
    assert warnings(caplog) == []


async def test_setup_states(hass: HomeAssistant, servers: Servers) -> None:
    server = await servers.start()

    async def state_of(entry: MockConfigEntry) -> ConfigEntryState:
        """Set the entry up; its state, and then it goes (the config flow keeps one per server)."""
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        state = entry.state
        assert await hass.config_entries.async_remove(entry.entry_id)
        return state

    wrong = server_entry(servers, server, key="not-the-key")
    entry_id = wrong.entry_id
    reauth_flows: list[str] = []
    if hasattr(CoralVisionConfigFlow, "async_step_reauth"):  # the flow's own change

        def reauthenticating() -> None:
            flows = hass.config_entries.flow.async_progress_by_handler(
                DOMAIN, match_context={"source": SOURCE_REAUTH}
            )
            reauth_flows.extend(f["context"]["entry_id"] for f in flows)

        wrong.add_to_hass(hass)
        await hass.config_entries.async_setup(entry_id)
        await hass.async_block_till_done()
        reauthenticating()
        assert reauth_flows == [entry_id]
        assert wrong.state is ConfigEntryState.SETUP_ERROR
        assert await hass.config_entries.async_remove(entry_id)
    else:
        assert await state_of(wrong) is ConfigEntryState.SETUP_ERROR
    assert await state_of(server_entry(servers, server, model="no_such_model")) is (
        ConfigEntryState.SETUP_ERROR
    )
    elsewhere = MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        data=dict(server_entry(servers, server).data),
        unique_id="another-server",
    )
    # Another server answers at the entry's address: its own may come back there.
    assert await state_of(elsewhere) is ConfigEntryState.SETUP_RETRY
    await asyncio.to_thread(server.stop)
    assert await state_of(server_entry(servers, server)) is ConfigEntryState.SETUP_RETRY


async def test_a_key_changed_while_running_asks_for_the_new_one(
    hass: HomeAssistant,
    servers: Servers,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
    unloaded_after: list[MockConfigEntry],
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    server = await servers.start()
    entry = server_entry(
        servers, server, camera_subentry(labels=["person"], scores={"person": 0.5})
    )
    unloaded_after.append(entry)
    await setup(hass, entry)
    await scan(hass)
    assert hass.states.get(IP).state == "1"
    port = server.port
    await asyncio.to_thread(server.stop)
    servers.starter.started.clear()
    await asyncio.to_thread(
        servers.starter,
        "--port", str(port), "--no-zeroconf", "--devices", "cpu", "--api-key", "a-new-key",
        "--data-dir", str(servers.folder / "data"),
    )  # fmt: skip
    with patch.object(entry, "async_start_reauth") as reauth:
        await scan(hass)
        await entry.runtime_data.coordinator.async_refresh()
        await scan(hass)
    assert reauth.call_count == 1  # once, not at every frame
    assert hass.states.get(IP).state == STATE_UNAVAILABLE
    assert len(warnings(caplog)) == 1
    assert "API key" in warnings(caplog)[0]


async def test_two_edge_tpus_on_the_server(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server = await servers.start("--devices", "all", "--model", CLASSIFIER, tpus=2)
    entry = server_entry(servers, server, model=CLASSIFIER)
    unloaded_after.append(entry)
    await setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED

    server_device = device_of(hass, entry, entry.entry_id)
    tpus = {
        device.name: device
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if device.id != server_device.id
    }
    assert sorted(tpus) == ["Edge TPU USB 0", "Edge TPU USB 1"]
    assert all(d.via_device_id == server_device.id for d in tpus.values())
    backends = [
        s.state for s in hass.states.async_all("sensor") if s.entity_id.endswith("_backend")
    ]
    assert sorted(backends) == ["edgetpu_usb", "edgetpu_usb"]

    hass.config.allowlist_external_dirs = {str(images_dir)}
    response = await hass.services.async_call(
        DOMAIN,
        "classify",
        {"file": str(images_dir / "grace_hopper.bmp"), "top_k": 1},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert [c["label"] for c in response["classes"]] == [GOWN]  # type: ignore[index]
    assert response["backend"] == "Edge TPU (USB)"


async def test_a_tpu_the_server_no_longer_lists_can_be_removed(
    hass: HomeAssistant,
    servers: Servers,
    hass_ws_client: WebSocketGenerator,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server = await servers.start("--devices", "all", "--model", CLASSIFIER, tpus=2)
    port = server.port
    entry = server_entry(servers, server, model=CLASSIFIER)
    unloaded_after.append(entry)
    await setup(hass, entry)
    server_device = device_of(hass, entry, entry.entry_id)
    usb0 = device_of(hass, entry, f"{entry.entry_id}:usb:0")
    usb1 = device_of(hass, entry, f"{entry.entry_id}:usb:1")

    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)

    async def remove(device: dr.DeviceEntry) -> bool:
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": entry.entry_id,
                "device_id": device.id,
            }
        )
        return bool((await client.receive_json())["success"])

    assert not await remove(usb1), "the server lists it: not removable"
    assert not await remove(server_device), "the server's device stays"

    await asyncio.to_thread(server.stop)
    assert not await remove(usb1), "the server does not answer: it may still have it"

    # The server comes back with one Edge TPU: the other is gone for good.
    await servers.start("--devices", "all", "--model", CLASSIFIER, port=port, tpus=1)
    assert not await remove(usb0)
    assert await remove(usb1)
    await hass.async_block_till_done()
    registry = dr.async_get(hass)
    assert registry.async_get(usb1.id) is None
    assert registry.async_get(usb0.id) is not None
    assert registry.async_get(server_device.id) is not None


async def test_detect_action_and_the_servers_models(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server = await servers.start()
    entry = server_entry(servers, server)
    unloaded_after.append(entry)
    await setup(hass, entry)
    hass.config.allowlist_external_dirs = {str(images_dir)}
    response = await hass.services.async_call(
        DOMAIN,
        "detect",
        {"file": str(images_dir / "grace_hopper.bmp")},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    labels = [d["label"] for d in response["detections"]]  # type: ignore[index]
    assert (labels[0], set(labels)) == ("person", {"person", "tie"})
    assert response["backend"] == "CPU"

    # A model deployed for an entry that since changed its model: unused on the server.
    async with aiohttp.ClientSession() as session:
        await ServerClient(session, "127.0.0.1", server.port, KEY).deploy(CLASSIFIER)
    listed = await hass.services.async_call(
        DOMAIN, "list_models", {}, blocking=True, return_response=True
    )
    assert listed is not None
    (on_server,) = listed["servers"]  # type: ignore[misc]
    assert on_server["server"] == servers.server_id
    assert {m["id"]: m["used_by"] for m in on_server["models"]} == {
        DETECTOR: [TITLE],
        CLASSIFIER: [],
    }
    removed = await hass.services.async_call(
        DOMAIN, "remove_unused_models", {}, blocking=True, return_response=True
    )
    assert removed is not None
    assert removed["servers"] == {servers.server_id: [CLASSIFIER]}
    listed = await hass.services.async_call(
        DOMAIN, "list_models", {}, blocking=True, return_response=True
    )
    assert [m["id"] for m in listed["servers"][0]["models"]] == [DETECTOR]  # type: ignore[index]


async def test_one_frame_per_camera_on_the_server(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    unloaded_after: list[MockConfigEntry],
) -> None:
    server = await servers.start()
    entry = server_entry(servers, server)
    unloaded_after.append(entry)
    await setup(hass, entry)
    remote = entry.runtime_data.accelerator
    image = (images_dir / "grace_hopper.bmp").read_bytes()
    before = remote.stats().total.frames_done
    results = await asyncio.gather(
        *(remote.run("camera", image) for _ in range(5)), return_exceptions=True
    )
    # The first went at once; each newer frame replaced the one waiting, so the last ran next.
    assert [type(r) for r in results[1:4]] == [FrameSupersededError] * 3
    assert [r.detections[0].label for r in (results[0], results[4])] == ["person", "person"]  # type: ignore[union-attr]
    await remote.async_check_tpus()
    assert remote.stats().total.frames_done - before == 2


async def test_a_catalog_model_the_server_lacks_is_deployed_there(
    hass: HomeAssistant, servers: Servers, unloaded_after: list[MockConfigEntry]
) -> None:
    server = await servers.start()  # the default detector only
    entry = server_entry(servers, server, model=CLASSIFIER)
    unloaded_after.append(entry)
    await setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    remote = entry.runtime_data.accelerator
    assert (remote.model.task, remote.model.edgetpu) == ("classification", False)
    assert [m.id for m in remote.status.models] == [DETECTOR, CLASSIFIER]


async def test_frames_in_flight_at_unload_and_a_deadline(
    hass: HomeAssistant,
    servers: Servers,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await servers.start()
    entry = server_entry(servers, server)
    await setup(hass, entry)
    remote = entry.runtime_data.accelerator
    image = (images_dir / "grace_hopper.bmp").read_bytes()
    with pytest.raises(RequestTimeoutError):
        await remote.run("camera", image, timeout=0.0001)
    # A frame waiting for its camera's line can be given up without holding the line.
    running = asyncio.ensure_future(remote.run("camera", image))
    waiting = asyncio.ensure_future(remote.run("camera", image))
    await asyncio.sleep(0)
    waiting.cancel()
    assert (await running).detections[0].label == "person"
    assert waiting.cancelled()
    assert (await remote.run("camera", image)).detections[0].label == "person"

    running = asyncio.ensure_future(remote.run("camera", image))
    waiting = asyncio.ensure_future(remote.run("camera", image))
    await asyncio.sleep(0)
    assert await hass.config_entries.async_unload(entry.entry_id)
    results = await asyncio.gather(running, waiting, return_exceptions=True)
    assert all(isinstance(r, ExecutorClosedError) for r in results), results
    with pytest.raises(ExecutorClosedError):
        await remote.run("camera", image)
    assert warnings(caplog) == []  # an unload is no server going away
