"""Config flow: pick an accelerator and a model (tried once before saving); cameras are subentries.

A local model is inspected (never run) first and its report shown, so an unsupported file is
refused with the reason before anything loads it. The steps for a Coral Vision server are in
flow_server.py, the camera subentry flow in flow_camera.py, the options in flow_options.py.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .accelerator import trial_tpu
from .const import (
    CONF_DEVICE,
    CONF_LABELS_PATH,
    CONF_MIRROR,
    CONF_MODEL,
    CONF_MODEL_PATH,
    DEVICE_CPU,
    DOMAIN,
    LOGGER,
    MODEL_CUSTOM,
    SUBENTRY_CAMERA,
)
from .engine.errors import CoralVisionError, DownloadError, ModelError, RuntimeMissingError
from .engine.inference.devices import list_edge_tpus
from .engine.inference.trial import try_model
from .engine.models.catalog import CatalogEntry, load_catalog
from .engine.models.download import Progress, is_url
from .engine.models.inspect import ModelReport, inspect_model
from .engine.models.links import fetch_model
from .engine.models.model import Model
from .flow_camera import CameraSubentryFlow, cameras_missing_labels
from .flow_local import (
    CHOOSE_TPUS,
    CONF_TPUS,
    SERVER_CHOICE,
    DeviceChoices,
    device_choices,
    device_schema,
    device_title,
    error_key,
    mirror_files,
    refusal,
    report_placeholders,
    tpus_schema,
)
from .flow_options import CoralVisionOptionsFlow, path_allowed
from .flow_progress import async_shown, async_wait_quick, retrieve
from .flow_server import ServerSteps
from .models import async_load_models, default_model, models_dir, store_user_model
from .runtime_support import async_ensure_runtime, async_runtime_possible
from .selection import DEVICE_SERVER, chosen_set, is_server, named_tpus


class CoralVisionConfigFlow(ServerSteps, domain=DOMAIN):
    """Add an accelerator: device, then model; the model is tried before the entry is made."""

    VERSION = 1

    def __init__(self) -> None:
        """Start empty."""
        super().__init__()
        self._data: dict[str, Any] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self._task: asyncio.Task[tuple[Model, Model | None]] | None = None
        self._shown: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._detail = ""
        self._report: ModelReport | None = None
        self._choices: DeviceChoices | None = None

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
            data_schema=device_schema(options, options[0]["value"]),
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
            step_id="reconfigure", data_schema=device_schema(choices.options, current)
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
            step_id="tpus", data_schema=tpus_schema(self._choices.free, default), errors=errors
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
        if not await self.hass.async_add_executor_job(path_allowed, self.hass, path):
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
            await async_wait_quick(self._task)
            if self._task.cancelled():  # the dialog was closed meanwhile
                return self.async_abort(reason="download_cancelled")
            if self._task.done():
                return await self.async_step_validate()
            self._shown = self.hass.async_create_task(
                async_shown(self._task), "coral_vision model download progress"
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
                task.add_done_callback(retrieve)

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
