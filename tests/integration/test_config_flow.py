"""The accelerator config flow, end to end on the real engine and the offline mirror."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState, ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN, SUBENTRY_CAMERA
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.models import links as engine_links
from custom_components.coral_vision.engine.models.catalog import (
    CatalogEntry,
    ModelFile,
    load_catalog,
)
from custom_components.coral_vision.engine.models.download import MIRROR_ENV as ENV_MIRROR
from custom_components.coral_vision.engine.models.download import Deadline
from custom_components.coral_vision.flow_options import CoralVisionOptionsFlow
from tests.links_server import UNSUPPORTED, LinkServer, serve_links

from .conftest import camera_subentry, cpu_entry, runtime_unavailable
from .helpers import set_up

# Every hostile link must end well within this: a hang detector, not a timing.
HANG = 20.0
USB_TPU = EdgeTpu(kind="usb", index=0, path="/dev/bus/usb/001/004", device="usb:0")
SSD = "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"


@pytest.fixture
async def unload_all(hass: HomeAssistant) -> AsyncGenerator[None]:
    """Unload every entry a flow created (their executors' threads must be joined)."""
    yield
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def options(result: Any, key: str) -> list[str]:
    """The values a form's select field offers."""
    field = next(k for k in result["data_schema"].schema if k == key)
    selector = result["data_schema"].schema[field]
    return [o["value"] if isinstance(o, dict) else o for o in selector.config["options"]]


def default(result: Any, key: str) -> Any:
    """A form field's default."""
    field = next(k for k in result["data_schema"].schema if k == key)
    return field.default()


async def start_on(hass: HomeAssistant, device: str) -> Any:
    """Start a flow and pick the device: the model step."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": device})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "model"
    return result


async def download(hass: HomeAssistant, flow_id: str, model: str) -> Any:
    """Choose a catalog model, wait for the download and submit the validation."""
    result = await hass.config_entries.flow.async_configure(flow_id, {"model": model})
    if result["type"] is not FlowResultType.SHOW_PROGRESS:
        return result  # it failed before it had to wait for anything
    assert result["step_id"] == "download"
    assert result["progress_action"] == "download_model"
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(flow_id)


async def custom(hass: HomeAssistant, device: str, model: Path | str, labels: str = "") -> Any:
    """Start a flow on `device` and submit a local model."""
    result = await start_on(hass, device)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    assert result["step_id"] == "custom_model"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"model_path": str(model), "labels_path": labels}
    )


async def test_user_step_offers_the_cpu_when_no_tpu_is_found(hass: HomeAssistant) -> None:
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[]):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert options(result, "device") == ["cpu", "server"]
    assert result["description_placeholders"] == {"found": "0"}


@pytest.mark.usefixtures("unload_all")
async def test_catalog_model_on_the_cpu_creates_the_entry(hass: HomeAssistant) -> None:
    result = await start_on(hass, "cpu")
    assert default(result, "model") == "tf_coco_ssd_mobilenet_v1"
    assert "custom" in options(result, "model")
    assert "mobilenet_v2_imagenet" in options(result, "model"), "every model runs on the CPU"

    result = await download(hass, result["flow_id"], "tf_coco_ssd_mobilenet_v1")

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Coral Vision CPU"
    assert result["data"] == {"device": "cpu", "model": "tf_coco_ssd_mobilenet_v1"}
    entry = result["result"]
    assert entry.unique_id == "cpu"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.model.task == "detection"


@pytest.mark.usefixtures("unload_all")
async def test_edge_tpu_is_offered_and_falls_back_to_its_cpu_twin(hass: HomeAssistant) -> None:
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[USB_TPU]):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        assert options(result, "device") == ["usb:0", "all", "cpu", "server"]
        assert default(result, "device") == "usb:0"
        assert result["description_placeholders"] == {"found": "1"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"device": "usb:0"}
        )
    assert result["step_id"] == "model"
    offered = options(result, "model")
    assert "mobilenet_v1_025_128_imagenet" in offered
    assert "tf_coco_ssd_mobilenet_v1" not in offered, "no Edge TPU build: not offered on a TPU"

    # No libedgetpu here: the compiled model cannot load, the try runs on its CPU twin, and the
    # accelerator is kept (it runs on the CPU with a repair until the TPU works).
    result = await download(hass, result["flow_id"], "mobilenet_v1_025_128_imagenet")

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Coral Edge TPU USB 0"
    assert result["data"] == {"device": "usb:0", "model": "mobilenet_v1_025_128_imagenet"}
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.model.edgetpu
    assert entry.runtime_data.accelerator.backend.kind == "cpu"


async def test_only_devices_not_set_up_are_offered(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu").add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[USB_TPU]):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert options(result, "device") == ["usb:0", "all", "server"]
    # Through the API anyway: the form refuses it.
    with pytest.raises(InvalidData) as refused:
        await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    assert set(refused.value.schema_errors) == {"device"}
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_nothing_local_left_offers_a_server(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu").add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[]):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert options(result, "device") == ["server"]
    assert default(result, "device") == "server"
    assert result["description_placeholders"] == {"found": "0"}
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_a_device_set_up_meanwhile_is_refused(hass: HomeAssistant) -> None:
    # Another dialog added it after this one was shown.
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[]):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    MockConfigEntry(domain=DOMAIN, data={"device": "cpu"}, unique_id="cpu").add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def unreachable_catalog(base: str) -> Callable[[], dict[str, CatalogEntry]]:
    """The real catalog with every upstream URL moved under `base`."""

    def load() -> dict[str, CatalogEntry]:
        def moved(file: ModelFile | None) -> ModelFile | None:
            return replace(file, url=f"{base}/{file.path}") if file else None

        return {
            key: replace(
                entry,
                cpu=replace(entry.cpu, url=f"{base}/{entry.cpu.path}"),
                edgetpu=moved(entry.edgetpu),
                labels=moved(entry.labels),
            )
            for key, entry in load_catalog().items()
        }

    return load


def closed_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("socket_enabled")
async def test_download_failure_is_shown_and_the_model_can_be_chosen_again(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An empty mirror, and an upstream that refuses connections.
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(ENV_MIRROR, str(tmp_path / "empty"))
    base = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(
        "custom_components.coral_vision.models.load_catalog", unreachable_catalog(base)
    )
    result = await start_on(hass, "cpu")

    result = await download(hass, result["flow_id"], "tf_coco_ssd_mobilenet_v1")

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "download_failed"
    assert result["errors"] == {"base": "download_failed"}
    assert base in result["description_placeholders"]["detail"]
    assert hass.config_entries.async_entries(DOMAIN) == []
    models = Path(hass.config.path(DOMAIN, "models"))
    assert not any(p.is_file() for p in models.rglob("*")), "nothing half-written is left"

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "model"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_unexpected_error_is_shown_not_raised(hass: HomeAssistant) -> None:
    # What HA 2025.4's aiodns 3.2 does under pycares 5: a TypeError out of aiohttp's resolver.
    result = await start_on(hass, "cpu")
    with patch(
        "custom_components.coral_vision.config_flow.async_load_models",
        side_effect=TypeError("Channel.getaddrinfo() takes 3 positional arguments"),
    ):
        result = await download(hass, result["flow_id"], "tf_coco_ssd_mobilenet_v1")

    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "unknown"}
    assert result["description_placeholders"]["detail"].startswith("TypeError: Channel")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "model"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_missing_runtime_is_shown(hass: HomeAssistant) -> None:
    result = await start_on(hass, "cpu")
    with runtime_unavailable() as install:
        result = await download(hass, result["flow_id"], "tf_coco_ssd_mobilenet_v1")
    install.assert_awaited_once()
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "runtime_missing"}
    assert hass.config_entries.async_entries(DOMAIN) == []
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.fixture
def allow_shared(hass: HomeAssistant, shared_dir: Path) -> Path:
    """Let Home Assistant read ../shared."""
    hass.config.allowlist_external_dirs = {str(shared_dir)}
    return shared_dir


@pytest.mark.usefixtures("allow_shared")
async def test_custom_model_path_checks(hass: HomeAssistant, models_dir: Path) -> None:
    result = await custom(hass, "cpu", "/etc/hostname")
    assert result["step_id"] == "custom_model"
    assert result["errors"] == {"model_path": "path_not_allowed"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"model_path": str(models_dir / "nothing.tflite"), "labels_path": "/etc/hostname"},
    )
    assert result["step_id"] == "custom_model"
    assert result["errors"] == {"model_path": "file_missing", "labels_path": "path_not_allowed"}
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared", "unload_all")
async def test_custom_classifier_is_inspected_then_created(
    hass: HomeAssistant, models_dir: Path
) -> None:
    model = models_dir / "mobilenet_v1_0.25_128_quant.tflite"
    labels = models_dir / "imagenet_labels.txt"
    result = await custom(hass, "cpu", model, str(labels))

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "inspect"
    assert not result["errors"]
    report = result["description_placeholders"]
    assert report["path"] == str(model)
    assert report["task"] == "image classification, 1001 classes"
    assert report["input"] == "128x128 uint8"
    assert report["quantization"].startswith("8-bit (uint8")
    assert report["edgetpu"] == "not compiled: all 31 operators run on the CPU"
    assert report["labels"].startswith(
        "1001 from the labels file (background; tench, Tinca tinca; goldfish"
    )

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "device": "cpu",
        "model": "custom",
        "model_path": str(model),
        "labels_path": str(labels),
    }
    await hass.async_block_till_done()
    assert result["result"].runtime_data.accelerator.model.task == "classification"


@pytest.mark.usefixtures("allow_shared")
async def test_custom_ssd_detector_report(hass: HomeAssistant, models_dir: Path) -> None:
    result = await custom(
        hass, "cpu", models_dir / SSD / "detect.tflite", str(models_dir / SSD / "labelmap.txt")
    )
    assert result["step_id"] == "inspect"
    report = result["description_placeholders"]
    assert report["task"] == "object detection (SSD)"
    assert report["input"] == "300x300 uint8"
    assert report["labels"] == "80 from the labels file (person; bicycle; car; …)"
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared")
async def test_compiled_model_on_the_cpu_is_refused_at_the_check(
    hass: HomeAssistant, models_dir: Path
) -> None:
    result = await custom(hass, "cpu", models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert result["step_id"] == "refused"
    assert result["errors"] == {"base": "edgetpu_model_on_cpu"}
    assert result["description_placeholders"]["edgetpu"] == (
        "compiled; every operator runs on the TPU"
    )
    assert result["description_placeholders"]["labels"].startswith("1001 from the model's metadata")

    # Submitting goes back to the file, filled in.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "custom_model"
    suggested = {str(k): k.description["suggested_value"] for k in result["data_schema"].schema}
    assert suggested["model_path"].endswith("mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared", "unload_all")
async def test_compiled_model_on_a_tpu_passes_the_check(
    hass: HomeAssistant, models_dir: Path
) -> None:
    # No TPU can load it here, and a local compiled model has no CPU twin: the try fails.
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[USB_TPU]):
        result = await custom(
            hass, "usb:0", models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
        )
    assert result["step_id"] == "inspect"
    assert not result["errors"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "edgetpu_model_on_cpu"}
    assert "is the Edge TPU runtime installed?" in result["description_placeholders"]["detail"]
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared")
@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("face/face_detection_short_range.tflite", "raw anchor predictions"),
        ("movenet_single_pose_lightning_ptq.tflite", "pose, segmentation"),
        ("invalid/model_invoking_error.tflite", "is not one RGB image"),
    ],
)
async def test_unsupported_model_is_refused_with_the_reason(
    hass: HomeAssistant, models_dir: Path, model: str, reason: str
) -> None:
    result = await custom(hass, "cpu", models_dir / model)
    assert result["step_id"] == "refused"
    assert result["errors"] == {"base": "model_unsupported"}
    assert result["description_placeholders"]["task"] == "not supported"
    assert reason in result["description_placeholders"]["notes"]

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "custom_model"
    assert hass.config_entries.async_entries(DOMAIN) == []
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared")
async def test_a_file_that_is_no_model_fails_then_goes_back(
    hass: HomeAssistant, models_dir: Path
) -> None:
    result = await custom(hass, "cpu", models_dir / "coco_labels.txt")
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "model_invalid"}
    assert result["description_placeholders"]["detail"]

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "model"
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.usefixtures("allow_shared")
async def test_labels_that_do_not_fit_fail_the_try(hass: HomeAssistant, models_dir: Path) -> None:
    # ImageNet's 1001 labels on the bird model (965 classes): the check warns, loading refuses.
    result = await custom(
        hass,
        "cpu",
        models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
        str(models_dir / "imagenet_labels.txt"),
    )
    assert result["step_id"] == "inspect"
    assert "1001 labels for 965 classes" in result["description_placeholders"]["notes"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "labels_invalid"}
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_reconfigure_changes_the_model_and_reloads(
    hass: HomeAssistant, images_dir: Path
) -> None:
    hass.config.allowlist_external_dirs = {str(images_dir)}
    entry = cpu_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    old_executor = entry.runtime_data.accelerator.dispatcher

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    assert default(result, "device") == "cpu"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    assert result["step_id"] == "model"
    assert default(result, "model") == "tf_coco_ssd_mobilenet_v1", "the current model"

    result = await download(hass, result["flow_id"], "mobilenet_v2_imagenet")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    assert entry.data == {"device": "cpu", "model": "mobilenet_v2_imagenet"}
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.accelerator.dispatcher is not old_executor
    response = await hass.services.async_call(
        DOMAIN,
        "classify",
        {"file": str(images_dir / "cat.bmp"), "top_k": 1},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["classes"][0]["label"] == "Egyptian cat"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_offers_no_device_in_use(hass: HomeAssistant) -> None:
    cpu_entry().add_to_hass(hass)
    tpu = MockConfigEntry(domain=DOMAIN, data={"device": "usb:0", "model": "x"}, unique_id="usb:0")
    tpu.add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[]):
        result = await tpu.start_reconfigure_flow(hass)
    assert options(result, "device") == ["usb:0"], "an unplugged TPU stays; the used CPU is not"
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert tpu.data["device"] == "usb:0"


async def test_reconfigure_to_a_device_set_up_meanwhile_is_refused(hass: HomeAssistant) -> None:
    tpu = MockConfigEntry(domain=DOMAIN, data={"device": "usb:0", "model": "x"}, unique_id="usb:0")
    tpu.add_to_hass(hass)
    with patch("custom_components.coral_vision.config_flow.list_edge_tpus", return_value=[]):
        result = await tpu.start_reconfigure_flow(hass)
    assert options(result, "device") == ["usb:0", "cpu"]
    cpu_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert tpu.data["device"] == "usb:0"


@pytest.fixture
async def links(socket_enabled: None, models_dir: Path) -> AsyncIterator[LinkServer]:
    """Model links on 127.0.0.1: real models, and slow, endless, looping or HTML answers."""
    async with serve_links(models_dir) as server:
        yield server


def custom_dir(hass: HomeAssistant) -> Path:
    """Where model links are kept."""
    return Path(hass.config.path(DOMAIN, "models", "custom"))


def kept_files(hass: HomeAssistant) -> list[str]:
    """Every file under models/custom, hidden and partial ones too."""
    folder = custom_dir(hass)
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def test_a_model_url_is_downloaded_checked_and_kept(
    hass: HomeAssistant, links: LinkServer, models_dir: Path
) -> None:
    hass.config.allowlist_external_dirs = {str(models_dir)}
    result = await custom(
        hass,
        "cpu",
        links.url("models/mobilenet_v2_1.0_224_quant.tflite"),
        str(models_dir / "imagenet_labels.txt"),
    )
    assert result["step_id"] == "inspect"
    assert result["description_placeholders"]["task"] == "image classification, 1001 classes"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    kept = Path(result["data"]["model_path"])
    assert kept.parent == custom_dir(hass)
    assert kept.name.startswith("mobilenet_v2_1.0_224_quant-")
    assert kept.read_bytes() == (models_dir / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    assert kept_files(hass) == [kept.name], "no partial file is left beside it"
    await hass.async_block_till_done()

    # The kept file counts as used: removing unused models leaves it.
    removed = await hass.services.async_call(
        DOMAIN, "remove_unused_models", {}, blocking=True, return_response=True
    )
    assert removed == {"removed": []}
    assert kept.exists()
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_kaggle_style_archive_is_unpacked_and_kept(
    hass: HomeAssistant, links: LinkServer
) -> None:
    result = await custom(hass, "cpu", links.url("model.tar.gz"))
    assert result["step_id"] == "inspect"
    assert [Path(result["description_placeholders"]["path"]).name] == kept_files(hass)
    hass.config_entries.flow.async_abort(result["flow_id"])


FAILING_LINKS = {
    # path on the link server: (form error, words the detail must hold)
    "status/404": ("download_failed", "HTTP 404 Not Found"),
    "loop": ("download_redirects", "too many redirects"),
    "page.tflite": ("link_not_a_model", "TFL3"),
    "trickle.tflite": ("download_timeout", "did not finish in time"),
}


@pytest.mark.parametrize("path", FAILING_LINKS, ids=FAILING_LINKS)
async def test_a_failing_link_is_a_form_error_and_leaves_no_file(
    hass: HomeAssistant, links: LinkServer, path: str
) -> None:
    error, detail = FAILING_LINKS[path]
    with patch.object(engine_links, "LINK_DEADLINE", Deadline(grace=0.5, limit=0.5)):
        result = await asyncio.wait_for(custom(hass, "cpu", links.url(path)), HANG)
    assert result["step_id"] == "custom_model"
    assert result["errors"] == {"model_path": error}
    assert detail in result["description_placeholders"]["detail"]
    assert translated(error)
    assert kept_files(hass) == []
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_a_malformed_link_is_a_form_error(hass: HomeAssistant) -> None:
    result = await custom(hass, "cpu", "http://[::1")
    assert result["errors"] == {"model_path": "url_invalid"}
    assert "Invalid IPv6 URL" in result["description_placeholders"]["detail"]
    assert translated("url_invalid")
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_an_endless_link_is_capped_without_buffering(
    hass: HomeAssistant, links: LinkServer
) -> None:
    cap = 32 * 2**20
    tracemalloc.start()
    try:
        with patch.object(engine_links, "MAX_LINK_BYTES", cap):
            result = await asyncio.wait_for(custom(hass, "cpu", links.url("endless.tflite")), HANG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["errors"] == {"model_path": "download_too_large"}
    assert translated("download_too_large")
    assert peak < cap // 2, "the body streams to a file; it is never held in memory"
    assert kept_files(hass) == []
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_an_unsupported_model_link_is_shown_but_not_kept(
    hass: HomeAssistant, links: LinkServer
) -> None:
    url = links.url(f"models/{UNSUPPORTED}")
    result = await custom(hass, "cpu", url)
    assert result["step_id"] == "refused"
    assert result["errors"] == {"base": "model_unsupported"}
    assert result["description_placeholders"]["path"] == url
    assert kept_files(hass) == []
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "custom_model"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_an_over_long_path_is_a_form_error(hass: HomeAssistant) -> None:
    # Resolving it raises "File name too long"; the form says the path is not allowed.
    result = await custom(hass, "cpu", "/config/" + "a/" * 3000 + "m.tflite")
    assert result["errors"] == {"model_path": "path_not_allowed"}
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_a_bad_labels_path_is_refused_before_any_download(
    hass: HomeAssistant, links: LinkServer
) -> None:
    result = await custom(hass, "cpu", links.url("endless.tflite"), "/etc/hostname")
    assert result["errors"] == {"labels_path": "path_not_allowed"}
    assert links.hits == {}, "the link was not fetched"
    assert kept_files(hass) == []
    hass.config_entries.flow.async_abort(result["flow_id"])


def strings() -> dict[str, Any]:
    """strings.json (translations/en.json is the same)."""
    folder = Path(__file__).parents[2] / "custom_components" / DOMAIN
    texts = [
        json.loads((folder / name).read_text("utf-8"))
        for name in ("strings.json", "translations/en.json")
    ]
    assert texts[0] == texts[1]
    return dict(texts[0])


def translated(key: str) -> str:
    """The English text of a config-flow error."""
    return str(strings()["config"]["error"][key])


def test_the_model_check_gives_one_instruction() -> None:
    config = strings()["config"]
    usable = config["step"]["inspect"]["description"]
    refused = config["step"]["refused"]["description"]
    assert usable.count("Submit") == 1
    assert "Submit to use this model" in usable
    assert refused.count("Submit") == 1
    assert "Submit to go back" in refused
    for error in ("model_unsupported", "edgetpu_model_on_cpu"):
        assert "Submit" not in config["error"][error], "the refusal's instruction is its step's"


BACK_DOOR = ConfigSubentryData(
    data={**camera_subentry()["data"], "camera_entity": "camera.back_door", "labels": ["kite"]},
    subentry_type=SUBENTRY_CAMERA,
    title="Back door",
    unique_id="camera.back_door",
)


@pytest.mark.usefixtures("photo_camera")
async def test_reconfigure_to_a_model_lacking_watched_labels_names_the_cameras(
    hass: HomeAssistant,
) -> None:
    entry = cpu_entry(camera_subentry(), BACK_DOOR)
    await set_up(hass, entry)
    executor = entry.runtime_data.accelerator.dispatcher

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    # A classifier for cameras watching COCO labels ("kite" is also an ImageNet bird).
    result = await download(hass, result["flow_id"], "mobilenet_v2_imagenet")

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "cameras_lack_labels"}
    assert translated("cameras_lack_labels")
    assert result["description_placeholders"]["detail"] == (
        "- Front door (camera.front_door): person, tie"
    )
    assert entry.data["model"] == "tf_coco_ssd_mobilenet_v1", "unchanged"
    assert entry.runtime_data.accelerator.dispatcher is executor, "not reloaded"

    # Back to the models: one with the labels is taken.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "model"
    result = await download(hass, result["flow_id"], "tf_coco_ssd_mobilenet_v1")
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_to_a_detector_lacking_a_watched_label_is_refused(
    hass: HomeAssistant, models_dir: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    coco = (models_dir / SSD / "labelmap.txt").read_text("utf-8")
    labels.write_text(coco.replace("\ntie\n", "\nnecktie\n"), "utf-8")
    hass.config.allowlist_external_dirs = {str(models_dir), str(tmp_path)}
    entry = cpu_entry(camera_subentry(), BACK_DOOR)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"device": "cpu"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"model": "custom"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"model_path": str(models_dir / SSD / "detect.tflite"), "labels_path": str(labels)},
    )
    assert result["step_id"] == "inspect"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["step_id"] == "failed"
    assert result["errors"] == {"base": "cameras_lack_labels"}
    assert result["description_placeholders"]["detail"] == "- Front door (camera.front_door): tie"
    assert entry.data["model"] == "tf_coco_ssd_mobilenet_v1"
    hass.config_entries.flow.async_abort(result["flow_id"])


@pytest.mark.parametrize("reload", ["as this Home Assistant does", "by the flow itself"])
async def test_changed_options_reload_the_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, models_dir: Path, reload: str
) -> None:
    # Without an update listener: OptionsFlowWithReload where there is one (2025.8+), else
    # the flow saves and reloads itself; the second way is forced here to run on every version.
    hass.config.allowlist_external_dirs = {str(models_dir)}
    forced = reload == "by the flow itself"
    own = patch.object(CoralVisionOptionsFlow, "automatic_reload", False, create=True)
    with own if forced else contextlib.nullcontext():
        for mirror, reloads in ((str(models_dir), True), (str(models_dir), False)):
            executor = loaded_entry.runtime_data.accelerator.dispatcher
            result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
            result = await hass.config_entries.options.async_configure(
                result["flow_id"], {"mirror": mirror}
            )
            assert result["type"] is FlowResultType.CREATE_ENTRY
            await hass.async_block_till_done()
            assert loaded_entry.options == {"mirror": mirror}
            assert loaded_entry.state is ConfigEntryState.LOADED
            assert (loaded_entry.runtime_data.accelerator.dispatcher is not executor) is reloads
