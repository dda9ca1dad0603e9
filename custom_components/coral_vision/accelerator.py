"""One open accelerator: its executor on a device, opened, closed, and its backend's changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir

from .const import CONF_DEVICE, DEVICE_CPU, DOMAIN, LOGGER
from .engine.errors import CoralVisionError
from .engine.inference.delegate import BackendInfo, FallbackReason
from .engine.inference.devices import EdgeTpu, list_edge_tpus

if TYPE_CHECKING:  # numpy and Pillow load when an accelerator is set up, not with the package
    from .engine.inference.executor import Executor
    from .engine.models.model import Model

ISSUE_TPU_FALLBACK = "tpu_fallback_{entry_id}"

# Fallbacks that trying the Edge TPU again cannot fix while Home Assistant runs.
PERMANENT_FALLBACKS = frozenset(
    {FallbackReason.MODEL_NOT_COMPILED, FallbackReason.NO_RUNTIME_LIBRARY}
)
# Fallbacks the executor ends by itself (a hung TPU: when its stuck call returns).
SELF_RETRIED = frozenset({FallbackReason.HUNG})


def listed_tpu(device: str) -> EdgeTpu | None:
    """The Edge TPU of a device string if it is plugged in now."""
    return next((tpu for tpu in list_edge_tpus() if tpu.device == device), None)


def find_tpu(device: str) -> EdgeTpu | None:
    """The Edge TPU record for a device string; a placeholder when it is not plugged in now."""
    if device == DEVICE_CPU:
        return None
    if (tpu := listed_tpu(device)) is not None:
        return tpu
    return EdgeTpu.unlisted(device)


@dataclass
class Accelerator:
    """An open accelerator: its executor, its models and its backend's state."""

    hass: HomeAssistant
    entry_id: str
    device: str
    executor: Executor
    device_id: str  # in the device registry: the cameras' devices are linked to it
    cpu_model: Model | None = None
    _listeners: list[Callable[[], None]] = field(default_factory=list)
    _on_fallback: bool = False

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
            # The executor reopens on the CPU without a reason when the TPU is no longer listed.
            reason = info.fallback_reason or FallbackReason.NO_DEVICE
            if not self._on_fallback:
                LOGGER.warning(
                    "Edge TPU %s is unavailable (%s: %s); running on the CPU",
                    self.device,
                    reason,
                    info.detail,
                )
            self._on_fallback = True
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="tpu_hung" if reason is FallbackReason.HUNG else "tpu_fallback",
                translation_placeholders={
                    "device": self.device,
                    "reason": str(reason),
                    "detail": info.detail,
                },
            )
        else:
            if self._on_fallback:
                LOGGER.info("Edge TPU %s is back; running on %s", self.device, info.label)
            self._on_fallback = False
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        for update in list(self._listeners):
            update()

    async def async_retry_tpu(self) -> None:
        """Reopen the Edge TPU when it is listed again after the executor fell back to the CPU."""
        info = self.backend
        if self.device == DEVICE_CPU or (info is not None and info.kind != "cpu"):
            return
        if info is not None and info.fallback_reason in PERMANENT_FALLBACKS | SELF_RETRIED:
            return
        if await self.hass.async_add_executor_job(listed_tpu, self.device) is None:
            return
        try:
            # Swapping to the same model reopens the backend, on the TPU when it is listed.
            await self.executor.async_swap_model(self.executor.model, self.cpu_model)
        except CoralVisionError as err:
            LOGGER.debug("Edge TPU %s could not be reopened: %s", self.device, err)


def create_executor(model: Model, tpu: EdgeTpu | None, **options: Any) -> Executor:
    """Build an executor that looks for its Edge TPU again through this module's list."""
    from .engine.inference.executor import Executor  # noqa: PLC0415

    return Executor(model, tpu, list_tpus=lambda: list_edge_tpus(), **options)


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
        lambda: create_executor(
            model,
            tpu,
            cpu_model=cpu_model,
            name=device,
            threshold=0.1,
            top_k=20,
            on_backend_change=changed,
        )
    )
    # Before any platform: the cameras' devices are linked to this one.
    registered = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **accelerator_device_info(entry, model.name)
    )
    accelerator = Accelerator(hass, entry.entry_id, device, executor, registered.id, cpu_model)
    holder.append(accelerator)
    if (info := executor.backend_info) is not None:
        accelerator.async_backend_changed(info)
    return accelerator


def accelerator_device_info(entry: ConfigEntry[Any], model_name: str) -> dr.DeviceInfo:
    """The accelerator's device, which each camera's device is linked to."""
    device = entry.data[CONF_DEVICE]
    hardware = "CPU" if device == DEVICE_CPU else f"Edge TPU ({device})"
    return dr.DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Coral Vision" if device == DEVICE_CPU else "Google Coral",
        # The device page shows the model as "<model> by <manufacturer>", and the software
        # version as "Firmware": the detection model is part of what this device is.
        model=f"{hardware} · {model_name}",
        # None clears the model name that earlier versions stored as the firmware.
        sw_version=None,
    )


async def async_close_accelerator(hass: HomeAssistant, accelerator: Accelerator) -> None:
    """Close the executor, joining its thread, off the event loop."""
    await hass.async_add_executor_job(accelerator.executor.close)
