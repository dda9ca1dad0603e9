"""A user's own YOLO file in a real Home Assistant: the model check, the entry and the detect action."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.coral_vision.const import DOMAIN

YOLO = "yolov8n_int8.tflite"  # float I/O, class names in its Ultralytics metadata


@pytest.fixture
async def yolo_entry(hass: HomeAssistant, models_dir: Path) -> AsyncGenerator[Any]:
    """Run the config flow on the CPU with the YOLO file as a custom model; unload at the end."""
    hass.config.allowlist_external_dirs = {str(models_dir), str(models_dir.parent / "images")}
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    assert result["step_id"] == "custom_model"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"model_path": str(models_dir / "yolo" / YOLO), "labels_path": ""}
    )
    yield result
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_yolo_model_detects_a_person_through_the_action(
    hass: HomeAssistant, yolo_entry: Any, images_dir: Path
) -> None:
    result = yolo_entry
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "inspect"
    assert not result["errors"]
    report = result["description_placeholders"]
    assert report["task"] == "object detection (YOLO), 80 classes"
    assert report["input"] == "320x320 float32"
    assert report["labels"] == "80 from the model's metadata (person; bicycle; car; …)"

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    photo = str(images_dir / "grace_hopper.bmp")
    response = await hass.services.async_call(
        DOMAIN, "detect", {"file": photo}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["image_size"] == [512, 600]
    person = response["detections"][0]
    assert person["label"] == "person"
    assert person["score"] > 0.9
    xmin, ymin, xmax, ymax = person["box"]
    assert 0 <= xmin < 256 < xmax <= 512
    assert 0 <= ymin < 300 < ymax <= 600
