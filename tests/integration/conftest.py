"""Fixtures for tests that run a real Home Assistant with Coral Vision on the real engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, PropertyMock, patch

import pytest
from homeassistant.components.camera import Camera
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.requirements import RequirementsNotFound
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)

from custom_components.coral_vision.const import DOMAIN, SUBENTRY_CAMERA
from custom_components.coral_vision.engine.errors import RuntimeMissingError
from custom_components.coral_vision.engine.models.download import MIRROR_ENV as ENV_MIRROR

from .helpers import loaded, set_up

CAMERA = "camera.front_door"


@contextlib.contextmanager
def runtime_unavailable(install_type: str = "Home Assistant Core") -> Iterator[AsyncMock]:
    """No TFLite runtime importable, and installing it fails (as on Alpine); yields the installer."""
    with (
        patch(
            "custom_components.coral_vision.runtime_support.load_runtime",
            side_effect=RuntimeMissingError("none"),
        ),
        patch(
            "custom_components.coral_vision.runtime_support.async_process_requirements",
            side_effect=RequirementsNotFound(DOMAIN, ["ai-edge-litert==2.3.0"]),
        ) as install,
        patch(
            "custom_components.coral_vision.runtime_support.async_get_system_info",
            return_value={"installation_type": install_type, "python_version": "3.13.2"},
        ),
    ):
        yield install


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create entities disabled by default enabled (Home Assistant core's fixture of that name)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Generator[None]:
    """Let Home Assistant load custom_components/coral_vision."""
    return


@pytest.fixture(autouse=True)
def no_deprecation_issue(hass: HomeAssistant) -> Iterator[None]:
    """Fail a test in which Home Assistant raises a repair issue about a deprecated use by us."""
    yield
    issues = [
        issue_id
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain != DOMAIN
        and issue.breaks_in_ha_version is not None
        and (issue.issue_domain == DOMAIN or DOMAIN in issue_id)
    ]
    assert not issues, f"Home Assistant reported a deprecation: {issues}"


@pytest.fixture(autouse=True)
def config_in_tmp(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give each test its own config folder, so downloaded models and snapshots land there."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def offline_mirror(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Path:
    """Catalog models come from ../shared/models, never from the internet."""
    monkeypatch.setenv(ENV_MIRROR, str(models_dir))
    return models_dir


class PhotoCamera(Camera):
    """A camera entity whose picture is a real photo the test chooses."""

    _attr_name = "Front door"
    _attr_unique_id = "front_door"

    def __init__(self, photo: Path) -> None:
        """Start on `photo`."""
        super().__init__()
        self.photo: Path | None = photo
        self.frames = 0

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """The current photo's bytes (None: no picture)."""
        self.frames += 1
        if self.photo is None:
            return None
        return await self.hass.async_add_executor_job(self.photo.read_bytes)


@pytest.fixture
async def photo_camera(hass: HomeAssistant, images_dir: Path) -> PhotoCamera:
    """camera.front_door, showing sunflower.bmp (nothing of interest) at first."""
    camera = PhotoCamera(images_dir / "sunflower.bmp")
    setup_test_component_platform(hass, "camera", [camera])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()
    assert hass.states.get(CAMERA) is not None
    return camera


def camera_subentry(**overrides: Any) -> ConfigSubentryData:
    """A camera subentry watching people on camera.front_door, scanned only on demand."""
    data: dict[str, Any] = {
        "camera_entity": CAMERA,
        "labels": ["person", "tie"],
        "scores": {"person": 0.5, "tie": 0.5},
        "min_score": 0.5,
        "scan_interval": 0,
        "min_area": 0,
        "max_area": 100,
        "region": "",
        "confirm_frames": 1,
        "confirm_window": 1,
        "off_delay": 0,
        "save_snapshots": False,
    }
    data.update(overrides)
    return ConfigSubentryData(
        data=data, subentry_type=SUBENTRY_CAMERA, title="Front door", unique_id=CAMERA
    )


def cpu_entry(
    *subentries: ConfigSubentryData, model: str = "tf_coco_ssd_mobilenet_v1"
) -> MockConfigEntry:
    """A CPU accelerator running a catalog model (from the offline mirror)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Coral Vision CPU",
        data={"device": "cpu", "model": model},
        unique_id="cpu",
        subentries_data=list(subentries),
    )


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, photo_camera: PhotoCamera
) -> AsyncGenerator[MockConfigEntry]:
    """A loaded CPU accelerator with the front door camera."""
    async with loaded(hass, cpu_entry(camera_subentry())) as entry:
        yield entry


@pytest.fixture
async def accelerator(
    hass: HomeAssistant, photo_camera: PhotoCamera
) -> AsyncGenerator[MockConfigEntry]:
    """A loaded CPU accelerator running SSD MobileNet v1, without cameras."""
    async with loaded(hass, cpu_entry()) as entry:
        yield entry


type Load = Callable[..., Awaitable[MockConfigEntry]]


@pytest.fixture
async def load(hass: HomeAssistant, photo_camera: PhotoCamera) -> AsyncGenerator[Load]:
    """Load a CPU accelerator whose front door camera has the given options; unload after."""
    entries: list[MockConfigEntry] = []

    async def _load(**overrides: Any) -> MockConfigEntry:
        entry = await set_up(hass, cpu_entry(camera_subentry(**overrides)))
        entries.append(entry)
        return entry

    yield _load
    for entry in entries:
        await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
