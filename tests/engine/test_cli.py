"""The coral-vision command, run as a real subprocess on real models and photos."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.vision.image_guard import MAX_IMAGE_BYTES
from tests.conftest import REPO

from .conftest import DETECT_DIR
from .fakes import make_pci_tpu, make_usb_tpu

TINY = "mobilenet_v1_0.25_128_quant.tflite"


def coral_vision(
    *args: str | Path, memory: int | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m engine.cli` the way scripts/coral-vision does (within `memory` bytes)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "custom_components" / "coral_vision"))

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
        preexec_fn=limit,
    )


def assert_one_error_line(run: subprocess.CompletedProcess[str], *words: str) -> None:
    assert run.returncode != 0
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in run.stderr


def test_detect_json(models_dir: Path, images_dir: Path) -> None:
    run = coral_vision(
        "detect",
        "--json",
        "--model",
        models_dir / DETECT_DIR / "detect.tflite",
        "--labels",
        models_dir / DETECT_DIR / "labelmap.txt",
        images_dir / "grace_hopper.bmp",
        images_dir / "cat.bmp",
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [Path(r["image"]).name for r in records] == ["grace_hopper.bmp", "cat.bmp"]
    hopper, cat = records
    assert set(hopper) == {"image", "device", "inference_ms", "detections"}
    assert hopper["device"] == "cpu"
    assert hopper["inference_ms"] > 0
    person = hopper["detections"][0]
    assert set(person) == {"label", "id", "score", "box"}
    assert (person["label"], person["id"]) == ("person", 0)
    assert person["score"] == pytest.approx(0.71, abs=0.02)
    xmin, ymin, xmax, ymax = person["box"]
    assert 0 <= xmin < xmax <= 512  # source pixels of the 512x600 photo
    assert 0 <= ymin < ymax <= 600
    assert ymax > 300
    assert [d["label"] for d in cat["detections"]] == ["cat"]


def test_classify_text_and_json(models_dir: Path, images_dir: Path) -> None:
    model = models_dir / "mobilenet_v2_1.0_224_quant.tflite"
    labels = models_dir / "imagenet_labels.txt"
    image = images_dir / "cat.bmp"
    text = coral_vision("classify", "--model", model, "--labels", labels, image)
    as_json = coral_vision(
        "classify", "--json", "--top-k", "2", "--model", model, "--labels", labels, image
    )
    assert text.returncode == 0, text.stderr
    assert "Egyptian cat" in text.stdout
    assert "0.79" in text.stdout
    record = json.loads(as_json.stdout)
    assert set(record) == {"image", "device", "inference_ms", "classes"}
    assert len(record["classes"]) == 2
    assert record["classes"][0]["label"] == "Egyptian cat"
    assert record["classes"][0]["id"] == 286
    assert record["classes"][0]["score"] == pytest.approx(0.79, abs=0.02)


def test_missing_image(models_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    run = coral_vision("classify", "--model", models_dir / TINY, missing)
    assert_one_error_line(run, str(missing), "No such file")
    assert run.stdout == ""


def test_corrupt_image_fails_alone(models_dir: Path, images_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((images_dir / "parrot.jpg").read_bytes()[:1500])
    run = coral_vision(
        "classify", "--json", "--model", models_dir / TINY, corrupt, images_dir / "cat.bmp"
    )
    assert_one_error_line(run, "corrupt.jpg", "image")
    assert [Path(json.loads(line)["image"]).name for line in run.stdout.splitlines()] == ["cat.bmp"]


def test_not_a_model(models_dir: Path, images_dir: Path) -> None:
    run = coral_vision(
        "detect", "--model", models_dir / "imagenet_labels.txt", images_dir / "cat.bmp"
    )
    assert_one_error_line(run, "not a TensorFlow Lite file")
    assert run.returncode == 1


def test_bad_arguments(models_dir: Path, images_dir: Path) -> None:
    image = images_dir / "cat.bmp"
    for args in (
        ("classify", "--top-k", "0", "--model", models_dir / TINY, image),
        ("detect", "--threshold", "2", "--model", models_dir / TINY, image),
        ("classify", image),
        ("frobnicate",),
    ):
        run = coral_vision(*args)
        assert_one_error_line(run)
        assert run.returncode == 2
    wrong_task = coral_vision("detect", "--model", models_dir / TINY, image)
    assert_one_error_line(wrong_task, "classify")
    missing_tpu = coral_vision("classify", "--device", "usb:3", "--model", models_dir / TINY, image)
    assert_one_error_line(missing_tpu, "usb:3")


def test_devices(tmp_path: Path) -> None:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    empty = coral_vision("devices", "--json", "--sys-root", sys_root, "--dev-root", dev_root)
    assert json.loads(empty.stdout) == []
    make_usb_tpu(sys_root, "2-1")
    make_pci_tpu(sys_root, dev_root, 0, millidegrees="45500")
    found = coral_vision("devices", "--json", "--sys-root", sys_root, "--dev-root", dev_root)
    text = coral_vision("devices", "--sys-root", sys_root, "--dev-root", dev_root)
    listed = json.loads(found.stdout)
    assert [(d["device"], d["kind"], d["temperature_c"]) for d in listed] == [
        ("usb:0", "usb", None),
        ("pci:0", "pci", 45.5),
    ]
    assert "usb:0" in text.stdout
    assert "45.5" in text.stdout


def test_bench(models_dir: Path, images_dir: Path) -> None:
    run = coral_vision(
        "bench",
        "--json",
        "--frames",
        "12",
        "--sources",
        "3",
        "--model",
        models_dir / TINY,
        "--image",
        images_dir / "cat_720p.jpg",
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["frames"] == 12
    assert report["sources"] == 3
    assert report["frames_per_s"] > 0
    assert report["inference_ms_p50"] <= report["inference_ms_p95"]


def test_an_oversized_image_is_refused_unread(
    models_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:  # sparse: no disk is used
        handle.write((images_dir / "parrot.jpg").read_bytes())
        handle.truncate(2 * MAX_IMAGE_BYTES)
    run = coral_vision(
        "classify", "--json", "--model", models_dir / TINY, huge, images_dir / "cat.bmp"
    )
    assert_one_error_line(run, "huge.jpg", f"too large: {2 * MAX_IMAGE_BYTES} bytes", "64 MiB")
    assert [Path(json.loads(line)["image"]).name for line in run.stdout.splitlines()] == ["cat.bmp"]
    bench = coral_vision("bench", "--frames", "1", "--model", models_dir / TINY, "--image", huge)
    assert_one_error_line(bench, "too large")


def test_an_endless_image_is_read_no_further_than_the_cap(models_dir: Path) -> None:
    # /dev/zero claims 0 bytes and never ends; reading it whole would take all memory.
    run = coral_vision(
        "classify", "--model", models_dir / TINY, "/dev/zero", memory=3 * 2**30, timeout=60
    )
    assert_one_error_line(run, "/dev/zero", f"too large: {MAX_IMAGE_BYTES + 1} bytes")
