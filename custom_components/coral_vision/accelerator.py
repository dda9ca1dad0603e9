"""One open accelerator: a pool of executors (one per device) behind a narrow surface.

A single device is a pool of one, so frames take one path. Home Assistant's modules use only the
`Accelerator` protocol (`run`, `model`, `devices`, `backend`/`backend_of`, `stats`, the listeners
and the maintenance calls), never the engine's executors: `LocalAccelerator` here and
`RemoteAccelerator` (server.py, frames run on a Coral Vision server) both offer it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir

from .const import CONF_DEVICE, DEVICE_CPU, DOMAIN, LOGGER
from .engine.errors import CoralVisionError
from .engine.inference.delegate import BackendInfo, FallbackReason
from .engine.inference.devices import EdgeTpu, list_edge_tpus
from .engine.inference.stats import ExecutorStats, total_stats
from .selection import DEVICE_ALL, is_pool, named_tpus

if TYPE_CHECKING:  # numpy and Pillow load when an accelerator is set up, not with the package
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from .engine.inference.dispatcher import Dispatcher
    from .engine.inference.executor import Executor
    from .engine.models.labels import Labels
    from .engine.models.model import Model
    from .engine.results import FrameResult, Task

ISSUE_TPU_FALLBACK = "tpu_fallback_{entry_id}"
ISSUE_POOL_TPU_FALLBACK = "tpu_fallback_{entry_id}_{device}"

# Fallbacks that trying the Edge TPU again cannot fix while Home Assistant runs.
PERMANENT_FALLBACKS = frozenset(
    {FallbackReason.MODEL_NOT_COMPILED, FallbackReason.NO_RUNTIME_LIBRARY}
)
# Fallbacks the executor ends by itself (a hung TPU: when its stuck call returns).
SELF_RETRIED = frozenset({FallbackReason.HUNG})
EXECUTOR_OPTIONS: dict[str, Any] = {"threshold": 0.1, "top_k": 20}


class NoEdgeTpuError(CoralVisionError):
    """An "all Edge TPUs" pool found none to open."""


def listed_tpu(device: str) -> EdgeTpu | None:
    """The Edge TPU of a device string if it is plugged in now."""
    return next((tpu for tpu in list_edge_tpus() if tpu.device == device), None)


def find_tpu(device: str) -> EdgeTpu:
    """The Edge TPU record for a device string; a placeholder when it is not plugged in now."""
    return listed_tpu(device) or EdgeTpu.unlisted(device)


def trial_tpu(device: str) -> EdgeTpu | None:
    """The accelerator a model is tried on before an entry is made: a pool's first Edge TPU."""
    if device == DEVICE_ALL:
        return next(iter(list_edge_tpus()), None)
    tpus = named_tpus(device)
    return find_tpu(tpus[0]) if tpus else None


def tpu_identifier(entry_id: str, device: str) -> str:
    """A pooled Edge TPU's device identifier: its entry's id and its device string."""
    return f"{entry_id}:{device}"


def tpu_of_identifier(entry_id: str, identifier: str) -> str | None:
    """The device string of a pooled Edge TPU's identifier in this entry; None for others."""
    prefix = f"{entry_id}:"
    return identifier.removeprefix(prefix) if identifier.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class AcceleratorCounters:
    """Each device's statistics by device string, and the accelerator's total."""

    devices: Mapping[str, ExecutorStats]
    total: ExecutorStats


class ModelInfo(Protocol):
    """What Home Assistant's modules read from a model: the engine's Model, or a server's."""

    @property
    def name(self) -> str:
        """The model's name for people."""

    @property
    def task(self) -> Task:
        """Detection or classification."""

    @property
    def labels(self) -> Labels:
        """The class names."""

    @property
    def edgetpu(self) -> bool:
        """Whether the Edge TPU build runs."""


class Accelerator(Protocol):
    """What Home Assistant's modules use of an accelerator, whether frames run here or remotely."""

    entry_id: str
    device: str  # the entry's setting: "cpu", "usb:0", "all", a chosen set, or "server"
    device_id: str  # in the device registry: cameras and Edge TPUs link to it

    @property
    def model(self) -> ModelInfo:
        """The model frames run on."""

    @property
    def pooled(self) -> bool:
        """Whether its Edge TPUs are devices of their own, linked to the accelerator's."""

    @property
    def devices(self) -> tuple[str, ...]:
        """The device strings of its members."""

    @property
    def backend(self) -> BackendInfo | None:
        """Where frames run now (None: nowhere, and the cameras are unavailable)."""

    @property
    def available(self) -> bool:
        """Whether its statistics are current (a server that went away: not)."""

    @property
    def device_info(self) -> dr.DeviceInfo:
        """The accelerator's own device."""

    @property
    def temperatures(self) -> Mapping[str, float | None] | None:
        """Members' temperatures as the backend reports them; None: read the local TPUs."""

    def backend_of(self, device: str) -> BackendInfo | None:
        """Where one member's frames run now."""

    def stats(self) -> AcceleratorCounters:
        """Each member's statistics, and their total."""

    async def run(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an image; a source's frames stay in order, a newer one replaces one waiting."""

    def async_add_listener(self, update: Callable[[], None]) -> Callable[[], None]:
        """Call `update` when a backend or the members change; return the remover."""

    async def async_check_tpus(self) -> list[str]:
        """The 30 s look after the backends; the members that joined."""

    async def async_remove_tpu(self, device: str) -> None:
        """Take a member out for good."""

    async def async_close(self) -> None:
        """Stop, joining every thread and closing every connection."""


class _Relay:
    """Brings executors' backend changes to the event loop, holding the accelerator weakly."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.target: weakref.ref[LocalAccelerator] | None = None

    def listener(self, device: str) -> Callable[[BackendInfo], None]:
        """The on_backend_change of `device`'s executor (called on its worker thread)."""

        def changed(info: BackendInfo) -> None:
            self._loop.call_soon_threadsafe(self._deliver, device, info)

        return changed

    @callback
    def _deliver(self, device: str, info: BackendInfo) -> None:
        """Tell the accelerator, unless it was closed or collected meanwhile."""
        accelerator = self.target() if self.target is not None else None
        if accelerator is not None:
            accelerator.async_backend_changed(device, info)


class LocalAccelerator:
    """An open accelerator: one executor per device, its model, and each backend's state."""

    # Statistics are read here, whenever asked: always current.
    available = True
    # Read by the coordinator from the TPUs listed on this machine.
    temperatures: Mapping[str, float | None] | None = None

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        device: str,
        opened: OpenPool,
        device_info: dr.DeviceInfo,
        device_id: str,
        model: Model,
        cpu_model: Model | None,
    ) -> None:
        """Take over an open pool, and hear its backend changes."""
        self.hass = hass
        self.entry_id = entry_id
        self.device = device  # the entry's setting: "cpu", "usb:0", "all" or a chosen set
        self.dispatcher = opened.dispatcher  # the engine's pool: for this module and tests only
        self.device_info = device_info
        self.device_id = device_id  # in the device registry: cameras and pooled TPUs link to it
        self.model = model
        self.cpu_model = cpu_model
        self._opened = opened
        self._listeners: list[Callable[[], None]] = []
        self._on_fallback: set[str] = set()
        # Weakly: the executors' threads must not keep a closed accelerator alive.
        opened.relay.target = weakref.ref(self)

    @property
    def pooled(self) -> bool:
        """Whether the entry names a pool, whose Edge TPUs are devices of their own."""
        return is_pool(self.device)

    @property
    def devices(self) -> tuple[str, ...]:
        """The device strings of the pool's members, oldest first."""
        return tuple(executor.name for executor in self.dispatcher.executors)

    @property
    def backend(self) -> BackendInfo | None:
        """Where frames run now: the first member's backend (None while none has one)."""
        return next(
            (info for e in self.dispatcher.executors if (info := e.backend_info) is not None),
            None,
        )

    def backend_of(self, device: str) -> BackendInfo | None:
        """Where one member's frames run now."""
        return self._executor(device).backend_info

    def stats(self) -> AcceleratorCounters:
        """Each member's statistics, and their total."""
        devices = {e.name: e.stats() for e in self.dispatcher.executors}
        return AcceleratorCounters(devices, total_stats(devices.values()))

    async def run(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - also bounds the wait in the queue
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an image on the least loaded member (a source's frames stay in order)."""
        return await self.dispatcher.run(source_id, image, timeout=timeout, on_demand=on_demand)

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> Callable[[], None]:
        """Call `update` when a backend changes or a member joins or leaves; return the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    def issue_id(self, device: str) -> str:
        """The repair issue of a member falling back to the CPU."""
        if not self.pooled:
            return ISSUE_TPU_FALLBACK.format(entry_id=self.entry_id)
        return ISSUE_POOL_TPU_FALLBACK.format(
            entry_id=self.entry_id, device=device.replace(":", "_")
        )

    @callback
    def async_backend_changed(self, device: str, info: BackendInfo) -> None:
        """Raise or clear a member's TPU repair, log the change once, and update the entities."""
        if device not in self.devices:
            return  # removed from the pool meanwhile
        if device != DEVICE_CPU and info.kind == "cpu":
            # The executor reopens on the CPU without a reason when the TPU is no longer listed.
            reason = info.fallback_reason or FallbackReason.NO_DEVICE
            if device not in self._on_fallback:
                # A warning, not the info of an unavailable device: nothing is unavailable (the
                # CPU runs the frames), but it is a degradation the user must act on.
                LOGGER.warning(
                    "Edge TPU %s is unavailable (%s: %s); running on the CPU",
                    device,
                    reason,
                    info.detail,
                )
            self._on_fallback.add(device)
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self.issue_id(device),
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="tpu_hung" if reason is FallbackReason.HUNG else "tpu_fallback",
                translation_placeholders={
                    "device": device,
                    "reason": str(reason),
                    "detail": info.detail,
                },
            )
        else:
            if device in self._on_fallback:
                LOGGER.info("Edge TPU %s is back; running on %s", device, info.label)
            self._on_fallback.discard(device)
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id(device))
        self._async_notify()

    async def async_check_tpus(self) -> list[str]:
        """Reopen members' Edge TPUs listed again, and let new ones join an "all" pool.

        Returns the device strings of the members that joined.
        """
        waiting = [d for d in self.devices if self._retriable(d)]
        if not waiting and self.device != DEVICE_ALL:
            return []
        listed = {tpu.device: tpu for tpu in await self.hass.async_add_executor_job(list_edge_tpus)}
        for device in waiting:
            if device in listed:
                await self._async_reopen(device)
        if self.device != DEVICE_ALL:
            return []
        taken = _taken_elsewhere(self.hass, self.entry_id)
        joining = [t for d, t in listed.items() if d not in self.devices and d not in taken]
        return [tpu.device for tpu in joining if await self._async_join(tpu)]

    async def async_remove_tpu(self, device: str) -> None:
        """Take a member out of the pool for good, closing its executor."""
        await self.hass.async_add_executor_job(self.dispatcher.remove, device)
        self._on_fallback.discard(device)
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id(device))
        self._async_notify()

    async def async_close(self) -> None:
        """Stop listening to the executors, then close them, joining their threads."""
        self._opened.relay.target = None
        await self.hass.async_add_executor_job(self.dispatcher.close)

    def _executor(self, device: str) -> Executor:
        """The member running on `device`."""
        return next(e for e in self.dispatcher.executors if e.name == device)

    def _retriable(self, device: str) -> bool:
        """Whether a member runs on the CPU instead of its TPU for a reason a reopen may end."""
        info = self.backend_of(device)
        if device == DEVICE_CPU or (info is not None and info.kind != "cpu"):
            return False
        return info is None or info.fallback_reason not in PERMANENT_FALLBACKS | SELF_RETRIED

    async def _async_reopen(self, device: str) -> None:
        """Reopen a member's backend, on its TPU now that it is listed."""
        executor = self._executor(device)
        try:
            # Swapping to the same model reopens the backend, on the TPU when it is listed.
            await executor.async_swap_model(executor.model, self.cpu_model)
        except CoralVisionError as err:
            LOGGER.debug("Edge TPU %s could not be reopened: %s", device, err)

    async def _async_join(self, tpu: EdgeTpu) -> bool:
        """Open an executor on a newly found Edge TPU and add it to the pool."""
        pool, relay = self._opened.pool, self._opened.relay
        try:
            executor = await self.hass.async_add_executor_job(
                lambda: open_member(self.model, self.cpu_model, tpu, pool, relay)
            )
            self.dispatcher.add(executor)
        except (CoralVisionError, OSError, ValueError) as err:
            LOGGER.warning("Edge TPU %s could not join the pool: %s", tpu.device, err)
            return False
        LOGGER.info("Edge TPU %s joined the pool", tpu.device)
        if (info := executor.backend_info) is not None:
            self.async_backend_changed(tpu.device, info)
        return True

    @callback
    def _async_notify(self) -> None:
        """Update what follows the backends."""
        for update in list(self._listeners):
            update()


def create_executor(model: Model, tpu: EdgeTpu | None, **options: Any) -> Executor:
    """Build an executor that looks for its Edge TPU again through this module's list."""
    from .engine.inference.executor import Executor  # noqa: PLC0415

    return Executor(model, tpu, list_tpus=lambda: list_edge_tpus(), **options)


def open_member(
    model: Model,
    cpu_model: Model | None,
    tpu: EdgeTpu | None,
    pool: ThreadPoolExecutor,
    relay: _Relay,
) -> Executor:
    """Open one member's executor, named by its device string (blocks: in an executor job)."""
    device = tpu.device if tpu is not None else DEVICE_CPU
    return create_executor(
        model,
        tpu,
        cpu_model=cpu_model,
        name=device,
        pool=pool,
        on_backend_change=relay.listener(device),
        **EXECUTOR_OPTIONS,
    )


@dataclass(frozen=True, slots=True)
class OpenPool:
    """The engine's side of an accelerator: its dispatcher, prepare pool and backend relay."""

    dispatcher: Dispatcher
    pool: ThreadPoolExecutor
    relay: _Relay


def open_pool(
    model: Model, cpu_model: Model | None, tpus: Iterable[EdgeTpu | None], relay: _Relay
) -> OpenPool:
    """Open every member on one shared prepare pool (blocks: in an executor job)."""
    from .engine.inference.dispatcher import Dispatcher  # noqa: PLC0415
    from .engine.inference.preparation import make_pool  # noqa: PLC0415

    pool = make_pool()
    executors: list[Executor] = []
    try:
        for tpu in tpus:
            executors.append(open_member(model, cpu_model, tpu, pool, relay))
    except BaseException:
        for executor in executors:
            executor.close()
        pool.shutdown(wait=True)
        raise
    return OpenPool(Dispatcher(executors, pool=pool), pool, relay)


def _taken_elsewhere(hass: HomeAssistant, entry_id: str) -> set[str]:
    """The Edge TPUs other entries name."""
    return {
        tpu
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.entry_id != entry_id
        for tpu in named_tpus(entry.data[CONF_DEVICE])
    }


def members_to_open(device: str, known: Iterable[str], taken: set[str]) -> list[EdgeTpu | None]:
    """The accelerators an entry's setting opens (blocks: lists the Edge TPUs).

    "all" opens the TPUs listed now and those the pool knew before (they fall back to the CPU
    until plugged in again, or until their device is deleted).
    """
    if device == DEVICE_CPU:
        return [None]
    if device != DEVICE_ALL:
        return [find_tpu(tpu) for tpu in named_tpus(device)]
    listed = {tpu.device: tpu for tpu in list_edge_tpus() if tpu.device not in taken}
    for tpu in known:
        if tpu not in listed and tpu not in taken:
            listed[tpu] = EdgeTpu.unlisted(tpu)
    if not listed:
        raise NoEdgeTpuError("no Edge TPU is plugged in")
    return list(listed.values())


def known_tpus(hass: HomeAssistant, entry_id: str) -> list[str]:
    """The Edge TPUs a pool had devices for when it last ran."""
    return [
        tpu
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry_id)
        for domain, key in device.identifiers
        if domain == DOMAIN and (tpu := tpu_of_identifier(entry_id, key)) is not None
    ]


async def async_open_accelerator(
    hass: HomeAssistant, entry: ConfigEntry[Any], model: Model, cpu_model: Model | None
) -> LocalAccelerator:
    """Open the executors (each on its own thread) and wire backend changes to the event loop."""
    device = entry.data[CONF_DEVICE]
    known = known_tpus(hass, entry.entry_id)
    taken = _taken_elsewhere(hass, entry.entry_id)
    tpus = await hass.async_add_executor_job(members_to_open, device, known, taken)
    opened = await hass.async_add_executor_job(open_pool, model, cpu_model, tpus, _Relay(hass.loop))
    # Before any platform: the cameras' devices are linked to this one.
    device_info = accelerator_device_info(entry, model.name)
    registered = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **device_info
    )
    accelerator = LocalAccelerator(
        hass, entry.entry_id, device, opened, device_info, registered.id, model, cpu_model
    )
    for member in accelerator.devices:
        if (info := accelerator.backend_of(member)) is not None:
            accelerator.async_backend_changed(member, info)
    return accelerator


def accelerator_device_info(entry: ConfigEntry[Any], model_name: str) -> dr.DeviceInfo:
    """The accelerator's device, which each camera's (and pooled TPU's) device is linked to."""
    device = entry.data[CONF_DEVICE]
    if device == DEVICE_CPU:
        hardware = "CPU"
    elif device == DEVICE_ALL:
        hardware = "All Edge TPUs"
    elif is_pool(device):
        hardware = f"Edge TPUs ({', '.join(named_tpus(device))})"
    else:
        hardware = f"Edge TPU ({device})"
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
    """Close the executors, joining their threads, off the event loop."""
    await accelerator.async_close()
