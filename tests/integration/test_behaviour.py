"""A camera that stops answering, or disappears: unavailable, logged once, and back again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_component import DATA_INSTANCES
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)

from .conftest import CAMERA, PhotoCamera, camera_subentry, cpu_entry
from .helpers import IP, later, scan, set_up, unload

CAMERA_ENTITIES = (
    IP,
    "sensor.front_door_objects",
    "binary_sensor.front_door_person_detected",
    "image.front_door_last_detection",
)  # and the event entity, off by default (no state)
LOGGER = "custom_components.coral_vision"


def states(hass: HomeAssistant) -> set[str]:
    return {hass.states.get(entity_id).state for entity_id in CAMERA_ENTITIES}


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_no_picture_makes_entities_unavailable_until_it_returns(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await scan(hass)
    assert STATE_UNAVAILABLE not in states(hass)
    caplog.clear()

    photo_camera.photo = None
    await scan(hass)
    assert states(hass) == {STATE_UNAVAILABLE}
    for _ in range(3):
        await scan(hass)  # unavailable entities: the action reaches nothing
        await later(hass, 31)  # but the camera is tried again on a timer
    # Once, at info (the quality scale's log-when-unavailable), and no warning.
    infos = records(caplog, logging.INFO)
    assert len(infos) == 1
    assert infos[0].startswith(f"Camera {CAMERA} is unavailable")
    assert records(caplog, logging.WARNING) == []
    assert photo_camera.frames >= 4
    assert states(hass) == {STATE_UNAVAILABLE}
    # The accelerator's sensors do not depend on a camera.
    assert hass.states.get("sensor.coral_vision_cpu_backend").state == "cpu"

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await later(hass, 120)
    assert STATE_UNAVAILABLE not in states(hass)
    assert hass.states.get(IP).attributes["summary"]["person"] == 1
    infos = records(caplog, logging.INFO)
    assert infos[1:] == [f"Camera {CAMERA} is available again"]
    assert records(caplog, logging.WARNING) == []

    frames = photo_camera.frames
    await later(hass, 300)
    assert photo_camera.frames == frames, "no retries while the camera answers"


async def test_removed_camera_entity(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await scan(hass)
    caplog.clear()
    await photo_camera.async_remove()
    await hass.async_block_till_done()
    assert hass.states.get(CAMERA).state == STATE_UNAVAILABLE  # the registry keeps it

    await scan(hass)
    assert states(hass) == {STATE_UNAVAILABLE}
    await later(hass, 31)
    await later(hass, 70)
    infos = records(caplog, logging.INFO)
    assert len(infos) == 1
    assert "not found" in infos[0].lower()
    assert records(caplog, logging.WARNING) == []


async def test_timer_camera_recovers_on_its_own_timer(
    hass: HomeAssistant,
    photo_camera: PhotoCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = cpu_entry(camera_subentry(scan_interval=10))
    await set_up(hass, entry)
    photo_camera.photo = None
    for step in range(1, 4):
        await later(hass, 11 * step)
    assert states(hass) == {STATE_UNAVAILABLE}
    assert photo_camera.frames == 3, "only the scan timer fetches"
    unavailable = [m for m in records(caplog, logging.INFO) if m.startswith("Camera")]
    assert len(unavailable) == 1
    assert records(caplog, logging.WARNING) == []

    photo_camera.photo = images_dir / "sunflower.bmp"
    await later(hass, 44)
    assert states(hass) == {"0", "off", "unknown"}
    assert [m for m in records(caplog, logging.INFO) if m.startswith("Camera")][1:] == [
        f"Camera {CAMERA} is available again"
    ]
    await unload(hass, entry)


async def test_camera_error_ends_with_unload(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    photo_camera.photo = None
    await scan(hass)
    await unload(hass, loaded_entry)
    frames = photo_camera.frames
    await later(hass, 120)
    assert photo_camera.frames == frames, "the retry timer is cancelled on unload"


async def test_unreadable_frames_logged_once_until_they_run_again(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
    photo_camera.photo = broken
    caplog.clear()
    for _ in range(3):
        await scan(hass)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Frames of {CAMERA} fail")
    assert hass.states.get(IP).state == "0"

    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    await scan(hass)
    assert records(caplog, logging.INFO) == [f"Frames of {CAMERA} run again"]
    assert hass.states.get(IP).attributes["summary"]["person"] == 1


async def test_image_entity_serves_the_annotated_frame(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    image = hass.data[DATA_INSTANCES]["image"].get_entity("image.front_door_last_detection")
    assert await image.async_image() is None
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    jpeg = await image.async_image()
    assert jpeg is not None
    assert jpeg[:3] == b"\xff\xd8\xff"
    state = hass.states.get("image.front_door_last_detection")
    assert state.state == hass.states.get(IP).attributes["last_detection"]


class FaultyCamera(PhotoCamera):
    """A camera whose integration raises a plain exception (not a HomeAssistantError)."""

    def __init__(self, photo: Path) -> None:
        """Start working, on `photo`."""
        super().__init__(photo)
        self.error: Exception | None = None

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """The photo, or the error the test set."""
        if self.error is not None:
            self.frames += 1
            raise self.error
        return await super().async_camera_image(width, height)


@pytest.fixture
async def faulty_camera(hass: HomeAssistant, images_dir: Path) -> FaultyCamera:
    """camera.front_door, showing sunflower.bmp until the test breaks it."""
    camera = FaultyCamera(images_dir / "sunflower.bmp")
    setup_test_component_platform(hass, "camera", [camera])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    return camera


async def test_a_camera_raising_any_error_is_unavailable_and_logged_once(
    hass: HomeAssistant,
    faulty_camera: FaultyCamera,
    images_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = cpu_entry(camera_subentry(scan_interval=10))
    await set_up(hass, entry)
    await later(hass, 11)
    assert states(hass) == {"0", "off", "unknown"}
    caplog.clear()

    faulty_camera.error = RuntimeError("sensor overheated")
    frames = faulty_camera.frames
    for step in range(2, 6):
        await later(hass, 11 * step)
    assert faulty_camera.frames == frames + 4, "every scan tried the camera"
    assert states(hass) == {STATE_UNAVAILABLE}
    assert records(caplog, logging.INFO) == [
        f"Camera {CAMERA} is unavailable: RuntimeError: sensor overheated"
    ]
    assert records(caplog, logging.WARNING) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback"

    faulty_camera.error = None
    faulty_camera.photo = images_dir / "grace_hopper.bmp"
    for step in range(6, 8):
        await later(hass, 11 * step)
    assert STATE_UNAVAILABLE not in states(hass)
    assert hass.states.get(IP).attributes["summary"]["person"] == 1
    assert records(caplog, logging.INFO)[1:] == [f"Camera {CAMERA} is available again"]
    assert records(caplog, logging.WARNING) == []
    await unload(hass, entry)


async def test_a_camera_raising_on_demand_is_unavailable_too(
    hass: HomeAssistant,
    faulty_camera: FaultyCamera,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = cpu_entry(camera_subentry())
    await set_up(hass, entry)
    faulty_camera.error = OSError("connection reset")
    await scan(hass)
    await later(hass, 31)
    await later(hass, 70)
    assert faulty_camera.frames == 3, "the scan, then two retries"
    assert states(hass) == {STATE_UNAVAILABLE}
    assert records(caplog, logging.INFO) == [
        f"Camera {CAMERA} is unavailable: OSError: connection reset"
    ]
    assert records(caplog, logging.WARNING) == []
    await unload(hass, entry)
