"""The server on loopback against the engine in-process: requests/s and latency, 1, 4, 8 clients.

Run from the repository: .envs/oldest/bin/python benchmarks/server_throughput.py [--requests 120]

Both sides run the same model (TensorFlow's SSD MobileNet v1, the server's CPU default) on the
CPU with the same executor settings, on the same camera-sized JPEG (cat_720p.jpg). In-process,
N sources await Dispatcher.run() in a loop; through the server, N clients (each its own
connection and source) POST the JPEG to /v1/models/<id>/detect in a loop, so the server adds
HTTP, JSON and a process boundary. Each figure is a ratio to the in-process run with as many
clients, measured in the same run: throughput ratio (goal: at least 0.9 with 4 clients) and
the server's added p50 latency (goal: at most 5 ms). Every run is bounded by --requests; the
two sides take turns --repeat times and each keeps its best run (the machine may be shared).
The clients share this machine's cores with the server, which the in-process run does not pay.
Reads the model and photo in place from ../shared (or $CORAL_VISION_SHARED); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
MODEL_ID = "tf_coco_ssd_mobilenet_v1"
DETECT_DIR = SHARED / "models" / "detection" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"
IMAGE = SHARED / "images" / "cat_720p.jpg"
CLIENTS = (1, 4, 8)
LISTENING = re.compile(r"listening on http://\S+:(\d+)")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def in_process(image: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    """Requests/s and per-request milliseconds of N sources on a Dispatcher in this process."""
    sys.path.insert(0, str(REPO))
    from custom_components.coral_vision.engine.inference.dispatcher import Dispatcher
    from custom_components.coral_vision.engine.models.model import load_model
    from custom_components.coral_vision.engine.server.host import MAX_TOP_K, SCORE_FLOOR

    model = load_model(DETECT_DIR / "detect.tflite", labels=DETECT_DIR / "labelmap.txt")
    dispatcher = Dispatcher.open(model, [None], threshold=SCORE_FLOOR, top_k=MAX_TOP_K)
    try:
        for _ in range(5):
            await dispatcher.run("warm-up", image)

        async def run(n: int) -> None:
            result = await dispatcher.run(f"cam{n}", image)
            if result.detections[0].label != "cat":
                raise RuntimeError(f"unexpected result {result}")

        return await _drive(clients, requests, run)
    finally:
        dispatcher.close()


async def through_server(
    url: str, image: bytes, clients: int, requests: int
) -> tuple[float, list[float]]:
    """Requests/s and per-request milliseconds of N clients posting to the server."""
    sessions = [aiohttp.ClientSession() for _ in range(clients)]

    async def post(n: int) -> None:
        async with sessions[n].post(
            f"{url}/v1/models/{MODEL_ID}/detect?source=cam{n}", data=image
        ) as response:
            body = await response.json()
            if response.status != 200 or body["detections"][0]["label"] != "cat":
                raise RuntimeError(f"unexpected answer {response.status}: {body}")

    try:
        for n in range(clients):
            await post(n)  # opens each client's connection
        return await _drive(clients, requests, post)
    finally:
        for session in sessions:
            await session.close()


async def _drive(clients: int, requests: int, call: object) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(n: int) -> None:
        for _ in counter:
            started = time.perf_counter()
            await call(n)  # type: ignore[operator]
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


def start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "custom_components" / "coral_vision"),
        "CORAL_VISION_MIRROR": str(SHARED / "models"),
    }
    command = [sys.executable, "-m", "engine.server", "--port", "0", "--no-zeroconf"]
    command += ["--devices", "cpu", "--model", MODEL_ID, "--data-dir", str(folder)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if match := LISTENING.search(line):
            return process, f"http://127.0.0.1:{match[1]}"
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit("the server did not start")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="requests per run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per side, best kept (default 3)"
    )
    args = parser.parse_args()
    image = IMAGE.read_bytes()
    local: dict[int, tuple[float, list[float]]] = {}
    remote: dict[int, tuple[float, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="coral-vision-bench-") as folder:
        process, url = start_server(Path(folder))
        try:
            # Interleaved, so both sides see the same background load; the best run of each.
            for n in CLIENTS:
                for _ in range(args.repeat):
                    mine = await in_process(image, n, args.requests)
                    theirs = await through_server(url, image, n, args.requests)
                    local[n] = max(local.get(n, mine), mine, key=lambda run: run[0])
                    remote[n] = max(remote.get(n, theirs), theirs, key=lambda run: run[0])
        finally:
            process.terminate()
            process.wait(30)
    print(
        f"{MODEL_ID} on the CPU, {IMAGE.name}, {args.requests} requests per run, "
        f"best of {args.repeat}"
    )
    print(
        f"{'clients':>7} | {'in-process req/s':>16} | {'server req/s':>12} | {'ratio':>5} | "
        f"{'p50 in/server ms':>16} | {'p95 in/server ms':>16} | {'added p50 ms':>12}"
    )
    for n in CLIENTS:
        (rate_in, lat_in), (rate_out, lat_out) = local[n], remote[n]
        p50_in, p50_out = percentile(lat_in, 0.5), percentile(lat_out, 0.5)
        p95_in, p95_out = percentile(lat_in, 0.95), percentile(lat_out, 0.95)
        print(
            f"{n:>7} | {rate_in:>16.1f} | {rate_out:>12.1f} | {rate_out / rate_in:>5.2f} | "
            f"{p50_in:>7.1f} / {p50_out:<6.1f} | {p95_in:>7.1f} / {p95_out:<6.1f} | "
            f"{p50_out - p50_in:>12.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
