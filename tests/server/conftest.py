"""Fixtures for server tests: the app in-process, the server as a real process, real photos."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from custom_components.coral_vision.engine.server.app import AppSettings, build_app
from custom_components.coral_vision.engine.server.options import ServerOptions
from tests.conftest import REPO

DETECTOR = "tf_coco_ssd_mobilenet_v1"
CLASSIFIER = "mobilenet_v1_025_128_imagenet"  # compiled for the Edge TPU, with a CPU twin
KEY = "s3cret-key"
LISTENING = re.compile(r"Coral Vision server listening on http://(\S+):(\d+)$")
ENGINE_PATH = str(REPO / "custom_components" / "coral_vision")


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


@dataclass
class ServerProcess:
    """The server as a real process on loopback; its stderr is collected as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    port: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if match := LISTENING.search(line.rstrip("\n")):
                self.port = int(match[2])
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for the listening line; fail with the log when the server ends first."""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._ready.wait(timeout)
        if not self.port:
            self.stop()
            pytest.fail("the server did not start:\n" + "\n".join(self.lines[-40:]))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal to the server."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the server to exit; its status."""
        status = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return status

    def stop(self) -> None:
        """Terminate the server if it still runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._reader is not None:
            self._reader.join(5)


@pytest.fixture
def start_server(models_dir: Path, tmp_path: Path) -> Iterator[object]:
    """Start servers as `python -m engine.server ARGS` (or a launcher); stopped after the test."""
    started: list[ServerProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, launcher: Sequence[str] | None = None
    ) -> ServerProcess:
        # The servers run outside coverage: their code is measured by the in-process tests.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")}
        environ = {
            **inherited,
            "PYTHONPATH": ENGINE_PATH if launcher is None else str(REPO),
            "CORAL_VISION_MIRROR": str(models_dir),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [sys.executable, *(launcher or ["-m", "engine.server"]), *args]
        process = subprocess.Popen(
            command, env=environ, cwd=tmp_path, stderr=subprocess.PIPE, text=True
        )
        server = ServerProcess(process)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def until(condition: object, timeout: float = 10.0) -> None:
    """Wait for a condition (a callable) to hold."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.02)
