"""The app's server, started by the app's run.sh in a Debian chroot built by its own install.sh.

scripts/setup builds .envs/app-chroot from the Debian release the Dockerfile names, copies the
engine and the app's scripts in as the Dockerfile does and runs install.sh there: the same steps
as the image, without Docker. Here the server starts inside that chroot with a real
/data/options.json, downloads its model from the shared folder as a mirror, and is driven from
the host over loopback (a chroot shares the host's network).

Both test environments run this: from the newest (itself in a chroot) the app chroot is entered
the same way, since it sits at the same path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO

APP_CHROOT = REPO / ".envs" / "app-chroot"
LISTENING = re.compile(r"Coral Vision server listening on http://(?P<host>[\d.]+):(?P<port>\d+)")
API_KEY = "app-chroot-test-key"
MODEL = "tf_coco_ssd_mobilenet_v1"  # in the shared folder, so the mirror serves it
VERSION = json.loads((REPO / "custom_components/coral_vision/manifest.json").read_text())["version"]
START_TIMEOUT = 180.0  # generous: the first start loads numpy, the runtime and the model
STOP_TIMEOUT = 60.0

# run.sh inside the chroot. Every step from unshare on execs the next, so the server is this
# shell's one child, and the shell exits with the server's status.
LAUNCH = 'source scripts/lib.sh; in_app_chroot /run.sh "$@"'


@dataclass(frozen=True, slots=True)
class RunningServer:
    """The server in the chroot: its URL, its output so far, and its process."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the server has printed."""
        return self.log.read_text(errors="replace")


def why_no_chroot() -> str | None:
    """Why the app chroot cannot be built or entered here, or None when it can."""
    if os.geteuid() != 0:
        return "building and entering the app chroot (.envs/app-chroot) need root"
    if (APP_CHROOT / ".complete").is_file():
        return None
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        return "building the app chroot needs debootstrap (or apt-get to install it)"
    return None


@pytest.fixture(scope="module")
def app_chroot() -> Path:
    """The app chroot, built or refreshed (the engine copied again) by scripts/setup app."""
    if reason := why_no_chroot():
        pytest.skip(reason)
    subprocess.run(
        ["bash", str(REPO / "scripts" / "setup"), "app"], cwd=REPO, check=True, timeout=1800
    )
    return APP_CHROOT


def wait_for_listening(log: Path, process: subprocess.Popen[bytes]) -> str:
    """The URL from the server's "listening on" line; fails with its output if it never comes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if found := LISTENING.search(output):
            return f"http://{found['host']}:{found['port']}"
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{output}")
        time.sleep(0.2)
    pytest.fail(f"no 'listening on' line within {START_TIMEOUT} s:\n{log.read_text()}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def stop(process: subprocess.Popen[bytes]) -> int:
    """Stop the server as Docker stops the app (SIGTERM to it) and return its exit status."""
    for pid in children(process.pid):
        os.kill(pid, signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@pytest.fixture
def server(app_chroot: Path, shared_dir: Path, tmp_path: Path) -> Iterator[RunningServer]:
    """run.sh in the chroot with the app's options, on a free loopback port, stopped afterwards."""
    data = app_chroot / "data"  # what the Supervisor mounts at /data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    options = {"api_key": API_KEY, "devices": "all", "models": [MODEL], "log_level": "info"}
    (data / "options.json").write_text(json.dumps(options))
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", LAUNCH, "launch", "--host", "127.0.0.1", "--port", "0",
             "--no-zeroconf", "--mirror", str(shared_dir / "models")],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = wait_for_listening(log, process)
        yield RunningServer(url, log, process)
    finally:
        if process.poll() is None:
            stop(process)
        shutil.rmtree(data, ignore_errors=True)


async def test_server_in_the_app_chroot_detects_and_stops_cleanly(
    server: RunningServer, images_dir: Path, socket_enabled: None
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 200, server.output()
            assert (await response.json())["status"] == "ok"

        async with session.get(f"{server.url}/v1/status") as response:
            assert response.status == 401, "the api_key from options.json is not enforced"
        async with session.get(f"{server.url}/v1/status", headers=headers) as response:
            assert response.status == 200, server.output()
            status = await response.json()
        assert MODEL in json.dumps(status), status
        # The version from the manifest the image copies beside the engine, as the app's.
        assert status["version"] == VERSION, status

        # A DeepStack client: the key in the form, the photo as the "image" field.
        form = aiohttp.FormData()
        form.add_field("api_key", API_KEY)
        form.add_field(
            "image", (images_dir / "grace_hopper.bmp").read_bytes(), filename="grace_hopper.bmp"
        )
        async with session.post(f"{server.url}/v1/vision/detection", data=form) as response:
            assert response.status == 200, server.output()
            result = await response.json()

    assert result["success"] is True, result
    predictions = result["predictions"]
    assert predictions, result
    best = predictions[0]
    assert best["label"] == "person"
    assert best["confidence"] > 0.5
    assert 0 <= best["x_min"] < best["x_max"] <= 512
    assert 0 <= best["y_min"] < best["y_max"] <= 600
    # The model came from the mirror into the app's /data, where the Supervisor keeps it.
    assert list((APP_CHROOT / "data" / "models").rglob("*.tflite")), server.output()

    assert stop(server.process) == 0, server.output()
    assert "Traceback" not in server.output(), server.output()
