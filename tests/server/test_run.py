"""Running the server in this process: serve() until stopped, main() until a signal, odd ends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from custom_components.coral_vision.engine.errors import InferenceError, ModelError
from custom_components.coral_vision.engine.server.__main__ import main
from custom_components.coral_vision.engine.server.errors import http_error
from custom_components.coral_vision.engine.server.identity import read_version, server_id
from custom_components.coral_vision.engine.server.run import _loopback, serve

from .conftest import DETECTOR, LISTENING, options_for


async def test_serve_until_stopped(
    socket_enabled: None,
    tmp_path: Path,
    models_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = asyncio.Event()
    listening = asyncio.Event()
    ports: list[int] = []

    def heard(_: str, port: int) -> None:
        ports.append(port)
        listening.set()

    options = options_for(tmp_path, models_dir)
    task = asyncio.create_task(serve(options, stop=stop, on_listening=heard))
    async with asyncio.timeout(30):
        await listening.wait()
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{ports[0]}/health")
        assert (await response.json())["models"] == [DETECTOR]
    stop.set()
    await task
    lines = capsys.readouterr().err.splitlines()
    assert [int(m[2]) for line in lines if (m := LISTENING.search(line))] == ports


def test_main_runs_until_sigterm(
    socket_enabled: None, tmp_path: Path, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["--port", str(port), "--no-zeroconf", "--devices", "cpu", "--model", DETECTOR]
    argv += ["--data-dir", str(tmp_path / "data"), "--mirror", str(models_dir)]

    def stop_when_up() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_up)
    stopper.start()
    try:
        assert main(argv) == 0
    finally:
        stopper.join(70)
    assert f"listening on http://127.0.0.1:{port}" in capfd.readouterr().err


def test_main_reports_a_taken_port(
    socket_enabled: None, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["--port", str(port), "--no-zeroconf", "--devices", "cpu", "--model", DETECTOR]
        argv += ["--data-dir", str(tmp_path / "data"), "--mirror", str(models_dir)]
        assert main(argv) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot serve on 127.0.0.1:{port}")


def test_odd_ends(tmp_path: Path) -> None:
    assert read_version(tmp_path / "missing.json") == "unknown"
    (tmp_path / "manifest.json").write_text('{"version": 3}')
    assert read_version(tmp_path / "manifest.json") == "unknown"
    first = server_id(tmp_path)
    assert server_id(tmp_path) == first
    (tmp_path / "server_id").write_text("damaged")
    assert server_id(tmp_path) != first
    assert http_error(InferenceError("")).status == 500
    assert http_error(InferenceError("")).message == "InferenceError"
    assert http_error(ModelError("bad")).status == 422
    assert _loopback("127.0.0.5")
    assert _loopback("::1")
    assert _loopback("localhost")
    assert not _loopback("0.0.0.0")
    assert not _loopback("my-host")
