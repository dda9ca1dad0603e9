"""Diagnostics of a loaded accelerator and its camera, with private paths redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.components.diagnostics import REDACTED
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.coral_vision.const import DOMAIN

from .conftest import PhotoCamera, camera_subentry
from .helpers import set_up, unload
from .test_detection import scan

DETECT = "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"


def device(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> dr.DeviceEntry:
    """The entry's device identified by (DOMAIN, key)."""
    found = [
        d
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if (DOMAIN, key) in d.identifiers
    ]
    assert len(found) == 1
    return found[0]


async def test_entry_diagnostics_after_a_detection(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    diagnostics: Any = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    assert diagnostics["entry"]["data"] == {"device": "cpu", "model": "tf_coco_ssd_mobilenet_v1"}
    assert diagnostics["entry"]["state"] == "loaded"
    accelerator = diagnostics["accelerator"]
    assert accelerator["device"] == "cpu"
    model = accelerator["model"]
    assert model["task"] == "detection"
    assert model["input_size"] == [300, 300]
    assert model["edgetpu"] is False
    assert model["labels"] >= 80
    assert model["path"] == REDACTED
    backend = accelerator["backend"]
    assert backend["kind"] == "cpu"
    assert backend["fallback_reason"] is None
    assert backend["model_name"] == model["name"]
    executor = accelerator["executor"]
    assert executor["frames_done"] == 1
    assert executor["frames_failed"] == 0
    assert executor["inference_p50_ms"] > 0
    assert executor["queue_limit"] >= 1

    subentry_id = next(iter(loaded_entry.subentries))
    camera = diagnostics["cameras"][subentry_id]
    assert camera["title"] == "Front door"
    assert camera["settings"]["camera_entity"] == "camera.front_door"
    assert camera["settings"]["labels"] == ["person", "tie"]
    state = camera["state"]
    assert state["image_processing_entity"] == "image_processing.front_door"
    assert state["available"] is True
    assert state["frame_time"] is not None
    assert state["process_time_ms"] > 0
    assert "person" in state["active_labels"]
    person = next(m for m in state["matches"] if m["label"] == "person")
    assert person["score"] >= 0.5
    assert len(person["box"]) == 4
    assert state["snapshot"] is None


async def test_device_diagnostics_split_camera_and_accelerator(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, loaded_entry: MockConfigEntry
) -> None:
    subentry_id = next(iter(loaded_entry.subentries))
    camera: Any = await get_diagnostics_for_device(
        hass, hass_client, loaded_entry, device(hass, loaded_entry, subentry_id)
    )
    assert set(camera["cameras"]) == {subentry_id}
    assert "accelerator" not in camera
    assert camera["cameras"][subentry_id]["state"]["frame_time"] is None

    accelerator: Any = await get_diagnostics_for_device(
        hass, hass_client, loaded_entry, device(hass, loaded_entry, loaded_entry.entry_id)
    )
    assert "cameras" not in accelerator
    assert accelerator["accelerator"]["backend"]["kind"] == "cpu"
    assert accelerator["accelerator"]["executor"]["frames_done"] == 0


async def test_private_paths_are_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    photo_camera: PhotoCamera,
    models_dir: Path,
    images_dir: Path,
    tmp_path: Path,
) -> None:
    hass.config.config_dir = str(tmp_path)
    hass.config.allowlist_external_dirs = {str(models_dir)}
    model_path = str(models_dir / DETECT / "detect.tflite")
    labels_path = str(models_dir / DETECT / "labelmap.txt")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Custom",
        data={
            "device": "cpu",
            "model": "custom",
            "model_path": model_path,
            "labels_path": labels_path,
        },
        unique_id="cpu",
        subentries_data=[camera_subentry(save_snapshots=True)],
    )
    await set_up(hass, entry)
    try:
        photo_camera.photo = images_dir / "grace_hopper.bmp"
        await scan(hass)
        diagnostics: Any = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    finally:
        await unload(hass, entry)

    assert diagnostics["entry"]["data"]["model_path"] == REDACTED
    assert diagnostics["entry"]["data"]["labels_path"] == REDACTED
    assert diagnostics["accelerator"]["model"]["path"] == REDACTED
    (camera,) = diagnostics["cameras"].values()
    assert camera["settings"]["save_snapshots"] is True
    assert camera["state"]["snapshot"] == REDACTED
    assert list((tmp_path / DOMAIN / "snapshots").rglob("*.jpg")), "a snapshot was saved"
    text = json.dumps(diagnostics)
    for private in (str(models_dir), str(tmp_path)):
        assert private not in text


async def test_diagnostics_of_an_unloaded_entry(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, loaded_entry: MockConfigEntry
) -> None:
    await unload(hass, loaded_entry)
    diagnostics: Any = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["entry"]["state"] == "not_loaded"
    assert diagnostics["accelerator"] is None
    (camera,) = diagnostics["cameras"].values()
    assert camera["settings"]["labels"] == ["person", "tie"]
    assert camera["state"] is None
