"""Device triggers: a new object of a label seen, and none seen any more, in real automations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.coral_vision import device_trigger
from custom_components.coral_vision.const import DOMAIN, EVENT_DETECTED

from .conftest import PhotoCamera, camera_subentry, cpu_entry
from .test_detection import scan


def devices(hass: HomeAssistant, entry: MockConfigEntry) -> tuple[str, str]:
    """The (camera, accelerator) device ids of the entry."""
    by_key = {
        next(iter(d.identifiers))[1]: d.id
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    return by_key[next(iter(entry.subentries))], by_key[entry.entry_id]


def trigger(device_id: str, trigger_type: str, label: str) -> dict[str, Any]:
    """A device trigger config as the automation editor writes it."""
    return {
        "platform": "device",
        "domain": DOMAIN,
        "device_id": device_id,
        "type": trigger_type,
        "subtype": label,
    }


async def add_automation(hass: HomeAssistant, *triggers: dict[str, Any]) -> list[ServiceCall]:
    """One automation per trigger, each calling test.automation with the trigger's event."""
    calls = async_mock_service(hass, "test", "automation")
    automations = [
        {
            "alias": f"{config['subtype']} {config['type']}",
            "triggers": [config],
            "actions": [
                {
                    "action": "test.automation",
                    "data": {
                        "type": config["type"],
                        "label": "{{ trigger.event.data.label }}",
                        "entity_id": "{{ trigger.event.data.entity_id }}",
                        "description": "{{ trigger.description }}",
                    },
                }
            ],
        }
        for config in triggers
    ]
    assert await async_setup_component(hass, "automation", {"automation": automations})
    await hass.async_block_till_done()
    return calls


async def test_camera_device_offers_detected_and_cleared_per_label(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    camera, accelerator = devices(hass, loaded_entry)
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, camera)
    ours = sorted((t["type"], t["subtype"]) for t in triggers if t["domain"] == DOMAIN)
    assert ours == [
        ("cleared", "person"),
        ("cleared", "tie"),
        ("detected", "person"),
        ("detected", "tie"),
    ]
    assert all(t["device_id"] == camera for t in triggers)
    assert await device_trigger.async_get_triggers(hass, accelerator) == []


async def test_wording_differs_from_the_binary_sensors_triggers(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    # The binary sensor "Person detected" offers "... became occupied" on the same device.
    camera, _ = devices(hass, loaded_entry)
    offered = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, camera)
    assert {t["domain"] for t in offered} >= {DOMAIN, "binary_sensor"}
    names = await async_get_translations(hass, "en", "device_automation", [DOMAIN])
    prefix = f"component.{DOMAIN}.device_automation.trigger_type."
    shown = {
        (t["type"], t["subtype"]): names[prefix + t["type"]].format(subtype=t["subtype"])
        for t in offered
        if t["domain"] == DOMAIN
    }
    assert shown[("detected", "person")] == "Coral Vision sees a new person"
    assert shown[("cleared", "person")] == "Coral Vision no longer sees any person"
    for text in shown.values():
        assert "Coral Vision" in text
        assert "detected" not in text.lower(), "the binary sensors are named '<label> detected'"


async def test_detected_fires_for_the_person_and_cleared_when_gone(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    camera, _ = devices(hass, loaded_entry)
    offered = await device_trigger.async_get_triggers(hass, camera)
    chosen = [t for t in offered if t["subtype"] == "person"]
    calls = await add_automation(hass, *chosen)
    assert {s.entity_id for s in hass.states.async_all("automation")} == {
        "automation.person_detected",
        "automation.person_cleared",
    }
    automation = hass.states.get("automation.person_detected")
    assert automation is not None
    assert automation.state == "on"

    await scan(hass)
    assert calls == [], "sunflower.bmp shows no person"

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    # With off_delay 0 the label may already have cleared on its timer: only the first is sure.
    assert [(c.data["type"], c.data["label"]) for c in calls][:1] == [("detected", "person")]
    assert calls[0].data["entity_id"] == "image_processing.front_door"

    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    assert [(c.data["type"], c.data["label"]) for c in calls] == [
        ("detected", "person"),
        ("cleared", "person"),
    ]


async def test_tie_trigger_ignores_person_events(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    camera, _ = devices(hass, loaded_entry)
    calls = await add_automation(hass, trigger(camera, "cleared", "tie"))
    hass.bus.async_fire(
        "coral_vision_cleared", {"device_id": camera, "label": "person", "entity_id": "x"}
    )
    hass.bus.async_fire(
        "coral_vision_cleared", {"device_id": "another", "label": "tie", "entity_id": "x"}
    )
    await hass.async_block_till_done()
    assert calls == []
    hass.bus.async_fire(
        "coral_vision_cleared", {"device_id": camera, "label": "tie", "entity_id": "x"}
    )
    await hass.async_block_till_done()
    assert [c.data["label"] for c in calls] == ["tie"]


async def test_validation_accepts_watched_labels_only(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    camera, accelerator = devices(hass, loaded_entry)
    valid = await device_trigger.async_validate_trigger_config(
        hass, trigger(camera, "detected", "tie")
    )
    assert valid["subtype"] == "tie"
    with pytest.raises(InvalidDeviceAutomationConfig, match="kite"):
        await device_trigger.async_validate_trigger_config(
            hass, trigger(camera, "detected", "kite")
        )
    with pytest.raises(InvalidDeviceAutomationConfig, match="not a Coral Vision camera"):
        await device_trigger.async_validate_trigger_config(
            hass, trigger(accelerator, "detected", "person")
        )
    with pytest.raises(InvalidDeviceAutomationConfig):
        await device_trigger.async_validate_trigger_config(
            hass, trigger("no-such-device", "detected", "person")
        )
    other_entry = MockConfigEntry(domain="other")
    other_entry.add_to_hass(hass)
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={("other", "x")}
    )
    assert await device_trigger.async_get_triggers(hass, other.id) == []
    with pytest.raises(InvalidDeviceAutomationConfig, match="not a Coral Vision camera"):
        await device_trigger.async_validate_trigger_config(
            hass, trigger(other.id, "detected", "person")
        )
    with pytest.raises(Exception, match="type"):
        await device_trigger.async_validate_trigger_config(
            hass, trigger(camera, "appeared", "person")
        )


async def test_automation_with_an_unwatched_label_is_not_set_up(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    camera, _ = devices(hass, loaded_entry)
    calls = await add_automation(hass, trigger(camera, "detected", "kite"))
    state = hass.states.get("automation.kite_detected")
    assert state is None or state.state == "unavailable"
    photo_camera.photo = images_dir / "kite_and_cold.jpg"
    await scan(hass)
    assert calls == []


async def test_events_carry_the_device_even_with_the_scan_entity_disabled(
    hass: HomeAssistant, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    entry = cpu_entry(camera_subentry(scan_interval=5))
    entry.add_to_hass(hass)
    subentry_id = next(iter(entry.subentries))
    er.async_get(hass).async_get_or_create(
        "image_processing",
        DOMAIN,
        f"{subentry_id}_image_processing",
        config_entry=entry,
        disabled_by=er.RegistryEntryDisabler.USER,
    )
    detected = async_capture_events(hass, EVENT_DETECTED)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("image_processing.front_door") is None

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))
    await hass.async_block_till_done(wait_background_tasks=True)

    camera_device = next(
        d
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if (DOMAIN, subentry_id) in d.identifiers
    )
    people = [e for e in detected if e.data["label"] == "person"]
    assert people, "the timer scanned without the image processing entity"
    assert people[0].data["device_id"] == camera_device.id
    await hass.config_entries.async_unload(entry.entry_id)


async def test_validation_errors_are_translated(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    camera, accelerator = devices(hass, loaded_entry)
    with pytest.raises(InvalidDeviceAutomationConfig) as unwatched:
        await device_trigger.async_validate_trigger_config(
            hass, trigger(camera, "detected", "kite")
        )
    assert unwatched.value.translation_domain == DOMAIN
    assert unwatched.value.translation_key == "trigger_label_not_watched"
    assert unwatched.value.translation_placeholders == {"label": "kite", "labels": "person, tie"}
    # The text comes from strings.json, placeholders filled in (what the automation log shows).
    assert str(unwatched.value).startswith(
        "This camera does not watch kite; it watches person, tie."
    )

    with pytest.raises(InvalidDeviceAutomationConfig) as not_camera:
        await device_trigger.async_validate_trigger_config(
            hass, trigger(accelerator, "detected", "person")
        )
    assert not_camera.value.translation_key == "trigger_not_a_camera"
    assert str(not_camera.value) == (
        f"The device {accelerator} is not a Coral Vision camera, so it has no Coral Vision triggers"
    )


async def test_a_camera_without_labels_says_so(hass: HomeAssistant) -> None:
    entry = cpu_entry(camera_subentry(labels=[], scores={}))
    entry.add_to_hass(hass)
    subentry_id = next(iter(entry.subentries))
    camera = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, subentry_id)}, name="Front door"
    )
    assert await device_trigger.async_get_triggers(hass, camera.id) == []
    with pytest.raises(InvalidDeviceAutomationConfig) as no_labels:
        await device_trigger.async_validate_trigger_config(
            hass, trigger(camera.id, "detected", "person")
        )
    assert no_labels.value.translation_key == "trigger_no_labels"
    assert no_labels.value.translation_placeholders == {"label": "person"}
