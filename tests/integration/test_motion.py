"""Motion-triggered bursts: motion sources make a camera scan fast, from the moment motion starts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
    setup_test_component_platform,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.coral_vision.const import EVENT_DETECTED
from custom_components.coral_vision.processor import CameraProcessor, CameraSettings

from .conftest import CAMERA, Load, PhotoCamera, camera_subentry, cpu_entry
from .helpers import FILTERS, IP, edit_camera, later, set_up, start_camera, submit, unload

MOTION = "binary_sensor.front_door_motion"
PIR = "binary_sensor.hall_pir"
DOORBELL = "event.front_door_motion"
STAMP = "2026-01-01T00:00:00.000+00:00"


def processor_of(entry: MockConfigEntry) -> CameraProcessor:
    """The entry's only camera processor."""
    (processor,) = entry.runtime_data.processors.values()
    return processor


async def settle(hass: HomeAssistant) -> None:
    """Wait for the frames in flight (motion frames run as background tasks)."""
    await hass.async_block_till_done(wait_background_tasks=True)


async def motion(hass: HomeAssistant, entity_id: str, state: str, **attributes: Any) -> None:
    """Set a motion source's state and wait for what it sets off."""
    hass.states.async_set(entity_id, state, attributes)
    await settle(hass)


def bursting(hass: HomeAssistant) -> bool:
    """What the image-processing entity says."""
    return bool(hass.states.get(IP).attributes["bursting"])


async def test_motion_starts_a_burst_whose_first_frame_is_immediate(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    hass.states.async_set(MOTION, "off")
    await load(labels=["person"], scan_interval=60, motion_sources=[MOTION], hold_time=5)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    detected = async_capture_events(hass, EVENT_DETECTED)
    assert photo_camera.frames == 0
    assert not bursting(hass)

    hass.states.async_set(MOTION, "on")
    await asyncio.sleep(0)  # one turn of the event loop, no timer
    assert photo_camera.frames == 1, "the frame is asked for when motion starts"
    await settle(hass)
    assert [e.data["label"] for e in detected] == ["person"]
    assert detected[0].data["entity_id"] == IP
    assert hass.states.get(IP).state == "1"
    assert bursting(hass)
    assert hass.states.get("binary_sensor.front_door_person_detected").state == "on"

    await later(hass, 0.6)
    assert photo_camera.frames == 2, "then every burst interval"
    assert len(detected) == 1, "confirmation and events work as before: one person, one event"


async def test_back_to_the_normal_interval_after_the_hold(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(MOTION, "off")
    await load(scan_interval=5, motion_sources=[MOTION], burst_interval=0.5, hold_time=10)
    await motion(hass, MOTION, "on")
    await later(hass, 0.6)
    assert photo_camera.frames == 2

    await motion(hass, MOTION, "off")
    await later(hass, 0.6)
    assert photo_camera.frames == 3, "bursts go on during the hold"
    assert bursting(hass)

    await later(hass, 11)  # the hold ends (one more burst tick is due on the way)
    assert not bursting(hass)
    frames = photo_camera.frames
    for _ in range(3):
        await later(hass, 0.6)
    assert photo_camera.frames == frames, "no more bursts"
    await later(hass, 6)
    assert photo_camera.frames == frames + 1, "the normal interval again"


async def test_interval_zero_scans_only_on_motion(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(MOTION, "off")
    hass.states.async_set(PIR, "off")
    await load(scan_interval=0, motion_sources=[MOTION, PIR], hold_time=2)
    await later(hass, 600)
    assert photo_camera.frames == 0

    hass.states.async_set(PIR, "on")
    hass.states.async_set(MOTION, "on")
    await settle(hass)
    assert photo_camera.frames == 1, "a second source turning on starts no second burst"
    await motion(hass, PIR, "off")
    await later(hass, 3)
    assert bursting(hass), "MOTION is still on"
    await motion(hass, MOTION, "off")
    await later(hass, 3)
    assert not bursting(hass)
    frames = photo_camera.frames
    await later(hass, 600)
    assert photo_camera.frames == frames


async def test_a_source_already_on_at_start_bursts_at_once(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(MOTION, "on")
    await load(motion_sources=[MOTION])
    await settle(hass)
    assert photo_camera.frames == 1
    assert bursting(hass)


async def test_unavailable_and_unknown_are_no_motion(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    await load(motion_sources=[MOTION, DOORBELL])
    for state in ("unavailable", "unknown", "off"):
        hass.states.async_set(MOTION, state)
    hass.states.async_set(DOORBELL, "unavailable")
    hass.states.async_set(DOORBELL, STAMP)  # an event entity coming back fired nothing
    await motion(hass, DOORBELL, "unknown")
    await later(hass, 60)
    assert photo_camera.frames == 0
    assert not bursting(hass)

    await motion(hass, MOTION, "on")
    await motion(hass, MOTION, "unavailable")  # lost mid-motion: the motion ended
    await later(hass, 11)
    assert not bursting(hass)


async def test_an_event_entity_bursts_for_the_hold_after_it_fires(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(DOORBELL, "unknown", {"event_type": None})
    entry = await load(scan_interval=0, motion_sources=[DOORBELL], hold_time=3)
    await motion(hass, DOORBELL, STAMP, event_type="motion")
    assert photo_camera.frames == 1
    assert bursting(hass)

    await later(hass, 2)
    again = (dt_util.utcnow() + timedelta(seconds=2)).isoformat()
    await motion(hass, DOORBELL, again, event_type="motion")  # fires again: a new hold
    await later(hass, 2)
    assert bursting(hass), "the second event holds from when it fired"
    assert photo_camera.frames == 3
    await later(hass, 4)
    assert not bursting(hass)
    frames = photo_camera.frames
    await motion(hass, DOORBELL, again, event_type="motion", other=1)
    await later(hass, 60)
    assert not bursting(hass), "an attribute change is no event"
    assert photo_camera.frames == frames
    assert processor_of(entry).bursts.started == 1


class GatedCamera(PhotoCamera):
    """A camera whose frames come only when the test opens the gate; counts fetches in flight."""

    def __init__(self, photo: Path) -> None:
        """Closed at first."""
        super().__init__(photo)
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Wait for the gate, then the photo."""
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            return await super().async_camera_image(width, height)
        finally:
            self.in_flight -= 1


async def test_a_slow_camera_never_has_two_fetches_in_flight(
    hass: HomeAssistant, images_dir: Path
) -> None:
    camera = GatedCamera(images_dir / "grace_hopper.bmp")
    setup_test_component_platform(hass, "camera", [camera])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    hass.states.async_set(MOTION, "off")
    entry = cpu_entry(camera_subentry(labels=["person"], scan_interval=1, motion_sources=[MOTION]))
    await set_up(hass, entry)

    hass.states.async_set(MOTION, "on")
    await asyncio.sleep(0)
    assert camera.in_flight == 1
    for _ in range(5):  # burst ticks while the fetch hangs are skipped, not queued
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=0.6))
        await asyncio.sleep(0.01)
    scan = hass.async_create_task(
        hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    )
    await asyncio.sleep(0.01)
    assert camera.in_flight == 1, "an on-demand scan waits for the fetch in flight"
    camera.gate.set()
    await scan
    await settle(hass)
    assert camera.most_in_flight == 1
    assert camera.frames == 2, "the motion frame and the on-demand one; no queued ticks"
    assert hass.states.get(IP).state == "1"
    await unload(hass, entry)


class NamedCamera(PhotoCamera):
    """One of several photo cameras."""

    def __init__(self, photo: Path, name: str) -> None:
        """Name it (camera.<name>)."""
        super().__init__(photo)
        self._attr_name = name
        self._attr_unique_id = name


async def test_three_cameras_bursting_together_all_get_frames(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, images_dir: Path
) -> None:
    cameras = [NamedCamera(images_dir / "grace_hopper.bmp", n) for n in ("door", "yard", "drive")]
    setup_test_component_platform(hass, "camera", cameras)
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    hass.states.async_set(MOTION, "off")
    subentries = []
    for camera in cameras:
        subentry = camera_subentry(
            camera_entity=f"camera.{camera.name}", scan_interval=0, motion_sources=[MOTION]
        )
        subentry["unique_id"] = f"camera.{camera.name}"
        subentries.append(subentry)
    entry = cpu_entry(*subentries)
    await set_up(hass, entry)
    detected = async_capture_events(hass, EVENT_DETECTED)

    hass.states.async_set(MOTION, "on")  # one sensor for all three: they burst at once
    await asyncio.sleep(0)
    assert [c.frames for c in cameras] == [1, 1, 1]
    await settle(hass)
    for _ in range(4):
        await later(hass, 0.6)
    processors = entry.runtime_data.processors.values()
    assert [p.bursts.frames for p in processors] == [5, 5, 5], "every frame of every camera ran"
    assert {e.data["camera_entity"] for e in detected} == {f"camera.{c.name}" for c in cameras}
    diagnostics: Any = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["accelerator"]["executor"]["frames_done"] >= 15
    await unload(hass, entry)


async def test_diagnostics_count_bursts_and_their_frames(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    load: Load,
    photo_camera: PhotoCamera,
) -> None:
    hass.states.async_set(MOTION, "off")
    entry = await load(motion_sources=[MOTION], hold_time=0)
    for frames_after in (1, 3):  # a burst of 2 frames, then one of 4
        await motion(hass, MOTION, "on")
        for _ in range(frames_after):
            await later(hass, 0.6)
        await motion(hass, MOTION, "off")
        await later(hass, 0.1)
        assert not bursting(hass)
    await motion(hass, MOTION, "on")

    diagnostics: Any = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    (camera,) = diagnostics["cameras"].values()
    assert camera["settings"]["motion_sources"] == [MOTION]
    assert camera["state"]["bursts"] == {
        "bursting": True,
        "started": 3,
        "frames_in_current_or_last": 1,
        "mean_frames": round(7 / 3, 2),
    }
    processor = processor_of(entry)
    assert processor.bursts.frames == 7


async def test_a_camera_lost_during_a_burst_is_retried_after_it(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(MOTION, "off")
    entry = await load(scan_interval=0, motion_sources=[MOTION], hold_time=1)
    photo_camera.photo = None  # no picture: the camera is down
    await motion(hass, MOTION, "on")
    await motion(hass, MOTION, "off")
    assert hass.states.get(IP).state == "unavailable"
    await later(hass, 2)
    assert not processor_of(entry).state.bursting
    frames = photo_camera.frames
    photo_camera.photo = Path(__file__)  # any bytes: the camera answers again
    await later(hass, 31)
    assert photo_camera.frames == frames + 1, "retried although no timer runs"


# The camera step, with its motion fields.


def suggested(result: Any) -> dict[str, Any]:
    """Each form field's suggested value."""
    return {
        str(k): k.description["suggested_value"]
        for k in result["data_schema"].schema
        if k.description and "suggested_value" in k.description
    }


CAMERA_STEP = {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 0}


async def test_flow_adds_a_camera_with_motion_sources(
    hass: HomeAssistant, accelerator: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    hass.states.async_set(MOTION, "off")
    hass.states.async_set(DOORBELL, "unknown")
    result = await start_camera(hass, accelerator)
    assert suggested(result) == {"motion_sources": [], "burst_interval": 0.5, "hold_time": 10}
    selector = next(v for k, v in result["data_schema"].schema.items() if k == "motion_sources")
    assert selector.config["multiple"] is True
    assert selector.config["domain"] == ["binary_sensor", "event"]

    fields = {"motion_sources": [MOTION, DOORBELL], "burst_interval": 0.5, "hold_time": 20}
    result = await submit(hass, result, {**CAMERA_STEP, **fields})
    assert result["step_id"] == "scores"
    result = await submit(hass, result, {"person": 0.5})
    result = await submit(hass, result, FILTERS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert {k: result["data"][k] for k in fields} == fields
    settings = CameraSettings.from_data(result["data"])
    assert settings.motion_sources == (MOTION, DOORBELL)
    assert (settings.scan_interval, settings.burst_interval, settings.hold_time) == (0, 0.5, 20)

    await hass.async_block_till_done()
    await motion(hass, MOTION, "on")
    assert photo_camera.frames == 1, "the new camera bursts on motion"

    (subentry_id,) = accelerator.subentries
    result = await edit_camera(hass, accelerator, subentry_id)
    assert suggested(result) == fields, "the stored values, to edit"
    result = await submit(hass, result, CAMERA_STEP)  # the sources emptied
    result = await submit(hass, result, {"person": 0.5})
    result = await submit(hass, result, FILTERS)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    data = accelerator.subentries[subentry_id].data
    assert not {"motion_sources", "burst_interval", "hold_time"} & set(data)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"burst_interval": 0}, {"burst_interval": "burst_interval_too_short"}),
        ({"burst_interval": 0.2}, {"burst_interval": "burst_interval_too_short"}),
        ({"burst_interval": float("nan")}, {"burst_interval": "not_a_number"}),
        ({"hold_time": float("nan")}, {"hold_time": "not_a_number"}),
        (
            {"motion_sources": ["binary_sensor.nowhere"]},
            {"motion_sources": "motion_source_missing"},
        ),
    ],
)
async def test_flow_refuses_bad_motion_fields(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    fields: dict[str, Any],
    errors: dict[str, str],
) -> None:
    hass.states.async_set(MOTION, "off")
    result = await start_camera(hass, accelerator)
    result = await submit(hass, result, {**CAMERA_STEP, "motion_sources": [MOTION], **fields})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors


def test_settings_without_motion_keys_are_as_before() -> None:
    settings = CameraSettings.from_data({"camera_entity": CAMERA, "scan_interval": 5})
    assert settings.motion_sources == ()
    assert (settings.burst_interval, settings.hold_time) == (0.5, 10)
    odd = CameraSettings.from_data(
        {"camera_entity": CAMERA, "burst_interval": 0.1, "hold_time": -3}
    )
    assert (odd.burst_interval, odd.hold_time) == (0.5, 0), "raised to the minimum"
    assert CameraSettings.from_data({"camera_entity": CAMERA, "burst_interval": 0}).burst_interval
