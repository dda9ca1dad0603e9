"""Every shared detection model side by side: objects found per photo and time per frame.

Run from the repository: .envs/oldest/bin/python benchmarks/accuracy.py [--frames N]

Each detection model under ../shared/models (or $CORAL_VISION_SHARED/models) that runs on the
CPU — the SSD MobileNet v1 and the YOLOv8n files; the Edge TPU-compiled YOLO through its nearest
CPU twin, since this machine has no TPU — runs over every photo in ../shared/images at the
default settings (each model's own resize, a minimum score of DEFAULT_MIN_SCORE). Per frame the
time is split into pre-processing (decode, resize, quantize), invoke, and decode (+ NMS for
YOLO), the median of N frames. Then NMS alone on 2100 and 8400 candidates (a 320 and a 640 px
YOLO head) against the invoke of a 320 px YOLO. It prints markdown tables and a recommended
default per device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from custom_components.coral_vision.engine.inference.delegate import Backend
    from custom_components.coral_vision.engine.models.model import Model

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
IMAGES = SHARED / "images"

# (name in the table, model file, labels file or None for the model's own, CPU twin or None)
DETECTORS = (
    (
        "SSD MobileNet v1 (TF, uint8)",
        "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29/detect.tflite",
        "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29/labelmap.txt",
        None,
    ),
    ("YOLOv8n float I/O", "yolo/yolov8n_int8.tflite", None, None),
    (
        "YOLOv8n int8",
        "yolo/yolov8n_320_int8_det_from_seg.tflite",
        "yolo/coco80_labels.txt",
        None,
    ),
    (
        "YOLOv8n person uint8",
        "yolo/yolov8n_320_person_uint8_int8out.tflite",
        "yolo/person_labels.txt",
        None,
    ),
    (
        "YOLOv8n Edge TPU (CPU twin)",
        "yolo/yolov8n_320_full_integer_quant_edgetpu.tflite",
        None,
        "yolo/yolov8n_320_int8_det_from_seg.tflite",
    ),
)


RECOMMENDATION = """
Recommended default per device (from the tables above):
- CPU: the int8 YOLOv8n at 320 px where its AGPL-3.0 weights are acceptable: a shorter invoke
  than the SSD, scores near 0.9 on the clear objects and no false teddy bear on the sunflower.
  It finds fewer of kite_and_cold's small, distant people and kites than the SSD at 0.5 (the
  1280 px photo letterboxed to 320 px leaves them a few pixels tall).
- Edge TPU: the Edge TPU-compiled YOLOv8n (its backbone on the TPU, its head's last ops on the
  CPU; timed here through its CPU twin, as this machine has no TPU).
- The shipped default stays the Apache-2.0 SSD on both, since YOLO weights are AGPL-3.0.
"""


def median_ms(run: Callable[[], Any], frames: int) -> tuple[float, Any]:
    """The median wall time of `frames` calls, in ms, and the last call's result."""
    times = []
    result = None
    for _ in range(frames):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def open_detector(model_file: str, labels: str | None, twin: str | None) -> Backend:
    """The model on the CPU; a compiled one through the fake Edge TPU running its twin."""
    from custom_components.coral_vision.engine.inference.delegate import open_backend
    from custom_components.coral_vision.engine.inference.devices import EdgeTpu
    from custom_components.coral_vision.engine.models.model import load_model

    model = load_model(MODELS / model_file, labels=MODELS / labels if labels else None)
    if twin is None:
        return open_backend(model, None)
    from tests.engine.fakes import FakeEdgeTpu  # the TPU boundary the tests use

    fake = FakeEdgeTpu(cpu_twin=(MODELS / twin).read_bytes())
    tpu = EdgeTpu("usb", 0, "/fake/usb:0", "usb:0", None)
    return open_backend(model, tpu, runtime=fake.runtime())


def per_photo(backend: Backend, photos: list[Path], frames: int, threshold: float) -> list[str]:
    """One table row per photo: objects found and the three times."""
    from custom_components.coral_vision.engine.vision.detect import decode_outputs
    from custom_components.coral_vision.engine.vision.preprocess import prepare_frame

    model = backend.model
    rows = []
    for photo in photos:
        data = photo.read_bytes()
        prep_ms, frame = median_ms(lambda d=data: prepare_frame(d, model.input), frames)
        invoke_ms, outputs = median_ms(lambda f=frame: backend.invoke(f), frames)
        decode_ms, decoded = median_ms(
            lambda o=outputs, f=frame: decode_outputs(model, o, f, threshold=threshold, top_k=25),
            frames,
        )
        found = Counter(d.label for d in decoded[0])
        objects = ", ".join(f"{n} {label}" for label, n in found.most_common()) or "—"
        best = max((d.score for d in decoded[0]), default=0.0)
        rows.append(
            f"| {photo.name} | {objects} | {best:.2f} | {prep_ms:.2f} | {invoke_ms:.2f} "
            f"| {decode_ms:.2f} |"
        )
    return rows


def nms_table(frames: int, invoke_ms: float) -> list[str]:
    """NMS (with the score threshold and the decode) alone on 2100 and 8400 candidates."""
    from custom_components.coral_vision.engine.models.labels import Labels
    from custom_components.coral_vision.engine.models.model import (
        InputSpec,
        Model,
        OutputSpec,
        YoloLayout,
    )
    from custom_components.coral_vision.engine.vision.preprocess import PreparedFrame
    from custom_components.coral_vision.engine.vision.yolo import get_yolo_detections

    rng = np.random.default_rng(0)
    lines = [
        "| candidates | scoring ≥ 0.25 | decode + NMS ms (top_k 100) | share of a 320 px invoke |",
        "|---|---|---|---|",
    ]
    for candidates, size in ((2100, 320), (8400, 640)):
        for passing in (20, 300, candidates):
            layout = YoloLayout(80, candidates, channels_first=True)
            spec = InputSpec(size, size, 3, np.dtype(np.float32), 0.0, 0, 0, "letterbox", "unit")
            model = Model(
                name="nms",
                content=b"",
                path=None,
                task="detection",
                input=spec,
                outputs=(OutputSpec(0, "head", np.dtype(np.float32), 0.0, 0),),
                labels=Labels(),
                edgetpu=False,
                detection_layout=layout,
                num_classes=80,
            )
            head = rng.random((1, 84, candidates), np.float32) * np.float32(0.2)
            head[0, 2:4] = rng.random((2, candidates), np.float32) * np.float32(0.3)
            chosen = rng.choice(candidates, passing, replace=False)
            head[0, 4 + rng.integers(0, 80, passing), chosen] = rng.uniform(0.3, 1.0, passing)
            frame = PreparedFrame(np.zeros((1, size, size, 3), np.float32), (1280, 720))
            ms, _ = median_ms(
                lambda h=head, m=model, f=frame: get_yolo_detections(m, [h], f, top_k=100),
                frames,
            )
            lines.append(f"| {candidates} | {passing} | {ms:.2f} | {ms / invoke_ms:.0%} |")
    return lines


def main() -> int:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10, help="frames per median (default 10)")
    args = parser.parse_args()
    if not MODELS.is_dir() or not IMAGES.is_dir():
        print(f"the shared models and photos are missing: expected {MODELS} and {IMAGES}")
        return 1
    sys.path.insert(0, str(REPO))
    from custom_components.coral_vision.engine.camera.filters import DEFAULT_MIN_SCORE

    photos = sorted(p for p in IMAGES.iterdir() if p.suffix in {".bmp", ".jpg"})
    yolo_invoke = []
    for name, model_file, labels, twin in DETECTORS:
        if not (MODELS / model_file).is_file():
            print(f"\n{name}: {model_file} is not in {MODELS}; skipped")
            continue
        backend = open_detector(model_file, labels, twin)
        model: Model = backend.model
        print(f"\n### {name}  ({model.input.width}x{model.input.height}, {model.input.resize})\n")
        print("| photo | objects ≥ default score | best | pre-process ms | invoke ms | decode ms |")
        print("|---|---|---|---|---|---|")
        rows = per_photo(backend, photos, args.frames, DEFAULT_MIN_SCORE)
        print("\n".join(rows))
        if model_file.startswith("yolo/") and twin is None:
            yolo_invoke.append(float(rows[0].split("|")[5]))
        backend.close()
    if yolo_invoke:
        print("\n### Decode + NMS alone vs a 320 px YOLOv8n invoke on this CPU\n")
        print("\n".join(nms_table(args.frames, statistics.median(yolo_invoke))))
    print(RECOMMENDATION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
