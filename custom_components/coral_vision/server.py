"""Frames run on a Coral Vision server: the Accelerator protocol over the server's native API.

Nothing runs here but HTTP: no TFLite runtime, no model file (this is how Home Assistant OS and
Container run Coral Vision). Each camera has one frame on the server at most; a newer frame
replaces one still waiting here, as the local executor does. The server going away makes the
cameras unavailable, logs one line and raises a repair issue; it is then asked again, less and
less often (bounded), with no frame sent meanwhile, and everything comes back when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later

from .accelerator import EXECUTOR_OPTIONS, AcceleratorCounters
from .const import CONF_MODEL, DEVICE_CPU, DOMAIN, LOGGER
from .engine.client import (
    ServerAuthError,
    ServerClient,
    ServerError,
    ServerModel,
    ServerStatus,
    ServerUnreachable,
    Statistics,
)
from .engine.errors import (
    CoralVisionError,
    ExecutorClosedError,
    FrameSupersededError,
    RequestTimeoutError,
)
from .engine.inference.delegate import BackendInfo, FallbackReason
from .engine.inference.stats import ExecutorStats, total_stats
from .engine.results import FrameResult
from .selection import DEVICE_SERVER

ISSUE_SERVER_UNREACHABLE = "server_unreachable_{entry_id}"
# Seconds between attempts while the server is away: soon at first, then every 30 s.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
RETRY_TIMEOUT = 5.0
# A frame not answered within this is lost, and the server taken for gone.
FRAME_TIMEOUT = 30.0
_KINDS = ("edgetpu-usb", "edgetpu-pci", "cpu")


class ServerModelMissingError(CoralVisionError):
    """The entry's model is neither loaded on the server nor in the server's catalog."""


def server_client(session: aiohttp.ClientSession, data: Mapping[str, Any]) -> ServerClient:
    """The client of a server entry's data."""
    return ServerClient(session, data[CONF_HOST], int(data[CONF_PORT]), data.get(CONF_API_KEY))


async def async_ensure_model(
    client: ServerClient, status: ServerStatus, model_id: str
) -> ServerStatus:
    """The status once the model runs on the server: a catalog model it lacks is deployed there."""
    if status.model(model_id) is not None:
        return status
    models = await client.models()
    if model_id not in {entry.id for entry in models.catalog}:
        raise ServerModelMissingError(f"{client.url} has no model {model_id!r}")
    LOGGER.info("Asking the Coral Vision server at %s to deploy %s", client.url, model_id)
    await client.deploy(model_id)
    status = await client.status()
    if status.model(model_id) is None:
        raise ServerModelMissingError(f"{client.url} did not load {model_id!r}")
    return status


def server_device_info(
    entry: ConfigEntry[Any], status: ServerStatus, model_name: str
) -> dr.DeviceInfo:
    """The server's device, which each camera's and each of its Edge TPUs' devices link to."""
    return dr.DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Coral Vision",
        model=f"Coral Vision server · {model_name}",
        sw_version=status.version,
        serial_number=status.id,
    )


class _Line:
    """One source's place: one frame on the server at most, and at most one waiting here."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: asyncio.Future[None] | None = None


class RemoteAccelerator:
    """A server's model and Edge TPUs, as Home Assistant's modules use an accelerator."""

    device = DEVICE_SERVER

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        client: ServerClient,
        status: ServerStatus,
        device_id: str,
    ) -> None:
        """Run `entry`'s model on the server `client` calls; `status` is its first answer."""
        self.hass = hass
        self.entry_id = entry.entry_id
        self.device_id = device_id
        self.client = client
        self.model_id: str = entry.data[CONF_MODEL]
        self._entry = entry
        self._status = status
        self._listeners: list[Callable[[], None]] = []
        self._lines: dict[str, _Line] = {}
        self._down = False
        self._auth_failed = False
        self._closed = False
        self._attempt = 0
        self._retry: CALLBACK_TYPE | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[FrameResult]] = set()  # requests on the server now

    # -- the Accelerator protocol ---------------------------------------------------------------

    @property
    def status(self) -> ServerStatus:
        """The server's last answer to /v1/status."""
        return self._status

    @property
    def model(self) -> ServerModel:
        """The entry's model as the server describes it."""
        model = self._status.model(self.model_id)
        assert model is not None  # checked at setup and on every status kept
        return model

    @property
    def pooled(self) -> bool:
        """A server with Edge TPUs shows each as a device of its own."""
        return any(device != DEVICE_CPU for device in self.devices)

    @property
    def devices(self) -> tuple[str, ...]:
        """The server's devices the model runs on."""
        return tuple(
            d.name for d in self._status.devices if d.backend_of(self.model_id) is not None
        )

    @property
    def available(self) -> bool:
        """Whether the server answers (and takes the key)."""
        return not (self._down or self._auth_failed or self._closed)

    @property
    def backend(self) -> BackendInfo | None:
        """The first device's backend; None while the server is away."""
        return next((info for d in self.devices if (info := self.backend_of(d)) is not None), None)

    @property
    def device_info(self) -> dr.DeviceInfo:
        """The server's device."""
        return server_device_info(self._entry, self._status, self.model.name)

    @property
    def temperatures(self) -> Mapping[str, float | None]:
        """Each device's temperature as the server read it."""
        return {d.name: d.temperature_c for d in self._status.devices}

    def backend_of(self, device: str) -> BackendInfo | None:
        """Where the model runs on one of the server's devices."""
        if not self.available:
            return None
        found = next((d for d in self._status.devices if d.name == device), None)
        backend = found.backend_of(self.model_id) if found is not None else None
        if backend is None or backend.backend not in _KINDS:
            return None
        try:
            reason = FallbackReason(backend.fallback_reason) if backend.fallback_reason else None
        except ValueError:
            reason = FallbackReason.NO_DEVICE
        return BackendInfo(
            kind=backend.backend,  # type: ignore[arg-type]  # checked against _KINDS
            device=None if device == DEVICE_CPU else device,
            runtime=f"Coral Vision server {self._status.version}",
            fallback_reason=reason,
            detail=backend.detail,
            model_name=self.model.name,
        )

    def stats(self) -> AcceleratorCounters:
        """Each device's counters for the model, and the model's total, as last reported."""
        devices: dict[str, ExecutorStats] = {}
        for device in self._status.devices:
            backend = device.backend_of(self.model_id)
            if backend is not None and backend.statistics is not None:
                devices[device.name] = _executor_stats(
                    backend.statistics, self.backend_of(device.name)
                )
        model = self._status.model(self.model_id)
        if model is not None and model.statistics is not None:
            total = _executor_stats(model.statistics, self.backend)
        else:
            total = total_stats(devices.values()) if devices else _executor_stats(None, None)
        return AcceleratorCounters(devices, total)

    async def run(
        self,
        source_id: str,
        image: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - also bounds the wait for the line
        on_demand: bool = False,
    ) -> FrameResult:
        """Run an image on the server; a source's newer frame replaces one still waiting.

        `on_demand` needs no places of its own here: the server keeps its clients fair.
        """
        self._check_open()
        # The caller's deadline ends the frame first: only the server's own silence for
        # FRAME_TIMEOUT takes it for gone.
        bound = FRAME_TIMEOUT if timeout is None else timeout + FRAME_TIMEOUT
        try:
            async with asyncio.timeout(timeout):
                return await self._async_run(source_id, image, bound)
        except TimeoutError as err:
            raise RequestTimeoutError(f"no result within {timeout} s") from err

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> Callable[[], None]:
        """Call `update` when the server goes away, comes back, or its devices change."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    async def async_check_tpus(self) -> list[str]:
        """Read the server's status (the coordinator's 30 s sample); the devices that appeared."""
        if not self.available:
            return []  # retried on its own schedule
        before = set(self.devices)
        try:
            status = await async_ensure_model(
                self.client, await self.client.status(), self.model_id
            )
        except ServerAuthError as err:
            self._async_auth_failed(err)
            return []
        except CoralVisionError as err:
            self._async_lost(err)
            return []
        self._status = status
        joined = [d for d in self.devices if d not in before]
        if joined or len(before) != len(self.devices):
            self._async_notify()
        return joined

    async def async_remove_tpu(self, device: str) -> None:
        """A server's Edge TPUs are its own: nothing to take out here."""

    async def async_close(self) -> None:
        """Stop retrying and fail the frames waiting here."""
        self._closed = True
        if self._retry is not None:
            self._retry()
            self._retry = None
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        for line in self._lines.values():
            if line.waiting is not None and not line.waiting.done():
                line.waiting.set_exception(ExecutorClosedError("the entry was unloaded"))
        for call in list(self._calls):
            call.cancel()  # their callers get ExecutorClosedError
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)

    # -- frames ---------------------------------------------------------------------------------

    async def _async_run(self, source_id: str, image: bytes, timeout: float) -> FrameResult:  # noqa: ASYNC109
        line = self._lines.setdefault(source_id, _Line())
        await self._async_take_turn(source_id, line)
        try:
            self._check_open()  # it may have gone while the frame waited
            infer = self.client.detect if self.model.task == "detection" else self.client.classify
            call = asyncio.ensure_future(
                infer(
                    self.model_id,
                    image,
                    source=source_id,
                    min_score=EXECUTOR_OPTIONS["threshold"],
                    top_k=EXECUTOR_OPTIONS["top_k"],
                    timeout=timeout,
                )
            )
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)
            try:
                return await call
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closed and task is not None and not task.cancelling():
                    raise ExecutorClosedError("the entry was unloaded") from None
                raise
        except ServerUnreachable as err:
            self._async_lost(err)
            raise
        except ServerAuthError as err:
            self._async_auth_failed(err)
            raise
        finally:
            self._pass_turn(source_id, line)

    async def _async_take_turn(self, source_id: str, line: _Line) -> None:
        """Wait for the source's frame on the server; FrameSupersededError if a newer one came."""
        if not line.busy:
            line.busy = True
            return
        if line.waiting is not None and not line.waiting.done():
            line.waiting.set_exception(FrameSupersededError("a newer frame replaced this one"))
        turn: asyncio.Future[None] = self.hass.loop.create_future()
        line.waiting = turn
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._pass_turn(source_id, line)  # handed the turn, then cancelled: pass it on
            raise
        finally:
            if line.waiting is turn:
                line.waiting = None

    def _pass_turn(self, source_id: str, line: _Line) -> None:
        """Hand the source's turn to the frame waiting, or free the line."""
        if line.waiting is not None and not line.waiting.done():
            line.waiting.set_result(None)
            line.waiting = None
            return
        line.busy = False
        if self._lines.get(source_id) is line:
            del self._lines[source_id]

    def _check_open(self) -> None:
        """Send nothing while the server is away, the key refused, or the entry unloaded."""
        if self._closed:
            raise ExecutorClosedError("the entry was unloaded")
        if self._down:
            raise ServerUnreachable(f"{self.client.url} does not answer")
        if self._auth_failed:
            raise ServerAuthError(f"{self.client.url} refuses the API key")

    # -- the server going away and coming back --------------------------------------------------

    @property
    def issue_id(self) -> str:
        """The repair issue of the server being away."""
        return ISSUE_SERVER_UNREACHABLE.format(entry_id=self.entry_id)

    @callback
    def _async_lost(self, err: CoralVisionError) -> None:
        """Note the server gone: one log line, a repair issue, then retries."""
        if self._down or self._closed:
            return
        self._down = True
        # Info, once (the quality scale's rule); the repair issue is what the user sees.
        LOGGER.info(
            "Coral Vision server at %s is unreachable (%s); its cameras are unavailable until "
            "it answers again",
            self.client.url,
            err,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="server_unreachable",
            translation_placeholders={"url": self.client.url, "error": str(err)},
        )
        self._attempt = 0
        self._schedule_retry()
        self._async_notify()

    @callback
    def _async_auth_failed(self, err: ServerAuthError) -> None:
        """The key was refused: ask the user for a new one (a reauthentication), not retry."""
        if self._auth_failed or self._closed:
            return
        self._auth_failed = True
        LOGGER.warning("Coral Vision server at %s: %s", self.client.url, err)
        self._entry.async_start_reauth(self.hass)
        self._async_notify()

    def _schedule_retry(self) -> None:
        delay = RETRY_DELAYS[min(self._attempt, len(RETRY_DELAYS) - 1)]
        self._retry = async_call_later(self.hass, delay, self._async_retry_due)

    @callback
    def _async_retry_due(self, _now: datetime) -> None:
        self._retry = None
        self._retrying = self._entry.async_create_background_task(
            self.hass, self._async_retry(), name="coral_vision server retry"
        )

    async def _async_retry(self) -> None:
        """Ask the server again; everything comes back when it answers."""
        try:
            status = await async_ensure_model(
                self.client, await self.client.status(timeout=RETRY_TIMEOUT), self.model_id
            )
        except ServerAuthError as err:
            self._down = False
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
            self._async_auth_failed(err)
            return
        except (ServerError, ServerModelMissingError) as err:
            LOGGER.debug("Coral Vision server at %s still away: %s", self.client.url, err)
            self._attempt += 1
            if not self._closed:
                self._schedule_retry()
            return
        finally:
            self._retrying = None
        self._status = status
        self._down = False
        LOGGER.info("Coral Vision server at %s answers again", self.client.url)
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        self._async_notify()

    @callback
    def _async_notify(self) -> None:
        for update in list(self._listeners):
            update()


def _executor_stats(stats: Statistics | None, backend: BackendInfo | None) -> ExecutorStats:
    """The server's counters in the shape the sensors read."""
    return ExecutorStats(
        frames_done=stats.frames_done if stats else 0,
        frames_dropped=stats.frames_dropped if stats else 0,
        frames_failed=stats.frames_failed if stats else 0,
        frames_rejected=stats.frames_rejected if stats else 0,
        frames_timed_out=stats.frames_timed_out if stats else 0,
        inference_p50_ms=stats.inference_ms_p50 if stats else None,
        inference_p95_ms=stats.inference_ms_p95 if stats else None,
        queue_depth=stats.queue_depth if stats else 0,
        queue_peak=stats.queue_depth if stats else 0,
        queue_limit=stats.queue_limit if stats else 0,
        backend=backend,
        backend_changes=0,
    )
