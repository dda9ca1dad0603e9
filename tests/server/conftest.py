"""Fixtures for server tests: the app in-process, the server as a real process, real photos."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from custom_components.coral_vision.engine.server.app import AppSettings, build_app
from custom_components.coral_vision.engine.server.options import ServerOptions
from tests.server_process import (  # noqa: F401 - the fixture and names the tests import from here
    ENGINE_PATH,
    LISTENING,
    ServerProcess,
    start_server,
    until,
)

DETECTOR = "tf_coco_ssd_mobilenet_v1"
CLASSIFIER = "mobilenet_v1_025_128_imagenet"  # compiled for the Edge TPU, with a CPU twin
KEY = "s3cret-key"


@pytest.fixture(scope="session")
def photos(images_dir: Path) -> dict[str, bytes]:
    """The shared photos by name."""
    return {p.name: p.read_bytes() for p in images_dir.iterdir() if p.name != "COPYRIGHT"}


def options_for(tmp_path: Path, models_dir: Path, **changes: object) -> ServerOptions:
    """Options for a test server: loopback, CPU, catalog files from the shared mirror."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "devices": ("cpu",),
        "models": (DETECTOR,),
        "models_dir": tmp_path / "models",
        "data_dir": tmp_path / "data",
        "mirror": str(models_dir),
        "zeroconf": False,
    }
    values.update(changes)
    return ServerOptions(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def app_client(
    options: ServerOptions, settings: AppSettings | None = None
) -> AsyncIterator[TestClient]:
    """The server's app in this process, started (models loaded) and cleaned up after."""
    app = build_app(options, settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(
    socket_enabled: None, tmp_path: Path, models_dir: Path
) -> AsyncIterator[TestClient]:
    """The app with the default detector on the CPU and the key set."""
    async with app_client(options_for(tmp_path, models_dir, api_key=KEY)) as test_client:
        yield test_client


def auth(key: str = KEY) -> dict[str, str]:
    """The header carrying the key."""
    return {"Authorization": f"Bearer {key}"}


def image_form(image: bytes | None, **fields: str) -> aiohttp.FormData:
    """A DeepStack request form: the `image` file and text fields."""
    form = aiohttp.FormData()
    if image is not None:
        form.add_field("image", image, filename="image.jpg", content_type="image/jpeg")
    for name, value in fields.items():
        form.add_field(name, value)
    return form
