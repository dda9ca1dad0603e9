"""What an entry's device setting names: the CPU, one Edge TPU, every Edge TPU, or a chosen set.

The setting stays one string, which is also the entry's unique id: "cpu", "usb:0", "all", or
a chosen set as its TPUs sorted and joined by "+" ("pci:0+usb:1"). A TPU belongs to at most one
entry: the config flow offers only TPUs no other entry names, and "all" only while no other
entry names a TPU (it claims every TPU, including those plugged in later).
"""

from __future__ import annotations

from collections.abc import Iterable

from .const import DEVICE_CPU

DEVICE_ALL = "all"
SET_SEPARATOR = "+"


def is_pool(device: str) -> bool:
    """Whether a setting names a pool ("all" or a chosen set) rather than one accelerator."""
    return device == DEVICE_ALL or SET_SEPARATOR in device


def chosen_set(devices: Iterable[str]) -> str:
    """The setting for a chosen set of Edge TPUs (one TPU is that TPU's own setting)."""
    return SET_SEPARATOR.join(sorted(set(devices)))


def named_tpus(device: str) -> tuple[str, ...]:
    """The Edge TPUs a setting names by their device strings (none for "cpu" and "all")."""
    if device in (DEVICE_CPU, DEVICE_ALL):
        return ()
    return tuple(device.split(SET_SEPARATOR))
