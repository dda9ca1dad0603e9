"""A soak run: a real Home Assistant with 8 cameras at 1 frame/s on Coral Vision (CPU), for minutes.

Run in the newest environment: `source scripts/lib.sh; in_newest python benchmarks/soak.py
[--minutes 10] [--backend both|inprocess|server] [--cameras 8] [--warmup 60] [--tracemalloc]
[--no-heap-trim] [--env MALLOC_ARENA_MAX=2]`.

Each backend runs in a Home Assistant of its own (pytest-homeassistant-custom-component's test
instance, in a child process so that its resident memory is its own) with the real recorder
(SQLite in a temporary folder), the real `http` component on 127.0.0.1, and `--cameras` camera
entities of HA's `generic` integration (still image URL; HA's `mjpeg` camera with a still URL
where PyAV, which `generic` needs, is missing: `scripts/setup develop` installs it). The cameras
read a photo server on 127.0.0.1 (a child process) that plays each camera a one-minute scene of
the shared photos, shifted per camera: Grace Hopper, nobody, people with kites, nobody, a cat,
nobody, a macaw, nobody (4 frames each sighting, 11 empty frames: longer than the 10 s
off-delay, so labels clear and the next sighting fires again). Coral Vision runs TensorFlow's SSD
MobileNet v1 on the CPU with one camera subentry per camera (person, cat, bird; the flow's
defaults; scan interval 1 s): in-process (a CPU entry), then through a Coral Vision server
process on 127.0.0.1 (a server entry). After --warmup seconds (every camera has played its whole
scene once) the figures cover --minutes:
- frames fetched (the photo server's count) and processed (the executor's or the server's);
- `coral_vision_detected` events and their latency: from the photo server handing the frame out
  to the event on Home Assistant's bus (both clocks are the machine's monotonic clock);
- errors: log records at WARNING or above from custom_components.coral_vision, and frames that
  failed, were refused or timed out;
- recorder rows (states and events tables) written per camera-hour, and who wrote them;
- resident memory (VmRSS) of Home Assistant and of the server at the start and the end (with
  --tracemalloc, also the lines of Python code whose allocations grew most in Home Assistant).
Loopback only; reads the model and photos in place from ../shared (or $CORAL_VISION_SHARED).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
IMAGES = SHARED / "images"
MODEL = "tf_coco_ssd_mobilenet_v1"
LABELS = ("person", "cat", "bird")
# Each camera's scene, one frame a second: (photo, frames). What each photo shows of LABELS.
SCENE = (
    ("grace_hopper.bmp", 4), ("sunflower.bmp", 11), ("kite_and_cold.jpg", 4),
    ("sunflower.bmp", 11), ("cat.bmp", 4), ("sunflower.bmp", 11), ("parrot.jpg", 4),
    ("sunflower.bmp", 11),
)  # fmt: skip
SHOWS = {
    "grace_hopper.bmp": {"person"},
    "kite_and_cold.jpg": {"person"},
    "cat.bmp": {"cat"},
    "parrot.jpg": {"bird"},
    "sunflower.bmp": set(),
}
TITLE = "Soak {}"
SAMPLE_EVERY = 10.0  # seconds between memory samples
GROWTH_GOAL = 5.0  # percent


# The photo server: a child process, so that serving costs Home Assistant nothing.


def frames() -> list[str]:
    """The scene as one photo name per frame."""
    return [photo for photo, count in SCENE for _ in range(count)]


def serve_photos(port: int, cameras: int) -> None:
    """Serve /camera/<n> (camera n's next frame, as JPEG) and /log on 127.0.0.1 until killed."""
    import io

    from aiohttp import web
    from PIL import Image

    def jpeg(path: Path) -> bytes:
        if path.suffix == ".jpg":
            return path.read_bytes()
        out = io.BytesIO()  # a camera serves JPEG: the BMPs are encoded once, here
        with Image.open(path) as image:
            image.convert("RGB").save(out, "JPEG", quality=90)
        return out.getvalue()

    scene = frames()
    photos = {name: jpeg(IMAGES / name) for name in set(scene)}
    offsets = [index * len(scene) // cameras for index in range(cameras)]
    served: list[list[tuple[float, str]]] = [[] for _ in range(cameras)]

    async def camera(request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        if not 0 <= index < cameras:
            raise web.HTTPNotFound
        log = served[index]
        name = scene[(len(log) + offsets[index]) % len(scene)]
        log.append((time.monotonic(), name))
        return web.Response(body=photos[name], content_type="image/jpeg")

    async def log(_request: web.Request) -> web.Response:
        return web.json_response(served)

    app = web.Application()
    app.router.add_get("/camera/{index}", camera)
    app.router.add_get("/log", log)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    """Wait until something listens on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found[1]) / 1024 if found else None


def load_average() -> float:
    """The one-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (None without values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(len(ordered) * fraction))) - 1]


# One backend's Home Assistant (the child process).


@dataclass(frozen=True)
class RunConfig:
    """What the Home Assistant child needs to know."""

    backend: str
    cameras: int
    minutes: float
    warmup: float
    camera_kind: str
    photos_port: int
    config_dir: str
    result: str
    server_port: int = 0
    server_id: str = ""
    server_pid: int = 0
    tracemalloc: bool = False
    heap_trim: bool = True


@dataclass
class Mark:
    """The counters at one moment: the window's figures are the differences of two."""

    time: float
    executor: dict[str, int]
    states: dict[str, int]
    events: dict[str, int]
    rss_ha: float | None
    rss_server: float | None
    load: float


class LogCounter(logging.Handler):
    """Counts records at WARNING and above: Coral Vision's, and everyone else's."""

    def __init__(self) -> None:
        """Collect from WARNING up."""
        super().__init__(logging.WARNING)
        self.records: list[tuple[float, bool, str]] = []  # time, Coral Vision's, text

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a record's time, origin and first line."""
        ours = record.name.startswith("custom_components.coral_vision")
        text = f"{record.levelname} {record.name}: {record.getMessage().splitlines()[0][:160]}"
        self.records.append((time.monotonic(), ours, text))


@dataclass
class Bus:
    """Coral Vision's events as they arrive: (time, camera, label)."""

    detected: list[tuple[float, str, str]] = field(default_factory=list)
    cleared: list[float] = field(default_factory=list)


async def soak(config: RunConfig) -> dict[str, Any]:
    """Set Home Assistant up, let it run, and return the window's figures."""
    from homeassistant import loader
    from homeassistant.core import Event, callback
    from pytest_homeassistant_custom_component.common import async_test_home_assistant

    from custom_components.coral_vision.const import EVENT_CLEARED, EVENT_DETECTED

    if config.tracemalloc:
        tracemalloc.start()
    counter = LogCounter()
    logging.getLogger().addHandler(counter)
    database = Path(config.config_dir) / "home-assistant_v2.db"
    bus = Bus()
    async with async_test_home_assistant(config_dir=config.config_dir) as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # find custom_components/ again
        await set_up_core(hass, database)
        cameras = await set_up_cameras(hass, config)
        entry = await set_up_coral_vision(hass, config, cameras)

        @callback  # on the event loop as the event fires
        def _detected(event: Event) -> None:
            bus.detected.append(
                (time.monotonic(), event.data["camera_entity"], event.data["label"])
            )

        @callback
        def _cleared(_event: Event) -> None:
            bus.cleared.append(time.monotonic())

        hass.bus.async_listen(EVENT_DETECTED, _detected)
        hass.bus.async_listen(EVENT_CLEARED, _cleared)
        await asyncio.sleep(config.warmup)
        start = await mark(hass, entry, database, config.server_pid)
        before, native_before = python_heap(config), native_heap()
        samples = await run_window(config)
        end = await mark(hass, entry, database, config.server_pid)
        growth_sites = python_heap_growth(before, python_heap(config))
        native = [native_before, native_heap()]
        served = await fetch_log(config.photos_port)
        ours = coral_vision_entities(hass)
        await hass.async_stop(force=True)
    logging.getLogger().removeHandler(counter)
    result = figures(config, cameras, start, end, samples, served, bus, counter, ours)
    result["python_heap_growth"] = growth_sites
    result["native_heap_mb"] = native
    return result


def native_heap() -> dict[str, float] | None:
    """Return glibc's heap in MB: in use, free in its arenas, mapped apart (None elsewhere)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [  # noqa: RUF012 (ctypes reads it from the class)
            (name, ctypes.c_size_t)
            for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost",
            )
        ]  # fmt: skip

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {
        "in_use": info.uordblks / 2**20,
        "free": info.fordblks / 2**20,
        "mapped": info.hblkhd / 2**20,
        "arenas": info.arena / 2**20,
    }


def python_heap(config: RunConfig) -> tracemalloc.Snapshot | None:
    """Python's heap now, without the snapshots' own allocations (None without --tracemalloc)."""
    if not config.tracemalloc:
        return None
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )


def python_heap_growth(
    before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot | None
) -> list[str]:
    """The traced total and the 15 lines whose allocations grew most over the window."""
    if before is None or after is None:
        return []
    totals = [sum(t.size for t in s.traces) / 2**20 for s in (before, after)]
    top = after.compare_to(before, "lineno")[:15]
    return [f"traced: {totals[0]:.1f} → {totals[1]:.1f} MB"] + [str(stat) for stat in top]


async def set_up_core(hass: Any, database: Path) -> None:
    """The http component on a loopback port, and the recorder on SQLite."""
    from homeassistant.helpers import recorder as recorder_helper
    from homeassistant.setup import async_setup_component

    http = {"server_host": ["127.0.0.1"], "server_port": free_port()}
    assert await async_setup_component(hass, "http", {"http": http})
    await confirm_http_config(hass)
    recorder_helper.async_initialize_recorder(hass)  # what bootstrap does before any setup
    recorder = {"db_url": f"sqlite:///{database}"}
    assert await async_setup_component(hass, "recorder", {"recorder": recorder})
    await hass.async_block_till_done()


async def confirm_http_config(hass: Any) -> None:
    """Confirm the http YAML as the user would (2026.x): else a restart reverts it after 5 min."""
    try:
        from homeassistant.components.http.config import async_get_and_load_store
    except ImportError:  # before the http config store
        return
    store = await async_get_and_load_store(hass)
    if store.pending is not None:
        await store.async_promote_pending()


async def set_up_cameras(hass: Any, config: RunConfig) -> list[str]:
    """The cameras, on the photo server; their entity ids in camera order."""
    from homeassistant.helpers import entity_registry as er
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    entries = []
    for index in range(config.cameras):
        url = f"http://127.0.0.1:{config.photos_port}/camera/{index}"
        if config.camera_kind == "generic":
            # Version 1 options (flat), which Home Assistant migrates; a frame rate above the
            # scan rate, or the camera hands out its cached still for 1/framerate s.
            options = {
                "still_image_url": url, "content_type": "image/jpeg", "framerate": 30,
                "verify_ssl": False, "authentication": "basic",
            }  # fmt: skip
        else:
            options = {
                "mjpeg_url": url, "still_image_url": url, "authentication": "basic",
                "password": "", "verify_ssl": False,
            }  # fmt: skip
        entry = MockConfigEntry(
            domain=config.camera_kind, title=TITLE.format(index + 1), options=options
        )
        entry.add_to_hass(hass)
        entries.append(entry)
    assert await async_setup_component(hass, config.camera_kind, {})
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    cameras = []
    for entry in entries:
        found = er.async_entries_for_config_entry(registry, entry.entry_id)
        assert found, f"{entry.title}: no camera entity"
        cameras.append(found[0].entity_id)
    return cameras


async def set_up_coral_vision(hass: Any, config: RunConfig, cameras: list[str]) -> Any:
    """Coral Vision's entry (CPU or server) with one camera subentry per camera."""
    from homeassistant.config_entries import ConfigSubentryData
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.coral_vision.const import (
        DEFAULT_MIN_AREA,
        DEFAULT_MIN_SCORE,
        DOMAIN,
        SUBENTRY_CAMERA,
    )

    subentries = [
        ConfigSubentryData(
            data={
                "camera_entity": camera,
                "labels": list(LABELS),
                "scores": dict.fromkeys(LABELS, DEFAULT_MIN_SCORE),
                "min_score": DEFAULT_MIN_SCORE,
                "scan_interval": 1,
                "min_area": DEFAULT_MIN_AREA,
                "max_area": 100,
                "region": "",
                "confirm_frames": 1,
                "confirm_window": 1,
                "off_delay": 10,
                "save_snapshots": False,
            },
            subentry_type=SUBENTRY_CAMERA,
            title=TITLE.format(index + 1),
            unique_id=camera,
        )
        for index, camera in enumerate(cameras)
    ]
    if config.backend == "server":
        data = {
            "device": "server", "host": "127.0.0.1", "port": config.server_port,
            "api_key": None, "model": MODEL,
        }  # fmt: skip
        unique_id, title = config.server_id, "Coral Vision server"
    else:
        data, unique_id, title = {"device": "cpu", "model": MODEL}, "cpu", "Coral Vision CPU"
    entry = MockConfigEntry(
        domain=DOMAIN, title=title, unique_id=unique_id, data=data, subentries_data=subentries
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id), "Coral Vision did not set up"
    await hass.async_block_till_done()
    return entry


async def mark(hass: Any, entry: Any, database: Path, server_pid: int) -> Mark:
    """The counters now: the executor's (fresh from the accelerator), the recorder's, memory."""
    from homeassistant.components.recorder import get_instance

    coordinator = entry.runtime_data.coordinator
    await coordinator.async_refresh()  # for a server: its /v1/status now
    stats = coordinator.data.total.executor
    executor = {
        name: getattr(stats, name)
        for name in (
            "frames_done", "frames_dropped", "frames_failed", "frames_rejected",
            "frames_timed_out",
        )
    }  # fmt: skip
    await get_instance(hass).async_block_till_done()  # the rows written so far, committed
    states, events = await hass.async_add_executor_job(count_rows, database)
    return Mark(
        time=time.monotonic(),
        executor=executor,
        states=states,
        events=events,
        rss_ha=rss_mb(os.getpid()),
        rss_server=rss_mb(server_pid) if server_pid else None,
        load=load_average(),
    )


def count_rows(database: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Rows of the states table by entity, and of the events table by event type."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        states = db.execute(
            "SELECT m.entity_id, COUNT(*) FROM states s "
            "JOIN states_meta m ON s.metadata_id = m.metadata_id GROUP BY m.entity_id"
        ).fetchall()
        events = db.execute(
            "SELECT t.event_type, COUNT(*) FROM events e "
            "JOIN event_types t ON e.event_type_id = t.event_type_id GROUP BY t.event_type"
        ).fetchall()
    return dict(states), dict(events)


async def run_window(config: RunConfig) -> list[tuple[float | None, float | None]]:
    """Let it run for the window, sampling memory (Home Assistant's, the server's)."""
    deadline = time.monotonic() + config.minutes * 60
    samples = []
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(SAMPLE_EVERY, left))
        samples.append(
            (rss_mb(os.getpid()), rss_mb(config.server_pid) if config.server_pid else None)
        )
    return samples


async def fetch_log(port: int) -> list[list[tuple[float, str]]]:
    """Each camera's frames as the photo server handed them out: (time, photo)."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/log") as response,
    ):
        served: list[list[tuple[float, str]]] = await response.json()
    return served


def coral_vision_entities(hass: Any) -> set[str]:
    """The entity ids Coral Vision registered."""
    from homeassistant.helpers import entity_registry as er

    return {
        e.entity_id for e in er.async_get(hass).entities.values() if e.platform == "coral_vision"
    }


def diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What each key gained between two counts."""
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }


def figures(
    config: RunConfig,
    cameras: list[str],
    start: Mark,
    end: Mark,
    samples: list[tuple[float | None, float | None]],
    served: list[list[tuple[float, str]]],
    bus: Bus,
    counter: LogCounter,
    ours: set[str],
) -> dict[str, Any]:
    """The window's figures, from the two marks and what was collected in between."""
    seconds = end.time - start.time
    camera_of = {entity_id: index for index, entity_id in enumerate(cameras)}
    latencies, unmatched, unexpected = [], 0, 0
    detected = [d for d in bus.detected if start.time <= d[0] <= end.time]
    for at, camera, label in detected:
        log = served[camera_of[camera]]
        k = bisect.bisect_right([t for t, _ in log], at) - 1
        if k < 0:
            unmatched += 1
            continue
        latencies.append((at - log[k][0]) * 1000)
        unexpected += label not in SHOWS[log[k][1]]
    fetched = sum(1 for log in served for t, _ in log if start.time <= t <= end.time)
    states, events = diff(start.states, end.states), diff(start.events, end.events)
    in_window = [mine for t, mine, _ in counter.records if start.time <= t <= end.time]
    hours = seconds / 3600
    rss = [s[0] for s in samples if s[0] is not None]
    server_rss = [s[1] for s in samples if s[1] is not None]
    return {
        "config": asdict(config),
        "seconds": round(seconds, 1),
        "fetched": fetched,
        "executor": diff(start.executor, end.executor),
        "detected": len(detected),
        "detected_by_label": dict(Counter(label for _, _, label in detected)),
        "cleared": sum(1 for t in bus.cleared if start.time <= t <= end.time),
        "latency_ms": {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies, default=None),
            "unmatched": unmatched,
            "unexpected_label": unexpected,
        },
        "warnings": {
            "coral_vision": sum(in_window),
            "other": len(in_window) - sum(in_window),
            "whole_run": dict(Counter(text for _, _, text in counter.records).most_common(12)),
        },
        "recorder": {
            "states": sum(states.values()),
            "events": sum(events.values()),
            "per_camera_hour": (sum(states.values()) + sum(events.values()))
            / (config.cameras * hours),
            "coral_vision_per_camera_hour": (
                sum(n for e, n in states.items() if e in ours)
                + sum(n for e, n in events.items() if e.startswith("coral_vision"))
            )
            / (config.cameras * hours),
            "states_by_entity": kinds(states, config.cameras * hours),
            "events_by_type": {
                k: round(n / (config.cameras * hours), 1) for k, n in events.items()
            },
        },
        "rss_mb": {
            "ha": [start.rss_ha, end.rss_ha, max(rss, default=None)],
            "server": [start.rss_server, end.rss_server, max(server_rss, default=None)],
            # One sample a minute, to tell a plateau from a steady climb.
            "per_minute": [
                [round(v, 1) if v is not None else None for v in sample]
                for sample in samples[:: max(1, round(60 / SAMPLE_EVERY))]
            ],
        },
        "load": [start.load, end.load],
    }


def kinds(states: dict[str, int], camera_hours: float) -> dict[str, float]:
    """State rows per camera-hour by kind of entity (each camera's folded into one), most first."""
    folded: Counter[str] = Counter()
    for entity_id, rows in states.items():
        folded[re.sub(r"soak_\d+", "soak_N", entity_id)] += rows
    return {k: round(n / camera_hours, 1) for k, n in folded.most_common()}


def child_main(raw: str) -> int:
    """The Home Assistant child: run, write the figures where the parent reads them."""
    sys.path.insert(0, str(REPO))  # custom_components/ as a package
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = RunConfig(**json.loads(raw))
    if not config.heap_trim:
        from custom_components.coral_vision.engine.inference import heap

        heap.load_malloc_trim = lambda: None  # before the first executor asks for it
    result = asyncio.run(soak(config))
    Path(config.result).write_text(json.dumps(result))
    return 0


# The parent: servers, one Home Assistant per backend, the table.


def camera_kind() -> str:
    """HA's generic camera where PyAV (its requirement) is installed, else the mjpeg camera."""
    try:
        import av  # noqa: F401
    except ImportError:
        return "mjpeg"
    return "generic"


@dataclass
class Children:
    """The processes a backend's run started, stopped at the end whatever happens."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    starter: Any = None

    def stop(self) -> None:
        """Stop the photo server and the Coral Vision server."""
        if self.starter is not None:
            self.starter.stop_all()
        for process in self.processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def start_server(folder: Path, children: Children) -> tuple[int, str, int]:
    """A Coral Vision server on a free loopback port (CPU); its port, id and process id."""
    sys.path.insert(0, str(REPO))
    from tests.server_process import ServerStarter

    folder.mkdir(parents=True, exist_ok=True)
    children.starter = ServerStarter(SHARED / "models", folder)
    server = children.starter(
        "--port", "0", "--no-zeroconf", "--devices", "cpu", "--model", MODEL,
        "--data-dir", str(folder / "data"),
    )  # fmt: skip
    with urllib.request.urlopen(f"{server.url}/v1/status", timeout=30) as response:
        server_id = json.load(response)["id"]
    return server.port, server_id, server.process.pid


def run_backend(backend: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One backend's soak, in a Home Assistant child process."""
    children = Children()
    try:
        photos_port = free_port()
        children.processes.append(
            subprocess.Popen(
                [sys.executable, __file__, "--serve-photos", str(photos_port), str(args.cameras)]
            )
        )
        wait_for_port(photos_port)
        server_port, server_id, server_pid = 0, "", 0
        if backend == "server":
            server_port, server_id, server_pid = start_server(folder / "server", children)
        config_dir = folder / f"ha-{backend}"
        config_dir.mkdir()
        config = RunConfig(
            backend=backend, cameras=args.cameras, minutes=args.minutes, warmup=args.warmup,
            camera_kind=args.camera, photos_port=photos_port, config_dir=str(config_dir),
            result=str(folder / f"{backend}.json"), server_port=server_port,
            server_id=server_id, server_pid=server_pid, tracemalloc=args.tracemalloc,
            heap_trim=not args.no_heap_trim,
        )  # fmt: skip
        log = folder / f"{backend}.log"
        print(f"{backend}: {args.warmup:g} s warm-up, then {args.minutes:g} min", file=sys.stderr)
        with log.open("w") as out:
            done = subprocess.run(
                [sys.executable, __file__, "--home-assistant", json.dumps(asdict(config))],
                stdout=out, stderr=subprocess.STDOUT, check=False,
                timeout=args.warmup + args.minutes * 60 + 600,
                env=os.environ | dict(pair.split("=", 1) for pair in args.env),
            )  # fmt: skip
        if done.returncode or not Path(config.result).is_file():
            tail = "\n".join(log.read_text().splitlines()[-40:])
            raise RuntimeError(f"{backend}: Home Assistant failed ({done.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(Path(config.result).read_text())
        return result
    finally:
        children.stop()


def growth(values: list[float | None]) -> str:
    """Start → end MB and the growth in percent."""
    start, end = values[0], values[1]
    if start is None or end is None:
        return "-"
    return f"{start:.0f} → {end:.0f} MB ({(end - start) * 100 / start:+.1f} %)"


def rows_of(results: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    """The table's rows: a name and each backend's cell."""
    each = list(results.values())

    def row(name: str, cell: Any) -> tuple[str, list[str]]:
        return name, [cell(r) for r in each]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    yield row("measured (s)", lambda r: f"{r['seconds']:.0f}")
    yield row("frames fetched (all cameras)", lambda r: str(r["fetched"]))
    yield row("frames processed", lambda r: str(r["executor"].get("frames_done", 0)))
    yield row("frames dropped (superseded)", lambda r: str(r["executor"].get("frames_dropped", 0)))
    yield row(
        "`coral_vision_detected` events",
        lambda r: f"{r['detected']} ({', '.join(f'{k} {v}' for k, v in sorted(r['detected_by_label'].items()))})",
    )
    yield row("`coral_vision_cleared` events", lambda r: str(r["cleared"]))
    yield row(
        "frame → event p50 / p95 / max (ms)",
        lambda r: " / ".join(ms(r["latency_ms"][k]) for k in ("p50", "p95", "max")),
    )
    yield row(
        "errors: Coral Vision WARNING+ / failed frames",
        lambda r: f"{r['warnings']['coral_vision']} / "
        + str(
            sum(
                r["executor"].get(k, 0)
                for k in ("frames_failed", "frames_rejected", "frames_timed_out")
            )
        ),
    )
    yield row("other WARNING+ log records", lambda r: str(r["warnings"]["other"]))
    yield row(
        "recorder rows per camera-hour (states + events)",
        lambda r: f"{r['recorder']['per_camera_hour']:.0f} "
        f"(Coral Vision's {r['recorder']['coral_vision_per_camera_hour']:.0f})",
    )
    yield row("Home Assistant RSS", lambda r: growth(r["rss_mb"]["ha"]))
    yield row("server RSS", lambda r: growth(r["rss_mb"]["server"]))
    yield row(
        "memory growth < 5 %",
        lambda r: "yes" if all(ok(r["rss_mb"][p]) for p in ("ha", "server")) else "**no**",
    )
    yield row(
        "load average (1 min) start → end", lambda r: f"{r['load'][0]:.2f} → {r['load'][1]:.2f}"
    )


def ok(values: list[float | None]) -> bool:
    """Whether memory grew less than the goal (or was not measured)."""
    start, end = values[0], values[1]
    return start is None or end is None or (end - start) * 100 / start < GROWTH_GOAL


def table(results: dict[str, dict[str, Any]]) -> str:
    """One markdown table, a column per backend."""
    names = {"inprocess": "in-process", "server": "through the server"}
    lines = [
        "| | " + " | ".join(names[b] for b in results) + " |",
        "| --- |" + " --- |" * len(results),
    ]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows_of(results)]
    return "\n".join(lines)


def details(results: dict[str, dict[str, Any]]) -> str:
    """Who wrote the recorder's rows, and the log records seen."""
    lines = []
    for backend, r in results.items():
        lines.append(f"\n{backend}: state rows per camera-hour by entity (each camera's folded):")
        lines += [
            f"  {n:8.1f}  {e}" for e, n in list(r["recorder"]["states_by_entity"].items())[:14]
        ]
        lines.append(f"{backend}: event rows per camera-hour by type:")
        lines += [f"  {n:8.1f}  {e}" for e, n in r["recorder"]["events_by_type"].items()]
        peaks = [
            f"{v:.0f} MB" if v is not None else "-"
            for v in (r["rss_mb"]["ha"][2], r["rss_mb"]["server"][2])
        ]
        latency = r["latency_ms"]
        lines.append(
            f"{backend}: RSS peaks in the window: Home Assistant {peaks[0]}, server {peaks[1]}; "
            f"executor: {r['executor']}; events without a frame before them: "
            f"{latency['unmatched']}, with a label their frame does not show: "
            f"{latency['unexpected_label']}"
        )
        lines.append(
            f"{backend}: RSS (MB) each minute of the window, Home Assistant / server: "
            + ", ".join(
                "/".join("-" if v is None else f"{v:.0f}" for v in sample)
                for sample in r["rss_mb"]["per_minute"]
            )
        )
        if None not in r["native_heap_mb"]:
            lines.append(
                f"{backend}: glibc heap (MB) start → end: "
                + ", ".join(
                    f"{k} {r['native_heap_mb'][0][k]:.1f} → {r['native_heap_mb'][1][k]:.1f}"
                    for k in r["native_heap_mb"][0]
                )
            )
        if r["python_heap_growth"]:
            lines.append(f"{backend}: Python heap growth over the window (tracemalloc):")
            lines += [f"  {line}" for line in r["python_heap_growth"]]
        if r["warnings"]["whole_run"]:
            lines.append(f"{backend}: WARNING+ log records over the whole run (setup included):")
            lines += [f"  {n:5d}  {text}" for text, n in r["warnings"]["whole_run"].items()]
    return "\n".join(lines)


def main() -> int:
    """Run each backend's soak and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="measured minutes (default 10)")
    parser.add_argument(
        "--backend", choices=("inprocess", "server", "both"), default="both", help="(both)"
    )
    parser.add_argument("--cameras", type=int, default=8, help="cameras (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=60, help="seconds before measuring (default 60: a scene)"
    )
    parser.add_argument(
        "--camera", choices=("generic", "mjpeg"), default=camera_kind(),
        help="HA camera integration (default generic, or mjpeg without PyAV)",
    )  # fmt: skip
    parser.add_argument(
        "--tracemalloc", action="store_true",
        help="trace Python's heap and print the 15 lines whose allocations grew most",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="set a variable for the Home Assistant child (e.g. MALLOC_ARENA_MAX=2)",
    )  # fmt: skip
    parser.add_argument(
        "--no-heap-trim", action="store_true",
        help="never hand freed native memory back (malloc_trim): to measure what trimming saves",
    )  # fmt: skip
    parser.add_argument("--serve-photos", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home-assistant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_photos:
        serve_photos(*args.serve_photos)
        return 0
    if args.home_assistant:
        return child_main(args.home_assistant)
    for needed in [IMAGES / photo for photo in SHOWS] + [SHARED / "models"]:
        if not needed.exists():
            print(f"missing {needed}: set CORAL_VISION_SHARED to the shared data folder")
            return 1
    os.environ["CORAL_VISION_MIRROR"] = str(SHARED / "models")  # catalog models, offline
    command = shlex.join(["python", "benchmarks/soak.py", *sys.argv[1:]])
    load_start = Path("/proc/loadavg").read_text().strip()
    backends = ("inprocess", "server") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory(prefix="coral-vision-soak-") as folder:
        results = {b: run_backend(b, args, Path(folder)) for b in backends}
    print(f"\n`source scripts/lib.sh; in_newest {command}`\n")
    print(
        f"{args.cameras} cameras ({args.camera}, still JPEG over loopback) at 1 frame/s, {MODEL} "
        f"on the CPU, {args.minutes:g} min measured after {args.warmup:g} s of warm-up; "
        f"{os.cpu_count()} CPUs; /proc/loadavg at start: {load_start}, at end: "
        f"{Path('/proc/loadavg').read_text().strip()}\n"
    )
    print(table(results))
    print(details(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
