"""What an entry's device setting names: the CPU, one Edge TPU, every Edge TPU, a chosen set, or a server.

The setting stays one string, which is also a local entry's unique id: "cpu", "usb:0", "all", or
a chosen set as its TPUs sorted and joined by "+" ("pci:0+usb:1"). A TPU belongs to at most one
entry: the config flow offers only TPUs no other entry names, and "all" only while no other
entry names a TPU (it claims every TPU, including those plugged in later).

"server": frames run on a Coral Vision server, whose Edge TPUs are its own. Such an entry's data
is {"device": "server", "host": str, "port": int, "api_key": str | None, "model": <a model id
on the server>}, and its unique id is the server's id (from /v1/status).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .const import CONF_DEVICE, DEVICE_CPU

DEVICE_ALL = "all"
DEVICE_SERVER = "server"
SET_SEPARATOR = "+"


def is_server(data: Mapping[str, Any]) -> bool:
    """Whether an entry's data names a Coral Vision server rather than local accelerators."""
    return data.get(CONF_DEVICE) == DEVICE_SERVER


def is_pool(device: str) -> bool:
    """Whether a setting names a local pool ("all" or a chosen set) rather than one accelerator."""
    return device == DEVICE_ALL or SET_SEPARATOR in device


def chosen_set(devices: Iterable[str]) -> str:
    """The setting for a chosen set of Edge TPUs (one TPU is that TPU's own setting)."""
    return SET_SEPARATOR.join(sorted(set(devices)))


def named_tpus(device: str) -> tuple[str, ...]:
    """The local Edge TPUs a setting names by their device strings (none for "cpu", "all", "server")."""
    if device in (DEVICE_CPU, DEVICE_ALL, DEVICE_SERVER):
        return ()
    return tuple(device.split(SET_SEPARATOR))
