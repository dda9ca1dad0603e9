"""Adding and managing a Coral Vision server from the UI: a real server process, a real Home Assistant.

Home Assistant has no TFLite runtime here (as on Home Assistant OS): the server runs every model
and the test frame; catalog models come to the server from the shared folder (its mirror).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from homeassistant.config_entries import (
    SOURCE_HASSIO,
    SOURCE_REAUTH,
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigEntryState,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.config_flow import CoralVisionConfigFlow
from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.client import ServerClient, ServerStatus
from custom_components.coral_vision.flow_server import upload_name
from tests.server_process import ServerProcess, ServerStarter

from .conftest import camera_subentry, cpu_entry, runtime_unavailable

DETECTOR = "tf_coco_ssd_mobilenet_v1"
CLASSIFIER = "mobilenet_v1_025_128_imagenet"
KEY = "s3cret-key"
SERVICE = "_coral-vision._tcp.local."


class Servers:
    """Server processes on loopback (CPU), each with its own data folder (its id) unless shared."""

    def __init__(self, models_dir: Path, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.starter = ServerStarter(models_dir, folder)

    async def start(self, *, key: str | None = KEY, name: str = "a") -> ServerProcess:
        """A server running the detector; `name` chooses its data folder, hence its id."""
        arguments = ["--port", "0", "--no-zeroconf", "--devices", "cpu", "--model", DETECTOR]
        arguments += ["--data-dir", str(self.folder / name / "data")]
        arguments += ["--models-dir", str(self.folder / name / "models")]
        if key is not None:
            arguments += ["--api-key", key]
        return await asyncio.to_thread(self.starter, *arguments)

    def server_id(self, name: str = "a") -> str:
        """The id a server keeps in its data folder."""
        return (self.folder / name / "data" / "server_id").read_text().strip()

    def management_key(self, name: str = "a") -> str:
        """The key that guards a keyless server's models, from its data folder."""
        return (self.folder / name / "data" / "management_key").read_text().strip()


@pytest.fixture
def servers(socket_enabled: None, models_dir: Path, tmp_path: Path) -> Iterator[Servers]:
    """Server processes for the test, stopped after it."""
    started = Servers(models_dir, tmp_path / "servers")
    yield started
    started.starter.stop_all()


@pytest.fixture(autouse=True)
def no_runtime() -> Iterator[None]:
    """Home Assistant has no TFLite runtime and cannot install one."""
    with runtime_unavailable():
        yield


@pytest.fixture
async def unload_after(hass: HomeAssistant, servers: Servers) -> AsyncIterator[None]:
    """Every Coral Vision entry unloaded after the test, before its servers stop."""
    yield
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def options(result: Any, key: str) -> list[str]:
    """The values a form's select field offers."""
    field = next(v for k, v in result["data_schema"].schema.items() if k == key)
    return [o["value"] if isinstance(o, dict) else o for o in field.config["options"]]


def fields(result: Any) -> list[str]:
    """A form's field names."""
    return [str(k) for k in result["data_schema"].schema]


async def status_of(server: ServerProcess, key: str | None = KEY) -> ServerStatus:
    """The server's status, read directly."""
    async with aiohttp.ClientSession() as session:
        return await ServerClient(session, "127.0.0.1", server.port, key).status()


async def server_step(hass: HomeAssistant) -> Any:
    """A user flow at the server's address step."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert "server" in options(result, "device")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "server"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "server"
    return result


async def connect(hass: HomeAssistant, flow_id: str, port: int, key: str | None = KEY) -> Any:
    """Submit the server's address (and key)."""
    answer: dict[str, Any] = {"host": "127.0.0.1", "port": port}
    if key is not None:
        answer["api_key"] = key
    return await hass.config_entries.flow.async_configure(flow_id, answer)


async def choose(hass: HomeAssistant, flow_id: str, model: str) -> Any:
    """Choose a model on the server step; wait out a deploy or upload shown with progress."""
    result = await hass.config_entries.flow.async_configure(flow_id, {"model": model})
    return await finish_progress(hass, result)


async def finish_progress(hass: HomeAssistant, result: Any) -> Any:
    """The flow's next answer once a progress step (if one is shown) is done."""
    if result["type"] is FlowResultType.SHOW_PROGRESS:
        assert result["step_id"] == "deploy"
        await hass.async_block_till_done()
        return await hass.config_entries.flow.async_configure(result["flow_id"])
    return result


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.usefixtures("unload_after")
async def test_add_a_server_with_its_key(hass: HomeAssistant, servers: Servers) -> None:
    server = await servers.start()
    result = await server_step(hass)
    assert fields(result) == ["host", "port", "api_key"]

    result = await connect(hass, result["flow_id"], server.port, key="not-the-key")
    assert result["errors"] == {"base": "invalid_auth"}
    result = await connect(hass, result["flow_id"], server.port, key=None)
    assert result["errors"] == {"base": "invalid_auth"}
    result = await connect(hass, result["flow_id"], server.port)

    assert result["step_id"] == "server_model"
    shown = result["description_placeholders"]
    assert shown["url"] == f"http://127.0.0.1:{server.port}"
    assert shown["devices"] == "- CPU"
    assert f"(`{DETECTOR}`): detection" in shown["models"]
    offered = options(result, "model")
    assert offered[0] == DETECTOR, "the server's loaded model first"
    assert CLASSIFIER in offered, "the catalog the server offers"
    assert offered[-1] == "custom"

    result = await choose(hass, result["flow_id"], DETECTOR)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Coral Vision server 127.0.0.1"
    assert result["data"] == {
        "device": "server",
        "host": "127.0.0.1",
        "port": server.port,
        "api_key": KEY,
        "model": DETECTOR,
    }
    entry = result["result"]
    assert entry.unique_id == servers.server_id()
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # A server's models are its own business: no mirror option to set.
    assert not CoralVisionConfigFlow.async_supports_options_flow(entry)
    assert CoralVisionConfigFlow.async_supports_options_flow(cpu_entry())

    # The same server again, by the same address: refused.
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], server.port)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("unload_after")
async def test_a_catalog_model_is_deployed_by_a_server_without_key(
    hass: HomeAssistant, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await servers.start(key=None)
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], server.port, key=None)
    assert result["step_id"] == "server_model"

    # Detection is open, but its models are not: deploying needs the management key.
    result = await choose(hass, result["flow_id"], CLASSIFIER)
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "manage_needs_key"}
    status = await status_of(server, key=None)
    assert status.model(CLASSIFIER) is None

    # Back to the server's address, where its key goes.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "server"
    result = await connect(hass, result["flow_id"], server.port, key=servers.management_key())
    assert result["step_id"] == "server_model"
    # As a download on a slow link: the deploy is shown with its progress.
    monkeypatch.setattr("custom_components.coral_vision.flow_progress.QUICK_ANSWER", 0)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"model": CLASSIFIER}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "deploy_model"
    assert result["description_placeholders"]["model"].startswith("MobileNet v1 0.25")
    result = await finish_progress(hass, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["model"] == CLASSIFIER
    assert result["data"]["api_key"] == servers.management_key()
    status = await status_of(server, key=None)
    deployed = status.model(CLASSIFIER)
    assert deployed is not None
    assert deployed.origin == "catalog"
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_what_is_not_a_server_is_refused(hass: HomeAssistant, socket_enabled: None) -> None:
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], free_port())
    assert result["errors"] == {"base": "cannot_connect"}
    assert "does not answer" in result["description_placeholders"]["detail"]

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>a router</html>", content_type="text/html")

    async def json_page(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    for handler in (page, json_page):
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        async with TestServer(app, host="127.0.0.1") as other:
            result = await connect(hass, result["flow_id"], other.port or 0)
        assert result["errors"] == {"base": "not_coral_vision"}, handler
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("unload_after")
async def test_your_own_model_is_checked_here_and_sent_to_the_server(
    hass: HomeAssistant, servers: Servers, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hass.config.allowlist_external_dirs = {str(models_dir)}
    model = models_dir / "mobilenet_v1_0.25_128_quant.tflite"
    server = await servers.start()
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], server.port)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    assert result["step_id"] == "custom_model"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"model_path": str(model), "labels_path": str(models_dir / "imagenet_labels.txt")},
    )
    assert result["step_id"] == "inspect"
    assert result["description_placeholders"]["task"].startswith("image classification")

    monkeypatch.setattr("custom_components.coral_vision.flow_progress.QUICK_ANSWER", 0)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["progress_action"] == "upload_model"
    assert result["description_placeholders"] == {"model": model.name}
    result = await finish_progress(hass, result)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    name = upload_name(str(model))
    assert name == "mobilenet_v1_0_25_128_quant"
    assert result["data"]["model"] == name
    uploaded = (await status_of(server)).model(name)
    assert uploaded is not None
    assert uploaded.origin == "upload"
    assert uploaded.task == "classification"
    assert len(uploaded.labels.names()) > 1000  # the labels file went along


@pytest.mark.usefixtures("unload_after")
async def test_what_the_server_refuses_or_misses_is_shown(
    hass: HomeAssistant, servers: Servers, models_dir: Path, tmp_path: Path
) -> None:
    # A file named like a catalog model: the server refuses to take it under that name.
    named = tmp_path / f"{CLASSIFIER}.tflite"
    named.write_bytes((models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    server = await servers.start()
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], server.port)

    # A file checked, then gone before it was sent.
    gone = tmp_path / "gone.tflite"
    gone.write_bytes(named.read_bytes())
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"model_path": str(gone)}
    )
    assert result["step_id"] == "inspect"
    gone.unlink()
    result = await finish_progress(
        hass, await hass.config_entries.flow.async_configure(result["flow_id"], {})
    )
    assert result["errors"] == {"base": "file_missing"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"model_path": str(named)}
    )
    result = await finish_progress(
        hass, await hass.config_entries.flow.async_configure(result["flow_id"], {})
    )
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "server_model_failed"}
    assert "catalog model" in result["description_placeholders"]["detail"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "server_model"

    # The server went away before the model was chosen.
    await asyncio.to_thread(server.stop)
    result = await choose(hass, result["flow_id"], DETECTOR)
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "cannot_connect"}
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("unload_after")
async def test_a_moved_server_updates_its_entry(hass: HomeAssistant, servers: Servers) -> None:
    server = await servers.start()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision server 127.0.0.1",
        data={
            "device": "server",
            "host": "127.0.0.1",
            "port": free_port(),
            "api_key": "old-key",
            "model": DETECTOR,
        },
        unique_id=servers.server_id(),
    )
    entry.add_to_hass(hass)
    result = await server_step(hass)
    result = await connect(hass, result["flow_id"], server.port)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert (entry.data["port"], entry.data["api_key"]) == (server.port, KEY)


def zeroconf_info(port: int, server_id: str | None, name: str = "a1b2c3d4") -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf gives a flow for the server's announcement."""
    address = ip_address("127.0.0.1")
    properties = {"version": "0.1.0", "api": "1"} | ({"id": server_id} if server_id else {})
    return ZeroconfServiceInfo(
        ip_address=address,
        ip_addresses=[address],
        port=port,
        hostname=f"coral-vision-{name}.local.",
        type=SERVICE,
        name=f"Coral Vision {name}.{SERVICE}",
        properties=properties,
    )


@pytest.mark.usefixtures("unload_after")
async def test_zeroconf_asks_for_the_key_and_updates_a_known_server(
    hass: HomeAssistant, servers: Servers
) -> None:
    server = await servers.start()
    server_id = servers.server_id()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(server.port, server_id)
    )
    assert result["step_id"] == "zeroconf_confirm"
    assert fields(result) == ["api_key"], "the server needs a key: it is asked for"
    assert result["description_placeholders"] == {
        "name": "Coral Vision a1b2c3d4",
        "url": f"http://127.0.0.1:{server.port}",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": "no"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": KEY})
    assert result["step_id"] == "server_model"
    result = await choose(hass, result["flow_id"], DETECTOR)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Coral Vision a1b2c3d4"
    entry = result["result"]
    assert entry.unique_id == server_id
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)

    # Announced again at a new port: the entry follows, keeping its key; nothing is asked.
    moved = free_port()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(moved, server_id)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert (entry.data["port"], entry.data["api_key"]) == (moved, KEY)


@pytest.mark.usefixtures("unload_after")
async def test_zeroconf_without_an_id_reads_the_status(
    hass: HomeAssistant, servers: Servers
) -> None:
    server = await servers.start(key=None)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(server.port, None)
    )
    assert result["step_id"] == "zeroconf_confirm"
    assert fields(result) == [], "no key needed: nothing asked"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["unique_id"] for f in flows] == [servers.server_id()]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "server_model"
    hass.config_entries.flow.async_abort(result["flow_id"])

    nothing = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(free_port(), None)
    )
    assert nothing["type"] is FlowResultType.ABORT
    assert nothing["reason"] == "cannot_connect"
    gone = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(free_port(), "gone")
    )
    assert gone["reason"] == "cannot_connect"

    # No id and a key needed: the key is asked first, the id read with it.
    keyed = await servers.start(name="b")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(keyed.port, None, "b")
    )
    assert fields(result) == ["api_key"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": KEY})
    assert result["step_id"] == "server_model"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["unique_id"] for f in flows] == [servers.server_id("b")]
    hass.config_entries.flow.async_abort(result["flow_id"])


def hassio_info(port: int, server_id: str, key: str | None = KEY) -> HassioServiceInfo:
    """What the Supervisor hands Home Assistant for the app's discovery."""
    return HassioServiceInfo(
        config={
            "host": "127.0.0.1",
            "port": port,
            "id": server_id,
            "api_key": key,
            "addon": "Coral Vision Server",
        },
        name="Coral Vision Server",
        slug="a0d7b954_coral_vision",
        uuid="0f9c2b8e6a3d4b1c9e7f5a2d8c4b6e10",
    )


@pytest.mark.usefixtures("unload_after")
async def test_the_apps_discovery_is_confirmed_then_followed(
    hass: HomeAssistant, servers: Servers
) -> None:
    server = await servers.start()
    server_id = servers.server_id()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=hassio_info(server.port, server_id)
    )
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Coral Vision Server"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "server_model"
    result = await choose(hass, result["flow_id"], DETECTOR)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Coral Vision Server"
    assert result["data"]["api_key"] == KEY
    entry = result["result"]
    assert entry.unique_id == server_id
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)

    # The app came back with another port and key: the entry follows.
    moved = free_port()
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=hassio_info(moved, server_id, key="new-key"),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert (entry.data["port"], entry.data["api_key"]) == (moved, "new-key")

    broken = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=HassioServiceInfo(config={"host": "x"}, name="x", slug="x", uuid="1"),
    )
    assert broken["reason"] == "not_coral_vision"

    # An announcement with a key the server no longer takes: said on the confirmation.
    other = await servers.start(name="b")
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=hassio_info(other.port, servers.server_id("b"), key="stale"),
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "invalid_auth"}
    hass.config_entries.flow.async_abort(result["flow_id"])


async def reauth(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """Start the entry's reauthentication as Home Assistant does; its first form."""
    entry.async_start_reauth(hass)
    await hass.async_block_till_done()
    (flow,) = hass.config_entries.flow.async_progress_by_handler(
        DOMAIN, match_context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id}
    )
    return await hass.config_entries.flow.async_configure(flow["flow_id"])


@pytest.mark.usefixtures("unload_after")
async def test_reauth_takes_the_new_key(hass: HomeAssistant, servers: Servers) -> None:
    server = await servers.start()
    data = {
        "device": "server",
        "host": "127.0.0.1",
        "port": server.port,
        "api_key": "old-key",
        "model": DETECTOR,
    }
    entry = MockConfigEntry(
        domain=DOMAIN, title="Coral Vision server", data=data, unique_id=servers.server_id()
    )
    entry.add_to_hass(hass)
    result = await reauth(hass, entry)
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["url"] == f"http://127.0.0.1:{server.port}"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"api_key": "still-wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": KEY})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data == {**data, "api_key": KEY}
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Another server at the address the entry knows: its key is not saved to this entry.
    other = MockConfigEntry(domain=DOMAIN, data=data, unique_id="another-server")
    other.add_to_hass(hass)
    result = await reauth(hass, other)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": KEY})
    assert result["reason"] == "wrong_server"
    assert other.data["api_key"] == "old-key"


@pytest.mark.usefixtures("unload_after")
async def test_reconfigure_switches_the_servers_model(
    hass: HomeAssistant, servers: Servers, models_dir: Path
) -> None:
    server = await servers.start()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision server 127.0.0.1",
        data={
            "device": "server",
            "host": "127.0.0.1",
            "port": server.port,
            "api_key": KEY,
            "model": DETECTOR,
        },
        unique_id=servers.server_id(),
        subentries_data=[camera_subentry(labels=["person"], scores={"person": 0.5})],
    )
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure_server"
    result = await connect(hass, result["flow_id"], server.port)
    assert result["step_id"] == "server_model"
    assert options(result, "model")[0] == DETECTOR

    # A classifier has no "person", which the camera watches: refused, after the deploy.
    result = await choose(hass, result["flow_id"], CLASSIFIER)
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "cameras_lack_labels"}
    assert "person" in result["description_placeholders"]["detail"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "server_model"
    assert CLASSIFIER in options(result, "model")[:2], "deployed meanwhile: on the server now"

    # Your own detector, sent to the server: kept.
    hass.config.allowlist_external_dirs = {str(models_dir)}
    folder = models_dir / "detection" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"model_path": str(folder / "detect.tflite"), "labels_path": str(folder / "labelmap.txt")},
    )
    assert result["step_id"] == "inspect"
    result = await finish_progress(
        hass, await hass.config_entries.flow.async_configure(result["flow_id"], {})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["model"] == "detect"
    assert len(entry.subentries) == 1
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.model.id == "detect"


@pytest.mark.usefixtures("unload_after")
async def test_reconfigure_refuses_another_server(hass: HomeAssistant, servers: Servers) -> None:
    server = await servers.start()
    other = await servers.start(name="b")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="My server",
        data={
            "device": "server",
            "host": "127.0.0.1",
            "port": server.port,
            "api_key": KEY,
            "model": DETECTOR,
        },
        unique_id=servers.server_id(),
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await connect(hass, result["flow_id"], other.port)
    assert result["errors"] == {"base": "wrong_server"}
    result = await connect(hass, result["flow_id"], free_port())
    assert result["errors"] == {"base": "cannot_connect"}
    result = await connect(hass, result["flow_id"], server.port)
    result = await choose(hass, result["flow_id"], DETECTOR)
    assert result["reason"] == "reconfigure_successful"
    assert entry.title == "My server", "a title set by hand stays"
