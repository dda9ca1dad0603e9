"""The catalog download of the config flow: answered at once when quick, heard when it ends."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import patch

import pytest
from aiohttp import web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import (
    EVENT_DATA_ENTRY_FLOW_PROGRESSED,
    FlowResultType,
    UnknownFlow,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision import flow_progress
from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.models.download import MIRROR_ENV as ENV_MIRROR

from .conftest import cpu_entry
from .test_config_flow import HANG, USB_TPU, closed_port, start_on, unreachable_catalog

MODEL = "tf_coco_ssd_mobilenet_v1"
FILES = "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"
STRINGS = Path(__file__).parents[2] / "custom_components" / DOMAIN / "strings.json"


@dataclass
class Gate:
    """An upstream that holds every request until released, then answers 503."""

    base: str = ""
    hit: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Wait for the release, then fail."""
        self.hit.set()
        await self.release.wait()
        return web.Response(status=503, text="arranged failure")


@pytest.fixture
async def gate(socket_enabled: None) -> AsyncIterator[Gate]:
    """A held upstream on 127.0.0.1."""
    gate = Gate()
    app = web.Application()
    app.router.add_get("/{tail:.*}", gate.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gate.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield gate
    finally:
        gate.release.set()
        await runner.cleanup()


@pytest.fixture
def no_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty mirror: catalog models come from their (moved) upstream URLs."""
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv(ENV_MIRROR, str(empty))
    return empty


def move_upstream(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    """Every catalog URL under `base`."""
    monkeypatch.setattr(
        "custom_components.coral_vision.models.load_catalog", unreachable_catalog(base)
    )


def step_text(step: str) -> str:
    """A config step's description in strings.json."""
    return str(json.loads(STRINGS.read_text("utf-8"))["config"]["step"][step]["description"])


@pytest.mark.usefixtures("socket_enabled", "no_mirror")
@pytest.mark.parametrize("source", ["user", "reconfigure"])
async def test_an_immediate_download_failure_is_the_answer_to_submit(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # No network and nothing in the mirror: the failure, its reason and the mirror hint come
    # back as the answer to choosing the model (no progress step the frontend might miss).
    base = f"http://127.0.0.1:{closed_port()}"
    move_upstream(monkeypatch, base)
    if source == "user":
        result = await start_on(hass, "cpu")
    else:
        entry = MockConfigEntry(
            domain=DOMAIN, data={"device": "cpu", "model": "x"}, unique_id="cpu"
        )
        entry.add_to_hass(hass)
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "cpu"}
        )

    with patch.object(flow_progress, "QUICK_ANSWER", HANG):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "download_failed"
    assert result["errors"] == {"base": "download_failed"}
    placeholders = result["description_placeholders"]
    assert base in placeholders["detail"]
    assert placeholders["files"] == f"- `{FILES}/detect.tflite`\n- `{FILES}/labelmap.txt`"
    assert "{files}" in step_text("download_failed")
    assert "Mirror" in step_text("download_failed")
    assert "CORAL_VISION_MIRROR" in step_text("download_failed")

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "model"
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("no_mirror")
async def test_a_download_ending_right_after_the_progress_step_is_still_heard(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, gate: Gate
) -> None:
    # The frontend subscribes to the flow's events only once it shows the progress step: a
    # download ending just after the step was sent must not end the step before then.
    move_upstream(monkeypatch, gate.base)
    progressed: list[float] = []

    def heard(event: Event) -> None:
        progressed.append(hass.loop.time())

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESSED, heard)
    result = await start_on(hass, "cpu")
    with (
        patch.object(flow_progress, "QUICK_ANSWER", 0.01),
        patch.object(flow_progress, "SHOWN_AT_LEAST", 0.5),
    ):
        asked = hass.loop.time()
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        assert result["step_id"] == "download"
        gate.release.set()  # the download fails at once now
        await asyncio.wait_for(hass.async_block_till_done(), HANG)

    assert len(progressed) == 1
    assert progressed[0] - asked >= 0.5, "the progress step lasted its minimum"
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["step_id"] == "download_failed"
    assert result["errors"] == {"base": "download_failed"}
    assert "503" in result["description_placeholders"]["detail"]
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("no_mirror")
@pytest.mark.parametrize("when", ["downloading", "failed unseen"])
async def test_closing_the_dialog_leaves_no_unretrieved_failure(
    hass: HomeAssistant,
    monkeypatch: pytest.MonkeyPatch,
    gate: Gate,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    move_upstream(monkeypatch, gate.base)
    result = await start_on(hass, "cpu")
    with (
        patch.object(flow_progress, "QUICK_ANSWER", 0.01),
        patch.object(flow_progress, "SHOWN_AT_LEAST", 0),
    ):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await asyncio.wait_for(gate.hit.wait(), HANG)
        if when == "failed unseen":
            # It failed, and the frontend never asked for the next step.
            gate.release.set()
            await asyncio.wait_for(hass.async_block_till_done(), HANG)
        hass.config_entries.flow.async_abort(result["flow_id"])
        gate.release.set()
        await asyncio.wait_for(hass.async_block_till_done(), HANG)
    gc.collect()
    await hass.async_block_till_done()

    assert "never retrieved" not in caplog.text
    assert hass.config_entries.flow.async_progress() == []
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.usefixtures("no_mirror")
async def test_closing_the_dialog_during_a_quick_wait_aborts_the_flow(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, gate: Gate
) -> None:
    move_upstream(monkeypatch, gate.base)
    result = await start_on(hass, "cpu")
    with patch.object(flow_progress, "QUICK_ANSWER", HANG):
        submit = hass.async_create_task(
            hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
        )
        await asyncio.wait_for(gate.hit.wait(), HANG)
        hass.config_entries.flow.async_abort(result["flow_id"])
        try:
            late = await asyncio.wait_for(submit, HANG)
        except UnknownFlow:  # Home Assistant 2025.4: the flow is gone (the API answers 404)
            late = None
    assert late is None or late["reason"] == "download_cancelled"
    assert hass.config_entries.flow.async_progress() == []
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_a_quick_download_skips_the_progress_step(hass: HomeAssistant) -> None:
    result = await start_on(hass, "cpu")
    with patch.object(flow_progress, "QUICK_ANSWER", HANG):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
    assert result["type"] is FlowResultType.CREATE_ENTRY, "from the mirror, in one answer"
    assert result["options"] == {}
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("socket_enabled", "no_mirror")
async def test_a_new_accelerator_uses_the_mirror_of_one_set_up(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, models_dir: Path
) -> None:
    # The hint on the failure step: a mirror set on an accelerator also serves new ones.
    move_upstream(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    MockConfigEntry(
        domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu", options={"mirror": str(models_dir)}
    ).add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[USB_TPU]):
        result = await start_on(hass, "usb:0")
        with patch.object(flow_progress, "QUICK_ANSWER", HANG):
            result = await hass.config_entries.flow.async_configure(
                result["flow_id"], {"model": "mobilenet_v1_025_128_imagenet"}
            )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"] == {"mirror": str(models_dir)}
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_progress_step_shows_a_slower_download(hass: HomeAssistant) -> None:
    entry = cpu_entry()
    result = await start_on(hass, "cpu")
    with patch.object(flow_progress, "QUICK_ANSWER", 0):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": MODEL})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "download_model"
    assert result["description_placeholders"] == {
        "model": "SSD MobileNet v1 (COCO, TensorFlow 2018)"
    }
    # Asked again before it ends (the frontend reopened): the same step.
    again = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert again["type"] is FlowResultType.SHOW_PROGRESS
    await asyncio.wait_for(hass.async_block_till_done(), HANG)
    result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == entry.data
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(result["result"].entry_id)
