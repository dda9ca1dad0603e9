"""The coral-vision command's edges, in process: Ctrl-C, a named Edge TPU, many images, no hits."""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import threading
import warnings
from pathlib import Path

import pytest

from custom_components.coral_vision.engine import cli
from custom_components.coral_vision.engine.inference.devices import list_edge_tpus

from .conftest import DETECT_DIR
from .fakes import make_usb_tpu

TINY = "mobilenet_v1_0.25_128_quant.tflite"
WAIT_S = 60.0


def run(capfd: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return status, out, err


def test_ctrl_c_while_reading_an_image_exits_130(
    capfd: pytest.CaptureFixture[str], models_dir: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    main_thread = threading.main_thread().ident
    assert main_thread == threading.get_ident()

    def interrupt() -> None:
        # Opening the writing end returns once the command has opened the reading end: it is
        # then waiting for the image's bytes, inside its run.
        fd = os.open(fifo, os.O_WRONLY)
        try:
            signal.pthread_kill(main_thread, signal.SIGINT)
        finally:
            os.close(fd)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        status, _, err = run(
            capfd, "classify", "--device", "cpu", "--model", models_dir / TINY, fifo
        )
    finally:
        sender.join(WAIT_S)
    assert status == 130
    assert err.strip() == "error: interrupted"
    assert not [t for t in threading.enumerate() if t.name.startswith("coral-vision-infer")]


def test_a_named_edge_tpu_without_its_library_warns_and_runs_on_the_cpu(
    capfd: pytest.CaptureFixture[str],
    models_dir: Path,
    images_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    make_usb_tpu(sys_root, "1-1")
    monkeypatch.setattr(
        cli, "list_edge_tpus", functools.partial(list_edge_tpus, sys_root, dev_root)
    )
    status, out, err = run(
        capfd, "classify", "--json", "--device", "usb:0", "--model", models_dir / TINY,
        images_dir / "cat.bmp",
    )  # fmt: skip
    assert status == 0
    assert err.startswith("warning: ")
    assert json.loads(out)["device"] == "cpu"


def test_more_images_than_in_flight_keep_their_order(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path
) -> None:
    names = ["cat.bmp", "parrot.jpg", "bird.bmp", "grace_hopper.bmp"] * 5
    assert len(names) > 2 * cli.pool_size()
    status, out, _ = run(
        capfd, "classify", "--json", "--model", models_dir / TINY, *(images_dir / n for n in names)
    )
    assert status == 0
    assert [Path(json.loads(line)["image"]).name for line in out.splitlines()] == names


def test_nothing_above_the_threshold_is_said(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path
) -> None:
    detector = models_dir / DETECT_DIR / "detect.tflite"
    status, out, _ = run(
        capfd, "detect", "--threshold", "1", "--model", detector, images_dir / "cat.bmp"
    )
    assert status == 0
    assert out.splitlines()[1] == "  nothing above the threshold"
    status, out, _ = run(
        capfd, "classify", "--threshold", "1", "--model", models_dir / TINY, images_dir / "cat.bmp"
    )
    assert status == 0
    assert out.splitlines()[1] == "  no class above the threshold"


def test_a_threshold_that_is_no_number_is_a_usage_error(
    capfd: pytest.CaptureFixture[str], models_dir: Path, images_dir: Path
) -> None:
    status, _, err = run(
        capfd, "detect", "--threshold", "high", "--model", models_dir / TINY, images_dir / "cat.bmp"
    )
    assert status == 2
    assert "'high' is not a number from 0 to 1" in err


@pytest.mark.parametrize(
    ("module", "argv", "status"),
    [
        ("custom_components.coral_vision.engine.cli", ["devices", "--sys-root", "{tmp}"], 0),
        ("custom_components.coral_vision.engine.server", ["--port", "nope"], 2),
    ],
)
def test_run_as_a_module(
    module: str,
    argv: list[str],
    status: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.argv", ["prog", *(a.format(tmp=tmp_path) for a in argv)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: "found in sys.modules"
        with pytest.raises(SystemExit) as exited:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exited.value.code == status
    out, err = capfd.readouterr()
    assert ("no Edge TPU found" in out) if status == 0 else err.startswith("error: ")
