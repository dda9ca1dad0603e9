"""Diagnostics: the accelerator's model, backends and counters, and each camera's settings and state."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntry

from .accelerator import ModelInfo
from .const import CONF_LABELS_PATH, CONF_MIRROR, CONF_MODEL_PATH, DOMAIN, SUBENTRY_CAMERA
from .coordinator import AcceleratorStats
from .data import CoralVisionConfigEntry, CoralVisionData
from .engine.client import ServerModel
from .engine.inference.stats import ExecutorStats
from .processor import CameraProcessor
from .server import RemoteAccelerator

if TYPE_CHECKING:
    from .engine.models.model import Model

# Paths on the user's disk say more about them than about the problem; a key is a secret.
TO_REDACT = {CONF_MODEL_PATH, CONF_LABELS_PATH, CONF_MIRROR, CONF_API_KEY, "path", "snapshot"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: CoralVisionConfigEntry
) -> dict[str, Any]:
    """The whole accelerator and every camera on it."""
    return async_redact_data(
        {
            **_entry(entry),
            "accelerator": _accelerator(entry),
            "cameras": {
                subentry_id: _camera(entry, subentry_id)
                for subentry_id, subentry in entry.subentries.items()
                if subentry.subentry_type == SUBENTRY_CAMERA
            },
        },
        TO_REDACT,
    )


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: CoralVisionConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """A camera device's settings and state, or the accelerator device's engine state."""
    keys = {key for domain, key in device.identifiers if domain == DOMAIN}
    cameras = {key: _camera(entry, key) for key in keys if key in entry.subentries}
    data: dict[str, Any] = {**_entry(entry)}
    if cameras:
        data["cameras"] = cameras
    else:
        data["accelerator"] = _accelerator(entry)
    return async_redact_data(data, TO_REDACT)


def _loaded(entry: CoralVisionConfigEntry) -> CoralVisionData | None:
    """The loaded entry's runtime data; None when the entry is not loaded."""
    return entry.runtime_data if entry.state is ConfigEntryState.LOADED else None


def _entry(entry: CoralVisionConfigEntry) -> dict[str, Any]:
    """The entry as configured."""
    return {
        "entry": {
            "title": entry.title,
            "state": entry.state.value,
            "data": dict(entry.data),
            "options": dict(entry.options),
        }
    }


@callback
def _accelerator(entry: CoralVisionConfigEntry) -> dict[str, Any] | None:
    """The model, where it runs, the counters in total, and each member of the pool."""
    if (loaded := _loaded(entry)) is None:
        return None
    accelerator = loaded.accelerator
    counters = accelerator.stats()
    sampled = loaded.coordinator.data
    backend = accelerator.backend
    return {
        "device": accelerator.device,
        **(_server(accelerator) if isinstance(accelerator, RemoteAccelerator) else {}),
        "model": _model(accelerator.model),
        "backend": asdict(backend) if backend is not None else None,
        "executor": _counters(counters.total),
        "frames_per_minute": sampled.total.frames_per_minute if sampled else None,
        "temperature_c": sampled.temperature_c if sampled else None,
        "pool": {
            device: {
                "backend": asdict(stats.backend) if stats.backend is not None else None,
                "executor": _counters(stats),
                "frames_per_minute": _sampled(sampled, device, "frames_per_minute"),
                "temperature_c": _sampled(sampled, device, "temperature_c"),
            }
            for device, stats in counters.devices.items()
        },
    }


def _model(model: ModelInfo) -> dict[str, Any]:
    """What the model is: read here from its file, or as its server describes it."""
    if isinstance(model, ServerModel):
        return {
            "name": model.name,
            "id": model.id,
            "origin": model.origin,
            "task": model.task,
            "input_size": list(model.input_size),
            "variant": model.variant,
            "edgetpu": model.edgetpu,
            "labels": len(model.labels),
        }
    local = cast("Model", model)
    return {
        "name": local.name,
        "path": str(local.path) if local.path else None,
        "task": local.task,
        "input_size": [local.input.width, local.input.height],
        "input_type": str(local.input.dtype),
        "edgetpu": local.edgetpu,
        "labels": len(local.labels),
        "num_classes": local.num_classes,
    }


def _server(accelerator: RemoteAccelerator) -> dict[str, Any]:
    """The server frames run on: whether it answers, and its devices as it last reported them."""
    status = accelerator.status
    return {
        "server": {
            "id": status.id,
            "version": status.version,
            "api": status.api,
            "reachable": accelerator.available,
            "devices": [
                {"name": d.name, "kind": d.kind, "temperature_c": d.temperature_c}
                for d in status.devices
            ],
            "models": [m.id for m in status.models],
            "failed_models": dict(status.failed_models),
        }
    }


def _counters(stats: ExecutorStats) -> dict[str, Any]:
    """An executor's counters, without its backend (shown on its own)."""
    counters = asdict(stats)
    counters.pop("backend")
    return counters


def _sampled(sampled: AcceleratorStats | None, device: str, key: str) -> float | None:
    """A member's value from the latest sample (None before its first one)."""
    member = sampled.devices.get(device) if sampled is not None else None
    return getattr(member, key) if member is not None else None


@callback
def _camera(entry: CoralVisionConfigEntry, subentry_id: str) -> dict[str, Any]:
    """One camera's settings and, when it runs, what its last frame showed."""
    subentry = entry.subentries[subentry_id]
    data: dict[str, Any] = {"title": subentry.title, "settings": dict(subentry.data)}
    loaded = _loaded(entry)
    processor = loaded.processors.get(subentry_id) if loaded else None
    data["state"] = _state(processor) if processor is not None else None
    return data


def _state(processor: CameraProcessor) -> dict[str, Any]:
    """What the camera's entities show."""
    state = processor.state
    return {
        "image_processing_entity": processor.image_entity_id,
        "available": processor.available,
        "camera_ok": processor.camera_ok,
        "task": state.task,
        "frame_time": state.frame_time.isoformat() if state.frame_time else None,
        "process_time_ms": state.process_time_ms,
        "last_detection": state.last_detection.isoformat() if state.last_detection else None,
        "active_labels": sorted(state.active_labels),
        "top_class": state.top_class,
        "matches": [
            {"label": d.label, "score": round(d.score, 3), "box": d.box.as_list()}
            for d in state.matches
        ],
        "snapshot": state.snapshot,
        "bursts": {
            "bursting": state.bursting,
            "started": processor.bursts.started,
            "frames_in_current_or_last": processor.bursts.current,
            "mean_frames": processor.bursts.mean_frames,
        },
    }
