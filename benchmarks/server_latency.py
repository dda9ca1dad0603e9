"""Camera frame → coral_vision_detected event, through a Coral Vision server and in-process.

Run from the repository: `source scripts/lib.sh; in_oldest python benchmarks/server_latency.py
[--frames 40] [--rounds 2]`.

A real Home Assistant (pytest-homeassistant-custom-component's test instance) with Coral Vision
and a camera entity whose frames alternate between a 720p JPEG of a cat (cat_720p.jpg, sent as
is) and a photo without one (sunflower.bmp), so every other frame fires one
`coral_vision_detected` event for a new cat. The same model (TensorFlow's SSD MobileNet v1, CPU) runs
in two entries, set up one after the other in the same run: in-process (a CPU entry) and on a
server process started here on 127.0.0.1 (a server entry). For each, `image_processing.scan`
is called back to back --frames times: the latency is from the scan call to the event, and
frames/s is the scans completed per second (fetch, run, filters, entities). The two take turns
--rounds times; each keeps its best round (the machine may be shared). Loopback only; reads the
model and photos in place from ../shared (or $CORAL_VISION_SHARED).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
MODEL = "tf_coco_ssd_mobilenet_v1"
CAT = SHARED / "images" / "cat_720p.jpg"
NOBODY = SHARED / "images" / "sunflower.bmp"
CAMERA = "camera.bench"
IP = "image_processing.bench"


@dataclass
class Figures:
    """One round of one path."""

    path: str
    frames: int
    seconds: float
    latencies_ms: list[float]

    @property
    def fps(self) -> float:
        """Scans completed per second."""
        return self.frames / self.seconds

    def p(self, fraction: float) -> float:
        """A percentile of the frame → event latency."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def start_server(folder: Path) -> Any:
    """The server on a free loopback port, with the shared models as its mirror."""
    sys.path.insert(0, str(REPO))
    from tests.server_process import ServerStarter

    starter = ServerStarter(SHARED / "models", folder)
    starter(
        "--port", "0", "--no-zeroconf", "--devices", "cpu", "--model", MODEL,
        "--data-dir", str(folder / "data"),
    )  # fmt: skip
    return starter


async def measure(hass: Any, path: str, entry: Any, frames: int) -> Figures:
    """Set the entry up, scan `frames` times, unload it."""
    from homeassistant.core import callback

    from custom_components.coral_vision.const import EVENT_DETECTED

    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id), path
    await hass.async_block_till_done()
    arrived: list[float] = []

    @callback  # run on the event loop as the event fires, not in a worker
    def _arrived(_event: Any) -> None:
        arrived.append(time.perf_counter())

    unsubscribe = hass.bus.async_listen(EVENT_DETECTED, _arrived)
    camera = hass.data["bench_camera"]
    latencies = []
    camera.cat_shown = False
    for _ in range(4):  # warm-up: connections, caches
        await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
    started = time.perf_counter()
    for frame in range(frames):
        camera.cat_shown = frame % 2 == 0
        sent = time.perf_counter()
        count = len(arrived)
        await hass.services.async_call("image_processing", "scan", {"entity_id": IP}, blocking=True)
        if camera.cat_shown:
            if len(arrived) == count:
                state = hass.states.get(IP)
                raise RuntimeError(f"{path}: frame {frame} fired no event: {state}")
            latencies.append((arrived[count] - sent) * 1000)  # its first cat's event
    seconds = time.perf_counter() - started
    unsubscribe()
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    return Figures(path, frames, seconds, latencies)


async def run(frames: int, rounds: int, server_port: int, server_id: str) -> list[Figures]:
    """A Home Assistant with the camera; each path measured `rounds` times, in turns."""
    from homeassistant import loader
    from homeassistant.components.camera import Camera
    from homeassistant.config_entries import ConfigSubentryData
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (
        MockConfigEntry,
        async_test_home_assistant,
        setup_test_component_platform,
    )

    cat_jpeg, nobody = CAT.read_bytes(), NOBODY.read_bytes()

    class BenchCamera(Camera):
        _attr_name = "Bench"
        _attr_unique_id = "bench"
        cat_shown = True

        async def async_camera_image(
            self, width: int | None = None, height: int | None = None
        ) -> bytes | None:
            return cat_jpeg if self.cat_shown else nobody

    subentry = ConfigSubentryData(
        data={
            "camera_entity": CAMERA, "labels": ["cat"], "scores": {"cat": 0.5},
            "min_score": 0.5, "scan_interval": 0, "min_area": 0, "max_area": 100,
            "region": "", "confirm_frames": 1, "confirm_window": 1, "off_delay": 0,
            "save_snapshots": False,
        },
        subentry_type="camera", title="Bench", unique_id=CAMERA,
    )  # fmt: skip
    entries = {
        "in-process": lambda: MockConfigEntry(
            domain="coral_vision", title="CPU", unique_id="cpu",
            data={"device": "cpu", "model": MODEL}, subentries_data=[subentry],
        ),
        "server": lambda: MockConfigEntry(
            domain="coral_vision", title="Server", unique_id=server_id,
            data={"device": "server", "host": "127.0.0.1", "port": server_port,
                  "api_key": None, "model": MODEL},
            subentries_data=[subentry],
        ),
    }  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.config.skip_pip = True
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            camera = BenchCamera()
            hass.data["bench_camera"] = camera
            setup_test_component_platform(hass, "camera", [camera])
            assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
            await hass.async_block_till_done()
            for _ in range(rounds):
                for path, make in entries.items():
                    results.append(await measure(hass, path, make(), frames))
            await hass.async_stop(force=True)
    return results


def table(results: list[Figures]) -> str:
    """Each path's best round (by frames/s), and the server's figures as ratios."""
    best = {}
    for figures in results:
        if figures.path not in best or figures.fps > best[figures.path].fps:
            best[figures.path] = figures
    local = best["in-process"]
    lines = [
        "| path | frames/s | frame → event p50 ms | p95 ms | mean ms | vs in-process |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for figures in best.values():
        ratio = (
            f"{figures.fps / local.fps:.2f}x frames/s, +{figures.p(0.5) - local.p(0.5):.1f} ms p50"
            if figures is not local
            else "1.00x"
        )
        lines.append(
            f"| {figures.path} | {figures.fps:.1f} | {figures.p(0.5):.1f} | {figures.p(0.95):.1f} "
            f"| {statistics.mean(figures.latencies_ms):.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Start the server, measure both paths, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="scans per round (default 40)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per path (default 2)")
    args = parser.parse_args()
    for needed in (CAT, NOBODY, SHARED / "models"):
        if not needed.exists():
            print(f"missing {needed}: set CORAL_VISION_SHARED to the shared data folder")
            return 1
    os.environ.setdefault("CORAL_VISION_MIRROR", str(SHARED / "models"))
    with tempfile.TemporaryDirectory() as folder:
        starter = start_server(Path(folder))
        try:
            server = starter.started[0]
            server_id = (Path(folder) / "data" / "server_id").read_text().strip()
            results = asyncio.run(run(args.frames, args.rounds, server.port, server_id))
        finally:
            starter.stop_all()
    print(f"{args.frames} scans per round, best of {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
