"""An Edge TPU accelerator (a fake libedgetpu running the CPU twin): unplugged, replugged."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision import accelerator, coordinator
from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.errors import DelegateError
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model
from tests.engine.fakes import FakeEdgeTpu

from .conftest import PhotoCamera, camera_subentry
from .helpers import IP, later, loaded, scan, set_up, unload, until

BACKEND = "sensor.coral_usb_0_backend"
LOGGER = "custom_components.coral_vision"
MODEL = "mobilenet_v1_025_128_imagenet"  # both variants are in the shared mirror
GOWN = "academic gown, academic robe, judge's robe"  # Grace Hopper, on MobileNet v1 0.25
USB0 = EdgeTpu(kind="usb", index=0, path="", device="usb:0")


class Bus:
    """What the integration sees of the USB bus and libedgetpu."""

    def __init__(self, fake: FakeEdgeTpu) -> None:
        self.fake = fake
        self.listed: list[EdgeTpu] = [USB0]

    def unplug(self) -> None:
        self.fake.unplug()
        self.listed.clear()

    def replug(self) -> None:
        self.fake.replug()
        self.listed[:] = [USB0]


def make_bus(monkeypatch: pytest.MonkeyPatch, models_dir: Path, **options: Any) -> Bus:
    """Put a fake Edge TPU on usb:0 behind the integration."""
    twin = (models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    bus = Bus(FakeEdgeTpu(cpu_twin=twin, **options))
    original: Callable[..., Executor] = accelerator.create_executor

    def create(model: Model, tpu: EdgeTpu | None, **kwargs: Any) -> Executor:
        return original(model, tpu, runtime=bus.fake.runtime(), **kwargs)

    monkeypatch.setattr(accelerator, "list_edge_tpus", lambda: list(bus.listed))
    monkeypatch.setattr(accelerator, "create_executor", create)
    return bus


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Bus:
    return make_bus(monkeypatch, models_dir)


@pytest.fixture
async def tpu_entry(
    hass: HomeAssistant, tmp_path: Path, photo_camera: PhotoCamera, bus: Bus
) -> AsyncGenerator[MockConfigEntry]:
    hass.config.config_dir = str(tmp_path)  # the models are fetched into this test's folder
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral USB 0",
        data={"device": "usb:0", "model": MODEL},
        unique_id="usb:0",
        subentries_data=[camera_subentry(labels=[], scores={}, min_score=0.05)],
    )
    async with loaded(hass, entry):
        yield entry


def issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"tpu_fallback_{entry.entry_id}")


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_unplug_falls_back_and_replug_returns(
    hass: HomeAssistant,
    tpu_entry: MockConfigEntry,
    bus: Bus,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    assert hass.states.get(BACKEND).state == "edgetpu_usb"
    assert issue(hass, tpu_entry) is None
    await scan(hass)
    assert hass.states.get(IP).state == GOWN
    assert bus.fake.invokes == 1
    caplog.clear()

    bus.unplug()
    await scan(hass)  # this frame is lost with the TPU; the executor reopens on the CPU
    await until(hass, lambda: hass.states.get(BACKEND).state == "cpu")
    assert issue(hass, tpu_entry) is not None
    assert issue(hass, tpu_entry).translation_placeholders["device"] == "usb:0"
    for _ in range(3):
        await scan(hass)
    assert hass.states.get(IP).state == GOWN, "the CPU fallback keeps detecting"
    assert bus.fake.invokes == 2, "frames no longer reach the TPU"
    assert all(
        hass.states.get(e).state != STATE_UNAVAILABLE
        for e in (IP, BACKEND, "sensor.front_door_objects")
    )
    await later(hass, 31)  # not listed: no attempt to reopen it
    assert hass.states.get(BACKEND).state == "cpu"
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "usb:0" in warnings[0]

    bus.replug()
    await later(hass, 62)
    await until(hass, lambda: issue(hass, tpu_entry) is None)
    assert hass.states.get(BACKEND).state == "edgetpu_usb"
    invokes = bus.fake.invokes
    await scan(hass)
    assert bus.fake.invokes == invokes + 1
    assert hass.states.get(IP).state == GOWN
    assert records(caplog, logging.INFO) == ["Edge TPU usb:0 is back; running on Edge TPU (USB)"]
    assert len(records(caplog, logging.WARNING)) == 1


async def test_missing_library_is_reported_once_and_not_retried(
    hass: HomeAssistant,
    tmp_path: Path,
    photo_camera: PhotoCamera,
    monkeypatch: pytest.MonkeyPatch,
    models_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = make_bus(monkeypatch, models_dir, load_error=OSError("libedgetpu.so.1: not found"))
    hass.config.config_dir = str(tmp_path)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral USB 0",
        data={"device": "usb:0", "model": MODEL},
        subentries_data=[camera_subentry()],
    )
    await set_up(hass, entry)
    assert hass.states.get(BACKEND).state == "cpu"
    found = issue(hass, entry)
    assert found is not None
    assert found.translation_placeholders["reason"] == "no_runtime_library"
    loads = len(bus.fake.load_calls)
    await later(hass, 31)
    await later(hass, 62)
    assert len(bus.fake.load_calls) == loads, "a missing library is not tried every 30 s"
    assert len(records(caplog, logging.WARNING)) == 1
    await unload(hass, entry)


async def test_busy_tpu_retried_without_new_warnings(
    hass: HomeAssistant,
    tpu_entry: MockConfigEntry,
    bus: Bus,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    caplog.clear()
    bus.unplug()
    await scan(hass)
    await until(hass, lambda: issue(hass, tpu_entry) is not None)
    # Listed again but held by another program: reopening it falls back again.
    bus.fake.load_error = ValueError("Failed to load delegate: device busy")
    bus.listed[:] = [USB0]
    loads = len(bus.fake.load_calls)
    await later(hass, 31)
    await until(hass, lambda: len(bus.fake.load_calls) > loads)
    await later(hass, 62)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(bus.fake.load_calls) >= loads + 2, "tried again at each refresh"
    assert hass.states.get(BACKEND).state == "cpu"
    assert issue(hass, tpu_entry) is not None
    assert len(records(caplog, logging.WARNING)) == 1
    assert records(caplog, logging.INFO) == []


async def test_temperature_sensor_when_the_tpu_reports_one(
    hass: HomeAssistant,
    tmp_path: Path,
    photo_camera: PhotoCamera,
    bus: Bus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temperatures = iter([47.5, 51.0])
    monkeypatch.setattr(coordinator, "list_edge_tpus", lambda: list(bus.listed))
    monkeypatch.setattr(coordinator, "read_temperature", lambda tpu: next(temperatures))
    hass.config.config_dir = str(tmp_path)
    entry = MockConfigEntry(
        domain=DOMAIN, title="Coral USB 0", data={"device": "usb:0", "model": MODEL}
    )
    await set_up(hass, entry)
    state = hass.states.get("sensor.coral_usb_0_tpu_temperature")
    assert float(state.state) == 47.5
    assert state.attributes["unit_of_measurement"] == "°C"
    await later(hass, 31)
    assert float(hass.states.get("sensor.coral_usb_0_tpu_temperature").state) == 51.0
    await unload(hass, entry)


async def test_failed_reopen_keeps_the_cpu(
    hass: HomeAssistant,
    tpu_entry: MockConfigEntry,
    bus: Bus,
    photo_camera: PhotoCamera,
    images_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    bus.unplug()
    await scan(hass)
    await until(hass, lambda: issue(hass, tpu_entry) is not None)
    executor = tpu_entry.runtime_data.accelerator.dispatcher.executors[0]
    attempts: list[Model] = []

    async def refuse(model: Model, cpu_model: Model | None = None) -> None:
        attempts.append(model)
        raise DelegateError("usb:0 could not be opened")

    monkeypatch.setattr(executor, "async_swap_model", refuse)
    bus.listed[:] = [USB0]
    await later(hass, 31)
    assert len(attempts) == 1
    assert hass.states.get(BACKEND).state == "cpu"
    assert issue(hass, tpu_entry) is not None
    await scan(hass)
    assert hass.states.get(IP).state == GOWN


def short_hang_limit(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Open the executors with a hang limit of `seconds` instead of 10 s."""
    inner: Callable[..., Executor] = accelerator.create_executor

    def create(model: Model, tpu: EdgeTpu | None, **kwargs: Any) -> Executor:
        return inner(model, tpu, hang_limit=seconds, **kwargs)

    monkeypatch.setattr(accelerator, "create_executor", create)


def infer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("coral-vision-infer")]


async def setup_tpu_entry(hass: HomeAssistant, tmp_path: Path) -> MockConfigEntry:
    hass.config.config_dir = str(tmp_path)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral USB 0",
        data={"device": "usb:0", "model": MODEL},
        unique_id="usb:0",
        subentries_data=[camera_subentry(labels=[], scores={}, min_score=0.05)],
    )
    await set_up(hass, entry)
    return entry


async def test_hung_tpu_runs_on_the_cpu_until_its_invoke_returns(
    hass: HomeAssistant,
    tmp_path: Path,
    photo_camera: PhotoCamera,
    bus: Bus,
    monkeypatch: pytest.MonkeyPatch,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    short_hang_limit(monkeypatch, 0.5)
    entry = await setup_tpu_entry(hass, tmp_path)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == GOWN
    caplog.clear()

    bus.fake.hang()  # still listed, but every invoke on it blocks
    await scan(hass)  # this frame is lost in the TPU; the next ones run on the CPU
    await until(hass, lambda: issue(hass, entry) is not None)
    found = issue(hass, entry)
    assert found is not None
    assert found.translation_key == "tpu_hung"
    assert found.translation_placeholders["reason"] == "hung"
    assert "stopped responding" in found.translation_placeholders["detail"]
    assert hass.states.get(BACKEND).state == "cpu"
    loads = len(bus.fake.load_calls)
    for _ in range(5):
        await scan(hass)
        await asyncio.sleep(0.2)  # five frames over two hang limits
    assert hass.states.get(IP).state == GOWN, "the CPU keeps detecting"
    await later(hass, 31)  # the coordinator leaves a hung TPU to the executor
    assert len(bus.fake.load_calls) == loads, "not reopened while its invoke is stuck"
    assert bus.fake.stuck == 1
    assert len(infer_threads()) == 2
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "hung" in warnings[0]

    bus.fake.release()  # the stuck invoke returns
    await until(hass, lambda: issue(hass, entry) is None)
    assert hass.states.get(BACKEND).state == "edgetpu_usb"
    invokes = bus.fake.invokes
    await scan(hass)
    assert bus.fake.invokes == invokes + 1
    assert records(caplog, logging.INFO) == ["Edge TPU usb:0 is back; running on Edge TPU (USB)"]
    await unload(hass, entry)


async def test_unload_returns_within_the_hang_limit_while_a_reopen_is_stuck(
    hass: HomeAssistant,
    tmp_path: Path,
    photo_camera: PhotoCamera,
    monkeypatch: pytest.MonkeyPatch,
    models_dir: Path,
    images_dir: Path,
) -> None:
    bus = make_bus(monkeypatch, models_dir, hang_timeout=15.0)
    short_hang_limit(monkeypatch, 1.0)
    entry = await setup_tpu_entry(hass, tmp_path)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    bus.fake.unplug()  # invokes fail while it stays listed: the executor reopens it...
    bus.fake.block_loads()  # ...and libedgetpu never answers
    await scan(hass)
    assert await hass.async_add_executor_job(bus.fake.loading.wait, 60)
    stuck = infer_threads()

    started = time.monotonic()
    assert await hass.config_entries.async_unload(entry.entry_id)
    took = time.monotonic() - started
    await hass.async_block_till_done()
    assert took < 1.0 + 3, f"unloading took {took:.1f} s"
    assert entry.state is ConfigEntryState.NOT_LOADED

    bus.fake.unblock_loads()  # the stuck call returns: its thread ends, unnoticed
    for thread in stuck:
        await hass.async_add_executor_job(thread.join, 60)
    assert not infer_threads()
    assert issue(hass, entry) is None
