"""A burst of coral_vision.detect calls: some answered, the rest told "busy", the camera unharmed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN

from .conftest import CAMERA, PhotoCamera
from .helpers import IP, scan

STRINGS = Path(__file__).parents[2] / "custom_components" / DOMAIN / "strings.json"
CALLS = 60
WAIT_S = 120.0  # only there so that a call that never ends fails the test instead of hanging it


async def detect(hass: HomeAssistant) -> dict[str, Any] | HomeAssistantError:
    """Call coral_vision.detect on the camera; its response, or the error it raised."""
    try:
        response = await hass.services.async_call(
            DOMAIN, "detect", {"entity_id": CAMERA}, blocking=True, return_response=True
        )
    except HomeAssistantError as err:
        return err
    assert response is not None
    return dict(response)


async def test_actions_never_starve_the_camera(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass, settle=False)
    assert int(hass.states.get(IP).state) >= 1
    photo_camera.photo = images_dir / "cat.bmp"  # the camera's next frame shows no one
    caplog.clear()

    half = [detect(hass) for _ in range(CALLS // 2)]
    rest = [detect(hass) for _ in range(CALLS - CALLS // 2)]
    # The camera's scan in the middle of the burst, its frame submitted among the actions'.
    outcomes = await asyncio.wait_for(
        asyncio.gather(*half, scan(hass, settle=False), *rest), WAIT_S
    )
    await hass.async_block_till_done()

    assert outcomes.pop(CALLS // 2) is None  # the scan
    answered = [o for o in outcomes if isinstance(o, dict)]
    busy = [o for o in outcomes if isinstance(o, HomeAssistantError)]
    assert len(answered) + len(busy) == CALLS
    assert answered, "some calls are served"
    assert busy, "the rest are refused at once"
    message = json.loads(STRINGS.read_text())["exceptions"]["busy"]["message"]
    for err in busy:
        assert err.translation_domain == DOMAIN
        assert err.translation_key == "busy", str(err)
        assert err.translation_placeholders == {"device": "cpu"}
    assert str(busy[0]) == message.format(device="cpu").rstrip(".")  # HA drops the stop
    assert hass.states.get(IP).state == "0", "the camera's frame ran during the burst"
    assert "already holds" not in caplog.text
    assert "Frames of camera.front_door fail" not in caplog.text

    # Once the burst is over, every call is answered again.
    assert isinstance(await detect(hass), dict)


async def test_an_engine_failure_is_a_translated_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    await hass.async_add_executor_job(loaded_entry.runtime_data.accelerator.dispatcher.close)
    outcome = await detect(hass)
    assert isinstance(outcome, HomeAssistantError)
    assert outcome.translation_key == "inference_failed"
    assert "closed" in outcome.translation_placeholders["error"]
