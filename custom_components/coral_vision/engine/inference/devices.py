"""Find Edge TPUs: USB accelerators in sysfs, PCIe/M.2 modules as /dev/apex_N."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The USB Accelerator shows the first id until libedgetpu loads its firmware, then the second.
USB_IDS = frozenset({("1a6e", "089a"), ("18d1", "9302")})
_APEX = re.compile(r"^apex_(\d+)$")
# libedgetpu's device strings: "usb:0", "pci:1".
_DEVICE = re.compile(r"^(usb|pci):(\d+)$", re.ASCII)

_LOGGER = logging.getLogger(__name__)
# Folders whose listing failed and was logged: polls log nothing more until they work again.
_reported: set[Path] = set()


@dataclass(frozen=True, slots=True)
class EdgeTpu:
    """One Edge TPU and the device string libedgetpu knows it by."""

    kind: Literal["usb", "pci"]
    index: int
    path: str
    device: str
    temperature_c: float | None = None
    # The USB bus address (busnum-devnum): new each time the device enumerates again.
    address: str = ""

    @property
    def label(self) -> str:
        """A name for people, e.g. "Edge TPU USB 0"."""
        return f"Edge TPU {'USB' if self.kind == 'usb' else 'PCIe'} {self.index}"

    @classmethod
    def unlisted(cls, device: str) -> EdgeTpu:
        """The record of an Edge TPU by its device string, while it is not plugged in (no path)."""
        parsed = parse_device(device)
        if parsed is None:
            raise ValueError(f"not an Edge TPU device string: {device!r}")
        return cls(parsed[0], parsed[1], "", device)


def parse_device(device: str) -> tuple[Literal["usb", "pci"], int] | None:
    """The kind and index of an Edge TPU device string ("usb:0", "pci:1"); None for others."""
    if (match := _DEVICE.match(device)) is None:
        return None
    return "usb" if match[1] == "usb" else "pci", int(match[2])


def list_edge_tpus(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[EdgeTpu]:
    """Every Edge TPU present: USB ones first, each kind in libedgetpu's index order."""
    return _usb_tpus(sys_root) + _pci_tpus(sys_root, dev_root)


def read_temperature(tpu: EdgeTpu, sys_root: Path = Path("/sys")) -> float | None:
    """Read a PCIe Edge TPU's temperature in °C; None for USB ones or when unreadable."""
    if tpu.kind != "pci":
        return None
    name = Path(tpu.path).name
    try:
        millidegrees = (sys_root / "class" / "apex" / name / "temp").read_text().strip()
        return int(millidegrees) / 1000.0
    except (OSError, ValueError):
        return None


def _usb_tpus(sys_root: Path) -> list[EdgeTpu]:
    found: list[Path] = []
    for entry in _sorted_entries(sys_root / "bus" / "usb" / "devices"):
        try:
            ids = (_read(entry / "idVendor"), _read(entry / "idProduct"))
        except OSError:
            # Interfaces and hubs without ids, or files we may not read: not a TPU we can use.
            continue
        if ids in USB_IDS:
            found.append(entry)
    return [
        EdgeTpu("usb", i, str(path), f"usb:{i}", address=_usb_address(path))
        for i, path in enumerate(found)
    ]


def _usb_address(entry: Path) -> str:
    """The device's bus address, "" when sysfs does not say."""
    try:
        return f"{_read(entry / 'busnum')}-{_read(entry / 'devnum')}"
    except OSError:
        return ""


def _pci_tpus(sys_root: Path, dev_root: Path) -> list[EdgeTpu]:
    numbered: list[tuple[int, Path]] = []
    for entry in _sorted_entries(dev_root):
        match = _APEX.match(entry.name)
        if match:
            numbered.append((int(match.group(1)), entry))
    numbered.sort()
    tpus = [EdgeTpu("pci", i, str(path), f"pci:{i}") for i, (_, path) in enumerate(numbered)]
    return [EdgeTpu(t.kind, t.index, t.path, t.device, read_temperature(t, sys_root)) for t in tpus]


def _sorted_entries(folder: Path) -> list[Path]:
    """List a folder in natural order (1-2 before 1-10); empty, logged once, when it can't be."""
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        if folder not in _reported:
            _reported.add(folder)
            # A missing bus is a machine without one; an unreadable one hides every TPU on it.
            level = logging.DEBUG if isinstance(err, FileNotFoundError) else logging.WARNING
            _LOGGER.log(level, "Cannot list %s, so no Edge TPU is found there: %s", folder, err)
        return []
    _reported.discard(folder)
    return sorted(entries, key=_natural_key)


def _natural_key(path: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _read(path: Path) -> str:
    return path.read_text().strip()
