"""Model shelf in Home Assistant: the mirror option, and listing / removing stored models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.models.download import MIRROR_ENV as ENV_MIRROR

from .conftest import cpu_entry
from .helpers import set_up


async def test_mirror_option_is_used_before_the_environment(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, models_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv(ENV_MIRROR, str(empty))
    hass.config.allowlist_external_dirs = {str(models_dir)}
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision CPU",
        data={"device": "cpu", "model": "tf_coco_ssd_mobilenet_v1"},
        unique_id="cpu",
    )
    entry.add_to_hass(hass)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"mirror": "/not/allowed"}
    )
    assert result["errors"] == {"mirror": "path_not_allowed"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"mirror": str(models_dir / "missing")}
    )
    assert result["errors"] == {"mirror": "folder_missing"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"mirror": str(models_dir)}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {"mirror": str(models_dir)}

    # The changed option reloads (here: sets up) the entry. The environment's mirror is empty;
    # the option's holds the model: the entry loads from it.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.model.task == "detection"
    assert not any(empty.iterdir())
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_url_mirror_is_accepted_without_a_folder_check(hass: HomeAssistant) -> None:
    # Loaded first: the reload the new option causes finds the model already downloaded.
    entry = cpu_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"mirror": "http://127.0.0.1:8000/models"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["mirror"] == "http://127.0.0.1:8000/models"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_list_and_remove_unused_models(
    hass: HomeAssistant, config_in_tmp: Path, models_dir: Path
) -> None:
    entry = cpu_entry()
    await set_up(hass, entry)
    folder = config_in_tmp / "coral_vision" / "models"
    # A model left behind by an earlier choice.
    shutil.copy(models_dir / "mobilenet_v1_0.25_128_quant.tflite", folder)

    listing = await hass.services.async_call(
        DOMAIN, "list_models", {}, blocking=True, return_response=True
    )
    assert listing is not None
    assert listing["folder"] == str(folder)
    by_path = {m["path"]: m for m in listing["models"]}  # type: ignore[union-attr,index]
    used = [p for p, m in by_path.items() if m["used_by"]]
    assert used, "the loaded entry's files are in use"
    assert all(by_path[p]["used_by"] == ["Coral Vision CPU"] for p in used)
    assert any(by_path[p]["sha256"] for p in used)
    assert by_path["mobilenet_v1_0.25_128_quant.tflite"]["used_by"] == []
    assert by_path["mobilenet_v1_0.25_128_quant.tflite"]["size"] > 0

    removed = await hass.services.async_call(
        DOMAIN, "remove_unused_models", {}, blocking=True, return_response=True
    )
    assert removed == {"removed": ["mobilenet_v1_0.25_128_quant.tflite"]}
    assert not (folder / "mobilenet_v1_0.25_128_quant.tflite").exists()
    for path in used:
        assert (folder / path).exists()
    await hass.config_entries.async_unload(entry.entry_id)
