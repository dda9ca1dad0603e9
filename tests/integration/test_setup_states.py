"""Every ConfigEntryState an accelerator can end in: loaded, retrying, failed — and no thread left."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.errors import DownloadError

from .conftest import camera_subentry, cpu_entry


def custom_entry(model: Path, labels: Path | None = None) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision CPU",
        data={
            "device": "cpu",
            "model": "custom",
            "model_path": str(model),
            "labels_path": str(labels) if labels else "",
        },
        unique_id="cpu",
    )


def engine_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("coral-vision")}


async def test_download_failure_retries(hass: HomeAssistant) -> None:
    entry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    with patch(
        "custom_components.coral_vision.accelerator.ensure_model",
        side_effect=DownloadError("connection refused", reason="network"),
    ):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "connection refused" in (entry.reason or "")


async def test_a_file_that_is_not_a_model_fails_setup(
    hass: HomeAssistant, images_dir: Path
) -> None:
    entry = custom_entry(images_dir / "cat.bmp")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert engine_threads() == set()


async def test_a_missing_model_file_fails_setup(hass: HomeAssistant, tmp_path: Path) -> None:
    entry = custom_entry(tmp_path / "gone.tflite")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR


async def test_an_edgetpu_model_on_the_cpu_fails_setup(
    hass: HomeAssistant, models_dir: Path
) -> None:
    entry = custom_entry(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "Edge TPU" in (entry.reason or "") or "edgetpu" in (entry.reason or "").lower()
    assert engine_threads() == set()


async def test_a_local_model_with_labels_loads(hass: HomeAssistant, models_dir: Path) -> None:
    entry = custom_entry(
        models_dir / "mobilenet_v2_1.0_224_quant.tflite", models_dir / "imagenet_labels.txt"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.model.labels.name(286) == "Egyptian cat"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert engine_threads() == set()


async def test_a_failure_after_the_executor_opened_closes_it(hass: HomeAssistant) -> None:
    entry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    with patch(
        "custom_components.coral_vision.AcceleratorCoordinator.async_config_entry_first_refresh",
        side_effect=ConfigEntryNotReady("statistics unavailable"),
    ):
        await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert engine_threads() == set(), "the executor's threads were joined"
