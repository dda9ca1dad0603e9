"""Config flow: pick an accelerator and a model (tried once before saving); cameras are subentries.

A local model is inspected (never run) first and its report shown, so an unsupported file is
refused with the reason before anything loads it. A Coral Vision server is added by address or
found by zeroconf or Supervisor discovery; its id is the entry's unique id, its models are
deployed on it (the server fetches catalog models, your own file is checked here and sent), and
one frame runs there before the entry is saved.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant import config_entries
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .accelerator import trial_tpu
from .const import (
    CONF_BURST_INTERVAL,
    CONF_CAMERA,
    CONF_CONFIRM_FRAMES,
    CONF_CONFIRM_WINDOW,
    CONF_DEVICE,
    CONF_HOLD_TIME,
    CONF_LABELS,
    CONF_LABELS_PATH,
    CONF_MAX_AREA,
    CONF_MIN_AREA,
    CONF_MIN_SCORE,
    CONF_MIRROR,
    CONF_MODEL,
    CONF_MODEL_PATH,
    CONF_MOTION_SOURCES,
    CONF_OFF_DELAY,
    CONF_REGION,
    CONF_SAVE_SNAPSHOTS,
    CONF_SCAN_INTERVAL,
    CONF_SCORES,
    DEFAULT_BURST_INTERVAL,
    DEFAULT_HOLD_TIME,
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_SCORE,
    DEVICE_CPU,
    DOMAIN,
    LOGGER,
    MIN_SCAN_INTERVAL,
    MODEL_CUSTOM,
    SUBENTRY_CAMERA,
)
from .engine.camera.filters import check_region, parse_region
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
from .engine.errors import (
    CoralVisionError,
    DownloadError,
    EdgeTpuModelOnCpuError,
    LabelsError,
    ModelError,
    RuntimeMissingError,
)
from .engine.inference.devices import EdgeTpu, list_edge_tpus
from .engine.inference.trial import try_model
from .engine.models.catalog import CatalogEntry, load_catalog
from .engine.models.download import Progress, files_for, is_url
from .engine.models.inspect import ModelReport, inspect_model
from .engine.models.links import fetch_model
from .engine.models.model import Model
from .models import (
    async_load_models,
    default_model,
    device_kind,
    models_dir,
    store_user_model,
)
from .runtime_support import async_ensure_runtime, async_runtime_possible
from .selection import DEVICE_ALL, DEVICE_SERVER, chosen_set, is_server, named_tpus
from .server import server_client
from .server_flow import (
    DEFAULT_SERVER_PORT,
    async_test_frame,
    connection,
    connection_schema,
    key_selector,
    model_options,
    read_upload,
    server_placeholders,
    server_title,
    trial_image,
    upload_name,
)

if TYPE_CHECKING:
    _OptionsFlow = OptionsFlow
else:
    # Home Assistant 2025.8+ reloads the entry itself when an options flow changes the options.
    _OptionsFlow = getattr(config_entries, "OptionsFlowWithReload", OptionsFlow)

# A download that ends within this many seconds is answered at once, without a progress step.
QUICK_ANSWER = 1.0
# The frontend listens for the end of a progress step only once it shows the step: a shown step
# lasts at least this many seconds, so that a download ending just after it was sent is heard.
SHOWN_AT_LEAST = 2.0


# The accelerator choice that leads to a second step, where the user ticks the TPUs to pool.
CHOOSE_TPUS = "choose"
CONF_TPUS = "tpus"
SERVER_CHOICE = selector.SelectOptionDict(value=DEVICE_SERVER, label="Coral Vision server")


def device_title(device: str) -> str:
    """The entry title for a device setting."""
    if device == DEVICE_CPU:
        return "Coral Vision CPU"
    if device == DEVICE_ALL:
        return "Coral Vision all Edge TPUs"
    tpus = [EdgeTpu.unlisted(tpu).label for tpu in named_tpus(device)]
    if len(tpus) > 1:
        return f"Coral Vision {' + '.join(tpus)}"
    return f"Coral {tpus[0]}"


@dataclass(frozen=True, slots=True)
class DeviceChoices:
    """What the accelerator step offers, built once per flow."""

    found: int
    options: list[selector.SelectOptionDict]
    free: list[selector.SelectOptionDict]  # the Edge TPUs a chosen set may take


def device_choices(
    tpus: list[EdgeTpu], others: Collection[str], current: str | None = None
) -> DeviceChoices:
    """The TPUs found and no other entry holds, "All Edge TPUs", a chosen set, and the CPU.

    `others` are the other entries' device settings; `current` is kept (even if gone). "All"
    claims every TPU, plugged in now or later, so it is offered only while no other entry
    holds one; a chosen set takes two or more free TPUs.
    """
    held = {tpu for device in others for tpu in named_tpus(device)}
    every_held = DEVICE_ALL in others
    free = [
        selector.SelectOptionDict(value=t.device, label=t.label)
        for t in tpus
        if not every_held and t.device not in held
    ]
    options = list(free)
    if tpus and not held and not every_held:
        options.append(selector.SelectOptionDict(value=DEVICE_ALL, label="All Edge TPUs"))
    if len(free) > 1:
        options.append(selector.SelectOptionDict(value=CHOOSE_TPUS, label="Several Edge TPUs…"))
    if DEVICE_CPU not in others:
        options.append(selector.SelectOptionDict(value=DEVICE_CPU, label="CPU"))
    if current is not None and all(o["value"] != current for o in options):
        options.insert(0, selector.SelectOptionDict(value=current, label=device_title(current)))
    return DeviceChoices(len(tpus), options, free)


def _device_schema(options: list[selector.SelectOptionDict], default: str) -> vol.Schema:
    """The accelerator choice, `default` preselected."""
    return vol.Schema(
        {
            vol.Required(CONF_DEVICE, default=default): selector.SelectSelector(
                selector.SelectSelectorConfig(options=options)
            )
        }
    )


def _tpus_schema(options: list[selector.SelectOptionDict], default: list[str]) -> vol.Schema:
    """The Edge TPUs to pool, ticked in a list."""
    return vol.Schema(
        {
            vol.Required(CONF_TPUS, default=default): selector.SelectSelector(
                selector.SelectSelectorConfig(
                    options=options, multiple=True, mode=selector.SelectSelectorMode.LIST
                )
            )
        }
    )


# Download failures with their own form error; the rest say "download failed" with the detail.
_DOWNLOAD_ERRORS = {
    "invalid_url": "url_invalid",
    "redirects": "download_redirects",
    "timeout": "download_timeout",
    "too_large": "download_too_large",
}


def error_key(err: Exception) -> str:
    """The form error for an engine failure."""
    if isinstance(err, RuntimeMissingError):
        return "runtime_missing"
    if isinstance(err, DownloadError):
        return _DOWNLOAD_ERRORS.get(err.reason, "download_failed")
    if isinstance(err, EdgeTpuModelOnCpuError):
        return "edgetpu_model_on_cpu"
    if isinstance(err, ModelError):
        return "model_invalid"
    if isinstance(err, LabelsError):
        return "labels_invalid"
    return "inference_failed"


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


def refusal(report: ModelReport, device: str) -> str | None:
    """Why the model check refuses a model on a device (a form error), or None."""
    if not report.supported:
        return "model_unsupported"
    if report.edgetpu_compiled and device == DEVICE_CPU:
        return "edgetpu_model_on_cpu"
    return None


_TASKS = {
    "ssd_postprocess": "object detection (SSD)",
    "yolo": "object detection (YOLO)",
    "classification": "image classification",
}


def report_placeholders(report: ModelReport) -> dict[str, str]:
    """The model check's findings, one placeholder per line of the inspect step."""
    task = _TASKS.get(report.task, "not supported")
    if report.task in {"classification", "yolo"} and report.num_classes is not None:
        task += f", {report.num_classes} classes"
    tensor = report.input
    size = (
        f"{report.input_size[0]}x{report.input_size[1]}" if report.input_size else "no fixed size"
    )
    if tensor is not None and tensor.scale is not None:
        quantization = (
            f"8-bit ({tensor.dtype}, scale {tensor.scale:g}, zero point {tensor.zero_point})"
        )
    elif report.quantized and tensor is not None:
        quantization = f"8-bit ({tensor.dtype})"
    else:
        quantization = "none (float): it runs on the CPU only"
    if not report.edgetpu_compiled:
        edgetpu = f"not compiled: all {report.operators} operators run on the CPU"
    elif report.cpu_operators:
        edgetpu = (
            f"compiled; {report.cpu_operators} of {report.operators} operators stay on the CPU: "
            + report.cpu_ops_text()
        )
    else:
        edgetpu = "compiled; every operator runs on the TPU"
    if report.labels:
        where = "the labels file" if report.labels_source == "file" else "the model's metadata"
        labels = f"{len(report.labels)} from {where} ({report.labels_sample()}; …)"
    else:
        labels = "none found: classes are shown by number"
    notes = [report.reason] if report.reason else []
    notes.extend(report.warnings)
    return {
        "task": task,
        "input": f"{size} {tensor.dtype if tensor is not None else ''}".strip(),
        "quantization": quantization,
        "edgetpu": edgetpu,
        "labels": labels,
        "notes": "\n".join(f"- {note}" for note in notes) or "- none",
    }


def cameras_missing_labels(entry: ConfigEntry, model: Model | ServerModel) -> list[str]:
    """A line for each camera watching labels the model lacks: its title, entity and those labels."""
    known = set(model.labels.names())
    lines = []
    cameras = (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CAMERA)
    for subentry in cameras:
        if missing := [label for label in subentry.data[CONF_LABELS] if label not in known]:
            camera = subentry.data[CONF_CAMERA]
            lines.append(f"- {subentry.title} ({camera}): {', '.join(missing)}")
    return lines


def mirror_files(entry: CatalogEntry, device: str) -> str:
    """The files a mirror must hold for a catalog model on a device, one line each."""
    return "\n".join(f"- `{file.path}`" for file in files_for(entry, device_kind(device)))


async def _async_shown(download: asyncio.Future[Any]) -> None:
    """The progress step's task: the download, but lasting at least SHOWN_AT_LEAST."""
    await asyncio.sleep(SHOWN_AT_LEAST)
    await asyncio.wait({download})


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Take a finished task's exception, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _seconds(step: float) -> selector.NumberSelector:
    """A 0..3600 s number box."""
    return selector.NumberSelector(
        selector.NumberSelectorConfig(
            min=0,
            max=3600,
            step=step,
            unit_of_measurement="s",
            mode=selector.NumberSelectorMode.BOX,
        )
    )


class CoralVisionConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add an accelerator: device, then model; the model is tried before the entry is made."""

    VERSION = 1

    def __init__(self) -> None:
        """Start empty."""
        self._data: dict[str, Any] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self._task: asyncio.Task[tuple[Model, Model | None]] | None = None
        self._shown: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._detail = ""
        self._report: ModelReport | None = None
        self._choices: DeviceChoices | None = None
        # A Coral Vision server: where it is, what it said, and the model it is given.
        self._connection: dict[str, Any] = {}
        self._client: ServerClient | None = None
        self._status: ServerStatus | None = None
        self._server_models: ServerModels | None = None
        self._server_task: asyncio.Task[ServerModel] | None = None
        self._needs_key = False
        self._title = ""

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Cameras are added to an accelerator as subentries."""
        return {SUBENTRY_CAMERA: CameraSubentryFlow}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Options: where models are downloaded from."""
        return CoralVisionOptionsFlow()

    @classmethod
    @callback
    def async_supports_options_flow(cls, config_entry: ConfigEntry) -> bool:
        """Only local accelerators have options: a server fetches its models itself."""
        return not is_server(config_entry.data)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose a local accelerator not set up yet, the CPU, or a Coral Vision server."""
        if user_input is not None:
            return await self._async_chosen(user_input[CONF_DEVICE])
        if not await async_runtime_possible(self.hass):
            return await self.async_step_server_only()
        choices = await self._async_device_choices()
        # Servers are never used up: there is always something to add.
        options = [*choices.options, SERVER_CHOICE]
        return self.async_show_form(
            step_id="user",
            data_schema=_device_schema(options, options[0]["value"]),
            description_placeholders={"found": str(choices.found)},
        )

    async def async_step_server_only(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer only a server, saying why: on musl without a runtime no local model can run."""
        # musl (HA OS, Container, Supervised): the runtime publishes no wheel for it.
        return self.async_show_menu(step_id="server_only", menu_options=["server"])

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the device or the model of an accelerator."""
        entry = self._get_reconfigure_entry()
        if is_server(entry.data):
            return await self.async_step_reconfigure_server()
        if user_input is not None:
            return await self._async_chosen(user_input[CONF_DEVICE])
        current = entry.data[CONF_DEVICE]
        choices = await self._async_device_choices(current)
        return self.async_show_form(
            step_id="reconfigure", data_schema=_device_schema(choices.options, current)
        )

    async def async_step_tpus(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Tick the Edge TPUs to pool behind this accelerator."""
        assert self._choices is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            if user_input[CONF_TPUS]:
                return await self._async_chosen(chosen_set(user_input[CONF_TPUS]))
            errors[CONF_TPUS] = "no_tpu_chosen"
        current = self._data.get(CONF_DEVICE) or ""
        free = {o["value"] for o in self._choices.free}
        default = [tpu for tpu in named_tpus(current) if tpu in free] if current else []
        return self.async_show_form(
            step_id="tpus", data_schema=_tpus_schema(self._choices.free, default), errors=errors
        )

    async def _async_chosen(self, device: str) -> ConfigFlowResult:
        """Claim the chosen accelerator (its setting is the unique id), then choose the model."""
        if device == DEVICE_SERVER:
            self._data = {CONF_DEVICE: DEVICE_SERVER}
            return await self.async_step_server()
        if device == CHOOSE_TPUS:
            if self.source == SOURCE_RECONFIGURE:
                self._data = dict(self._get_reconfigure_entry().data)
            return await self.async_step_tpus()
        if self.source != SOURCE_RECONFIGURE:
            await self.async_set_unique_id(device)
            self._abort_if_unique_id_configured()
            self._data = {CONF_DEVICE: device}
            return await self.async_step_model()
        entry = self._get_reconfigure_entry()
        if device != entry.unique_id:
            await self.async_set_unique_id(device)
            self._abort_if_unique_id_configured()
        # Keep the current model (and local paths) as the defaults of the next steps.
        self._data = {**entry.data, CONF_DEVICE: device}
        return await self.async_step_model()

    async def _async_device_choices(self, current: str | None = None) -> DeviceChoices:
        """The accelerators the user may choose; kept for the step that ticks Edge TPUs."""
        tpus = await self.hass.async_add_executor_job(list_edge_tpus)
        others = [
            entry.data.get(CONF_DEVICE, entry.unique_id or "")
            for entry in self._async_current_entries(include_ignore=False)
            if self.source != SOURCE_RECONFIGURE
            or entry.entry_id != self._get_reconfigure_entry().entry_id
        ]
        self._choices = device_choices(tpus, others, current)
        return self._choices

    async def async_step_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose a model from the catalog, or a local file."""
        if is_server(self._data):
            # Back from a failure: what the server holds may have changed meanwhile.
            await self._async_read_server(self._connection)
            return await self.async_step_server_model()
        device = self._data[CONF_DEVICE]
        if not self._catalog:
            self._catalog = await self.hass.async_add_executor_job(load_catalog)
        options = [
            selector.SelectOptionDict(value=e.id, label=e.label)
            for e in self._catalog.values()
            if device == DEVICE_CPU or e.edgetpu is not None
        ]
        options.append(
            selector.SelectOptionDict(value=MODEL_CUSTOM, label="Your own model (file or link)")
        )
        if user_input is not None:
            choice = user_input.get(CONF_MODEL, default_model(device))
            if choice == MODEL_CUSTOM:
                return await self.async_step_custom_model()
            self._data = {CONF_DEVICE: device, CONF_MODEL: choice}
            self._task = None
            return await self.async_step_download()
        default = self._data.get(CONF_MODEL)
        if all(o["value"] != default for o in options):
            default = default_model(device)
        schema = vol.Schema(
            {
                vol.Required(CONF_MODEL, default=default): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=options)
                )
            }
        )
        return self.async_show_form(step_id="model", data_schema=schema)

    async def async_step_custom_model(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A .tflite file in a folder Home Assistant may read, or a model URL; optional labels."""
        errors: dict[str, str] = {}
        if user_input is not None:
            model_path = user_input[CONF_MODEL_PATH].strip()
            labels_path = (user_input.get(CONF_LABELS_PATH) or "").strip()
            link = is_url(model_path)
            checked = [(CONF_LABELS_PATH, labels_path)]
            if not link:
                checked.insert(0, (CONF_MODEL_PATH, model_path))
            for key, path in checked:
                if path and (error := await self._async_path_error(path)):
                    errors[key] = error
            if not errors:
                self._data = {
                    CONF_DEVICE: self._data[CONF_DEVICE],
                    CONF_MODEL: MODEL_CUSTOM,
                    CONF_MODEL_PATH: model_path,
                    CONF_LABELS_PATH: labels_path,
                }
                try:
                    self._data[CONF_MODEL_PATH] = await self._async_check_model(
                        model_path, labels_path
                    )
                except DownloadError as err:
                    LOGGER.info("Model download failed: %s", err)
                    errors[CONF_MODEL_PATH], self._detail = error_key(err), str(err)
                except ModelError as err:
                    LOGGER.info("Model check failed: %s", err)
                    if not link:
                        self._error, self._detail = "model_invalid", str(err)
                        return await self.async_step_failed()
                    # The link led to no model (often a web page): let the user fix the link.
                    errors[CONF_MODEL_PATH], self._detail = "link_not_a_model", str(err)
                else:
                    return await self.async_step_inspect()
        suggested = user_input or {
            CONF_MODEL_PATH: self._data.get(CONF_MODEL_PATH, ""),
            CONF_LABELS_PATH: self._data.get(CONF_LABELS_PATH, ""),
        }
        schema = vol.Schema(
            {
                vol.Required(CONF_MODEL_PATH): selector.TextSelector(),
                vol.Optional(CONF_LABELS_PATH): selector.TextSelector(),
            }
        )
        return self.async_show_form(
            step_id="custom_model",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"detail": self._detail if errors else ""},
        )

    async def _async_path_error(self, path: str) -> str | None:
        """The form error for a local file path, if any (the allowlist check resolves links)."""
        if not await self.hass.async_add_executor_job(_path_allowed, self.hass, path):
            return "path_not_allowed"
        exists = await self.hass.async_add_executor_job(Path(path).is_file)
        return None if exists else "file_missing"

    async def _async_check_model(self, model_path: str, labels_path: str) -> str:
        """Check a local model, or fetch and check a link's; keep the report, return its path."""
        labels = Path(labels_path) if labels_path else None
        if is_url(model_path):
            model_path, self._report = await self._async_fetch_user_model(model_path, labels)
        else:
            self._report = await self.hass.async_add_executor_job(
                lambda: inspect_model(Path(model_path), labels=labels)
            )
        return model_path

    async def _async_fetch_user_model(
        self, url: str, labels: Path | None
    ) -> tuple[str, ModelReport]:
        """Download a model link and check it; keep it in the models folder only if it passes.

        Returns the kept file's path, or the link itself with the report of a refused model.
        """
        folder = models_dir(self.hass)
        part = await fetch_model(async_get_clientsession(self.hass), url, folder / "custom")
        try:
            report = await self.hass.async_add_executor_job(
                lambda: inspect_model(part, labels=labels)
            )
            if refusal(report, self._data[CONF_DEVICE]) is not None:
                return url, report
            kept = await self.hass.async_add_executor_job(store_user_model, folder, url, part)
            return str(kept), report
        finally:
            # Kept files were moved away; anything else goes.
            await self.hass.async_add_executor_job(partial(part.unlink, missing_ok=True))

    async def async_step_inspect(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what the model is; Submit uses it (a refused one goes to the refusal instead)."""
        report = self._report
        assert report is not None
        if user_input is not None:
            return await self.async_step_validate()
        if refusal(report, self._data[CONF_DEVICE]) is not None:
            return await self.async_step_refused()
        return self.async_show_form(
            step_id="inspect",
            data_schema=vol.Schema({}),
            description_placeholders=self._report_placeholders(report),
        )

    async def async_step_refused(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what the model is and why it cannot be used; Submit goes back to the file."""
        report = self._report
        assert report is not None
        if user_input is not None:
            return await self.async_step_custom_model()
        return self.async_show_form(
            step_id="refused",
            data_schema=vol.Schema({}),
            errors={"base": refusal(report, self._data[CONF_DEVICE]) or "model_unsupported"},
            description_placeholders=self._report_placeholders(report),
        )

    def _report_placeholders(self, report: ModelReport) -> dict[str, str]:
        """The model check's findings, with the model's path or link."""
        return {"path": self._data[CONF_MODEL_PATH], **report_placeholders(report)}

    async def async_step_download(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Fetch the catalog model (mirror first): answered at once if quick, else with progress."""
        if self._task is None:
            self._task = self.hass.async_create_task(
                self._async_prepare(progress=self._progress), "coral_vision model download"
            )
            await asyncio.wait({self._task}, timeout=QUICK_ANSWER)
            if self._task.cancelled():  # the dialog was closed meanwhile
                return self.async_abort(reason="download_cancelled")
            if self._task.done():
                return await self.async_step_validate()
            self._shown = self.hass.async_create_task(
                _async_shown(self._task), "coral_vision model download progress"
            )
        if self._shown is not None and not self._shown.done():
            return self.async_show_progress(
                step_id="download",
                progress_action="download_model",
                progress_task=self._shown,
                description_placeholders={"model": self._catalog[self._data[CONF_MODEL]].name},
            )
        return self.async_show_progress_done(next_step_id="validate")

    @callback
    def async_remove(self) -> None:
        """The dialog was closed: stop the download, and take its failure if it has one."""
        for task in (self._task, self._server_task, self._shown):
            if task is not None:
                task.cancel()
                task.add_done_callback(_retrieve)

    @callback
    def _progress(self, done: int, total: int | None) -> None:
        """Move the progress bar where this Home Assistant has one."""
        if total and hasattr(self, "async_update_progress"):
            self.async_update_progress(min(1.0, done / total))

    def _mirror(self) -> str | None:
        """The mirror option: the reconfigured entry's, else the first accelerator's that has one."""
        entries = (
            [self._get_reconfigure_entry()]
            if self.source == SOURCE_RECONFIGURE
            else self._async_current_entries(include_ignore=False)
        )
        return next((m for e in entries if (m := e.options.get(CONF_MIRROR))), None)

    async def _async_prepare(self, progress: Progress | None = None) -> tuple[Model, Model | None]:
        """Make sure a runtime is there (installed if need be), then fetch and load the model."""
        if await async_ensure_runtime(self.hass) is None:
            raise RuntimeMissingError("no TensorFlow Lite runtime could be installed")
        return await async_load_models(
            self.hass, self._data, progress=progress, mirror=self._mirror()
        )

    async def async_step_validate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Load the model on the device and run one frame; create the entry or show why not."""
        if is_server(self._data):
            # Your own model, checked here: the server takes it, then runs the test frame.
            self._server_task = None
            return await self.async_step_deploy()
        task, self._task, self._shown = self._task, None, None
        try:
            model, cpu_model = task.result() if task is not None else await self._async_prepare()
            if self.source == SOURCE_RECONFIGURE and (
                lines := cameras_missing_labels(self._get_reconfigure_entry(), model)
            ):
                # They would stay "Unknown" for ever: the user edits or removes them first.
                self._error, self._detail = "cameras_lack_labels", "\n".join(lines)
                return await self.async_step_failed()
            device = self._data[CONF_DEVICE]
            backend = await self.hass.async_add_executor_job(
                lambda: try_model(model, trial_tpu(device), cpu_model)
            )
        except CoralVisionError as err:
            LOGGER.info("Model check failed: %s", err)
            self._error, self._detail = error_key(err), str(err)
            if isinstance(err, DownloadError) and self._data.get(CONF_MODEL) in self._catalog:
                return await self.async_step_download_failed()
            return await self.async_step_failed()
        except Exception as err:  # a bug or a broken library must not leave the flow stuck
            LOGGER.exception("Unexpected error while checking the model")
            self._error, self._detail = "unknown", f"{type(err).__name__}: {err}"
            return await self.async_step_failed()
        LOGGER.debug("Model %s runs on %s", model.name, backend.label)
        title = device_title(self._data[CONF_DEVICE])
        if self.source == SOURCE_RECONFIGURE:
            return self.async_update_reload_and_abort(
                self._get_reconfigure_entry(),
                unique_id=self._data[CONF_DEVICE],
                title=title,
                data=self._data,
            )
        mirror = self._mirror()
        options = {CONF_MIRROR: mirror} if mirror else None
        return self.async_create_entry(title=title, data=self._data, options=options)

    async def async_step_failed(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show why the model could not be used, and let the user choose again."""
        return await self._async_failure_form("failed", user_input)

    async def async_step_download_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show why the download failed and which files a mirror must hold; then choose again."""
        entry = self._catalog[self._data[CONF_MODEL]]
        files = mirror_files(entry, self._data[CONF_DEVICE])
        return await self._async_failure_form("download_failed", user_input, files=files)

    async def _async_failure_form(
        self, step_id: str, user_input: dict[str, Any] | None, **placeholders: str
    ) -> ConfigFlowResult:
        """A failure form: the error and its detail at once; Submit goes back to the models."""
        if user_input is not None:
            error, self._error = self._error, None
            if error == "manage_needs_key":  # back to where the key is entered
                if self.source == SOURCE_RECONFIGURE:
                    return await self.async_step_reconfigure_server()
                return await self.async_step_server()
            return await self.async_step_model()
        return self.async_show_form(
            step_id=step_id,
            data_schema=vol.Schema({}),
            errors={"base": self._error or "inference_failed"},
            description_placeholders={"detail": self._detail, **placeholders},
        )

    # -- a Coral Vision server ----------------------------------------------------------------

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
            await asyncio.wait({self._server_task}, timeout=QUICK_ANSWER)
            if self._server_task.cancelled():  # the dialog was closed meanwhile
                return self.async_abort(reason="download_cancelled")
            if self._server_task.done():
                return await self.async_step_server_test()
            self._shown = self.hass.async_create_task(
                _async_shown(self._server_task), "coral_vision server model progress"
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


def _labels_of(entry: ConfigEntry) -> list[str]:
    """The loaded accelerator's model labels."""
    model: Model = entry.runtime_data.accelerator.model
    return model.labels.names()


def _path_allowed(hass: HomeAssistant, path: str) -> bool:
    """Whether a path is in an allowed folder (resolves links: blocking); a malformed one is not."""
    try:
        return hass.config.is_allowed_path(path)
    except (OSError, ValueError):
        return False


class CoralVisionOptionsFlow(_OptionsFlow):
    """A mirror (folder or base URL) tried before the models' upstream URLs."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Set or clear the mirror; the entry reloads with it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            mirror = (user_input.get(CONF_MIRROR) or "").strip()
            if mirror and not is_url(mirror):
                # is_allowed_path resolves the path on disk: blocking I/O, off the event loop.
                if not await self.hass.async_add_executor_job(_path_allowed, self.hass, mirror):
                    errors[CONF_MIRROR] = "path_not_allowed"
                elif not await self.hass.async_add_executor_job(Path(mirror).is_dir):
                    errors[CONF_MIRROR] = "folder_missing"
            if not errors:
                options = {CONF_MIRROR: mirror}
                if not getattr(self, "automatic_reload", False):
                    # Before OptionsFlowWithReload: save the options first, then reload with them.
                    config = self.hass.config_entries
                    if config.async_update_entry(self.config_entry, options=options):
                        config.async_schedule_reload(self.config_entry.entry_id)
                return self.async_create_entry(data=options)
        current = self.config_entry.options.get(CONF_MIRROR, "")
        schema = vol.Schema(
            {
                vol.Optional(
                    CONF_MIRROR, description={"suggested_value": current}
                ): selector.TextSelector()
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)


def _entity_exists(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether an entity has a state or a registry entry (a registered camera may be offline)."""
    return (
        hass.states.get(entity_id) is not None
        or er.async_get(hass).async_get(entity_id) is not None
    )


def _filters_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Why the filters step's input cannot be saved, by field (the most basic error wins)."""
    errors: dict[str, str] = {}
    if user_input[CONF_MIN_AREA] > user_input[CONF_MAX_AREA]:
        errors[CONF_MIN_AREA] = "area_order"
    if user_input[CONF_CONFIRM_FRAMES] > user_input[CONF_CONFIRM_WINDOW]:
        errors[CONF_CONFIRM_FRAMES] = "confirm_order"
    for key in (CONF_CONFIRM_FRAMES, CONF_CONFIRM_WINDOW):
        if not float(user_input[key]).is_integer():  # also nan and inf
            errors[key] = "not_whole"
    for key in (CONF_MIN_AREA, CONF_MAX_AREA, CONF_OFF_DELAY):
        if not math.isfinite(user_input[key]):
            errors[key] = "not_a_number"
    if (region_error := _region_error(user_input.get(CONF_REGION, ""))) is not None:
        errors[CONF_REGION] = region_error
    return errors


def _region_error(text: str) -> str | None:
    """The form error for a region: not points in 0..1, or not a simple polygon with an area."""
    try:
        region = parse_region(text)
    except ValueError:
        return "invalid_region"
    if not region:
        return None
    try:
        check_region(region)
    except ValueError:
        return "region_degenerate"
    return None


# Optional fields, only suggested: a camera without motion sources stores none of them.
MOTION_FIELDS = (CONF_MOTION_SOURCES, CONF_BURST_INTERVAL, CONF_HOLD_TIME)


def _motion_fields(current: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """The camera step's motion fields: sources, and how fast and how long a burst scans."""
    sources = selector.EntitySelectorConfig(domain=["binary_sensor", "event"], multiple=True)
    suggested = {
        CONF_MOTION_SOURCES: [],
        CONF_BURST_INTERVAL: DEFAULT_BURST_INTERVAL,
        CONF_HOLD_TIME: DEFAULT_HOLD_TIME,
    } | {key: current[key] for key in MOTION_FIELDS if key in current}
    fields = (
        selector.EntitySelector(sources),
        _seconds(step=0.1),
        _seconds(step=1),
    )
    return {
        vol.Optional(key, description={"suggested_value": suggested[key]}): field
        for key, field in zip(MOTION_FIELDS, fields, strict=True)
    }


class CameraSubentryFlow(ConfigSubentryFlow):
    """Add or edit a camera: labels to watch, their scores, then filters and confirmation."""

    def __init__(self) -> None:
        """Start empty."""
        self._data: dict[str, Any] = {}

    def _current(self) -> Mapping[str, Any]:
        """The subentry being edited, or nothing for a new one."""
        return self._get_reconfigure_subentry().data if self.source == SOURCE_RECONFIGURE else {}

    def _editing(self) -> str | None:
        """The id of the subentry being edited, if any."""
        return (
            self._get_reconfigure_subentry().subentry_id
            if self.source == SOURCE_RECONFIGURE
            else None
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the camera, the labels to watch and how often to scan."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        labels = _labels_of(entry)
        current = self._current()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = self._camera_errors(entry, user_input)
            if not errors:
                # A motion field left empty is not sent: it goes back to its default.
                kept = {k: v for k, v in current.items() if k not in MOTION_FIELDS}
                self._data = {**kept, **user_input}
                return await self.async_step_scores()
        default_labels = [name for name in ("person",) if name in labels] or labels[:1]
        cameras = selector.EntitySelectorConfig(domain="camera")
        if taken := self._other_cameras(entry):
            cameras["exclude_entities"] = taken
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_CAMERA, default=current.get(CONF_CAMERA, vol.UNDEFINED)
                ): selector.EntitySelector(cameras),
                vol.Required(
                    CONF_LABELS, default=current.get(CONF_LABELS, default_labels)
                ): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=labels, multiple=True, sort=False)
                ),
                # The minimum is 0 (scan on demand); 0 < interval < MIN_SCAN_INTERVAL is refused.
                vol.Required(
                    CONF_SCAN_INTERVAL, default=current.get(CONF_SCAN_INTERVAL, 5)
                ): _seconds(step=MIN_SCAN_INTERVAL),
                **_motion_fields(current),
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    def _other_cameras(self, entry: ConfigEntry) -> list[str]:
        """The cameras of this accelerator's other camera subentries (not the one edited)."""
        editing = self._editing()
        return [
            s.data[CONF_CAMERA]
            for s in entry.subentries.values()
            if s.subentry_id != editing and CONF_CAMERA in s.data
        ]

    def _camera_errors(self, entry: ConfigEntry, user_input: Mapping[str, Any]) -> dict[str, str]:
        """Why the camera step's input cannot be saved, by field."""
        errors: dict[str, str] = {}
        camera = user_input[CONF_CAMERA]
        # The form no longer offers them; another flow may have added one since it was shown.
        if camera in self._other_cameras(entry):
            errors[CONF_CAMERA] = "camera_already_added"
        # A camera being edited keeps its entity even while that entity's integration is down.
        elif camera != self._current().get(CONF_CAMERA) and not _entity_exists(self.hass, camera):
            errors[CONF_CAMERA] = "camera_missing"
        if not user_input.get(CONF_LABELS):
            errors[CONF_LABELS] = "no_labels"
        interval = user_input[CONF_SCAN_INTERVAL]
        if not math.isfinite(interval):
            errors[CONF_SCAN_INTERVAL] = "not_a_number"
        elif 0 < interval < MIN_SCAN_INTERVAL:
            errors[CONF_SCAN_INTERVAL] = "scan_interval_too_short"
        if self._unknown_sources(user_input.get(CONF_MOTION_SOURCES, ())):
            errors[CONF_MOTION_SOURCES] = "motion_source_missing"
        burst = user_input.get(CONF_BURST_INTERVAL, DEFAULT_BURST_INTERVAL)
        if not math.isfinite(burst):
            errors[CONF_BURST_INTERVAL] = "not_a_number"
        elif burst < MIN_SCAN_INTERVAL:  # also 0: a burst is a scan interval, never "none"
            errors[CONF_BURST_INTERVAL] = "burst_interval_too_short"
        if not math.isfinite(user_input.get(CONF_HOLD_TIME, DEFAULT_HOLD_TIME)):
            errors[CONF_HOLD_TIME] = "not_a_number"
        return errors

    def _unknown_sources(self, sources: Collection[str]) -> bool:
        """Whether a newly named motion source does not exist (a kept one may be offline)."""
        known = set(self._current().get(CONF_MOTION_SOURCES, ()))
        return any(s not in known and not _entity_exists(self.hass, s) for s in sources)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit a camera: the same steps, filled in."""
        return await self.async_step_user(user_input)

    async def async_step_scores(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A minimum score for each watched label."""
        labels: list[str] = list(self._data[CONF_LABELS])
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = {
                label: "not_a_number" for label in labels if not math.isfinite(user_input[label])
            }
            if not errors:
                self._data[CONF_SCORES] = {label: float(user_input[label]) for label in labels}
                self._data[CONF_MIN_SCORE] = min(self._data[CONF_SCORES].values())
                return await self.async_step_filters()
        previous = self._data.get(CONF_SCORES, {})
        score = selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=0.05, max=1, step=0.01, mode=selector.NumberSelectorMode.SLIDER
            )
        )
        schema = vol.Schema(
            {
                vol.Required(label, default=previous.get(label, DEFAULT_MIN_SCORE)): score
                for label in labels
            }
        )
        return self.async_show_form(step_id="scores", data_schema=schema, errors=errors)

    async def async_step_filters(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Box area, region of interest, confirmation, off-delay and snapshots."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _filters_errors(user_input)
            if not errors:
                return self._finish({**self._data, **user_input})
        d = {**self._data, **(user_input or {})}
        percent = selector.NumberSelectorConfig(
            min=0, max=100, step=0.1, unit_of_measurement="%", mode=selector.NumberSelectorMode.BOX
        )
        frames = selector.NumberSelectorConfig(
            min=1, max=20, step=1, mode=selector.NumberSelectorMode.BOX
        )
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_MIN_AREA, default=d.get(CONF_MIN_AREA, DEFAULT_MIN_AREA)
                ): selector.NumberSelector(percent),
                vol.Required(
                    CONF_MAX_AREA, default=d.get(CONF_MAX_AREA, 100)
                ): selector.NumberSelector(percent),
                vol.Optional(CONF_REGION, default=d.get(CONF_REGION, "")): selector.TextSelector(
                    selector.TextSelectorConfig(multiline=True)
                ),
                vol.Required(
                    CONF_CONFIRM_FRAMES, default=d.get(CONF_CONFIRM_FRAMES, 1)
                ): selector.NumberSelector(frames),
                vol.Required(
                    CONF_CONFIRM_WINDOW, default=d.get(CONF_CONFIRM_WINDOW, 1)
                ): selector.NumberSelector(frames),
                vol.Required(CONF_OFF_DELAY, default=d.get(CONF_OFF_DELAY, 10)): _seconds(step=1),
                vol.Required(
                    CONF_SAVE_SNAPSHOTS, default=d.get(CONF_SAVE_SNAPSHOTS, False)
                ): selector.BooleanSelector(),
            }
        )
        return self.async_show_form(step_id="filters", data_schema=schema, errors=errors)

    def _finish(self, data: dict[str, Any]) -> SubentryFlowResult:
        """Create the camera, or save the edit (the entry reloads and applies it)."""
        data[CONF_CONFIRM_FRAMES] = int(data[CONF_CONFIRM_FRAMES])
        data[CONF_CONFIRM_WINDOW] = int(data[CONF_CONFIRM_WINDOW])
        state = self.hass.states.get(data[CONF_CAMERA])
        title = state.name if state is not None else data[CONF_CAMERA]
        if self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            self._remove_dropped_labels(subentry.subentry_id, data[CONF_LABELS])
            return self.async_update_and_abort(
                self._get_entry(),
                subentry,
                title=title,
                data=data,
                unique_id=data[CONF_CAMERA],
            )
        return self.async_create_entry(title=title, data=data, unique_id=data[CONF_CAMERA])

    def _remove_dropped_labels(self, subentry_id: str, labels: list[str]) -> None:
        """Forget the binary sensors of labels no longer watched (the reload would orphan them)."""
        registry = er.async_get(self.hass)
        prefix = f"{subentry_id}_detected_"
        for item in er.async_entries_for_config_entry(registry, self._entry_id):
            if (
                item.domain == "binary_sensor"
                and item.config_subentry_id == subentry_id
                and item.unique_id.startswith(prefix)
                and item.unique_id.removeprefix(prefix) not in labels
            ):
                registry.async_remove(item.entity_id)
