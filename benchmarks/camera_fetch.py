"""What one frame costs: time and CPU per `camera.async_get_image`, per kind of camera, at 1080p.

Run in the newest environment (it has ffmpeg): `source scripts/lib.sh; in_newest python
benchmarks/camera_fetch.py [--frames N]`.

A real Home Assistant (pytest-homeassistant-custom-component's test instance) runs the real camera
integrations against servers on 127.0.0.1 in a child process (nothing leaves the machine):
- still: HA's `generic` camera with a still-image URL (a 1080p JPEG from ../shared/images);
- mjpeg: HA's `mjpeg` camera against a multipart MJPEG stream of that JPEG at 15 frames/s;
- stream (generic): the `generic` camera with only a stream source (a live MPEG-TS over HTTP, as
  a camera's RTSP: one connection kept open), whose still HA decodes from the stream's latest
  keyframe (needs PyAV, the stream component's requirement, which `scripts/setup develop` installs);
- stream (ffmpeg): HA's `ffmpeg` camera, which runs ffmpeg once per still on the stream source,
  an HLS stream (H.264, 1080p, 15 frames/s, a keyframe every second) made here with ffmpeg.
Frames are fetched one after another, as Coral Vision does (never two of a camera in flight); the
CPU is this process's (HA and its worker threads) plus its finished children's (ffmpeg).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
PHOTO = SHARED / "images" / "cat_1080p.jpg"
MJPEG_FPS = 15
BOUNDARY = "frame"


# The servers: a child process, so that serving costs nothing to the figures.


def serve(folder: Path, port: int) -> None:
    """Serve /still.jpg, /mjpeg and /hls/* from `folder` on 127.0.0.1:`port` until killed."""
    from aiohttp import web

    jpeg = PHOTO.read_bytes()

    async def still(_request: web.Request) -> web.Response:
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def mjpeg(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace;boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        part = (
            (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            ).encode()
            + jpeg
            + b"\r\n"
        )
        try:
            while True:
                await response.write(part)
                await asyncio.sleep(1 / MJPEG_FPS)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    app = web.Application()
    app.router.add_get("/still.jpg", still)
    app.router.add_get("/mjpeg", mjpeg)
    app.router.add_static("/hls", folder)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def make_hls(folder: Path) -> None:
    """A 1080p H.264 HLS stream of the photo, 10 s long, in 1 s segments."""
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-loop", "1", "-framerate", str(MJPEG_FPS), "-i", str(PHOTO), "-t", "10",
            "-vf", "scale=1920:1080,noise=alls=12:allf=t",  # moving grain: P-frames carry data
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(MJPEG_FPS), "-f", "hls", "-hls_time", "1",
            "-hls_playlist_type", "vod", str(folder / "index.m3u8"),
        ],
        check=True,
    )  # fmt: skip


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The measurements.


@dataclass(frozen=True, slots=True)
class Figures:
    """Per-fetch time and CPU of one camera kind."""

    kind: str
    wall_ms: list[float]
    cpu_ms: float
    size: int
    note: str = ""

    @property
    def fps(self) -> float:
        """Frames per second one camera gives, fetched one after another."""
        return 1000 / statistics.mean(self.wall_ms)


def cpu_seconds() -> float:
    """CPU of this process (every thread) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def warm_up(fetch: Callable[[], Awaitable[bytes]]) -> bytes:
    """The first frame: a stream camera has none until its stream delivered a keyframe."""
    for _ in range(30):
        try:
            return await fetch()
        except Exception:  # HomeAssistantError("Unable to get image") at first
            await asyncio.sleep(0.5)
    return await fetch()


async def measure(
    kind: str, fetch: Callable[[], Awaitable[bytes]], frames: int, every: float
) -> Figures:
    """Fetch `frames` frames, one every `every` s as a burst does (after one warm-up).

    The CPU is all of it over the burst, so a camera that costs while idle (a stream kept open
    and demuxed) pays for that too.
    """
    size = len(await warm_up(fetch))
    walls = []
    cpu = cpu_seconds()
    for _ in range(frames):
        start = time.perf_counter()
        await fetch()
        wall = time.perf_counter() - start
        walls.append(wall * 1000)
        await asyncio.sleep(max(0.0, every - wall))
    return Figures(kind, walls, (cpu_seconds() - cpu) * 1000 / frames, size)


async def run(frames: int, port: int, live: int, every: float) -> list[Figures]:
    """Set the cameras up in a real Home Assistant and measure each."""
    from homeassistant.components import camera
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (
        MockConfigEntry,
        async_test_home_assistant,
    )

    base = f"http://127.0.0.1:{port}"
    results = []
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            hass.config.skip_pip = True
            # The YAML platform first: once `camera` is set up, its YAML is not read again.
            assert await async_setup_component(hass, "ffmpeg", {"ffmpeg": {}})
            assert await async_setup_component(
                hass,
                "camera",
                {
                    "camera": {
                        "platform": "ffmpeg",
                        "name": "stream ffmpeg",
                        "input": f"{base}/hls/index.m3u8",
                    }
                },
            )
            # Version 1 options (flat), which Home Assistant migrates to its current form; a high
            # frame rate, or the camera hands out its cached still for 1/framerate s.
            flat = {"framerate": 30, "verify_ssl": False, "authentication": "basic"}
            for title, options in (
                ("still", {"still_image_url": f"{base}/still.jpg"}),
                ("stream generic", {"stream_source": f"http://127.0.0.1:{live}/live.ts"}),
            ):
                MockConfigEntry(
                    domain="generic",
                    title=title,
                    options={"content_type": "image/jpeg", **flat, **options},
                ).add_to_hass(hass)
            for title, still in (("mjpeg", None), ("mjpeg still", f"{base}/still.jpg")):
                MockConfigEntry(
                    domain="mjpeg",
                    title=title,
                    options={
                        "mjpeg_url": f"{base}/mjpeg",
                        "still_image_url": still,
                        "authentication": "basic",
                        "password": "",
                        "verify_ssl": False,
                    },
                ).add_to_hass(hass)
            for domain in ("generic", "mjpeg"):  # each sets up all its entries
                assert await async_setup_component(hass, domain, {})
            await hass.async_block_till_done()

            for kind, entity_id in (
                ("still URL (generic)", "camera.still"),
                ("still URL (mjpeg, still_image_url)", "camera.mjpeg_still"),
                ("MJPEG stream (mjpeg)", "camera.mjpeg"),
                ("stream only (generic + stream)", "camera.stream_generic"),
                ("stream only (ffmpeg)", "camera.stream_ffmpeg"),
            ):

                async def fetch(entity_id: str = entity_id) -> bytes:
                    image = await camera.async_get_image(hass, entity_id, timeout=20)
                    return image.content

                try:
                    results.append(await measure(kind, fetch, frames, every))
                except Exception as err:  # reported in the table
                    results.append(Figures(kind, [], 0, 0, f"no frame: {err}"))
            await hass.async_stop(force=True)
    return results


def table(results: list[Figures], burst: float) -> str:
    """The figures, and whether a camera keeps up with a burst of one frame per `burst` s."""
    cpus = os.cpu_count() or 1
    lines = [
        f"| camera kind | ms per frame (mean / p95) | CPU ms per frame | frames/s per camera "
        f"| cameras bursting at {1 / burst:g} frames/s on {cpus} CPUs | keeps up |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if not r.wall_ms:
            lines.append(f"| {r.kind} | {r.note} | | | | |")
            continue
        p95 = statistics.quantiles(r.wall_ms, n=20)[-1] if len(r.wall_ms) > 1 else r.wall_ms[0]
        cameras = cpus * 1000 / (r.cpu_ms / burst) if r.cpu_ms else float("inf")
        keeps_up = "yes" if r.fps >= 1 / burst else "no"
        lines.append(
            f"| {r.kind} | {statistics.mean(r.wall_ms):.0f} / {p95:.0f} | {r.cpu_ms:.0f} "
            f"| {r.fps:.1f} | {cameras:.0f} | {keeps_up} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per camera (default 20)")
    parser.add_argument("--burst", type=float, default=0.5, help="burst interval, s (0.5)")
    parser.add_argument("--serve", nargs=2, metavar=("FOLDER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return 0
    if not PHOTO.is_file():
        print(f"{PHOTO} is missing", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        make_hls(Path(folder))
        port = free_port()
        live = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", folder, str(port)])
        # A live stream (what a camera's RTSP gives): one client, looped, in real time.
        streamer = subprocess.Popen(
            [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                "-i", str(Path(folder) / "index.m3u8"), "-c", "copy", "-f", "mpegts",
                "-listen", "1", f"http://127.0.0.1:{live}/live.ts",
            ]
        )  # fmt: skip
        try:
            for _ in range(100):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            results = asyncio.run(run(args.frames, port, live, args.burst))
        finally:
            for child in (streamer, server):
                child.terminate()
                child.wait()
    print(f"{PHOTO.name}, {args.frames} frames per camera, one every {args.burst} s:\n")
    print(table(results, args.burst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
