"""An entry's model files in Home Assistant: which model, where it is stored, who uses it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    CONF_DEVICE,
    CONF_LABELS_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    DEVICE_CPU,
    DOMAIN,
    MODEL_CUSTOM,
)
from .engine.inference.devices import parse_device
from .engine.models.catalog import CatalogEntry, load_catalog
from .engine.models.download import Progress, ensure_model, files_for, mirror_from_env
from .engine.models.store import sha256_file
from .selection import is_pool, is_server

if TYPE_CHECKING:  # numpy loads with the model reader, in a worker, not with the package
    from .engine.models.model import Model

# Default models: the CPU one ships in TensorFlow's zip (and in the shared offline mirror); the
# Edge TPU one is Coral's compiled SSD MobileNet v2.
DEFAULT_MODEL = {"cpu": "tf_coco_ssd_mobilenet_v1", "edgetpu": "ssd_mobilenet_v2_coco"}


def device_kind(device: str) -> str:
    """The catalog's device kind for a device string: "cpu", "usb", "pci" or "edgetpu" (a pool)."""
    if is_pool(device):
        return "edgetpu"
    parsed = parse_device(device)
    return device if parsed is None else parsed[0]


def default_model(device: str) -> str:
    """The default detection model for a device."""
    return DEFAULT_MODEL["cpu" if device == DEVICE_CPU else "edgetpu"]


def models_dir(hass: HomeAssistant) -> Path:
    """Where downloaded models are kept."""
    return Path(hass.config.path(DOMAIN, "models"))


def load_model(source: Path, *, labels: Path | None = None, name: str | None = None) -> Model:
    """Read and check a model (in a worker: the engine's model reader brings numpy with it)."""
    from .engine.models.model import load_model as read_model  # noqa: PLC0415

    return read_model(source, labels=labels, name=name)


async def async_load_models(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    progress: Progress | None = None,
    *,
    mirror: str | None = None,
) -> tuple[Model, Model | None]:
    """Resolve and load an entry's model (and its CPU twin for a compiled model).

    Catalog files come from `mirror` (the entry's option), else $CORAL_VISION_MIRROR, before
    their upstream URLs.
    """
    device = data[CONF_DEVICE]
    choice = data.get(CONF_MODEL) or default_model(device)
    if choice == MODEL_CUSTOM:
        await _async_check_user_files(hass, data)
        labels = data.get(CONF_LABELS_PATH) or None
        model = await hass.async_add_executor_job(
            lambda: load_model(Path(data[CONF_MODEL_PATH]), labels=Path(labels) if labels else None)
        )
        return model, None
    catalog = await hass.async_add_executor_job(load_catalog)
    entry = catalog[choice]
    local = await ensure_model(
        async_get_clientsession(hass),
        entry,
        device_kind(device),
        models_dir(hass),
        mirror=mirror or mirror_from_env() or None,
        progress=progress,
    )

    def load() -> tuple[Model, Model | None]:
        model = load_model(local.model, labels=local.labels, name=entry.name)
        twin = (
            load_model(local.cpu_twin, labels=local.labels, name=entry.name)
            if local.cpu_twin
            else None
        )
        return model, twin

    return await hass.async_add_executor_job(load)


async def _async_check_user_files(hass: HomeAssistant, data: Mapping[str, Any]) -> None:
    """Refuse a custom model or labels file no longer in an allowed folder (the allowlist changed)."""
    for key in (CONF_MODEL_PATH, CONF_LABELS_PATH):
        if (path := data.get(key)) and not await hass.async_add_executor_job(
            user_file_allowed, hass, path
        ):
            raise ConfigEntryError(
                translation_domain=DOMAIN,
                translation_key="model_not_allowed",
                translation_placeholders={"path": path},
            )


def user_file_allowed(hass: HomeAssistant, path: str) -> bool:
    """Whether a user's file is in our models folder or an allowed one (blocking: it resolves)."""
    try:
        if Path(path).resolve().is_relative_to(models_dir(hass).resolve()):
            return True
        return hass.config.is_allowed_path(path)
    except (OSError, RuntimeError, ValueError):
        return False


def store_user_model(folder: Path, url: str, part: Path) -> Path:
    """Move a checked model download to <models>/custom/<name>-<hash>.tflite; its new path."""
    stem = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in PurePosixPath(urlsplit(url).path).stem
    )
    target = folder / "custom" / f"{stem or 'model'}-{sha256_file(part)[:12]}.tflite"
    target.parent.mkdir(parents=True, exist_ok=True)
    part.replace(target)
    return target


def model_references(
    hass: HomeAssistant, catalog: Mapping[str, CatalogEntry]
) -> dict[Path, list[str]]:
    """Which stored model files each accelerator entry uses (entry titles by file)."""
    folder = models_dir(hass)
    used: dict[Path, list[str]] = {}
    for entry in hass.config_entries.async_entries(DOMAIN):
        if is_server(entry.data):
            continue  # its model's files are on the server
        choice = entry.data.get(CONF_MODEL) or default_model(entry.data[CONF_DEVICE])
        if choice == MODEL_CUSTOM:
            for key in (CONF_MODEL_PATH, CONF_LABELS_PATH):
                if entry.data.get(key):
                    used.setdefault(Path(entry.data[key]), []).append(entry.title)
            continue
        if choice not in catalog:
            continue
        for file in files_for(catalog[choice], device_kind(entry.data[CONF_DEVICE])):
            used.setdefault(folder / file.path, []).append(entry.title)
    return used
