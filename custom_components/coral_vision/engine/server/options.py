"""The server's settings: a flag wins over an environment variable, which wins over the config file.

The config file is JSON; it may be the Home Assistant app's /data/options.json, whose keys are
`api_key`, `devices`, `models`, `log_level` and `port` (others it may hold are ignored). With a
config file and no data folder given, the data folder is the config file's folder (/data in the
app), so the server id and models survive restarts there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..inference.devices import parse_device
from ..models.download import MIRROR_ENV

# CodeProject.AI's port: DeepStack/CodeProject clients (Blue Iris, Agent DVR) default to it.
DEFAULT_PORT = 32168
DEFAULT_HOST = "127.0.0.1"
LOG_LEVELS = {
    # The app's log levels (bashio's) onto Python's.
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "notice": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}
# A model's id: a catalog id, or the name of a file in the models folder without ".tflite".
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", re.ASCII)
MODEL_SUFFIX = ".tflite"

_ENV = {
    "host": "CORAL_VISION_HOST",
    "port": "CORAL_VISION_PORT",
    "api_key": "CORAL_VISION_API_KEY",
    "devices": "CORAL_VISION_DEVICES",
    "models": "CORAL_VISION_MODELS",
    "models_dir": "CORAL_VISION_MODELS_DIR",
    "data_dir": "CORAL_VISION_DATA_DIR",
    "mirror": MIRROR_ENV,
    "log_level": "CORAL_VISION_LOG_LEVEL",
}
_CONFIG_KEYS = frozenset({*_ENV, "zeroconf"})


class OptionsError(Exception):
    """The settings are not usable."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything the server is started with."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    # "all" (every Edge TPU, the CPU when there is none), or device strings: "usb:0", "cpu".
    devices: tuple[str, ...] = ("all",)
    models: tuple[str, ...] = ()  # catalog ids or "<name>.tflite" files; none: the default
    models_dir: Path = field(default_factory=lambda: _default_data_dir() / "models")
    data_dir: Path = field(default_factory=lambda: _default_data_dir())
    mirror: str | None = None
    log_level: str = "INFO"
    zeroconf: bool = True


class _Parser(argparse.ArgumentParser):
    """Reports mistakes as OptionsError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        raise OptionsError(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "coral-vision serve") -> argparse.ArgumentParser:
    """The server's flags; every default is None so environment and config file can fill in."""
    parser = _Parser(prog=prog, description="Serve Coral Vision's engine over HTTP.")
    add = parser.add_argument
    add("--config", type=Path, help="a JSON settings file (the app's /data/options.json)")
    add("--host", help=f"address to bind (default {DEFAULT_HOST}; ${_ENV['host']})")
    add("--port", help=f"port, 0 for any free one (default {DEFAULT_PORT}; ${_ENV['port']})")
    add("--api-key", help=f"key clients must send (default none; ${_ENV['api_key']})")
    add("--devices", help=f"all (default), cpu, or a list like usb:0,pci:0 (${_ENV['devices']})")
    add(
        "--model",
        action="append",
        dest="models",
        help="catalog id or <name>.tflite in the models folder; repeatable "
        f"(default: the catalog's default detector; ${_ENV['models']}, comma-separated)",
    )
    add("--models-dir", type=Path, help=f"models folder (${_ENV['models_dir']})")
    add("--data-dir", type=Path, help=f"where the server id is kept (${_ENV['data_dir']})")
    add("--mirror", help=f"folder or base URL tried before catalog URLs (${MIRROR_ENV})")
    add("--log-level", help="debug, info (default), warning or error")
    add("--no-zeroconf", action="store_true", help="do not announce the server with mDNS")
    return parser


def parse_options(
    argv: Sequence[str], environ: Mapping[str, str] | None = None, prog: str = "coral-vision serve"
) -> ServerOptions:
    """The settings from flags, environment and config file; OptionsError when unusable."""
    args = build_parser(prog).parse_args(list(argv))
    env = os.environ if environ is None else environ
    config = _read_config(args.config) if args.config else {}

    def pick(key: str) -> Any:
        flag = getattr(args, key, None)
        if flag is not None:
            return flag
        value = env.get(_ENV[key], "").strip() if key in _ENV else ""
        return value if value else config.get(key)

    data_dir = pick("data_dir")
    if data_dir is None:
        data_dir = args.config.resolve().parent if args.config else _default_data_dir()
    data_dir = Path(data_dir)
    models_dir = pick("models_dir")
    return ServerOptions(
        host=_text(pick("host"), "host") or DEFAULT_HOST,
        port=_port(pick("port")),
        api_key=_text(pick("api_key"), "api_key") or None,
        devices=_devices(pick("devices")),
        models=_models(pick("models")),
        models_dir=Path(models_dir) if models_dir else data_dir / "models",
        data_dir=data_dir,
        mirror=_text(pick("mirror"), "mirror") or None,
        log_level=_log_level(pick("log_level")),
        zeroconf=not args.no_zeroconf and config.get("zeroconf", True) is not False,
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise OptionsError(f"cannot read the config file {path}: {err}") from err
    if not isinstance(document, dict):
        raise OptionsError(f"the config file {path} must hold a JSON object")
    return {k: v for k, v in document.items() if k in _CONFIG_KEYS}


def _text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise OptionsError(f"{key} must be a string, not {value!r}")
    return value.strip()


def _port(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_PORT
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise OptionsError(f"port must be a number from 0 to 65535, not {value!r}")
    return port


def _items(value: Any, key: str) -> list[str]:
    """A list of strings from a list or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [item for v in value for item in _items(v, key)]
    raise OptionsError(f"{key} must be a list of strings or a comma-separated string")


def _devices(value: Any) -> tuple[str, ...]:
    devices = [d.lower() for d in _items(value, "devices")] or ["all"]
    if devices == ["all"]:
        return ("all",)
    for device in devices:
        if device != "cpu" and parse_device(device) is None:
            raise OptionsError(f"device {device!r}: expected all, cpu, usb:N or pci:N")
    return tuple(dict.fromkeys(devices))


def _models(value: Any) -> tuple[str, ...]:
    models = _items(value, "models")
    for model in models:
        model_id = model.removesuffix(MODEL_SUFFIX)
        if not MODEL_ID.match(model_id):
            raise OptionsError(
                f"model {model!r}: expected a catalog id or a file name like name.tflite "
                "(letters, digits, _ and -; no folders)"
            )
    return tuple(dict.fromkeys(models))


def _log_level(value: Any) -> str:
    level = (_text(value, "log_level") or "info").lower()
    if level not in LOG_LEVELS:
        raise OptionsError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return LOG_LEVELS[level]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "coral-vision"
