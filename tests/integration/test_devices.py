"""The accelerator's and the cameras' devices as the device page shows them."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN

from .conftest import PhotoCamera, camera_subentry, cpu_entry
from .helpers import unload


def entry_devices(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, dr.DeviceEntry]:
    """The entry's devices by their Coral Vision identifier."""
    registry = dr.async_get(hass)
    return {
        key: device
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        for domain, key in device.identifiers
        if domain == DOMAIN
    }


async def test_the_model_is_shown_as_the_model_not_as_firmware(
    hass: HomeAssistant, photo_camera: PhotoCamera
) -> None:
    entry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    # An accelerator device left by an earlier version, with the model name as its firmware.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, entry.entry_id)},
        sw_version="SSD MobileNet v1 (COCO, TensorFlow 2018)",
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    model = entry.runtime_data.accelerator.model.name
    devices = entry_devices(hass, entry)
    accelerator, camera = devices[entry.entry_id], devices[next(iter(entry.subentries))]
    assert accelerator.model == f"CPU · {model}"
    assert accelerator.manufacturer == "Coral Vision"
    assert accelerator.sw_version is None, "a model is no firmware"
    assert camera.model == model
    assert camera.sw_version is None
    assert camera.via_device_id == accelerator.id
    await unload(hass, entry)


async def test_deleting_a_camera_removes_its_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    camera = next(iter(loaded_entry.subentries))
    assert camera in entry_devices(hass, loaded_entry)
    assert hass.config_entries.async_remove_subentry(loaded_entry, camera)
    await hass.async_block_till_done()
    # The camera's device went with its subentry; the accelerator's stays.
    assert set(entry_devices(hass, loaded_entry)) == {loaded_entry.entry_id}
    assert loaded_entry.state is ConfigEntryState.LOADED
