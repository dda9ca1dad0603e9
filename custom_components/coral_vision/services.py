"""Actions: detect and classify (a camera or an image file), and the models stored here or on servers."""

from __future__ import annotations

import contextlib
import errno
import stat
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.util.json import JsonValueType

from .accelerator import Accelerator
from .const import CONF_MODEL, DOMAIN
from .data import CoralVisionConfigEntry
from .engine.client import ServerModels
from .engine.errors import CoralVisionError, ImageError, QueueFullError
from .engine.models.catalog import load_catalog
from .engine.models.store import list_models, remove_unused
from .engine.results import FrameResult, Task
from .engine.vision.image_guard import MAX_IMAGE_BYTES
from .models import model_references, models_dir
from .server import RemoteAccelerator

SERVICE_DETECT = "detect"
SERVICE_CLASSIFY = "classify"
SERVICE_LIST_MODELS = "list_models"
SERVICE_REMOVE_UNUSED_MODELS = "remove_unused_models"
ATTR_FILE = "file"
ATTR_CONFIG_ENTRY = "config_entry_id"
ATTR_MIN_SCORE = "min_score"
ATTR_TOP_K = "top_k"

ACTION_TIMEOUT = 30.0


def _schema(min_score: float, top_k: int) -> vol.Schema:
    """An action's fields; the defaults match services.yaml."""
    return vol.Schema(
        {
            vol.Exclusive(CONF_ENTITY_ID, "target"): cv.entity_domain("camera"),
            vol.Exclusive(ATTR_FILE, "target"): cv.string,
            vol.Optional(ATTR_CONFIG_ENTRY): cv.string,
            vol.Optional(ATTR_MIN_SCORE, default=min_score): vol.All(
                vol.Coerce(float), vol.Range(0, 1)
            ),
            vol.Optional(ATTR_TOP_K, default=top_k): vol.All(vol.Coerce(int), vol.Range(1, 100)),
        }
    )


# Detection scores of a real object sit well above a classifier's: a top class at 0.3 is a
# confident answer among a thousand classes.
SCHEMAS: dict[Task, vol.Schema] = {
    "detection": _schema(min_score=0.5, top_k=10),
    "classification": _schema(min_score=0.1, top_k=5),
}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions."""
    tasks: tuple[tuple[str, Task], ...] = (
        (SERVICE_DETECT, "detection"),
        (SERVICE_CLASSIFY, "classification"),
    )
    for name, task in tasks:

        async def handle(call: ServiceCall, task: Task = task) -> ServiceResponse:
            return await _async_run(hass, call, task)

        hass.services.async_register(
            DOMAIN, name, handle, schema=SCHEMAS[task], supports_response=SupportsResponse.ONLY
        )
    hass.services.async_register(
        DOMAIN,
        SERVICE_LIST_MODELS,
        partial(_async_list_models, hass),
        schema=vol.Schema({}),
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REMOVE_UNUSED_MODELS,
        partial(_async_remove_unused_models, hass),
        schema=vol.Schema({}),
        supports_response=SupportsResponse.OPTIONAL,
    )


async def _async_list_models(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """The models folder's files (size, variant, source, hash, users), and each server's models."""
    folder = models_dir(hass)
    async with _models_folder(folder):
        references = model_references(hass, await hass.async_add_executor_job(load_catalog))
        stored = await hass.async_add_executor_job(list_models, folder, references)
    servers: list[JsonValueType] = []
    for remote in _servers(hass):
        listed: dict[str, Any] = {"server": remote.status.id, "url": remote.client.url}
        try:
            models = await remote.client.models()
        except CoralVisionError as err:
            servers.append({**listed, "error": str(err)})
            continue
        users = _server_users(hass, remote.status.id)
        servers.append({**listed, **_server_listing(models, users)})
    listing: dict[str, JsonValueType] = {
        "folder": str(folder),
        "models": [m.as_dict() for m in stored],
    }
    return {**listing, "servers": servers} if servers else listing


async def _async_remove_unused_models(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Delete model files and server models no entry uses; return what went (admins only)."""
    await _async_check_admin(hass, call)
    folder = models_dir(hass)
    async with _models_folder(folder):
        references = model_references(hass, await hass.async_add_executor_job(load_catalog))
        removed = await hass.async_add_executor_job(remove_unused, folder, references)
    servers: dict[str, JsonValueType] = {}
    for remote in _servers(hass):
        try:
            servers[remote.status.id] = list[JsonValueType](
                await _async_remove_on_server(hass, remote)
            )
        except CoralVisionError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="server_models_failed",
                translation_placeholders={"url": remote.client.url, "error": str(err)},
            ) from err
    response: dict[str, JsonValueType] = {"removed": list[JsonValueType](removed)}
    return {**response, "servers": servers} if servers else response


@contextlib.asynccontextmanager
async def _models_folder(folder: Path) -> AsyncIterator[None]:
    """Turn the models folder's failures (the disk, the catalog) into a translated error."""
    try:
        yield
    except (OSError, CoralVisionError) as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="models_folder_failed",
            translation_placeholders={"folder": str(folder), "error": _describe(err)},
        ) from err


def _servers(hass: HomeAssistant) -> list[RemoteAccelerator]:
    """Each server a loaded entry runs on, once."""
    found: dict[str, RemoteAccelerator] = {}
    for entry in _loaded_entries(hass):
        accelerator = entry.runtime_data.accelerator
        if isinstance(accelerator, RemoteAccelerator):
            found.setdefault(accelerator.status.id, accelerator)
    return list(found.values())


def _server_users(hass: HomeAssistant, server_id: str) -> dict[str, list[str]]:
    """Which entries (loaded or not) run each of a server's models: titles by model id."""
    users: dict[str, list[str]] = {}
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.unique_id == server_id and entry.data.get(CONF_MODEL):
            users.setdefault(entry.data[CONF_MODEL], []).append(entry.title)
    return users


def _server_listing(models: ServerModels, users: dict[str, list[str]]) -> dict[str, Any]:
    """A server's loaded models with the entries using each, its failed ones, its stored files."""
    return {
        "models": [
            {
                "id": m.id,
                "name": m.name,
                "origin": m.origin,
                "task": m.task,
                "variant": m.variant,
                "used_by": users.get(m.id, []),
                "in_use": m.id in users,
            }
            for m in models.loaded
        ],
        "failed": dict(models.failed),
        "stored": [
            {"path": f.path, "size": f.size, "used_by": list(f.used_by)} for f in models.stored
        ],
    }


async def _async_remove_on_server(hass: HomeAssistant, remote: RemoteAccelerator) -> list[str]:
    """Remove a server's models that no entry uses; the ids removed.

    Models of the server's own folder stay, as does the detection model its DeepStack endpoint
    serves to other clients (the first one loaded).
    """
    models = await remote.client.models()
    users = _server_users(hass, remote.status.id)
    detector = next((m.id for m in models.loaded if m.task == "detection"), None)
    unused = [
        m.id for m in models.loaded if m.id not in users and m.origin != "file" and m.id != detector
    ]
    for model_id in unused:
        await remote.client.remove(model_id)
    return unused


async def _async_check_admin(hass: HomeAssistant, call: ServiceCall) -> None:
    """Refuse a call from a user who is not an administrator; a system call has no user."""
    # async_register_admin_service does this check, but on Home Assistant 2025.4 it takes no
    # supports_response (and drops the response), so the handler checks the caller itself.
    if not call.context.user_id:
        return
    user = await hass.auth.async_get_user(call.context.user_id)
    if user is None:
        raise UnknownUser(context=call.context)
    if not user.is_admin:
        raise Unauthorized(context=call.context)


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    """A translated validation error."""
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _failure(key: str, **placeholders: str) -> HomeAssistantError:
    """A translated failure at run time (not the caller's input)."""
    return HomeAssistantError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _loaded_entries(hass: HomeAssistant) -> list[CoralVisionConfigEntry]:
    """The loaded entries."""
    return [
        e for e in hass.config_entries.async_entries(DOMAIN) if e.state is ConfigEntryState.LOADED
    ]


def _accelerator(hass: HomeAssistant, entry_id: str | None, task: Task) -> Accelerator:
    """The chosen loaded accelerator, or the first whose model does the task."""
    entries = _loaded_entries(hass)
    if entry_id is not None:
        chosen = [e for e in entries if e.entry_id == entry_id]
        if not chosen:
            raise _error("accelerator_not_loaded", entry_id=entry_id)
        accelerator = chosen[0].runtime_data.accelerator
        if accelerator.model.task != task:
            raise _error("wrong_task", task=task, model=accelerator.model.name)
        return accelerator
    for entry in entries:
        if entry.runtime_data.accelerator.model.task == task:
            return entry.runtime_data.accelerator
    raise _error("no_accelerator", task=task)


async def _async_image(hass: HomeAssistant, call: ServiceCall) -> tuple[str, bytes]:
    """The image the call names: a camera's frame or an allowed file."""
    if entity_id := call.data.get(CONF_ENTITY_ID):
        # A dependency, loaded before this integration: importing it here (a lookup) keeps
        # importing the package free of the numpy the camera component brings.
        from homeassistant.components import camera  # noqa: PLC0415

        try:
            image = await camera.async_get_image(hass, entity_id, timeout=10)
        except Exception as err:  # a camera integration may raise anything: still "no image"
            # The camera named exists (the schema checked it): not giving an image is a failure
            # at run time, not bad input.
            raise _failure("camera_unavailable", entity_id=entity_id, error=_describe(err)) from err
        return entity_id, image.content
    return await _async_file(hass, call.data[ATTR_FILE])


async def _async_file(hass: HomeAssistant, name: str) -> tuple[str, bytes]:
    """An allowed image file's path and bytes, its size checked before it is read."""
    path = Path(name)
    if not path.is_absolute():
        path = Path(hass.config.path(name))
    shown = _shorten(str(path))
    try:
        # is_allowed_path stats and resolves the path: blocking I/O, and it raises on a name
        # the OS refuses (too long, a NUL byte): bad input.
        allowed = await hass.async_add_executor_job(hass.config.is_allowed_path, str(path))
    except (OSError, ValueError) as err:
        raise _error("file_unreadable", file=shown, error=_describe(err)) from err
    if not allowed:
        raise _error("file_not_allowed", file=shown)
    try:
        data = await hass.async_add_executor_job(_read_image_file, path)
    except (OSError, ValueError) as err:
        # A name the OS refuses is bad input; an allowed file the disk fails to give is a
        # failure at run time.
        bad_name = not isinstance(err, OSError) or err.errno == errno.ENAMETOOLONG
        make = _error if bad_name else _failure
        raise make("file_unreadable", file=shown, error=_describe(err)) from err
    if data is None:
        raise _error("file_missing", file=shown)
    return str(path), data


def _read_image_file(path: Path) -> bytes | None:
    """A regular file's bytes (None when there is none), refused above MAX_IMAGE_BYTES unread."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if info.st_size > MAX_IMAGE_BYTES:
        raise _too_large(path)
    with path.open("rb") as file:
        # The file may have grown since the stat: never read more than the cap.
        data = file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(path)
    return data


def _too_large(path: Path) -> ServiceValidationError:
    """The error for a file above the image size cap."""
    return _error(
        "file_too_large", file=_shorten(str(path)), limit=f"{MAX_IMAGE_BYTES // 2**20} MiB"
    )


def _shorten(text: str, limit: int = 200) -> str:
    """A path or message cut to a readable length for an error message."""
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"


def _describe(err: Exception) -> str:
    """An exception as a short message, its type named when it has no text."""
    return _shorten(str(err) or type(err).__name__)


async def _async_run(hass: HomeAssistant, call: ServiceCall, task: Task) -> ServiceResponse:
    """Run one image and return the results above the minimum score."""
    if not call.data.get(CONF_ENTITY_ID) and not call.data.get(ATTR_FILE):
        raise _error("no_target")
    accelerator = _accelerator(hass, call.data.get(ATTR_CONFIG_ENTRY), task)
    source, image = await _async_image(hass, call)
    try:
        # A source of its own: an action's frame never supersedes a camera's (or another call's);
        # on demand: actions have a few places of their own and never take a camera's.
        result = await accelerator.run(
            f"action:{uuid.uuid4().hex}", image, timeout=ACTION_TIMEOUT, on_demand=True
        )
    except ImageError as err:
        raise _error("image_invalid", source=source, error=str(err)) from err
    except QueueFullError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="busy",
            translation_placeholders={"device": accelerator.device},
        ) from err
    except CoralVisionError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="inference_failed",
            translation_placeholders={"error": str(err)},
        ) from err
    return _response(source, result, call.data[ATTR_MIN_SCORE], call.data[ATTR_TOP_K])


def _response(source: str, result: FrameResult, min_score: float, top_k: int) -> dict[str, Any]:
    """The action's response data."""
    response: dict[str, Any] = {
        "source": source,
        "image_size": list(result.image_size),
        "backend": result.backend,
        "inference_ms": round(result.inference_ms, 2),
    }
    if result.task == "detection":
        response["detections"] = [
            {"label": d.label, "id": d.id, "score": round(d.score, 3), "box": d.box.as_list()}
            for d in result.detections
            if d.score >= min_score
        ][:top_k]
    else:
        response["classes"] = [
            {"label": c.label, "id": c.id, "score": round(c.score, 3)}
            for c in result.classes
            if c.score >= min_score
        ][:top_k]
    return response
