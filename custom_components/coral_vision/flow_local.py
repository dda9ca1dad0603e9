"""What the local accelerator steps offer and show: the accelerators, a model check's findings."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import voluptuous as vol
from homeassistant.helpers import selector

from .const import CONF_DEVICE, DEVICE_CPU
from .engine.errors import (
    DownloadError,
    EdgeTpuModelOnCpuError,
    LabelsError,
    ModelError,
    RuntimeMissingError,
)
from .engine.inference.devices import EdgeTpu
from .engine.models.catalog import CatalogEntry
from .engine.models.download import files_for
from .engine.models.inspect import ModelReport
from .models import device_kind
from .selection import DEVICE_ALL, DEVICE_SERVER, named_tpus

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


def device_schema(options: list[selector.SelectOptionDict], default: str) -> vol.Schema:
    """The accelerator choice, `default` preselected."""
    return vol.Schema(
        {
            vol.Required(CONF_DEVICE, default=default): selector.SelectSelector(
                selector.SelectSelectorConfig(options=options)
            )
        }
    )


def tpus_schema(options: list[selector.SelectOptionDict], default: list[str]) -> vol.Schema:
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


def mirror_files(entry: CatalogEntry, device: str) -> str:
    """The files a mirror must hold for a catalog model on a device, one line each."""
    return "\n".join(f"- `{file.path}`" for file in files_for(entry, device_kind(device)))
