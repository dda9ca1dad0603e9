"""Peak memory and time of the model reader and the labels parser on hostile files, now and before.

Run from the repository: .envs/oldest/bin/python benchmarks/hostile_models.py
    [--baseline DIR] [--size BYTES] [--limit-mib MIB] [--timeout SECONDS]

Builds the hostile cases of tests/engine/hostile.py in a temporary folder: model files whose
flatbuffer offsets alias one large table (about --size bytes each, half a megabyte by default),
and labels texts that attack the parser. Each case is read in a fresh subprocess, once with this
tree's engine and once with a baseline tree's (--baseline DIR, default: `git archive 8dec458`,
the code before the hardening, extracted to a temporary folder), under a memory limit (RLIMIT_AS,
--limit-mib above what the process maps after its imports) and a timeout, so the old code cannot
take the machine down. Models go through inspect_model (the bounded reader) and load_model (the
reader, then the interpreter); labels through load_labels, or labels_from_metadata for the zip
bomb. Real models and labels from ../shared (or $CORAL_VISION_SHARED), when present, close the
table for reference. It prints one row per case and action: the outcome, the peak memory (growth of the
process's maximum resident set) and the wall time of each tree, side by side; "> limit" when the
run hit the memory limit, the timeout, or crashed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "8dec458"

CHILD = """
import json, resource, sys, time, types
repo, action, path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, repo)
package = types.ModuleType("custom_components.coral_vision")
package.__path__ = [repo + "/custom_components/coral_vision"]
sys.modules["custom_components.coral_vision"] = package
from pathlib import Path
from custom_components.coral_vision.engine.errors import CoralVisionError
from custom_components.coral_vision.engine.models.inspect import inspect_model
from custom_components.coral_vision.engine.models.labels import labels_from_metadata, load_labels
from custom_components.coral_vision.engine.models.model import load_model
from custom_components.coral_vision.engine.runtime import load_runtime

load_runtime()
actions = {
    "inspect": inspect_model,
    "load": load_model,
    "labels": load_labels,
    "embedded": lambda p: labels_from_metadata(p.read_bytes()),
}
with open("/proc/self/status") as status:
    mapped = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + limit, resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    result = actions[action](Path(path))
    outcome = "ok" if result is not None else "ok (none)"
except CoralVisionError as err:
    outcome = type(err).__name__
except MemoryError:
    outcome = "MemoryError"
except Exception as err:
    outcome = "crash: " + type(err).__name__
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_kib": grown}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help=f"old tree (default: {BASELINE_COMMIT})")
    parser.add_argument("--size", type=int, default=1 << 19, help="bytes per hostile model")
    parser.add_argument("--limit-mib", type=int, default=2048, help="memory limit per run")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="coral-vision-hostile-") as temp:
        folder = Path(temp)
        baseline = args.baseline or extract_baseline(folder / "baseline")
        cases = write_cases(folder / "cases", args.size)
        trees = {"current": REPO, f"baseline ({args.baseline or BASELINE_COMMIT})": baseline}
        print_table(cases, trees, args.limit_mib << 20, args.timeout)
    return 0


def extract_baseline(target: Path) -> Path:
    """The baseline commit's tree, from `git archive`, so this works from a clean clone."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", BASELINE_COMMIT],
        capture_output=True,
        check=True,
    ).stdout
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def write_cases(folder: Path, size: int) -> list[tuple[str, str, Path]]:
    """(case, action, file) for every hostile model and labels input, written to `folder`."""
    from tests.engine.hostile import (
        MODEL_CASES,
        Parts,
        build,
        hostile_labels,
        hostile_model,
        lying_zip,
    )

    folder.mkdir(parents=True)
    cases = []
    for case in MODEL_CASES:
        path = folder / (case.replace(" ", "_") + ".tflite")
        path.write_bytes(hostile_model(case, size))
        cases += [(case, "inspect", path), (case, "load", path)]
    texts = {"60,000 spaces in one Coral line": b"0 a" + b" " * 60_000 + b"b\n"}
    texts.update(hostile_labels(size))
    for i, (case, text) in enumerate(texts.items()):
        path = folder / f"labels{i}.txt"
        path.write_bytes(text)
        cases.append((case, "labels", path))
    bomb = folder / "bomb.tflite"
    bomb.write_bytes(build(Parts(tail=lying_zip(256 << 20))))
    cases.append(("labels.txt inflating to 256 MiB", "embedded", bomb))
    # Real files for reference, read in place: what an ordinary model and labels file cost.
    shared = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared")) / "models"
    for name, action in (
        ("detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29/detect.tflite", "inspect"),
        ("detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29/detect.tflite", "load"),
        ("mobilenet_v2_1.0_224_inat_bird_quant.tflite", "load"),
        ("imagenet_labels.txt", "labels"),
    ):
        if (shared / name).is_file():
            cases.append((f"real: {Path(name).name}", action, shared / name))
    return cases


def run(tree: Path, action: str, path: Path, limit: int, timeout: float) -> tuple[str, str, str]:
    """(outcome, peak, time) of one action on one file with one tree's engine."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(tree), action, str(path), str(limit)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout", "?", f"> {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"crash ({done.returncode})", "> limit", "?"
    result = json.loads(lines[-1])
    peak = f"{result['peak_kib'] / 1024:.1f} MiB"
    if result["outcome"] == "MemoryError":
        peak = f"> limit ({limit >> 20} MiB)"
    return str(result["outcome"]), peak, f"{result['seconds']:.2f} s"


def print_table(
    cases: list[tuple[str, str, Path]], trees: dict[str, Path], limit: int, timeout: float
) -> None:
    names = list(trees)
    header = f"{'case':34} {'action':8} {'size':>9} | " + " | ".join(
        f"{name[:38]:38}" for name in names
    )
    print(header)
    print(
        f"{'':34} {'':8} {'':>9} | "
        + " | ".join(f"{'outcome':14} {'peak':>12} {'time':>10}" for _ in names)
    )
    print("-" * len(header))
    for case, action, path in cases:
        cells = []
        for tree in trees.values():
            outcome, peak, seconds = run(tree, action, path, limit, timeout)
            cells.append(f"{outcome[:14]:14} {peak:>12} {seconds:>10}")
        size = path.stat().st_size
        print(f"{case[:34]:34} {action:8} {size:>9} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
