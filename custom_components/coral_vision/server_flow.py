"""What the config flow asks of a Coral Vision server: its status, its models, a test frame.

The flow's steps live in config_flow.py; these are the plain parts they share: the connection
form, the server's failures as form errors, what the model step offers and shows, and the one
frame a model runs before an entry is saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from .const import MODEL_CUSTOM
from .engine.client import (
    ServerClient,
    ServerModel,
    ServerModels,
    ServerStatus,
)
from .engine.inference.trial import blank_frame
from .engine.results import FrameResult
from .engine.server.options import DEFAULT_PORT

# Where a server listens unless told otherwise.
DEFAULT_SERVER_PORT = DEFAULT_PORT
# The test frame's source on the server: kept apart from every camera's frames.
TEST_SOURCE = "coral_vision_config_flow"
# A custom model's name on the server: the server's own rule for model ids.
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
_NAME_LENGTH = 64


def connection_schema(port: int = DEFAULT_SERVER_PORT) -> vol.Schema:
    """Host, port and the optional API key (hidden as it is typed)."""
    return vol.Schema(
        {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=port): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=1, max=65535, step=1, mode=selector.NumberSelectorMode.BOX
                )
            ),
            vol.Optional(CONF_API_KEY): key_selector(),
        }
    )


def key_selector() -> selector.TextSelector:
    """A password box."""
    return selector.TextSelector(
        selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
    )


def connection(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's connection fields from a form: an empty key is no key."""
    return {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_API_KEY: (user_input.get(CONF_API_KEY) or "").strip() or None,
    }


def server_title(host: str) -> str:
    """The entry title for a server found at `host`."""
    return f"Coral Vision server {host}"


def server_placeholders(client: ServerClient, status: ServerStatus) -> dict[str, str]:
    """The server's address, version, devices and loaded models, for a step's description."""
    devices = [
        f"- {d.label}" + (f" ({d.temperature_c:.0f} °C)" if d.temperature_c is not None else "")
        for d in status.devices
    ]
    models = [
        f"- {m.name} (`{m.id}`): {m.task}, {len(m.labels.names())} labels, "
        f"{'Edge TPU' if m.edgetpu else 'CPU'} build"
        for m in status.models
    ]
    return {
        "url": client.url,
        "version": status.version,
        "devices": "\n".join(devices) or "- none",
        "models": "\n".join(models) or "- none",
    }


def model_options(status: ServerStatus, models: ServerModels) -> list[selector.SelectOptionDict]:
    """The server's loaded models, then the catalog models it can fetch, then your own file."""
    options = [
        selector.SelectOptionDict(value=m.id, label=f"{m.name} (on the server)")
        for m in status.models
    ]
    options += [
        selector.SelectOptionDict(
            value=c.id,
            label=f"{c.name} (the server downloads its {_variant(c.variant_here)} build)",
        )
        for c in models.catalog
        if status.model(c.id) is None
    ]
    options.append(
        selector.SelectOptionDict(
            value=MODEL_CUSTOM, label="Your own model (file or link, sent to the server)"
        )
    )
    return options


def _variant(variant: str) -> str:
    return "Edge TPU" if variant == "edgetpu" else "CPU"


def upload_name(model_path: str) -> str:
    """The name a custom model gets on the server: its file name, as the server's ids allow."""
    name = _NAME_CHARACTERS.sub("_", Path(model_path).stem).strip("_-")[:_NAME_LENGTH]
    # Never the model step's own "custom" choice, nor empty.
    return name if name and name != MODEL_CUSTOM else f"{MODEL_CUSTOM}_{name or 'model'}"


def read_upload(model_path: str, labels_path: str) -> tuple[bytes, bytes | None]:
    """A checked model's bytes and its labels file's (blocking)."""
    labels = Path(labels_path).read_bytes() if labels_path else None
    return Path(model_path).read_bytes(), labels


async def async_test_frame(client: ServerClient, model: ServerModel, image: bytes) -> FrameResult:
    """Run one frame of `model` on the server (raises ServerError)."""
    call = client.detect if model.task == "detection" else client.classify
    return await call(model.id, image, source=TEST_SOURCE)


def trial_image() -> bytes:
    """The engine's generated test JPEG (blocking: Pillow encodes it)."""
    return blank_frame()
