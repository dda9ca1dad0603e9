"""A stuck Edge TPU and a flood of actions: this engine against a baseline copy of an older one.

Run from the repository: .envs/oldest/bin/python benchmarks/stuck_tpu.py [--baseline DIR]

There is no Edge TPU here: the fake libedgetpu of tests/engine/fakes.py (always this checkout's)
stands in for it, on top of real CPU interpreters. Each case runs in a subprocess (with a timeout)
importing the engine of the tree under test:
- threads: every invoke on the TPU hangs while it stays listed; a camera submits frames for
  --seconds with a 1 s hang limit; how many threads the process has, and how many frames the
  camera still gets answered;
- close: a reopen after a lost TPU blocks inside load_delegate (for --block seconds); how long
  close() takes with a 1 s hang limit, and whether the stuck thread ends once the call returns;
- flood: SSD MobileNet v1 on the CPU; a camera runs frames back to back while bursts of 60
  action requests arrive (actions marked on demand where the engine knows them); camera frames
  answered per second and refused, next to the camera alone.
--baseline defaults to the commit before the hardening (8dec458), extracted with git archive.
Reads the models and photos in place from ../shared (or $CORAL_VISION_SHARED).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
DETECT_DIR = MODELS / "detection" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"
PHOTO = SHARED / "images" / "grace_hopper.bmp"
BASELINE_COMMIT = "8dec458"
HANG_LIMIT = 1.0
CASES = ("threads", "close", "flood")
BURST = 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help=f"older tree (default: {BASELINE_COMMIT})")
    parser.add_argument("--seconds", type=float, default=6.0, help="per case (default 6)")
    parser.add_argument("--block", type=float, default=8.0, help="load_delegate block (s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per case subprocess (s)")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        return run_case(args.case, args.root, args.seconds, args.block)
    with baseline_tree(args.baseline) as baseline:
        trees = {f"baseline ({args.baseline or BASELINE_COMMIT})": baseline, "current": REPO}
        figures = {
            name: {case: measure(case, root, args) for case in CASES}
            for name, root in trees.items()
        }
    print_table(figures, args)
    return 0


@contextlib.contextmanager
def baseline_tree(given: Path | None) -> Iterator[Path]:
    """The tree to compare with: the one given, else the baseline commit extracted."""
    if given is not None:
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="coral-vision-baseline-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BASELINE_COMMIT],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


def measure(case: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in a subprocess against `root`; its figures, or why there are none."""
    command = [sys.executable, __file__, "--case", case, "--root", str(root)]
    command += ["--seconds", str(args.seconds), "--block", str(args.block)]
    print(f"running {case} on {root} ...", file=sys.stderr)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {args.timeout:g} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


ROWS: tuple[tuple[str, str, str], ...] = (
    ("threads", "threads_before", "threads before the hang"),
    ("threads", "threads_peak", "threads, most while hung"),
    ("threads", "threads_end", "threads at the end"),
    ("threads", "camera_answered", "camera frames answered while hung"),
    ("threads", "camera_failed", "camera frames failed while hung"),
    ("threads", "close_s", "close() with the TPU still hung (s)"),
    ("close", "close_s", "close() with a reopen in load_delegate (s)"),
    ("close", "left_after_return", "threads left once load_delegate returns"),
    ("flood", "camera_alone_fps", "camera alone (frames/s)"),
    ("flood", "camera_fps", "camera during action bursts (frames/s)"),
    ("flood", "camera_refused", "camera frames refused"),
    ("flood", "actions_answered", "actions answered"),
    ("flood", "actions_refused", "actions refused at once"),
)


def print_table(figures: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    names = list(figures)
    width = max(len(label) for *_, label in ROWS) + 2
    print(
        f"hang limit {HANG_LIMIT:g} s, {args.seconds:g} s per case, load_delegate blocked "
        f"{args.block:g} s, bursts of {BURST} actions, {os.cpu_count()} cores"
    )
    print(f"{'':{width}}" + "".join(f"{name:>22}" for name in names))
    for case, key, label in ROWS:
        cells = []
        for name in names:
            found = figures[name][case]
            value = found.get(key, found.get("error", "-"))
            cells.append(f"{value:>22.2f}" if isinstance(value, float) else f"{value!s:>22.22}")
        print(f"{label:{width}}" + "".join(cells))


# -- the cases (in the subprocess) ---------------------------------------------------------------


def run_case(case: str, root: Path, seconds: float, block: float) -> int:
    import_engine(root)
    figures = {"threads": threads_case, "close": close_case, "flood": flood_case}[case](
        seconds, block
    )
    print(json.dumps(figures))
    return 0


def import_engine(root: Path) -> None:
    """Import the engine of `root` without Home Assistant, and this checkout's fake TPU."""
    sys.path.insert(0, str(root))
    package = types.ModuleType("custom_components.coral_vision")
    package.__path__ = [str(root / "custom_components" / "coral_vision")]
    sys.modules["custom_components.coral_vision"] = package
    spec = importlib.util.spec_from_file_location("fakes", REPO / "tests" / "engine" / "fakes.py")
    assert spec is not None
    assert spec.loader is not None
    fakes = importlib.util.module_from_spec(spec)
    sys.modules["fakes"] = fakes
    spec.loader.exec_module(fakes)


def tpu_executor(hang_timeout: float) -> tuple[Any, Any]:
    """An executor on a fake USB Edge TPU (listed in a fake sysfs) and the fake."""
    import fakes  # type: ignore[import-not-found]

    from custom_components.coral_vision.engine.inference.devices import list_edge_tpus
    from custom_components.coral_vision.engine.inference.executor import Executor
    from custom_components.coral_vision.engine.models.model import load_model

    labels = MODELS / "imagenet_labels.txt"
    cpu = load_model(MODELS / "mobilenet_v1_0.25_128_quant.tflite", labels=labels)
    tpu_model = load_model(MODELS / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", labels=labels)
    sysfs = Path(tempfile.mkdtemp(prefix="coral-vision-sysfs-"))
    atexit.register(shutil.rmtree, sysfs, ignore_errors=True)
    fakes.make_usb_tpu(sysfs / "sys", "1-1")
    fake = fakes.FakeEdgeTpu(cpu_twin=cpu.content, hang_timeout=hang_timeout)
    tpu = list_edge_tpus(sysfs / "sys", sysfs / "dev")[0]
    executor = Executor(
        tpu_model,
        tpu,
        cpu_model=cpu,
        runtime=fake.runtime(),
        hang_limit=HANG_LIMIT,
        list_tpus=lambda: list_edge_tpus(sysfs / "sys", sysfs / "dev"),
    )
    return executor, fake


def threads_case(seconds: float, block: float) -> dict[str, Any]:
    executor, fake = tpu_executor(hang_timeout=10 * seconds + 60)
    photo = PHOTO.read_bytes()
    executor.run_sync("cam", photo)
    before = threading.active_count()
    samples = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            samples.append(threading.active_count() - 1)  # not this sampler

    sampler = threading.Thread(target=sample)
    sampler.start()
    fake.hang()
    answered = failed = 0
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        future = executor.submit("cam", photo, timeout=2 * HANG_LIMIT)
        if future.exception() is None:
            answered += 1
        else:
            failed += 1
    stop.set()
    sampler.join()
    end = threading.active_count()
    started = time.monotonic()
    executor.close()
    took = time.monotonic() - started
    fake.release()
    return {
        "threads_before": before,
        "threads_peak": max([*samples, end]),
        "threads_end": end,
        "camera_answered": answered,
        "camera_failed": failed,
        "close_s": round(took, 2),
    }


def close_case(seconds: float, block: float) -> dict[str, Any]:
    from custom_components.coral_vision.engine.errors import CoralVisionError

    executor, fake = tpu_executor(hang_timeout=block)
    photo = PHOTO.read_bytes()
    executor.run_sync("cam", photo)
    fake.unplug()  # invokes fail while the TPU stays listed: the executor reopens it
    fake.block_loads()
    with contextlib.suppress(CoralVisionError):
        executor.run_sync("cam", photo)
    fake.loading.wait(60)
    before = {t for t in threading.enumerate() if t.name.startswith("coral-vision")}
    started = time.monotonic()
    executor.close()
    took = time.monotonic() - started
    fake.unblock_loads()  # the blocked call returns
    time.sleep(1.0)
    left = [t for t in before if t.is_alive()]
    return {"close_s": round(took, 2), "left_after_return": len(left)}


def flood_case(seconds: float, block: float) -> dict[str, Any]:
    from custom_components.coral_vision.engine.inference.executor import Executor
    from custom_components.coral_vision.engine.models.model import load_model

    model = load_model(DETECT_DIR / "detect.tflite", labels=DETECT_DIR / "labelmap.txt")
    photo = PHOTO.read_bytes()
    marks = "on_demand" in inspect.signature(Executor.submit).parameters
    extra = {"on_demand": True} if marks else {}
    with Executor(model, threshold=0.1, top_k=20) as executor:
        alone, _ = camera_loop(executor, photo, seconds / 2, lambda: None)
        actions = {"answered": 0, "refused": 0, "count": 0}
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                burst = []
                for _ in range(BURST):
                    actions["count"] += 1
                    burst.append(executor.submit(f"action:{actions['count']}", photo, **extra))
                for future in burst:
                    if future.exception() is None:
                        actions["answered"] += 1
                    else:
                        actions["refused"] += 1

        flooder = threading.Thread(target=flood)
        flooder.start()
        fps, refused = camera_loop(executor, photo, seconds, lambda: None)
        stop.set()
        flooder.join()
    return {
        "camera_alone_fps": round(alone, 1),
        "camera_fps": round(fps, 1),
        "camera_refused": refused,
        "actions_answered": actions["answered"],
        "actions_refused": actions["refused"],
    }


def camera_loop(
    executor: Any, photo: bytes, seconds: float, between: Callable[[], None]
) -> tuple[float, int]:
    """Frames/s a camera gets answered running frames back to back, and how many were refused."""
    from custom_components.coral_vision.engine.errors import QueueFullError

    answered = refused = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        error = executor.submit("cam", photo).exception()
        if error is None:
            answered += 1
        elif isinstance(error, QueueFullError):
            refused += 1
            time.sleep(0.01)  # a camera's next frame comes later
        between()
    return answered / (time.monotonic() - started), refused


if __name__ == "__main__":
    sys.exit(main())
