"""One accelerator's engine objects: its model, its executor and its backend state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    CONF_DEVICE,
    CONF_LABELS_PATH,
    CONF_MODEL,
    CONF_MODEL_PATH,
    DEVICE_CPU,
    DOMAIN,
    LOGGER,
    MODEL_CUSTOM,
)
from .engine.catalog import load_catalog
from .engine.delegate import BackendInfo
from .engine.devices import EdgeTpu, list_edge_tpus
from .engine.download import Progress, ensure_model, mirror_from_env
from .engine.executor import Executor
from .engine.models import Model, load_model

if TYPE_CHECKING:
    from .coordinator import AcceleratorCoordinator
    from .processor import CameraProcessor

ISSUE_TPU_FALLBACK = "tpu_fallback_{entry_id}"

# Default models: the CPU one ships in TensorFlow's zip (and in the shared offline mirror); the
# Edge TPU one is Coral's compiled SSD MobileNet v2.
DEFAULT_MODEL = {"cpu": "tf_coco_ssd_mobilenet_v1", "edgetpu": "ssd_mobilenet_v2_coco"}


def device_kind(device: str) -> str:
    """The catalog's device kind for a device string: "cpu", "usb" or "pci"."""
    return device.split(":", 1)[0]


def default_model(device: str) -> str:
    """The default detection model for a device."""
    return DEFAULT_MODEL["cpu" if device == DEVICE_CPU else "edgetpu"]


def models_dir(hass: HomeAssistant) -> Path:
    """Where downloaded models are kept."""
    return Path(hass.config.path(DOMAIN, "models"))


def find_tpu(device: str) -> EdgeTpu | None:
    """The Edge TPU record for a device string; a placeholder when it is not plugged in now."""
    if device == DEVICE_CPU:
        return None
    for tpu in list_edge_tpus():
        if tpu.device == device:
            return tpu
    kind, _, index = device.partition(":")
    return EdgeTpu(
        kind="pci" if kind == "pci" else "usb", index=int(index or 0), path="", device=device
    )


async def async_load_models(
    hass: HomeAssistant, data: Mapping[str, Any], progress: Progress | None = None
) -> tuple[Model, Model | None]:
    """Resolve and load an entry's model (and its CPU twin for a compiled model)."""
    device = data[CONF_DEVICE]
    choice = data.get(CONF_MODEL) or default_model(device)
    if choice == MODEL_CUSTOM:
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
        mirror=mirror_from_env() or None,
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


@dataclass
class Accelerator:
    """What a loaded entry holds: the executor, the models and the cameras fed to it."""

    hass: HomeAssistant
    entry_id: str
    device: str
    executor: Executor
    processors: dict[str, CameraProcessor] = field(default_factory=dict)
    coordinator: AcceleratorCoordinator | None = None
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    @property
    def model(self) -> Model:
        """The model frames run on."""
        return self.executor.model

    @property
    def backend(self) -> BackendInfo | None:
        """Where frames run now."""
        return self.executor.backend_info

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> Callable[[], None]:
        """Call `update` when the backend changes; return the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_backend_changed(self, info: BackendInfo) -> None:
        """Raise or clear the TPU repair, log the change once, and update the entities."""
        issue_id = ISSUE_TPU_FALLBACK.format(entry_id=self.entry_id)
        if self.device != DEVICE_CPU and info.kind == "cpu":
            LOGGER.warning(
                "Edge TPU %s is unavailable (%s: %s); running on the CPU",
                self.device,
                info.fallback_reason,
                info.detail,
            )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="tpu_fallback",
                translation_placeholders={
                    "device": self.device,
                    "reason": str(info.fallback_reason or "unknown"),
                    "detail": info.detail,
                },
            )
        else:
            if ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id) is not None:
                LOGGER.info("Edge TPU %s is back; running on %s", self.device, info.label)
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        for update in list(self._listeners):
            update()


async def async_open_accelerator(
    hass: HomeAssistant, entry: ConfigEntry[Any], model: Model, cpu_model: Model | None
) -> Accelerator:
    """Open the executor (on its own thread) and wire backend changes to the event loop."""
    device = entry.data[CONF_DEVICE]
    holder: list[Accelerator] = []

    def changed(info: BackendInfo) -> None:
        # Called on the executor's thread: hop onto the event loop.
        if holder:
            hass.loop.call_soon_threadsafe(holder[0].async_backend_changed, info)

    tpu = await hass.async_add_executor_job(find_tpu, device)
    executor = await hass.async_add_executor_job(
        lambda: Executor(
            model,
            tpu,
            cpu_model=cpu_model,
            name=device,
            threshold=0.1,
            top_k=20,
            on_backend_change=changed,
        )
    )
    accelerator = Accelerator(hass, entry.entry_id, device, executor)
    holder.append(accelerator)
    if (info := executor.backend_info) is not None:
        accelerator.async_backend_changed(info)
    return accelerator


async def async_close_accelerator(hass: HomeAssistant, accelerator: Accelerator) -> None:
    """Close the executor, joining its thread, off the event loop."""
    await hass.async_add_executor_job(accelerator.executor.close)


type CoralVisionConfigEntry = ConfigEntry[Accelerator]
