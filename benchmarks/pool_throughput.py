"""Several Edge TPUs behind one dispatcher: frames per second for N = 1, 2 and 4 fake TPUs.

Run from the repository: .envs/oldest/bin/python benchmarks/pool_throughput.py [--invoke-ms 10]

There is no Edge TPU here: each one is tests/engine/fakes.py's SleepingTpu, whose invoke sleeps
--invoke-ms (releasing the GIL, as libedgetpu does while the TPU works) and returns zeros, so
one TPU tops out at 1000 / invoke-ms frames/s. Decoding is kept out of the measurement (this
machine may have 2 cores): the cameras send a tiny BMP already at the model's input size
(MobileNet v1 0.25 128, compiled for the Edge TPU), so the ratio measures the pool, not the CPU.
Every camera keeps --depth frames in flight (1: a camera awaiting each frame; 2: frames
overlap, so order depends on the pool); a frame superseded by its camera's next one (the engine
keeps the newest waiting frame per camera) is counted as superseded, not done, and its camera
waits for its next result before sending again, as a camera at its frame rate would. Each
camera's results must come back in the order it sent them: the run fails otherwise.
Prints frames/s per N, the ratio to N x one TPU (target: at least 0.9 for N = 2 and 4), and
how the frames spread over the TPUs. Reads the model in place from ../shared (or
$CORAL_VISION_SHARED).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
LABELS = SHARED / "models" / "imagenet_labels.txt"
CAMERAS = 8
TARGET = 0.9


class Camera(threading.Thread):
    """Sends frames with `depth` in flight until told to stop; checks they come back in order."""

    def __init__(self, dispatcher: Any, name: str, image: bytes, depth: int) -> None:
        super().__init__(name=f"bench-{name}")
        self.dispatcher, self.source, self.image, self.depth = dispatcher, name, image, depth
        self.stop = threading.Event()
        self.done = self.dropped = self.failed = 0
        self.order: list[int] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        from custom_components.coral_vision.engine.errors import FrameSupersededError

        in_flight: deque[Future[Any]] = deque()
        sent = 0
        while not self.stop.is_set():
            if len(in_flight) >= self.depth:
                oldest = in_flight.popleft()
                if isinstance(oldest.exception(), FrameSupersededError) and in_flight:
                    # Like a camera at its frame rate: no new frame before the next result.
                    in_flight[0].exception()
                continue
            future = self.dispatcher.submit(self.source, self.image)
            future.add_done_callback(lambda f, n=sent: self._landed(f, n))
            in_flight.append(future)
            sent += 1
        for future in in_flight:
            future.exception()

    def _landed(self, future: Future[Any], number: int) -> None:
        from custom_components.coral_vision.engine.errors import FrameSupersededError

        error = future.exception()
        with self._lock:
            self.order.append(number)
            if error is None:
                self.done += 1
            elif isinstance(error, FrameSupersededError):
                self.dropped += 1
            else:
                self.failed += 1


def _engine() -> None:
    """Import the engine of this checkout (the benchmark runs as a script)."""
    sys.path.insert(0, str(REPO))


def measure(
    model: Any, tpus: int, invoke_s: float, image: bytes, seconds: float, depth: int
) -> dict[str, Any]:
    """Run CAMERAS cameras for `seconds` on `tpus` sleeping TPUs; frames done per second."""
    from tests.engine.fakes import SleepingTpu

    from custom_components.coral_vision.engine.inference.dispatcher import Dispatcher
    from custom_components.coral_vision.engine.inference.executor import Executor

    fakes = [SleepingTpu(f"usb:{i}", invoke_s) for i in range(tpus)]
    executors = [
        Executor(model, f.tpu, name=f.tpu.device, runtime=f.runtime(), list_tpus=f.list_tpus)
        for f in fakes
    ]
    with Dispatcher(executors) as dispatcher:
        cameras = [Camera(dispatcher, f"cam{i}", image, depth) for i in range(CAMERAS)]
        # Warm up, then count only the frames the TPUs finish inside the window.
        for camera in cameras:
            camera.start()
        time.sleep(0.5)
        before = sum(f.invokes for f in fakes)
        started = time.perf_counter()
        time.sleep(seconds)
        invokes = sum(f.invokes for f in fakes) - before
        elapsed = time.perf_counter() - started
        for camera in cameras:
            camera.stop.set()
        for camera in cameras:
            camera.join()
        stats = dispatcher.pool_stats()
    in_order = all(c.order == sorted(c.order) for c in cameras)
    return {
        "tpus": tpus,
        "fps": invokes / elapsed,
        "in_order": in_order,
        "done": sum(c.done for c in cameras),
        "dropped": sum(c.dropped for c in cameras),
        "failed": sum(c.failed for c in cameras),
        "spread": [s.frames_done for _, s in stats.executors],
    }


def tiny_image(model: Any) -> bytes:
    """A BMP at the model's input size: decoding and resizing cost next to nothing."""
    buffer = io.BytesIO()
    Image.new("RGB", (model.input.width, model.input.height), (90, 120, 150)).save(buffer, "BMP")
    return buffer.getvalue()


def main() -> int:
    """Measure N = 1, 2, 4 side by side and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--invoke-ms", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--depth", type=int, nargs="+", default=[1, 2], help="frames in flight per camera"
    )
    parser.add_argument("--tpus", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    _engine()
    from custom_components.coral_vision.engine.models.model import load_model

    model = load_model(MODEL, labels=LABELS)
    image = tiny_image(model)
    invoke_s = args.invoke_ms / 1000
    print(
        f"{CAMERAS} cameras; fake TPUs invoking {args.invoke_ms:g} ms (sleep, GIL released; "
        f"ceiling {1 / invoke_s:.0f} frames/s each); {args.seconds:g} s per run"
    )
    print(
        f"decoding kept out: a {model.input.width}x{model.input.height} BMP already at the "
        f"input size, on {os.cpu_count()} cores, so the ratio measures the pool"
    )
    ok = True
    for depth in args.depth:
        print(f"\n{depth} frame(s) in flight per camera")
        print(f"{'TPUs':>4} {'frames/s':>9} {'ratio to N x 1':>15} {'order':>6}  frames per TPU")
        runs = [measure(model, n, invoke_s, image, args.seconds, depth) for n in args.tpus]
        one = next((r["fps"] for r in runs if r["tpus"] == 1), 1 / invoke_s)
        for r in runs:
            ratio = r["fps"] / (r["tpus"] * one)
            ok = ok and r["in_order"] and (r["tpus"] == 1 or ratio >= TARGET)
            print(
                f"{r['tpus']:>4} {r['fps']:>9.1f} {ratio:>15.3f} "
                f"{'kept' if r['in_order'] else 'LOST':>6}  {r['spread']} "
                f"(superseded {r['dropped']}, failed {r['failed']})"
            )
    verdict = "met" if ok else "NOT met"
    print(f"\ntarget (ratio >= {TARGET} for N > 1, every camera's order kept): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
