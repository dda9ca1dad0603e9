"""The config flow's steps for a Coral Vision server, and what they ask of it.

A server is added by address or found by zeroconf or Supervisor discovery; its id is the entry's
unique id. Its model is one it runs, one of its catalog (the server fetches it) or your own file
(checked by the handler's steps, then sent); one frame runs there before the entry is saved.
ServerSteps holds these steps; the ConfigFlow handler in config_flow.py inherits them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .const import CONF_DEVICE, CONF_LABELS_PATH, CONF_MODEL, CONF_MODEL_PATH, LOGGER, MODEL_CUSTOM
from .engine.client import (
    ServerAuthError,
    ServerClient,
    ServerError,
    ServerModel,
    ServerModels,
    ServerProtocolError,
    ServerRequestError,
    ServerStatus,
    ServerUnreachable,
)
from .engine.inference.trial import blank_frame
from .engine.results import FrameResult
from .engine.server.options import DEFAULT_PORT
from .flow_camera import cameras_missing_labels
from .flow_progress import async_shown, async_wait_quick
from .selection import DEVICE_SERVER
from .server import server_client

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


def server_error_key(err: ServerError) -> str:
    """The form error for a server that could not be read."""
    if isinstance(err, ServerAuthError):
        return "invalid_auth"
    # Something answered, but not as a Coral Vision server does (a 404, a web page).
    if isinstance(err, ServerProtocolError | ServerRequestError):
        return "not_coral_vision"
    return "cannot_connect"


def model_error_key(err: ServerError, api_key: str | None = None) -> str:
    """The form error for a model the server could not fetch, take or run."""
    if isinstance(err, ServerAuthError):
        # A server without an API key still guards its models with its management key.
        return "invalid_auth" if api_key else "manage_needs_key"
    if isinstance(err, ServerUnreachable):
        return "cannot_connect"
    return "server_model_failed"


class ServerSteps(ConfigFlow):
    """The steps that add a Coral Vision server, find one, or change its address or key."""

    # The handler's state these steps share: what is being saved, and a failure to show.
    _data: dict[str, Any]
    _error: str | None
    _detail: str
    _shown: asyncio.Task[None] | None

    def __init__(self) -> None:
        """Start with no server."""
        # A Coral Vision server: where it is, what it said, and the model it is given.
        self._connection: dict[str, Any] = {}
        self._client: ServerClient | None = None
        self._status: ServerStatus | None = None
        self._server_models: ServerModels | None = None
        self._server_task: asyncio.Task[ServerModel] | None = None
        self._needs_key = False
        self._title = ""

    if TYPE_CHECKING:
        # The handler's steps that these lead to.
        async def async_step_custom_model(
            self, user_input: dict[str, Any] | None = None
        ) -> ConfigFlowResult:
            """Your own model, a file or a link, checked before the server takes it."""

        async def async_step_failed(
            self, user_input: dict[str, Any] | None = None
        ) -> ConfigFlowResult:
            """Show why the model could not be used, and let the user choose again."""

    async def async_step_server(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Where the server listens, and its key; its status is read before going on."""
        errors: dict[str, str] = {}
        if user_input is not None:
            found = connection(user_input)
            if (error := await self._async_read_server(found)) is None:
                assert self._status is not None
                await self.async_set_unique_id(self._status.id)
                # The same server at a new address: the existing entry follows it.
                self._abort_if_unique_id_configured(updates=found)
                self._title = server_title(found[CONF_HOST])
                return await self.async_step_server_model()
            errors["base"] = error
        return self.async_show_form(
            step_id="server",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(), user_input or self._connection
            ),
            errors=errors,
            description_placeholders={"detail": self._detail if errors else ""},
        )

    async def _async_read_server(self, found: Mapping[str, Any]) -> str | None:
        """Read a server's status and models and keep them; else the form error (detail kept)."""
        client = server_client(async_get_clientsession(self.hass), found)
        try:
            status = await client.status()
            models = await client.models()
        except ServerError as err:
            LOGGER.info("Coral Vision server at %s: %s", client.url, err)
            self._detail = str(err)
            return server_error_key(err)
        self._connection = {key: found[key] for key in (CONF_HOST, CONF_PORT, CONF_API_KEY)}
        self._client, self._status, self._server_models = client, status, models
        return None

    async def async_step_server_model(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose a model the server runs, one of its catalog, or your own file."""
        status, models, client = self._status, self._server_models, self._client
        assert status is not None
        assert models is not None
        assert client is not None
        options = model_options(status, models)
        if user_input is not None:
            choice = user_input[CONF_MODEL]
            if choice == MODEL_CUSTOM:
                return await self.async_step_custom_model()
            self._data = {CONF_DEVICE: DEVICE_SERVER, CONF_MODEL: choice}
            self._server_task = None
            if status.model(choice) is None:
                return await self.async_step_deploy()  # the server fetches it
            return await self.async_step_server_test()
        default = self._data.get(CONF_MODEL)
        if all(o["value"] != default for o in options):
            default = options[0]["value"]
        schema = vol.Schema(
            {
                vol.Required(CONF_MODEL, default=default): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=options)
                )
            }
        )
        return self.async_show_form(
            step_id="server_model",
            data_schema=schema,
            description_placeholders=server_placeholders(client, status),
        )

    async def async_step_deploy(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The server fetches a catalog model, or takes yours: at once if quick, else with progress."""
        if self._server_task is None:
            self._server_task = self.hass.async_create_task(
                self._async_put_model(), "coral_vision server model"
            )
            await async_wait_quick(self._server_task)
            if self._server_task.cancelled():  # the dialog was closed meanwhile
                return self.async_abort(reason="download_cancelled")
            if self._server_task.done():
                return await self.async_step_server_test()
            self._shown = self.hass.async_create_task(
                async_shown(self._server_task), "coral_vision server model progress"
            )
        if self._shown is not None and not self._shown.done():
            custom = self._data[CONF_MODEL] == MODEL_CUSTOM
            return self.async_show_progress(
                step_id="deploy",
                progress_action="upload_model" if custom else "deploy_model",
                progress_task=self._shown,
                description_placeholders={"model": self._model_name()},
            )
        return self.async_show_progress_done(next_step_id="server_test")

    def _model_name(self) -> str:
        """The name of the model being put on the server."""
        if self._data[CONF_MODEL] == MODEL_CUSTOM:
            return Path(self._data[CONF_MODEL_PATH]).name
        assert self._server_models is not None
        return next(
            (c.name for c in self._server_models.catalog if c.id == self._data[CONF_MODEL]),
            self._data[CONF_MODEL],
        )

    async def _async_put_model(self) -> ServerModel:
        """Have the server deploy the catalog model, or send it your checked file."""
        assert self._client is not None
        if self._data[CONF_MODEL] != MODEL_CUSTOM:
            return await self._client.deploy(self._data[CONF_MODEL])
        path, labels_path = self._data[CONF_MODEL_PATH], self._data[CONF_LABELS_PATH]
        content, labels = await self.hass.async_add_executor_job(read_upload, path, labels_path)
        return await self._client.upload(upload_name(path), content, labels)

    async def async_step_server_test(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Run one frame of the model on the server; save the entry or show why not."""
        task, self._server_task, self._shown = self._server_task, None, None
        assert self._status is not None
        assert self._client is not None
        try:
            model = (
                task.result() if task is not None else self._status.model(self._data[CONF_MODEL])
            )
            assert model is not None  # a loaded model was chosen
            if self.source == SOURCE_RECONFIGURE and (
                lines := cameras_missing_labels(self._get_reconfigure_entry(), model)
            ):
                self._error, self._detail = "cameras_lack_labels", "\n".join(lines)
                return await self.async_step_failed()
            image = await self.hass.async_add_executor_job(trial_image)
            await async_test_frame(self._client, model, image)
        except ServerError as err:
            LOGGER.info("Model check on the server failed: %s", err)
            self._error, self._detail = (
                model_error_key(err, self._connection.get(CONF_API_KEY)),
                str(err),
            )
            return await self.async_step_failed()
        except OSError as err:  # your file went away before it was sent
            self._error, self._detail = "file_missing", str(err)
            return await self.async_step_failed()
        data = {CONF_DEVICE: DEVICE_SERVER, **self._connection, CONF_MODEL: model.id}
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            # A title that named the old address follows the server; one set by hand stays.
            moved = entry.title == server_title(entry.data[CONF_HOST])
            return self.async_update_reload_and_abort(
                entry, title=server_title(data[CONF_HOST]) if moved else entry.title, data=data
            )
        return self.async_create_entry(title=self._title, data=data)

    async def async_step_reconfigure_server(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change a server's address or key, then its model; it must stay the same server."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            found = connection(user_input)
            if (error := await self._async_read_server(found)) is not None:
                errors["base"] = error
            elif self._status is not None and self._status.id != entry.unique_id:
                errors["base"] = "wrong_server"
            else:
                self._data = {CONF_DEVICE: DEVICE_SERVER, CONF_MODEL: entry.data[CONF_MODEL]}
                return await self.async_step_server_model()
        suggested = user_input or {
            key: entry.data[key] for key in (CONF_HOST, CONF_PORT, CONF_API_KEY) if entry.data[key]
        }
        return self.async_show_form(
            step_id="reconfigure_server",
            data_schema=self.add_suggested_values_to_schema(connection_schema(), suggested),
            errors=errors,
            description_placeholders={"detail": self._detail if errors else ""},
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The server refuses the key: ask for the new one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A new API key, tried on the same server before it is saved."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            key = (user_input.get(CONF_API_KEY) or "").strip() or None
            error = await self._async_read_server({**entry.data, CONF_API_KEY: key})
            if error is None:
                assert self._status is not None
                await self.async_set_unique_id(self._status.id)
                self._abort_if_unique_id_mismatch(reason="wrong_server")
                return self.async_update_reload_and_abort(entry, data_updates={CONF_API_KEY: key})
            errors["base"] = error
        url = server_client(async_get_clientsession(self.hass), entry.data).url
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Optional(CONF_API_KEY): key_selector()}),
            errors=errors,
            description_placeholders={"url": url, "detail": self._detail if errors else ""},
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A server announced over mDNS: its id from the TXT record (else from its status)."""
        host = discovery_info.host
        found: dict[str, Any] = {
            CONF_HOST: host,
            CONF_PORT: discovery_info.port or DEFAULT_SERVER_PORT,
            CONF_API_KEY: None,
        }
        server_id = discovery_info.properties.get("id")
        if not server_id:
            error = await self._async_read_server(found)
            if error is None and self._status is not None:
                server_id = self._status.id
            elif error != "invalid_auth":
                # Neither an id nor an answer; a key refused only means the key is asked next.
                return self.async_abort(reason=error or "cannot_connect")
        if server_id:
            await self.async_set_unique_id(str(server_id))
            # Moved (a new address from DHCP): the entry follows; its key stays.
            self._abort_if_unique_id_configured(
                updates={CONF_HOST: found[CONF_HOST], CONF_PORT: found[CONF_PORT]}
            )
        self._connection = found
        name = discovery_info.name.removesuffix(f".{discovery_info.type}")
        self._title = name or server_title(host)
        self.context["title_placeholders"] = {"name": self._title}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add the server found; its key is asked for only when it needs one."""
        errors: dict[str, str] = {}
        if (
            user_input is None
            and self._status is None
            and not self._needs_key
            and (error := await self._async_read_server(self._connection)) is not None
        ):
            if error != "invalid_auth":
                return self.async_abort(reason=error)
            self._needs_key = True
        if user_input is not None:
            key = (user_input.get(CONF_API_KEY) or "").strip() or None
            if (
                error := await self._async_read_server({**self._connection, CONF_API_KEY: key})
            ) is None:
                return await self._async_discovered()
            errors["base"] = error
            self._needs_key = self._needs_key or error == "invalid_auth"
        fields = {vol.Optional(CONF_API_KEY): key_selector()} if self._needs_key else {}
        client = server_client(async_get_clientsession(self.hass), self._connection)
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=vol.Schema(fields),
            errors=errors,
            description_placeholders={"name": self._title, "url": client.url},
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The Coral Vision server app, announced by the Supervisor with its address and key.

        The unique id is the server's id, not the discovery's uuid, so Home Assistant does not
        remove the entry when the discovery is withdrawn: the app withdraws it on every stop
        (an update, a restart), which must not cost the user the cameras. An app removed for
        good leaves the entry unavailable with its repair issue until the entry is deleted;
        Home Assistant then offers the app again if it is back (the entry's discovery key).
        """
        config = discovery_info.config
        try:
            found = {
                CONF_HOST: str(config[CONF_HOST]),
                CONF_PORT: int(config[CONF_PORT]),
                CONF_API_KEY: config.get(CONF_API_KEY) or None,
            }
            server_id = str(config["id"])
        except (KeyError, TypeError, ValueError):
            return self.async_abort(reason="not_coral_vision")
        await self.async_set_unique_id(server_id)
        # The app restarted elsewhere or with a new key: the entry follows.
        self._abort_if_unique_id_configured(updates=found)
        self._connection, self._title = found, discovery_info.name
        self.context["title_placeholders"] = {"name": discovery_info.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the app's server; then its model."""
        errors: dict[str, str] = {}
        if user_input is not None:
            if (error := await self._async_read_server(self._connection)) is None:
                return await self._async_discovered()
            errors["base"] = error
        return self.async_show_form(
            step_id="hassio_confirm",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={"addon": self._title},
        )

    async def _async_discovered(self) -> ConfigFlowResult:
        """A discovered server answered: make sure it is new, then choose its model."""
        assert self._status is not None
        await self.async_set_unique_id(self._status.id, raise_on_progress=False)
        self._abort_if_unique_id_configured(updates=self._connection)
        self._data = {CONF_DEVICE: DEVICE_SERVER}
        return await self.async_step_server_model()
