"""Several Edge TPUs pooled behind one entry (fake libedgetpu running the CPU twin per TPU)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.coral_vision import accelerator, coordinator
from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.diagnostics import async_get_config_entry_diagnostics
from custom_components.coral_vision.engine.errors import DelegateError
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model
from tests.engine.fakes import FakeEdgeTpu

from .conftest import PhotoCamera, camera_subentry
from .helpers import later, loaded, set_up, unload, until

MODEL = "mobilenet_v1_025_128_imagenet"  # both variants are in the shared mirror
GOWN = "academic gown, academic robe, judge's robe"  # Grace Hopper, on MobileNet v1 0.25
CAMERAS = {"camera.front_door": "Front door", "camera.back_door": "Back door"}
POOL = "sensor.coral_vision_all_edge_tpus"


class Bus:
    """What the integration sees of several Edge TPUs on the USB bus, each its own libedgetpu."""

    def __init__(self, twin: bytes) -> None:
        self.twin = twin
        self.fakes: dict[str, FakeEdgeTpu] = {}
        self.listed: dict[str, EdgeTpu] = {}

    def fake(self, device: str) -> FakeEdgeTpu:
        if device not in self.fakes:
            self.fakes[device] = FakeEdgeTpu(cpu_twin=self.twin)
        return self.fakes[device]

    def plug(self, device: str) -> None:
        self.fake(device).replug()
        self.fake(device).load_error = None
        self.listed[device] = EdgeTpu(
            kind="usb", index=int(device.split(":")[1]), path="", device=device
        )

    def unplug(self, device: str) -> None:
        """Invokes fail, and libedgetpu finds no such device."""
        self.fakes[device].unplug()
        self.fakes[device].load_error = ValueError("Failed to load delegate from libedgetpu.so.1")
        self.listed.pop(device)

    def tpus(self) -> list[EdgeTpu]:
        return list(self.listed.values())


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Bus:
    """Two fake Edge TPUs, usb:0 and usb:1, behind the integration and its config flow."""
    bus = Bus((models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    original: Callable[..., Executor] = accelerator.create_executor

    def create(model: Model, tpu: EdgeTpu | None, **kwargs: Any) -> Executor:
        runtime = bus.fake(tpu.device).runtime() if tpu is not None else None
        return original(model, tpu, runtime=runtime, **kwargs)

    monkeypatch.setattr(accelerator, "list_edge_tpus", bus.tpus)
    monkeypatch.setattr(accelerator, "create_executor", create)
    monkeypatch.setattr(coordinator, "list_edge_tpus", bus.tpus)
    monkeypatch.setattr(coordinator, "read_temperature", lambda tpu: None)
    bus.plug("usb:0")
    bus.plug("usb:1")
    return bus


@pytest.fixture
async def cameras(hass: HomeAssistant, images_dir: Path) -> list[PhotoCamera]:
    """Two cameras showing Grace Hopper."""
    found = []
    for entity_id, name in CAMERAS.items():
        camera = PhotoCamera(images_dir / "grace_hopper.bmp")
        camera._attr_name = name
        camera._attr_unique_id = entity_id.split(".")[1]
        found.append(camera)
    setup_test_component_platform(hass, "camera", found)
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    return found


def subentries() -> list[Any]:
    """A camera subentry for each camera, scanned on demand, reporting every class."""
    found = []
    for entity_id, name in CAMERAS.items():
        sub = camera_subentry(camera_entity=entity_id, labels=[], scores={}, min_score=0.05)
        sub["title"], sub["unique_id"] = name, entity_id
        found.append(sub)
    return found


def pool_entry() -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision all Edge TPUs",
        data={"device": "all", "model": MODEL},
        unique_id="all",
        subentries_data=subentries(),
    )


@pytest.fixture
async def entry(
    hass: HomeAssistant, bus: Bus, cameras: list[PhotoCamera]
) -> AsyncGenerator[MockConfigEntry]:
    async with loaded(hass, pool_entry()) as entry:
        yield entry


async def submit_model(hass: HomeAssistant, result: Any) -> Any:
    """Choose MODEL on the flow's model step; wait out its download if one is shown."""
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
    if result["type"] is FlowResultType.SHOW_PROGRESS:
        await hass.async_block_till_done()
        result = await hass.config_entries.flow.async_configure(result["flow_id"])
    return result


async def scan_all(hass: HomeAssistant) -> None:
    """Scan both cameras, one after the other."""
    for entity_id in CAMERAS:
        await hass.services.async_call(
            "image_processing",
            "scan",
            {"entity_id": entity_id.replace("camera.", "image_processing.")},
            blocking=True,
        )
        await hass.async_block_till_done()


def issue(hass: HomeAssistant, entry: MockConfigEntry, device: str) -> ir.IssueEntry | None:
    issue_id = f"tpu_fallback_{entry.entry_id}_{device.replace(':', '_')}"
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


def state(hass: HomeAssistant, entity_id: str) -> str:
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found.state


def device_of(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> dr.DeviceEntry | None:
    """The entry's device with the Coral Vision identifier `key`."""
    registry = dr.async_get(hass)
    return next(
        (
            d
            for d in dr.async_entries_for_config_entry(registry, entry.entry_id)
            if (DOMAIN, key) in d.identifiers
        ),
        None,
    )


def tpu_device(hass: HomeAssistant, entry: MockConfigEntry, device: str) -> dr.DeviceEntry | None:
    return device_of(hass, entry, f"{entry.entry_id}:{device}")


def options(result: Any, key: str) -> list[str]:
    field = next(k for k in result["data_schema"].schema if k == key)
    return [o["value"] for o in result["data_schema"].schema[field].config["options"]]


@pytest.mark.usefixtures("cameras")
async def test_flow_offers_all_edge_tpus_and_then_only_the_cpu(
    hass: HomeAssistant, bus: Bus
) -> None:
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", bus.tpus):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        assert options(result, "device") == ["usb:0", "usb:1", "all", "choose", "cpu", "server"]
        assert result["description_placeholders"] == {"found": "2"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "all"}
        )
        assert result["step_id"] == "model"
        result = await submit_model(hass, result)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["title"] == "Coral Vision all Edge TPUs"
        assert result["data"] == {"device": "all", "model": MODEL}
        created = result["result"]
        assert created.unique_id == "all"
        await hass.async_block_till_done()
        assert created.state is ConfigEntryState.LOADED
        assert created.runtime_data.accelerator.devices == ("usb:0", "usb:1")

        # "All" holds every TPU: another accelerator can only be the CPU (or a server).
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        assert options(result, "device") == ["cpu", "server"]
        hass.config_entries.flow.async_abort(result["flow_id"])
    await unload(hass, created)


@pytest.mark.usefixtures("cameras")
async def test_flow_pools_a_chosen_set_of_free_tpus(hass: HomeAssistant, bus: Bus) -> None:
    bus.plug("usb:2")
    MockConfigEntry(
        domain=DOMAIN, data={"device": "usb:0", "model": MODEL}, unique_id="usb:0"
    ).add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", bus.tpus):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        # usb:0 is taken: neither it nor "All" (which would take it too) is offered.
        assert options(result, "device") == ["usb:1", "usb:2", "choose", "cpu", "server"]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "choose"}
        )
        assert result["step_id"] == "tpus"
        assert options(result, "tpus") == ["usb:1", "usb:2"]
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"tpus": []})
        assert result["errors"] == {"tpus": "no_tpu_chosen"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"tpus": ["usb:2", "usb:1"]}
        )
        assert result["step_id"] == "model"
        result = await submit_model(hass, result)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {"device": "usb:1+usb:2", "model": MODEL}
        assert result["title"] == "Coral Vision Edge TPU USB 1 + Edge TPU USB 2"
        created = result["result"]
        assert created.unique_id == "usb:1+usb:2"
        await hass.async_block_till_done()
        assert created.runtime_data.accelerator.devices == ("usb:1", "usb:2")

        # Reconfigure keeps its own TPUs on offer, ticked.
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": created.entry_id}
        )
        assert options(result, "device") == ["usb:1+usb:2", "usb:1", "usb:2", "choose", "cpu"]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "choose"}
        )
        assert result["step_id"] == "tpus"
        field = next(k for k in result["data_schema"].schema if k == "tpus")
        assert field.default() == ["usb:1", "usb:2"]
        hass.config_entries.flow.async_abort(result["flow_id"])
    await unload(hass, created)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_cameras_spread_and_each_tpu_falls_back_and_recovers(
    hass: HomeAssistant, entry: MockConfigEntry, bus: Bus
) -> None:
    pool = device_of(hass, entry, entry.entry_id)
    assert pool is not None
    for device in ("usb:0", "usb:1"):
        member = tpu_device(hass, entry, device)
        assert member is not None
        assert member.via_device_id == pool.id
    backends = {d: f"sensor.edge_tpu_usb_{d[-1]}_backend" for d in ("usb:0", "usb:1")}
    assert all(state(hass, b) == "edgetpu_usb" for b in backends.values())
    # The pool device shows the totals; only its TPUs have a backend.
    assert hass.states.get(f"{POOL}_backend") is None
    assert state(hass, f"{POOL}_queue_depth") == "0"

    await scan_all(hass)
    assert state(hass, "image_processing.front_door") == GOWN
    assert state(hass, "image_processing.back_door") == GOWN
    stats = entry.runtime_data.accelerator.stats()
    assert stats.devices["usb:0"].frames_done > 0
    assert stats.devices["usb:1"].frames_done > 0
    assert stats.total.frames_done == 2
    assert all(fake.invokes == 1 for fake in bus.fakes.values())
    # Actions run on the pool too, on demand: on the TPU with the fewest frames in flight.
    response = await hass.services.async_call(
        DOMAIN,
        "classify",
        {"entity_id": "camera.front_door", "top_k": 1},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["classes"][0]["label"] == GOWN
    assert sum(fake.invokes for fake in bus.fakes.values()) == 3
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    members = diagnostics["accelerator"]["pool"]
    assert set(members) == {"usb:0", "usb:1"}
    assert all(m["backend"]["kind"] == "edgetpu-usb" for m in members.values())
    assert sum(m["executor"]["frames_done"] for m in members.values()) == 3
    assert diagnostics["accelerator"]["executor"]["frames_done"] == 3
    await later(hass, 31)
    assert float(state(hass, f"{POOL}_frames_per_minute")) > 0
    assert float(state(hass, f"{POOL}_inference_time")) > 0
    assert float(state(hass, "sensor.edge_tpu_usb_0_inference_time")) > 0

    bus.unplug("usb:1")
    await scan_all(hass)  # usb:1's frame is lost with it; its executor reopens on the CPU
    await until(hass, lambda: state(hass, backends["usb:1"]) == "cpu")
    found = issue(hass, entry, "usb:1")
    assert found is not None
    assert found.translation_placeholders["device"] == "usb:1"
    assert issue(hass, entry, "usb:0") is None
    assert state(hass, backends["usb:0"]) == "edgetpu_usb", "the other TPU stays on its TPU"
    invokes = bus.fakes["usb:1"].invokes
    await scan_all(hass)
    assert state(hass, "image_processing.back_door") == GOWN, "the CPU fallback keeps detecting"
    assert bus.fakes["usb:1"].invokes == invokes
    await later(hass, 62)  # not listed: not reopened
    assert state(hass, backends["usb:1"]) == "cpu"

    bus.plug("usb:1")
    await later(hass, 93)
    await until(hass, lambda: issue(hass, entry, "usb:1") is None)
    assert state(hass, backends["usb:1"]) == "edgetpu_usb"
    await scan_all(hass)
    assert bus.fakes["usb:1"].invokes == invokes + 1


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_a_tpu_plugged_in_later_joins_and_one_gone_can_be_removed(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    bus: Bus,
    hass_ws_client: WebSocketGenerator,
) -> None:
    bus.plug("usb:2")
    await later(hass, 31)
    await until(hass, lambda: hass.states.get("sensor.edge_tpu_usb_2_backend") is not None)
    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:1", "usb:2")
    joined = tpu_device(hass, entry, "usb:2")
    assert joined is not None
    assert state(hass, "sensor.edge_tpu_usb_2_backend") == "edgetpu_usb"
    assert state(hass, "sensor.edge_tpu_usb_2_frames_per_minute") is not None

    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)

    async def remove(device_id: str) -> bool:
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": entry.entry_id,
                "device_id": device_id,
            }
        )
        return bool((await client.receive_json())["success"])

    assert not await remove(joined.id), "still plugged in: not removable"
    pool = device_of(hass, entry, entry.entry_id)
    assert pool is not None
    assert not await remove(pool.id), "the pool's device stays"
    camera = device_of(hass, entry, next(iter(entry.subentries)))
    assert camera is not None
    assert not await remove(camera.id)

    bus.unplug("usb:2")
    assert await remove(joined.id)
    await hass.async_block_till_done()
    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:1")
    assert tpu_device(hass, entry, "usb:2") is None
    assert er.async_get(hass).async_get("sensor.edge_tpu_usb_2_backend") is None
    assert hass.states.get("sensor.edge_tpu_usb_2_backend") is None
    assert issue(hass, entry, "usb:2") is None
    await scan_all(hass)
    assert state(hass, "image_processing.front_door") == GOWN

    # Gone for good: it does not come back with a reload.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:1")


@pytest.mark.parametrize("device", ["usb:0", "all"])
async def test_unload_leaves_no_thread_and_no_accelerator(
    hass: HomeAssistant, bus: Bus, cameras: list[PhotoCamera], device: str
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"device": device, "model": MODEL},
        unique_id=device,
        subentries_data=subentries(),
    )
    await set_up(hass, entry)
    await scan_all(hass)
    gone = weakref.ref(entry.runtime_data.accelerator)
    gc.collect()
    gc.disable()  # freed by reference counting alone: no cycle holds it
    try:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert gone() is None, "the unloaded accelerator is still referenced"
    finally:
        gc.enable()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("coral-vision")]
    assert alive == []


def refuse_to_open(monkeypatch: pytest.MonkeyPatch, device: str) -> list[Executor]:
    """Make opening `device`'s executor fail like a broken libedgetpu; return those opened."""
    inner: Callable[..., Executor] = accelerator.create_executor
    opened: list[Executor] = []

    def create(model: Model, tpu: EdgeTpu | None, **kwargs: Any) -> Executor:
        if tpu is not None and tpu.device == device:
            raise DelegateError(f"{device} could not be opened")
        opened.append(inner(model, tpu, **kwargs))
        return opened[-1]

    monkeypatch.setattr(accelerator, "create_executor", create)
    return opened


def infer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("coral-vision")]


@pytest.mark.usefixtures("cameras")
async def test_all_without_any_tpu_retries_later(hass: HomeAssistant, bus: Bus) -> None:
    bus.unplug("usb:0")
    bus.unplug("usb:1")
    entry = pool_entry()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "No Edge TPU is plugged in" in (entry.reason or "")
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("cameras")
async def test_a_member_that_fails_to_open_closes_the_others(
    hass: HomeAssistant, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = refuse_to_open(monkeypatch, "usb:1")
    entry = pool_entry()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "usb:1 could not be opened" in (entry.reason or "")
    assert [e.name for e in opened] == ["usb:0"]
    assert opened[0].closed
    assert infer_threads() == [], "usb:0's executor was closed"


@pytest.mark.usefixtures("cameras")
async def test_a_tpu_missing_at_start_stays_in_the_pool_until_removed(
    hass: HomeAssistant, bus: Bus, hass_ws_client: WebSocketGenerator
) -> None:
    entry = pool_entry()
    entry.add_to_hass(hass)
    # The pool ran on usb:1 before Home Assistant restarted without it.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, f"{entry.entry_id}:usb:1")}
    )
    bus.unplug("usb:1")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:1")
    assert state(hass, "sensor.edge_tpu_usb_1_backend") == "cpu"
    assert issue(hass, entry, "usb:1") is not None

    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)

    async def remove(device: str) -> bool:
        found = tpu_device(hass, entry, device)
        assert found is not None
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": entry.entry_id,
                "device_id": found.id,
            }
        )
        return bool((await client.receive_json())["success"])

    assert await remove("usb:1")
    assert issue(hass, entry, "usb:1") is None
    bus.unplug("usb:0")
    assert not await remove("usb:0"), "the pool's last TPU stays"
    await unload(hass, entry)


async def test_a_tpu_that_cannot_join_is_left_out(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    bus: Bus,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refuse_to_open(monkeypatch, "usb:2")
    bus.plug("usb:2")
    await later(hass, 31)
    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:1")
    assert "Edge TPU usb:2 could not join the pool" in caplog.text
    assert hass.states.get("sensor.edge_tpu_usb_2_backend") is None


@pytest.mark.usefixtures("cameras")
async def test_each_pooled_tpu_shows_its_temperature(
    hass: HomeAssistant, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        coordinator, "read_temperature", lambda tpu: 47.5 if tpu.device == "usb:0" else None
    )
    entry = pool_entry()
    await set_up(hass, entry)
    assert float(state(hass, "sensor.edge_tpu_usb_0_tpu_temperature")) == 47.5
    assert hass.states.get("sensor.edge_tpu_usb_1_tpu_temperature") is None
    assert hass.states.get(f"{POOL}_tpu_temperature") is None
    await unload(hass, entry)


async def test_late_backend_changes_are_ignored(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    pooled = entry.runtime_data.accelerator
    info = pooled.backend_of("usb:0")
    assert info is not None
    cpu = replace(info, kind="cpu")
    # From a member removed meanwhile: no repair for it.
    pooled.async_backend_changed("usb:9", cpu)
    assert issue(hass, entry, "usb:9") is None
    # After close: the relay no longer reaches the accelerator.
    relay = accelerator._Relay(hass.loop)
    relay.listener("usb:0")(cpu)
    await hass.async_block_till_done()
    assert issue(hass, entry, "usb:0") is None


async def test_noisy_diagnostics_of_the_pool_and_its_tpus_are_disabled_by_default(
    hass: HomeAssistant, entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    noisy = [f"{POOL}_{key}" for key in ("queue_depth", "dropped_frames", "frames_per_minute")]
    noisy += [f"sensor.edge_tpu_usb_{n}_frames_per_minute" for n in (0, 1)]
    for entity_id in noisy:
        registered = entity_registry.async_get(entity_id)
        assert registered is not None, entity_id
        assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION, entity_id
        assert hass.states.get(entity_id) is None
    assert state(hass, "sensor.edge_tpu_usb_0_backend") == "edgetpu_usb"
    assert state(hass, f"{POOL}_inference_time") is not None


@pytest.mark.usefixtures("cameras")
async def test_tpus_a_reconfigure_drops_from_a_chosen_set_lose_their_devices(
    hass: HomeAssistant, bus: Bus
) -> None:
    bus.plug("usb:2")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision Edge TPU USB 0 + Edge TPU USB 1",
        data={"device": "usb:0+usb:1", "model": MODEL},
        unique_id="usb:0+usb:1",
        subentries_data=subentries(),
    )
    await set_up(hass, entry)
    usb1 = tpu_device(hass, entry, "usb:1")
    assert usb1 is not None
    camera = device_of(hass, entry, next(iter(entry.subentries)))
    assert camera is not None

    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", bus.tpus):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "choose"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"tpus": ["usb:0", "usb:2"]}
        )
        assert result["step_id"] == "model"
        result = await submit_model(hass, result)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()

    assert entry.runtime_data.accelerator.devices == ("usb:0", "usb:2")
    assert tpu_device(hass, entry, "usb:1") is None, "dropped: its device went at the reload"
    assert dr.async_get(hass).async_get(usb1.id) is None
    assert er.async_get(hass).async_get("sensor.edge_tpu_usb_1_backend") is None
    assert tpu_device(hass, entry, "usb:0") is not None
    assert tpu_device(hass, entry, "usb:2") is not None
    assert device_of(hass, entry, next(iter(entry.subentries))) == camera

    # Down to one TPU: no pool, so no TPU devices at all; the accelerator's device stays.
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", bus.tpus):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "usb:2"}
        )
        result = await submit_model(hass, result)
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
    assert tpu_device(hass, entry, "usb:0") is None
    assert tpu_device(hass, entry, "usb:2") is None
    assert device_of(hass, entry, entry.entry_id) is not None
    await unload(hass, entry)
