"""Snapshots of a camera's entities (registry entry and state) and of the diagnostics, as core does.

A real CPU entry (the catalog detector from the offline mirror) sees grace_hopper.bmp once. The
ids are fixed, so unique ids and diagnostics keys are the same on every run, and the clock is
frozen, so the timestamps are too. What still changes from run to run (how long a frame took, the
image's access token) is matched by its type or shape only.

The snapshots are the same on Home Assistant 2025.4 and 2026.10: what the two serialise
differently is left out where it is named (`VERSION_SPECIFIC`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props
from syrupy.types import PropertyMatcher, PropertyPath, SerializableData

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.diagnostics import (
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)

from .conftest import PhotoCamera, camera_subentry, cpu_entry, runtime_unavailable
from .helpers import scan, set_up, unload

# Imported, not copied: the server process fixture (`servers`) and the entry it serves.
from .test_server_entry import Servers, server_entry, servers  # noqa: F401

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.IMAGE_PROCESSING,
    Platform.SENSOR,
]
ENTRY_ID = "01JSNAPSHOTACCE1ERATOR0000"
SERVER_ENTRY_ID = "01JSNAPSHOTSERVER000000000"
CAMERA_ID = "01JSNAPSHOTCAMERA000000000"
FROZEN = "2025-06-01T12:00:00+00:00"

# What Home Assistant 2026.10 puts in an entity's registry entry and 2025.4 does not: how it
# derives entity ids (`object_id_base`, `suggested_object_id`), and `aliases`, an empty set on
# 2025.4 but [None] on 2026.10 (the entity's own name as its first alias). We set neither.
VERSION_SPECIFIC = props("object_id_base", "suggested_object_id", "aliases")

# Durations measured on this machine: only their type is kept.
DURATIONS = frozenset({"process_time_ms", "inference_p50_ms", "inference_p95_ms"})
TOKEN = re.compile(r"token=[0-9a-f]+")
THREADS = re.compile(r"CPU, \d+ threads")  # default_num_threads(): half this machine's cores
MILLISECONDS = re.compile(r"\.\d{3}(?=\+)")


def stable(data: SerializableData, path: PropertyPath) -> SerializableData:
    """A value that depends on the run or machine as its type or shape; keys as plain names."""
    names = [str(name) for name, _ in path]
    key = names[-1] if names else ""
    if isinstance(data, dict) and any(isinstance(name, StrEnum) for name in data):
        # 2026.x keys a state's attributes and an entry's capabilities with StrEnums
        # (EntityStateAttribute, SensorEntityCapabilityAttribute, ...): the same names.
        return type(data)({str(name): value for name, value in data.items()})
    if key in DURATIONS and isinstance(data, float):
        return "<duration ms>"
    if key == "detail" and isinstance(data, str):
        return THREADS.sub("CPU, <half the cores> threads", data)
    if names[-2:] in (["server", "id"], ["data", "port"]):
        # A server's id is new in each test's data folder; its port is any free one.
        return f"<{key}>"
    if key == "access_token" and isinstance(data, str):
        return "<access token>"
    if key == "entity_picture" and isinstance(data, str):
        return TOKEN.sub("token=<access token>", data)
    return data


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy with Home Assistant's serialiser, as core's `snapshot` fixture.

    pytest-homeassistant-custom-component defines this fixture too, but syrupy's own, registered
    after it, wins; core's conftest overrides it as this does.
    """
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


def state_matcher(state: State) -> PropertyMatcher:
    """`stable`, and for a state that is a measured duration or an event's time, that too."""
    if state.attributes.get("device_class") == SensorDeviceClass.DURATION:
        # Measured on this machine: only that it is a number.
        return _state_as(lambda value: f"<{type(float(value)).__name__}>")
    if state.domain == "event":
        # 2026.x moves each further event of one frame on by a millisecond (strictly increasing
        # times); 2025.4 gives them all the frozen time. The second is the same.
        return _state_as(lambda value: MILLISECONDS.sub(".<ms>", value))
    return stable


def _state_as(shown: Callable[[str], str]) -> PropertyMatcher:
    """`stable`, with the state itself shown as `shown` makes it."""

    def matcher(data: SerializableData, path: PropertyPath) -> SerializableData:
        if [name for name, _ in path] == ["state"]:
            return shown(str(data))
        return stable(data, path)

    return matcher


def with_fixed_ids(like: MockConfigEntry, entry_id: str) -> MockConfigEntry:
    """`like` with the front door camera, under fixed ids: unique ids then never change."""
    camera = ConfigSubentryDataWithId(**camera_subentry(), subentry_id=CAMERA_ID)
    return MockConfigEntry(
        domain=like.domain,
        title=like.title,
        data=like.data,
        unique_id=like.unique_id,
        entry_id=entry_id,
        subentries_data=[camera],
    )


async def async_scan_once(
    hass: HomeAssistant, entry: MockConfigEntry, camera: PhotoCamera, photo: Path
) -> None:
    """Load the entry, let its camera process `photo` once, and sample the statistics."""
    await set_up(hass, entry)
    camera.photo = photo
    await scan(hass)
    await entry.runtime_data.coordinator.async_refresh()  # the 30 s sample, now
    await hass.async_block_till_done()


def device_of(registry: dr.DeviceRegistry, entry_id: str, key: str) -> dr.DeviceEntry:
    """The entry's device identified by (DOMAIN, key)."""
    return next(
        d
        for d in dr.async_entries_for_config_entry(registry, entry_id)
        if (DOMAIN, key) in d.identifiers
    )


@pytest.fixture
async def scanned_entry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entity_registry_enabled_by_default: None,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> AsyncIterator[MockConfigEntry]:
    """The loaded entry once its camera has processed grace_hopper.bmp, statistics sampled."""
    freezer.move_to(FROZEN)
    entry = with_fixed_ids(cpu_entry(), ENTRY_ID)
    await async_scan_once(hass, entry, photo_camera, images_dir / "grace_hopper.bmp")
    yield entry
    await unload(hass, entry)


async def snapshot_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    config_entry_id: str,
    domain: str,
) -> None:
    """Core's `snapshot_platform`, for one platform of an entry that sets up all of them at once.

    The camera processor feeds every platform's entities (image_processing even comes through its
    own component), so they cannot be loaded one platform at a time as core's helper requires.
    """
    entries = [
        e
        for e in er.async_entries_for_config_entry(entity_registry, config_entry_id)
        if e.domain == domain
    ]
    assert entries
    for entity_entry in sorted(entries, key=lambda e: e.entity_id):
        assert entity_entry.disabled_by is None, "Please enable all entities."
        assert entity_entry == snapshot(
            name=f"{entity_entry.entity_id}-entry", exclude=VERSION_SPECIFIC, matcher=stable
        )
        state = hass.states.get(entity_entry.entity_id)
        assert state, f"State not found for {entity_entry.entity_id}"
        assert state == snapshot(
            name=f"{entity_entry.entity_id}-state", matcher=state_matcher(state)
        )


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    scanned_entry: MockConfigEntry,
    platform: Platform,
) -> None:
    await snapshot_entities(hass, entity_registry, snapshot, scanned_entry.entry_id, platform)


async def test_entry_diagnostics(
    hass: HomeAssistant, snapshot: SnapshotAssertion, scanned_entry: MockConfigEntry
) -> None:
    diagnostics = await async_get_config_entry_diagnostics(hass, scanned_entry)
    assert diagnostics == snapshot(matcher=stable)


async def test_device_diagnostics(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    snapshot: SnapshotAssertion,
    scanned_entry: MockConfigEntry,
) -> None:
    for key in (CAMERA_ID, ENTRY_ID):
        device = device_of(device_registry, ENTRY_ID, key)
        diagnostics: Any = await async_get_device_diagnostics(hass, scanned_entry, device)
        assert diagnostics == snapshot(name=key, matcher=stable)


@pytest.fixture
async def scanned_server_entry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entity_registry_enabled_by_default: None,
    servers: Servers,  # noqa: F811 - the imported fixture
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> AsyncIterator[MockConfigEntry]:
    """A server entry (a real server process on loopback) once its camera saw grace_hopper.bmp."""
    freezer.move_to(FROZEN)
    with runtime_unavailable():  # a server entry needs no runtime here
        server = await servers.start()
        entry = with_fixed_ids(server_entry(servers, server), SERVER_ENTRY_ID)
        await async_scan_once(hass, entry, photo_camera, images_dir / "grace_hopper.bmp")
        yield entry
        await unload(hass, entry)


async def test_server_entry(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    snapshot: SnapshotAssertion,
    scanned_server_entry: MockConfigEntry,
) -> None:
    entry = scanned_server_entry
    for platform in PLATFORMS:
        await snapshot_entities(hass, entity_registry, snapshot, entry.entry_id, platform)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics == snapshot(name="entry-diagnostics", matcher=stable)
    for key in (CAMERA_ID, entry.entry_id):
        device = device_of(device_registry, entry.entry_id, key)
        diagnostics = await async_get_device_diagnostics(hass, entry, device)
        assert diagnostics == snapshot(name=f"{key}-diagnostics", matcher=stable)
