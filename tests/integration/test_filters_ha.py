"""A camera's filters, region, confirmation, off-delay, snapshots and timer, through Home Assistant."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.coral_vision import processor
from custom_components.coral_vision.const import EVENT_CLEARED, EVENT_DETECTED

from .conftest import Load, PhotoCamera
from .helpers import IP, scan

PERSON = "binary_sensor.front_door_person_detected"
# Grace Hopper fills the photo: SSD MobileNet v1 boxes her at about 91 % of the frame (0.71),
# her feet (the box's bottom centre) at about (0.50, 0.98) of it.
TOP_HALF = "0,0; 1,0; 1,0.5; 0,0.5"
BOTTOM_HALF = "0,0.5; 1,0.5; 1,1; 0,1"


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A configuration folder of this test's own, for files the integration writes."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


def people(events: list[Any]) -> list[Any]:
    return [e for e in events if e.data["label"] == "person"]


async def show_grace(hass: HomeAssistant, photo_camera: PhotoCamera, images_dir: Path) -> list[Any]:
    """Scan Grace Hopper once; the person events fired."""
    detected = async_capture_events(hass, EVENT_DETECTED)
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    return people(detected)


@pytest.mark.parametrize(
    ("overrides", "seen"),
    [
        ({"region": BOTTOM_HALF}, True),
        ({"region": TOP_HALF}, False),  # her head is in the top half, her feet are not
        ({"min_area": 80}, True),
        ({"min_area": 95}, False),
        ({"max_area": 95}, True),
        ({"max_area": 50}, False),
        ({"scores": {"person": 0.6}}, True),
        ({"scores": {"person": 0.8}}, False),
    ],
)
async def test_filters(
    hass: HomeAssistant,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
    overrides: dict[str, Any],
    seen: bool,
) -> None:
    await load(labels=["person"], **overrides)
    events = await show_grace(hass, photo_camera, images_dir)
    assert len(events) == (1 if seen else 0)
    assert hass.states.get(IP).state == ("1" if seen else "0")
    assert hass.states.get(PERSON).state == ("on" if seen else "off")


async def test_confirmation_two_of_three(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    await load(labels=["person"], confirm_frames=2, confirm_window=3)
    detected = async_capture_events(hass, EVENT_DETECTED)
    photo_camera.photo = images_dir / "grace_hopper.bmp"

    await scan(hass)
    assert detected == []
    assert hass.states.get(IP).state == "0"
    assert hass.states.get(PERSON).state == "off"

    await scan(hass)
    assert len(people(detected)) == 1
    assert hass.states.get(IP).state == "1"
    assert hass.states.get(PERSON).state == "on"

    await scan(hass)
    assert len(people(detected)) == 1, "announced once while she stays"


async def test_off_delay_holds_then_clears_once(
    hass: HomeAssistant,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
    freezer: FrozenDateTimeFactory,
) -> None:
    await load(labels=["person"], off_delay=10)
    cleared = async_capture_events(hass, EVENT_CLEARED)
    assert len(await show_grace(hass, photo_camera, images_dir)) == 1
    assert hass.states.get(PERSON).state == "on"

    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)
    assert hass.states.get(IP).state == "0"
    assert hass.states.get(PERSON).state == "on", "held for the off-delay"

    freezer.tick(timedelta(seconds=6))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(PERSON).state == "on"
    assert cleared == []

    freezer.tick(timedelta(seconds=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(PERSON).state == "off"
    assert [e.data["label"] for e in cleared] == ["person"]
    assert cleared[0].data["entity_id"] == IP

    freezer.tick(timedelta(seconds=60))
    async_fire_time_changed(hass)
    await scan(hass)
    assert len(cleared) == 1


async def test_seen_again_within_off_delay_stays_on(
    hass: HomeAssistant,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
    freezer: FrozenDateTimeFactory,
) -> None:
    await load(labels=["person"], off_delay=10)
    cleared = async_capture_events(hass, EVENT_CLEARED)
    await show_grace(hass, photo_camera, images_dir)
    freezer.tick(timedelta(seconds=8))
    async_fire_time_changed(hass)
    await scan(hass)  # still there: the delay starts again
    freezer.tick(timedelta(seconds=8))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(PERSON).state == "on"
    assert cleared == []


async def test_snapshot_saved_and_in_event(
    hass: HomeAssistant,
    config_in_tmp: Path,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    entry = await load(labels=["person"], save_snapshots=True)
    # The event entity is off by default: turn it on as a user does.
    er.async_get(hass).async_update_entity("event.front_door_detection", disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    events = await show_grace(hass, photo_camera, images_dir)
    assert len(events) == 1
    path = Path(events[0].data["snapshot"])
    folder = config_in_tmp / "coral_vision" / "snapshots"
    assert path.is_relative_to(folder)
    assert path.suffix == ".jpg"
    data = await hass.async_add_executor_job(path.read_bytes)
    assert data[:3] == b"\xff\xd8\xff"
    event = hass.states.get("event.front_door_detection")
    assert event.attributes["snapshot"] == str(path)
    await scan(hass)  # no new object: no new snapshot
    files = await hass.async_add_executor_job(lambda: list(folder.rglob("*.jpg")))
    assert files == [path]


async def test_no_snapshot_when_disabled(
    hass: HomeAssistant,
    config_in_tmp: Path,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    await load(labels=["person"])
    events = await show_grace(hass, photo_camera, images_dir)
    assert events[0].data["snapshot"] is None
    folder = config_in_tmp / "coral_vision" / "snapshots"
    assert not await hass.async_add_executor_job(folder.exists)


async def test_scan_interval_runs_on_the_timer(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    detected = async_capture_events(hass, EVENT_DETECTED)
    await load(labels=["person"], scan_interval=5)
    assert photo_camera.frames == 0
    assert hass.states.get(IP).state == "0"

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))
    # Interval timers run their jobs as background tasks.
    await hass.async_block_till_done(wait_background_tasks=True)
    assert photo_camera.frames == 1
    assert hass.states.get(IP).state == "1"
    assert len(people(detected)) == 1

    photo_camera.photo = images_dir / "sunflower.bmp"
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=12))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert photo_camera.frames == 2
    assert hass.states.get(IP).state == "0"


async def test_no_timer_without_scan_interval(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera
) -> None:
    await load(scan_interval=0)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert photo_camera.frames == 0


async def test_kites_and_people_summary(
    hass: HomeAssistant, load: Load, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    await load(labels=["person", "kite"], scores={"person": 0.5, "kite": 0.5})
    detected = async_capture_events(hass, EVENT_DETECTED)
    photo_camera.photo = images_dir / "kite_and_cold.jpg"
    await scan(hass)
    state = hass.states.get(IP)
    summary = state.attributes["summary"]
    assert set(summary) == {"person", "kite"}
    assert summary["person"] >= 3
    assert summary["kite"] >= 2
    assert int(state.state) == summary["person"] + summary["kite"]
    assert len(detected) == int(state.state), "one event per object"
    assert hass.states.get("binary_sensor.front_door_kite_detected").state == "on"
    for label in ("person", "kite"):
        for match in state.attributes["matches"][label]:
            assert match["score"] >= 0.5
            xmin, ymin, xmax, ymax = match["box"]
            assert 0 <= xmin < xmax <= 1352
            assert 0 <= ymin < ymax <= 900


async def test_only_the_newest_snapshots_are_kept(
    hass: HomeAssistant,
    config_in_tmp: Path,
    load: Load,
    photo_camera: PhotoCamera,
    images_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor, "SNAPSHOTS_KEPT", 1)
    await load(labels=["person"], save_snapshots=True)
    first = (await show_grace(hass, photo_camera, images_dir))[0].data["snapshot"]
    photo_camera.photo = images_dir / "sunflower.bmp"
    await scan(hass)  # she leaves: seen again, she is a new object with a new snapshot
    second = (await show_grace(hass, photo_camera, images_dir))[0].data["snapshot"]
    assert second != first
    folder = config_in_tmp / "coral_vision" / "snapshots"
    files = await hass.async_add_executor_job(lambda: list(folder.rglob("*.jpg")))
    assert files == [Path(second)]
