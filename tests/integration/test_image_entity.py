"""The last-detection image: a new picture when the objects change, else at most once a minute."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.coral_vision.processor import IMAGE_REFRESH

from .conftest import PhotoCamera
from .helpers import scan

IMAGE = "image.front_door_last_detection"


async def test_the_same_objects_move_the_picture_once_a_minute(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    freezer: FrozenDateTimeFactory,
) -> None:
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    def writes() -> list[str]:
        """The image's states since the person was first seen."""
        states = [c.data["new_state"].state for c in changes if c.data["entity_id"] == IMAGE]
        return [s for s in states if s != "unknown"]

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    first = hass.states.get(IMAGE).state
    assert writes() == [first]

    # The person stays: frames go on, the picture (a database row each time it moves) does not.
    for _ in range(6):
        freezer.tick(timedelta(seconds=5))
        await scan(hass)
    assert photo_camera.frames >= 7
    assert len(writes()) == 1
    assert hass.states.get(IMAGE).state == first

    # A minute on, the same person gives a fresher picture, once.
    freezer.tick(IMAGE_REFRESH)
    await scan(hass)
    await scan(hass)
    assert len(writes()) == 2
    assert hass.states.get(IMAGE).state != first

    # Other objects are news at once.
    photo_camera.photo = images_dir / "kite_and_cold.jpg"
    freezer.tick(timedelta(seconds=5))
    await scan(hass)
    await scan(hass)
    await scan(hass)
    assert len(writes()) >= 3
    assert hass.states.get(IMAGE).state == writes()[-1]
