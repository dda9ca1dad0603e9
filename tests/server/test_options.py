"""Server options: flags over environment over the config file (the app's options.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.cli import main as cli_main
from custom_components.coral_vision.engine.server.__main__ import main
from custom_components.coral_vision.engine.server.options import (
    DEFAULT_PORT,
    OptionsError,
    parse_options,
)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    options = parse_options([], {})
    assert (options.host, options.port, options.api_key) == ("127.0.0.1", DEFAULT_PORT, None)
    assert options.devices == ("all",)
    assert options.models == ()
    assert options.data_dir == tmp_path / "coral-vision"
    assert options.models_dir == tmp_path / "coral-vision" / "models"
    assert (options.mirror, options.log_level, options.zeroconf) == (None, "INFO", True)


def test_the_apps_options_json(tmp_path: Path) -> None:
    config = tmp_path / "options.json"
    config.write_text(
        json.dumps(
            {
                "api_key": "k",
                "devices": ["usb:0", "PCI:0"],
                "models": ["ssd_mobilenet_v2_coco", "mine.tflite"],
                "log_level": "notice",
                "port": 5000,
                "ssl": False,  # keys the server does not know are ignored
            }
        )
    )
    options = parse_options(["--config", str(config)], {})
    assert options.api_key == "k"
    assert options.devices == ("usb:0", "pci:0")
    assert options.models == ("ssd_mobilenet_v2_coco", "mine.tflite")
    assert (options.log_level, options.port) == ("INFO", 5000)
    # With a config file, the data folder is the file's folder (/data in the app).
    assert options.data_dir == tmp_path
    assert options.models_dir == tmp_path / "models"


def test_flags_win_over_environment_over_config(tmp_path: Path) -> None:
    config = tmp_path / "options.json"
    config.write_text(json.dumps({"api_key": "", "port": 1, "devices": "cpu", "models": []}))
    env = {
        "CORAL_VISION_PORT": "2",
        "CORAL_VISION_API_KEY": "from-env",
        "CORAL_VISION_MODELS": "a, b.tflite",
        "CORAL_VISION_MIRROR": "/mirror",
        "CORAL_VISION_HOST": "0.0.0.0",
        "CORAL_VISION_MODELS_DIR": str(tmp_path / "m"),
    }
    options = parse_options(
        ["--config", str(config), "--port", "0", "--model", "c", "--no-zeroconf"], env
    )
    assert (options.port, options.api_key, options.models) == (0, "from-env", ("c",))
    assert (options.host, options.mirror, options.devices) == ("0.0.0.0", "/mirror", ("cpu",))
    assert options.models_dir == tmp_path / "m"
    assert options.zeroconf is False
    options = parse_options(["--config", str(config), "--data-dir", str(tmp_path / "d")], {})
    assert options.api_key is None  # an empty key is no key
    assert options.data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "x"], "port"),
        (["--port", "70000"], "port"),
        (["--devices", "usb:x"], "usb:x"),
        (["--model", "../etc/passwd"], "no folders"),
        (["--model", "a/b.tflite"], "no folders"),
        (["--log-level", "loud"], "log_level"),
        (["--unknown"], "unrecognized"),
        (["--config", "/nonexistent/options.json"], "cannot read"),
    ],
)
def test_bad_options(argv: list[str], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        parse_options(argv, {})


def test_bad_config_files(tmp_path: Path) -> None:
    config = tmp_path / "options.json"
    for text, message in (
        ("[]", "JSON object"),
        ("{", "cannot read"),
        ('{"devices": 3}', "devices"),
        ('{"api_key": 3}', "api_key"),
        ('{"port": true}', "port"),
    ):
        config.write_text(text)
        with pytest.raises(OptionsError, match=message):
            parse_options(["--config", str(config)], {})


def test_main_and_the_cli_report_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: port must be")
    assert cli_main(["serve", "--devices", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'gpu'")
