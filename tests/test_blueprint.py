"""The notify-on-detection automation blueprint: valid for Home Assistant, and it notifies."""

from __future__ import annotations

import shutil
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_service,
    setup_test_component_platform,
)

from custom_components.coral_vision.const import EVENT_DETECTED
from custom_components.coral_vision.engine.models.download import MIRROR_ENV as ENV_MIRROR

from .integration.conftest import CAMERA, PhotoCamera, camera_subentry, cpu_entry
from .integration.helpers import IP

REPO = Path(__file__).resolve().parent.parent
BLUEPRINT = REPO / "blueprints" / "automation" / "coral_vision" / "notify_on_detection.yaml"


def load_blueprint() -> Blueprint:
    """Load the blueprint as Home Assistant does (with its !input tags)."""
    data = load_yaml(BLUEPRINT)
    assert isinstance(data, dict)
    return Blueprint(
        data,
        path=str(BLUEPRINT),
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A private config folder holding the blueprint where Home Assistant looks for it."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "coral_vision" / BLUEPRINT.name
    target.parent.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target)
    return tmp_path


async def use_blueprint(hass: HomeAssistant, **inputs: Any) -> list[ServiceCall]:
    """Set up an automation from the blueprint notifying notify.phone; return its calls."""
    calls = async_mock_service(hass, "notify", "phone")
    config = {
        "alias": "Person at the door",
        "use_blueprint": {
            "path": f"coral_vision/{BLUEPRINT.name}",
            "input": {"camera": IP, "notify_action": "notify.phone", "cooldown": 0, **inputs},
        },
    }
    assert await async_setup_component(hass, "automation", {"automation": [config]})
    await hass.async_block_till_done()
    state = hass.states.get("automation.person_at_the_door")
    assert state is not None
    assert state.state == "on", "the blueprint instance did not load"
    return calls


def test_blueprint_loads_and_validates() -> None:
    blueprint = load_blueprint()
    assert blueprint.domain == "automation"
    assert blueprint.validate() is None
    assert set(blueprint.inputs) == {"camera", "label", "notify_action", "title", "cooldown"}
    camera_filter = blueprint.inputs["camera"]["selector"]["entity"]["filter"]
    assert camera_filter == [{"integration": "coral_vision", "domain": ["image_processing"]}]
    assert blueprint.inputs["label"]["default"] == "person"
    trigger = blueprint.data["triggers"][0]
    assert trigger["event_type"] == EVENT_DETECTED
    assert set(trigger["event_data"]) == {"entity_id", "label"}
    assert "snapshot" in blueprint.metadata["description"]


async def test_notifies_the_label_and_score_of_the_chosen_camera(
    hass: HomeAssistant, config_dir: Path
) -> None:
    calls = await use_blueprint(hass)

    hass.bus.async_fire(EVENT_DETECTED, {"entity_id": IP, "label": "tie", "score": 0.9})
    hass.bus.async_fire(
        EVENT_DETECTED, {"entity_id": "image_processing.back_yard", "label": "person", "score": 0.9}
    )
    await hass.async_block_till_done()
    assert calls == []

    hass.bus.async_fire(
        EVENT_DETECTED, {"entity_id": IP, "label": "person", "score": 0.834, "snapshot": None}
    )
    await hass.async_block_till_done()
    assert len(calls) == 1
    data = calls[0].data
    assert data["title"] == "Coral Vision"
    assert "Person detected" in data["message"]
    assert "83%" in data["message"]
    assert data["data"] == {}, "no image entity: no picture"


async def test_other_label_and_title(hass: HomeAssistant, config_dir: Path) -> None:
    calls = await use_blueprint(hass, label="cat", title="Garden")
    hass.bus.async_fire(EVENT_DETECTED, {"entity_id": IP, "label": "person", "score": 0.9})
    hass.bus.async_fire(EVENT_DETECTED, {"entity_id": IP, "label": "cat", "score": 0.61})
    await hass.async_block_till_done()
    assert [(c.data["title"], c.data["message"]) for c in calls] == [
        ("Garden", f"Cat detected on {IP} (61%)")
    ]


@pytest.fixture
async def coral_vision(
    hass: HomeAssistant,
    config_dir: Path,
    enable_custom_integrations: None,
    monkeypatch: pytest.MonkeyPatch,
    models_dir: Path,
    images_dir: Path,
) -> AsyncGenerator[PhotoCamera]:
    """camera.front_door and a loaded CPU accelerator watching it (models from the mirror)."""
    monkeypatch.setenv(ENV_MIRROR, str(models_dir))
    camera = PhotoCamera(images_dir / "sunflower.bmp")
    setup_test_component_platform(hass, "camera", [camera])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    entry: MockConfigEntry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield camera
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_real_detection_notifies_with_the_annotated_picture(
    hass: HomeAssistant, coral_vision: PhotoCamera, images_dir: Path
) -> None:
    calls = await use_blueprint(hass)

    async def scan() -> None:
        await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
        await hass.async_block_till_done()

    await scan()
    assert calls == []
    coral_vision.photo = images_dir / "grace_hopper.bmp"
    await scan()
    await scan()
    assert len(calls) == 1, "one notification while the person stays in view"
    data = calls[0].data
    assert data["message"].startswith("Person detected on Front door (")
    image = data["data"]["image"]
    assert image.startswith("/api/image_proxy/image.front_door_last_detection?token=")
    assert hass.states.get(CAMERA) is not None
