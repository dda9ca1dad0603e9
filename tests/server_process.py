"""A Coral Vision server as a real process on loopback, for the server's and the integration's tests.

Started with this interpreter (`sys.executable`: in the newest environment, the chroot's Python)
as `python -m engine.server ARGS`, or through a launcher such as tests/server/launcher.py (fake
Edge TPUs); its stderr is read as it comes, and it is stopped after the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO

LISTENING = re.compile(r"Coral Vision server listening on http://(\S+):(\d+)$")
ENGINE_PATH = str(REPO / "custom_components" / "coral_vision")
LAUNCHER = REPO / "tests" / "server" / "launcher.py"


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


class ServerStarter:
    """Starts servers in `cwd` with the shared models as their mirror; stops them all at the end."""

    def __init__(self, models_dir: Path, cwd: Path) -> None:
        """Start servers in `cwd`, with `models_dir` as the catalog's mirror."""
        self.models_dir = models_dir
        self.cwd = cwd
        self.started: list[ServerProcess] = []

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, launcher: Sequence[str] | None = None
    ) -> ServerProcess:
        """Start `python -m engine.server ARGS` (or the launcher) and wait until it listens."""
        models_dir, tmp_path, started = self.models_dir, self.cwd, self.started
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

    def stop_all(self) -> None:
        """Stop every server started."""
        for server in self.started:
            server.stop()


@pytest.fixture
def start_server(models_dir: Path, tmp_path: Path) -> Iterator[ServerStarter]:
    """Start servers as `python -m engine.server ARGS` (or a launcher); stopped after the test."""
    starter = ServerStarter(models_dir, tmp_path)
    yield starter
    starter.stop_all()


def until(condition: object, timeout: float = 10.0) -> None:
    """Wait for a condition (a callable) to hold."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.02)
