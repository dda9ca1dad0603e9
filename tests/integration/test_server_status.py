"""A server's status as the remote accelerator shows it: backends, counters, temperatures, TPUs."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.client import parse_status
from custom_components.coral_vision.engine.errors import ExecutorClosedError
from custom_components.coral_vision.engine.inference.delegate import FallbackReason
from custom_components.coral_vision.server import RemoteAccelerator, server_client

MODEL = "ssd_mobilenet_v2_coco"
COUNTERS = {
    "inference_ms_p50": 7.5,
    "inference_ms_p95": 9.0,
    "frames_done": 40,
    "frames_dropped": 1,
    "frames_failed": 0,
    "frames_rejected": 0,
    "frames_timed_out": 0,
    "queue_depth": 0,
    "queue_limit": 8,
}


def device(name: str, backend: str | None, reason: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": name.partition(":")[0],
        "index": 0,
        "label": name,
        "temperature_c": extra.get("temperature_c"),
        "backend": backend,
        "fallback_reason": reason,
        "models": [
            {
                "model": MODEL,
                "backend": backend,
                "fallback_reason": reason,
                "detail": "",
                "statistics": extra.get("statistics", COUNTERS),
            }
        ],
    }


def status(*devices: dict[str, Any], statistics: dict[str, Any] | None = None) -> Any:
    model = {
        "id": MODEL,
        "name": "SSD MobileNet v2",
        "origin": "catalog",
        "task": "detection",
        "variant": "edgetpu",
        "input_size": [300, 300],
        "labels": ["person", "cat"],
        **({"statistics": statistics} if statistics else {}),
    }
    return parse_status(
        {"id": "abc", "version": "1.2.0", "api": "1", "devices": list(devices), "models": [model]}
    )


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_backends_counters_and_temperatures(
    hass: HomeAssistant, session: aiohttp.ClientSession
) -> None:
    data = {"device": "server", "host": "127.0.0.1", "port": 1, "api_key": None, "model": MODEL}
    entry = MockConfigEntry(domain=DOMAIN, title="Server", data=data, unique_id="abc")
    entry.add_to_hass(hass)
    reported = status(
        device("pci:0", "edgetpu-pci", None, temperature_c=51.5),
        device("usb:0", "cpu", "something new"),
        device("usb:1", "quantum", None, statistics=None),
    )
    remote = RemoteAccelerator(hass, entry, server_client(session, data), reported, "device-id")
    assert remote.pooled
    assert remote.devices == ("pci:0", "usb:0", "usb:1")
    assert remote.model.edgetpu
    assert remote.temperatures == {"pci:0": 51.5, "usb:0": None, "usb:1": None}
    backend = remote.backend
    assert backend is not None
    assert (backend.kind, backend.device, backend.label) == (
        "edgetpu-pci",
        "pci:0",
        "Edge TPU (PCIe)",
    )
    # A fallback reason this version does not know still reads as a fallback.
    fallback = remote.backend_of("usb:0")
    assert fallback is not None
    assert fallback.fallback_reason is FallbackReason.NO_DEVICE
    assert remote.backend_of("usb:1") is None  # a backend kind it does not know
    assert remote.backend_of("usb:9") is None
    counters = remote.stats()
    assert sorted(counters.devices) == ["pci:0", "usb:0"]
    # Without the model's own total, the devices' counters add up.
    assert counters.total.frames_done == 80
    assert remote.device_info["sw_version"] == "1.2.0"
    await remote.async_remove_tpu("usb:0")  # the server's own: nothing to do here
    assert remote.devices == ("pci:0", "usb:0", "usb:1")

    await remote.async_close()
    assert not remote.available
    assert remote.backend is None
    with pytest.raises(ExecutorClosedError):
        await remote.run("camera", b"jpeg")
