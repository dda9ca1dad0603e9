"""Every ConfigEntryState an accelerator can end in: loaded, retrying, failed — and no thread left."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision import models
from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.errors import DownloadError

from .conftest import camera_subentry, cpu_entry

CLASSIFIER = "mobilenet_v1_0.25_128_quant.tflite"


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


@pytest.fixture
def allow_shared(hass: HomeAssistant, shared_dir: Path, tmp_path: Path) -> None:
    """Let Home Assistant read ../shared and the test's own folder (custom model paths)."""
    hass.config.allowlist_external_dirs = {str(shared_dir), str(tmp_path)}


async def test_download_failure_retries(hass: HomeAssistant) -> None:
    entry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    with patch(
        "custom_components.coral_vision.models.ensure_model",
        side_effect=DownloadError("connection refused", reason="network"),
    ):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "connection refused" in (entry.reason or "")


@pytest.mark.usefixtures("allow_shared")
async def test_a_file_that_is_not_a_model_fails_setup(
    hass: HomeAssistant, images_dir: Path
) -> None:
    entry = custom_entry(images_dir / "cat.bmp")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert engine_threads() == set()


@pytest.mark.usefixtures("allow_shared")
async def test_a_missing_model_file_fails_setup(hass: HomeAssistant, tmp_path: Path) -> None:
    entry = custom_entry(tmp_path / "gone.tflite")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR


@pytest.mark.usefixtures("allow_shared")
async def test_an_edgetpu_model_on_the_cpu_fails_setup(
    hass: HomeAssistant, models_dir: Path
) -> None:
    entry = custom_entry(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "Edge TPU" in (entry.reason or "") or "edgetpu" in (entry.reason or "").lower()
    assert engine_threads() == set()


@pytest.mark.usefixtures("allow_shared")
async def test_a_local_model_with_labels_loads(hass: HomeAssistant, models_dir: Path) -> None:
    entry = custom_entry(
        models_dir / "mobilenet_v2_1.0_224_quant.tflite", models_dir / "imagenet_labels.txt"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.model.labels.name(286) == "Egyptian cat"
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


async def test_a_custom_model_outside_the_allowlist_is_not_read(
    hass: HomeAssistant, models_dir: Path
) -> None:
    # The entry was made while ../shared was allowed; the allowlist no longer has it.
    hass.config.allowlist_external_dirs = set()
    with patch(
        "custom_components.coral_vision.models.load_model", wraps=models.load_model
    ) as load_model:
        entry = custom_entry(models_dir / CLASSIFIER)
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    load_model.assert_not_called()
    assert "allowlist_external_dirs" in (entry.reason or "")
    assert str(models_dir / CLASSIFIER) in (entry.reason or "")


@pytest.mark.usefixtures("allow_shared")
@pytest.mark.parametrize(
    ("model", "labels"),
    [
        pytest.param(CLASSIFIER, "/etc/hostname", id="labels-outside"),
        pytest.param("nul\x00.tflite", "", id="path-the-os-refuses"),
    ],
)
async def test_user_files_outside_the_allowlist_are_not_read(
    hass: HomeAssistant, models_dir: Path, model: str, labels: str
) -> None:
    entry = custom_entry(models_dir / model, Path(labels) if labels else None)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "allowlist_external_dirs" in (entry.reason or "")


async def test_models_we_downloaded_are_read_but_not_links_out_of_their_folder(
    hass: HomeAssistant, models_dir: Path, config_in_tmp: Path
) -> None:
    # A model link is stored under <config>/coral_vision/models/custom/, never in the allowlist.
    hass.config.allowlist_external_dirs = set()
    kept = config_in_tmp / DOMAIN / "models" / "custom" / "mobilenet-0123456789ab.tflite"
    kept.parent.mkdir(parents=True)
    shutil.copyfile(models_dir / CLASSIFIER, kept)
    entry = custom_entry(kept)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.runtime_data.accelerator.model.task == "classification"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await hass.config_entries.async_remove(entry.entry_id)

    link = kept.with_name("sneaky.tflite")
    link.symlink_to(models_dir / CLASSIFIER)
    entry = custom_entry(link)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "allowlist_external_dirs" in (entry.reason or "")


async def test_the_allowlist_is_checked_off_the_event_loop(
    hass: HomeAssistant, models_dir: Path
) -> None:
    hass.config.allowlist_external_dirs = {str(models_dir)}
    checked_on: list[int] = []
    original = hass.config.is_allowed_path

    def is_allowed_path(path: str) -> bool:
        checked_on.append(threading.get_ident())
        return original(path)

    with patch.object(hass.config, "is_allowed_path", is_allowed_path):
        entry = custom_entry(models_dir / CLASSIFIER)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    assert checked_on, "the allowlist was checked at setup"
    assert hass.loop_thread_id not in checked_on
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
