"""Coral Vision: TensorFlow Lite detection and classification on Coral Edge TPUs, in Home Assistant."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
)
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_component import DATA_INSTANCES
from homeassistant.helpers.typing import ConfigType

from .accelerator import (
    Accelerator,
    NoEdgeTpuError,
    async_close_accelerator,
    async_open_accelerator,
    listed_tpu,
    tpu_of_identifier,
)
from .const import CONF_DEVICE, CONF_MIRROR, CONF_MODEL, DOMAIN, SUBENTRY_CAMERA
from .coordinator import AcceleratorCoordinator
from .data import CoralVisionConfigEntry, CoralVisionData
from .engine.client import ServerAuthError, ServerClient, ServerRequestError, ServerStatus
from .engine.errors import CoralVisionError, DownloadError
from .models import async_load_models
from .processor import CameraProcessor, CameraSettings
from .runtime_support import async_ensure_runtime, async_runtime_installable
from .selection import DEVICE_ALL, is_pool, is_server, named_tpus
from .server import (
    RemoteAccelerator,
    ServerModelMissingError,
    async_ensure_model,
    server_client,
    server_device_info,
)
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
IMAGE_PROCESSING = "image_processing"  # added through its component: it has no entry setup
PLATFORMS = [Platform.BINARY_SENSOR, Platform.EVENT, Platform.IMAGE, Platform.SENSOR]

type Cameras = dict[str, tuple[str, str, dict[str, Any]]]  # subentry id: type, title, data


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> bool:
    """Set up one accelerator (local, or a Coral Vision server) and the cameras fed to it."""
    accelerator: Accelerator
    if is_server(entry.data):
        accelerator = await _async_open_server(hass, entry)
    else:
        accelerator = await _async_open_local(hass, entry)
    cameras = _cameras(entry)  # what the processors are built from, before any await
    try:
        await _async_start(hass, entry, accelerator)
    except BaseException:
        await async_close_accelerator(hass, accelerator)
        raise
    entry.async_on_unload(_async_reload_on_camera_change(hass, entry, cameras))
    entry.async_on_unload(_async_close_on_stop(hass, entry))
    return True


async def _async_open_local(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> Accelerator:
    """Load the entry's model and open its Edge TPUs (or the CPU) in this process."""
    _async_remove_dropped_tpus(hass, entry)
    if await async_ensure_runtime(hass) is None:
        if not await async_runtime_installable(hass):
            # musl (HA OS, Container, Supervised): retrying cannot help; the repair says to use
            # the Coral Vision server.
            raise ConfigEntryError(translation_domain=DOMAIN, translation_key="runtime_unsupported")
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="runtime_missing")
    try:
        model, cpu_model = await async_load_models(
            hass, entry.data, mirror=entry.options.get(CONF_MIRROR)
        )
        accelerator = await async_open_accelerator(hass, entry, model, cpu_model)
    except NoEdgeTpuError as err:
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="no_edge_tpu") from err
    except DownloadError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="download_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    except (CoralVisionError, OSError) as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="model_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    return accelerator


@callback
def _async_remove_dropped_tpus(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> None:
    """Remove the devices of Edge TPUs the entry no longer names (a Reconfigure dropped them).

    An "all" pool keeps its TPUs' devices: one gone for good is removed by the user.
    """
    setting = entry.data[CONF_DEVICE]
    if setting == DEVICE_ALL:
        return
    named = set(named_tpus(setting)) if is_pool(setting) else set()
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        tpus = {
            tpu
            for domain, key in device.identifiers
            if domain == DOMAIN and (tpu := tpu_of_identifier(entry.entry_id, key)) is not None
        }
        if tpus and not tpus & named:
            registry.async_remove_device(device.id)


async def _async_open_server(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> Accelerator:
    """Reach the entry's server and make sure it runs the entry's model; no runtime needed here."""
    client = server_client(async_get_clientsession(hass), entry.data)
    status = await _async_server_status(client, entry)
    model = status.model(entry.data[CONF_MODEL])
    assert model is not None  # async_ensure_model made sure
    # Before any platform: the cameras' and the server's Edge TPUs' devices link to this one.
    registered = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **server_device_info(entry, status, model.name)
    )
    return RemoteAccelerator(hass, entry, client, status, registered.id)


async def _async_server_status(client: ServerClient, entry: CoralVisionConfigEntry) -> ServerStatus:
    """The server's status once it runs the entry's model; its failures as setup errors."""
    model_id = entry.data[CONF_MODEL]
    try:
        status = await client.status()
        if entry.unique_id is not None and status.id != entry.unique_id:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="server_mismatch",
                translation_placeholders={"url": client.url, "found": status.id},
            )
        return await async_ensure_model(client, status, model_id)
    except ServerAuthError as err:
        # Home Assistant starts a reauthentication flow: retrying cannot fix a key.
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="server_auth_failed",
            translation_placeholders={"url": client.url},
        ) from err
    except (ServerRequestError, ServerModelMissingError) as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="server_model_failed",
            translation_placeholders={"model": model_id, "error": str(err)},
        ) from err
    except CoralVisionError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="server_unreachable",
            translation_placeholders={"url": client.url, "error": str(err)},
        ) from err


def _cameras(entry: CoralVisionConfigEntry) -> Cameras:
    """What the loaded entities are built from: each subentry's type, title and data, copied."""
    return {
        subentry_id: (subentry.subentry_type, subentry.title, dict(subentry.data))
        for subentry_id, subentry in entry.subentries.items()
    }


@callback
def _async_reload_on_camera_change(
    hass: HomeAssistant,
    entry: CoralVisionConfigEntry,
    loaded: Cameras,
) -> CALLBACK_TYPE:
    """Reload when a camera is added, edited or removed since `loaded`; return the remover."""
    # Not an update listener: Home Assistant's reconfigure and options flows reload the entry
    # themselves, and from 2026.12 refuse to while it has one. Camera subentry flows only save.
    scheduled: list[bool] = []

    @callback
    def _async_changed(change: ConfigEntryChange, changed: ConfigEntry) -> None:
        # Once: the reload's own state changes are updates too, until it unloads this listener.
        if (
            not scheduled
            and change is ConfigEntryChange.UPDATED
            and changed.entry_id == entry.entry_id
            and _cameras(entry) != loaded
        ):
            scheduled.append(True)
            hass.config_entries.async_schedule_reload(entry.entry_id)

    return async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, _async_changed)


@callback
def _async_close_on_stop(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> CALLBACK_TYPE:
    """Close the executor when Home Assistant stops: entries are not unloaded then."""
    listening: list[CALLBACK_TYPE] = []

    async def _async_close(_event: Event) -> None:
        listening.clear()
        for processor in entry.runtime_data.processors.values():
            processor.async_stop()
        await async_close_accelerator(hass, entry.runtime_data.accelerator)

    listening.append(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_close))

    @callback
    def _async_remove() -> None:
        # A listener that already fired is gone: removing it again would log an error.
        if listening:
            listening.pop()()

    return _async_remove


async def _async_start(
    hass: HomeAssistant, entry: CoralVisionConfigEntry, accelerator: Accelerator
) -> None:
    """Create the cameras' processors, the statistics and the entities, then start scanning."""
    processors = {
        subentry.subentry_id: CameraProcessor(
            hass,
            accelerator,
            subentry.subentry_id,
            subentry.title,
            CameraSettings.from_data(subentry.data),
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CAMERA
    }
    coordinator = AcceleratorCoordinator(hass, entry, accelerator)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = CoralVisionData(accelerator, coordinator, processors)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await hass.data[DATA_INSTANCES][IMAGE_PROCESSING].async_setup_entry(entry)
    for processor in processors.values():
        processor.async_start()
        entry.async_on_unload(processor.async_stop)


async def async_unload_entry(hass: HomeAssistant, entry: CoralVisionConfigEntry) -> bool:
    """Unload the entities, then close the executor (its thread joins)."""
    for processor in entry.runtime_data.processors.values():
        processor.async_stop()
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    component = hass.data[DATA_INSTANCES][IMAGE_PROCESSING]
    unloaded &= bool(await component.async_unload_entry(entry))
    if unloaded:
        await async_close_accelerator(hass, entry.runtime_data.accelerator)
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: CoralVisionConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let an "all Edge TPUs" pool or a server forget an Edge TPU gone for good.

    A pool's TPU only while it is not plugged in, a server's only once the server no longer
    lists it. The pool's, the server's and the cameras' devices stay (cameras go with their
    subentry); a chosen set changes through Reconfigure; the last TPU of a running pool stays,
    or nothing would run.
    """
    tpu = next(
        (
            found
            for domain, key in device.identifiers
            if domain == DOMAIN and (found := tpu_of_identifier(entry.entry_id, key)) is not None
        ),
        None,
    )
    if tpu is None:
        return False
    if is_server(entry.data):
        return await _async_server_dropped(hass, entry, tpu)
    if entry.data[CONF_DEVICE] != DEVICE_ALL:
        return False
    if await hass.async_add_executor_job(listed_tpu, tpu) is not None:
        return False
    if entry.state is ConfigEntryState.LOADED and tpu in entry.runtime_data.accelerator.devices:
        accelerator = entry.runtime_data.accelerator
        if len(accelerator.devices) == 1:
            return False
        await accelerator.async_remove_tpu(tpu)
    return True


async def _async_server_dropped(
    hass: HomeAssistant, entry: CoralVisionConfigEntry, tpu: str
) -> bool:
    """Whether the entry's server, asked now, no longer lists the Edge TPU; unsure: no."""
    client = server_client(async_get_clientsession(hass), entry.data)
    try:
        status = await client.status()
    except CoralVisionError:
        return False
    # Another server at the entry's address knows nothing of this one's TPUs.
    return status.id == entry.unique_id and all(d.name != tpu for d in status.devices)
