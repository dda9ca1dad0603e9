"""The coral-vision command's main(), in process: every command and error path on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.cli import main, read_image
from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.vision.image_guard import MAX_IMAGE_BYTES

from .conftest import DETECT_DIR
from .fakes import make_pci_tpu, make_usb_tpu

TINY = "mobilenet_v1_0.25_128_quant.tflite"


def run(capfd: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return status, out, err


def one_error(err: str, *words: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


def test_detect_json_and_text(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path
) -> None:
    model = models_dir / DETECT_DIR / "detect.tflite"
    labels = models_dir / DETECT_DIR / "labelmap.txt"
    status, out, err = run(
        capfd,
        "detect",
        "--json",
        "--device",
        "cpu",
        "--model",
        model,
        "--labels",
        labels,
        images_dir / "grace_hopper.bmp",
    )
    assert status == 0, err
    record = json.loads(out)
    assert record["device"] == "cpu"
    assert record["inference_ms"] > 0
    assert {d["label"] for d in record["detections"]} >= {"person", "tie"}
    person = next(d for d in record["detections"] if d["label"] == "person")
    assert len(person["box"]) == 4
    assert all(isinstance(v, float) for v in person["box"])

    status, out, err = run(
        capfd,
        "detect",
        "--model",
        model,
        "--labels",
        labels,
        "--threshold",
        "0.6",
        images_dir / "grace_hopper.bmp",
    )
    assert status == 0, err
    assert "person" in out
    assert "grace_hopper.bmp" in out


def test_classify_json_and_text(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path
) -> None:
    model = models_dir / "mobilenet_v2_1.0_224_quant.tflite"
    labels = models_dir / "imagenet_labels.txt"
    status, out, _ = run(
        capfd,
        "classify",
        "--json",
        "--top-k",
        "3",
        "--model",
        model,
        "--labels",
        labels,
        images_dir / "cat.bmp",
    )
    assert status == 0
    record = json.loads(out)
    assert len(record["classes"]) == 3
    assert record["classes"][0]["label"] == "Egyptian cat"
    status, out, _ = run(
        capfd, "classify", "--model", model, "--labels", labels, images_dir / "cat.bmp"
    )
    assert status == 0
    assert "Egyptian cat" in out


def test_bench_json(capfd: pytest.CaptureFixture[str], models_dir: Path) -> None:
    status, out, err = run(
        capfd, "bench", "--json", "--frames", "6", "--sources", "2", "--model", models_dir / TINY
    )
    assert status == 0, err
    report = json.loads(out)
    assert report["frames"] == 6
    assert report["frames_per_s"] > 0
    status, out, _ = run(capfd, "bench", "--frames", "3", "--model", models_dir / TINY)
    assert status == 0
    assert "frames/s" in out


def test_devices_text_and_json(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    status, out, _ = run(capfd, "devices", "--sys-root", sys_root, "--dev-root", dev_root)
    assert status == 0
    assert "no Edge TPU found" in out
    make_usb_tpu(sys_root, "1-1")
    make_pci_tpu(sys_root, dev_root, 0, millidegrees="51300")
    status, out, _ = run(capfd, "devices", "--json", "--sys-root", sys_root, "--dev-root", dev_root)
    assert status == 0
    assert [t["device"] for t in json.loads(out)] == ["usb:0", "pci:0"]
    status, out, _ = run(capfd, "devices", "--sys-root", sys_root, "--dev-root", dev_root)
    assert "51.3" in out


def test_errors_are_one_line(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    tiny = models_dir / TINY
    status, _, err = run(capfd, "classify", "--model", tiny, tmp_path / "missing.jpg")
    assert status == 1
    one_error(err, "missing.jpg")

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    status, out, err = run(
        capfd, "classify", "--json", "--model", tiny, corrupt, images_dir / "cat.bmp"
    )
    assert status == 1
    one_error(err, "corrupt.jpg")
    assert len(out.splitlines()) == 1, "the good image still ran"

    status, _, err = run(capfd, "detect", "--model", images_dir / "cat.bmp", images_dir / "cat.bmp")
    assert status == 1
    one_error(err)

    status, _, err = run(capfd, "detect", "--model", tiny, images_dir / "cat.bmp")
    assert status == 2
    one_error(err, "classify")

    status, _, err = run(
        capfd, "classify", "--device", "tpu0", "--model", tiny, images_dir / "cat.bmp"
    )
    assert status == 2
    one_error(err, "--device")

    status, _, err = run(
        capfd, "classify", "--device", "usb:3", "--model", tiny, images_dir / "cat.bmp"
    )
    assert status == 2
    one_error(err, "no such Edge TPU")

    status, _, err = run(capfd, "classify", "--top-k", "0", "--model", tiny, images_dir / "cat.bmp")
    assert status == 2
    one_error(err)

    status, _, err = run(capfd, "frobnicate")
    assert status == 2
    one_error(err)


def test_inspect_is_delegated(capfd: pytest.CaptureFixture[str], models_dir: Path) -> None:
    status, out, _ = run(
        capfd, "inspect", "--json", models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    )
    assert status == 0
    report = json.loads(out)
    assert report["edgetpu_compiled"] is True
    assert report["task"] == "classification"


def test_oversized_images_are_refused_unread(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:  # sparse: a real photo, then zeros up to twice the cap
        handle.write((images_dir / "parrot.jpg").read_bytes())
        handle.truncate(2 * MAX_IMAGE_BYTES)
    tiny = models_dir / TINY
    status, out, err = run(
        capfd, "classify", "--json", "--model", tiny, huge, images_dir / "cat.bmp"
    )
    assert status == 1
    one_error(err, "huge.jpg", f"too large: {2 * MAX_IMAGE_BYTES} bytes")
    assert len(out.splitlines()) == 1, "the good image still ran"
    status, _, err = run(capfd, "bench", "--frames", "1", "--model", tiny, "--image", huge)
    assert status == 1
    one_error(err, "too large")
    # A file whose size lies (a device) is read no further than the cap.
    with pytest.raises(ImageError, match=f"too large: {MAX_IMAGE_BYTES + 1} bytes"):
        read_image(Path("/dev/zero"))
    assert read_image(images_dir / "cat.bmp") == (images_dir / "cat.bmp").read_bytes()
