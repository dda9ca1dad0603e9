"""Discovering Edge TPUs in fake sysfs and /dev trees."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from custom_components.coral_vision.engine.inference.devices import (
    EdgeTpu,
    list_edge_tpus,
    parse_device,
    read_temperature,
)

from .fakes import USB_AFTER_FIRMWARE, USB_BEFORE_FIRMWARE, make_pci_tpu, make_usb_tpu


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Empty sys and dev roots."""
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    (sys_root / "bus" / "usb" / "devices").mkdir(parents=True)
    dev_root.mkdir()
    return sys_root, dev_root


def test_nothing_present(roots: tuple[Path, Path], tmp_path: Path) -> None:
    assert list_edge_tpus(*roots) == []
    assert list_edge_tpus(tmp_path / "no-sys", tmp_path / "no-dev") == []


def test_usb_before_and_after_firmware_load(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    make_usb_tpu(sys_root, "2-1", USB_BEFORE_FIRMWARE)
    make_usb_tpu(sys_root, "1-1", USB_AFTER_FIRMWARE)
    tpus = list_edge_tpus(sys_root, dev_root)
    assert [(t.kind, t.index, t.device, Path(t.path).name) for t in tpus] == [
        ("usb", 0, "usb:0", "1-1"),
        ("usb", 1, "usb:1", "2-1"),
    ]
    assert tpus[0].label == "Edge TPU USB 0"
    assert tpus[0].temperature_c is None


def test_other_usb_devices_hubs_and_interfaces_are_ignored(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    make_usb_tpu(sys_root, "usb1", ("1d6b", "0002"))
    make_usb_tpu(sys_root, "1-2", ("046d", "c52b"))
    make_usb_tpu(sys_root, "1-3", USB_AFTER_FIRMWARE)
    (sys_root / "bus" / "usb" / "devices" / "1-3:1.0").mkdir()
    assert [Path(t.path).name for t in list_edge_tpus(sys_root, dev_root)] == ["1-3"]


def test_several_usb_devices_in_natural_order(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    for name in ("1-10", "1-2", "3-1.4", "1-1.2"):
        make_usb_tpu(sys_root, name)
    tpus = list_edge_tpus(sys_root, dev_root)
    assert [Path(t.path).name for t in tpus] == ["1-1.2", "1-2", "1-10", "3-1.4"]
    assert [t.device for t in tpus] == ["usb:0", "usb:1", "usb:2", "usb:3"]


def test_unreadable_usb_ids_are_skipped(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    broken = make_usb_tpu(sys_root, "1-1")
    (broken / "idVendor").unlink()
    (broken / "idVendor").mkdir()  # reading it raises IsADirectoryError, like EACCES would
    make_usb_tpu(sys_root, "1-2")
    assert [t.device for t in list_edge_tpus(sys_root, dev_root)] == ["usb:0"]


def test_usb_devices_folder_that_is_not_a_folder(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "bus" / "usb").mkdir(parents=True)
    (sys_root / "bus" / "usb" / "devices").write_text("oops")
    assert list_edge_tpus(sys_root, tmp_path / "dev") == []


def test_pcie_with_and_without_temperature(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    make_pci_tpu(sys_root, dev_root, 1)
    make_pci_tpu(sys_root, dev_root, 0, millidegrees="45500")
    (dev_root / "apex_extra").touch()
    (dev_root / "null").touch()
    tpus = list_edge_tpus(sys_root, dev_root)
    assert [(t.kind, t.device, t.path, t.temperature_c) for t in tpus] == [
        ("pci", "pci:0", str(dev_root / "apex_0"), 45.5),
        ("pci", "pci:1", str(dev_root / "apex_1"), None),
    ]
    assert tpus[1].label == "Edge TPU PCIe 1"


def test_usb_and_pcie_together(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    make_pci_tpu(sys_root, dev_root, 0)
    make_usb_tpu(sys_root, "1-1", USB_BEFORE_FIRMWARE)
    assert [t.device for t in list_edge_tpus(sys_root, dev_root)] == ["usb:0", "pci:0"]


def test_read_temperature(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    node = make_pci_tpu(sys_root, dev_root, 0, millidegrees="51250")
    tpu = EdgeTpu("pci", 0, str(node), "pci:0", None)
    assert read_temperature(tpu, sys_root) == 51.25
    (sys_root / "class" / "apex" / "apex_0" / "temp").write_text("garbage")
    assert read_temperature(tpu, sys_root) is None
    (sys_root / "class" / "apex" / "apex_0" / "temp").unlink()
    assert read_temperature(tpu, sys_root) is None
    usb = EdgeTpu("usb", 0, str(sys_root / "bus/usb/devices/1-1"), "usb:0", None)
    assert read_temperature(usb, sys_root) is None


def test_usb_bus_address(roots: tuple[Path, Path]) -> None:
    sys_root, dev_root = roots
    make_usb_tpu(sys_root, "1-1", address=(1, 4))
    make_usb_tpu(sys_root, "1-2")
    assert [t.address for t in list_edge_tpus(sys_root, dev_root)] == ["1-4", ""]


def test_an_unreadable_folder_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(
        logging.DEBUG, logger="custom_components.coral_vision.engine.inference.devices"
    )
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"  # no /dev at all: a debug line
    devices = sys_root / "bus" / "usb" / "devices"
    devices.parent.mkdir(parents=True)
    devices.write_text("oops")  # listing it fails, as EACCES or EIO would

    def poll(times: int) -> list[tuple[int, str]]:
        caplog.clear()
        for _ in range(times):
            assert list_edge_tpus(sys_root, dev_root) == []
        return [(r.levelno, r.getMessage()) for r in caplog.records]

    first = poll(3)
    assert [level for level, _ in first] == [logging.WARNING, logging.DEBUG]
    assert str(devices) in first[0][1]
    assert "Not a directory" in first[0][1]
    assert str(dev_root) in first[1][1]
    assert poll(3) == [], "one line, not one per poll"
    devices.unlink()
    devices.mkdir()
    assert poll(1) == []
    devices.rmdir()
    devices.write_text("oops")
    assert [level for level, _ in poll(2)] == [logging.WARNING], "broken again: one more line"


def test_device_strings_are_parsed_in_one_place() -> None:
    assert parse_device("usb:0") == ("usb", 0)
    assert parse_device("pci:12") == ("pci", 12)
    for other in ("cpu", "auto", "usb", "usb:", "usb:x", "usb:-1", "pci:1 ", "tpu:0", "usb:\u0660"):
        assert parse_device(other) is None, other
    placeholder = EdgeTpu.unlisted("pci:1")
    assert (placeholder.kind, placeholder.index, placeholder.path) == ("pci", 1, "")
    assert placeholder.label == "Edge TPU PCIe 1"
    with pytest.raises(ValueError, match="not an Edge TPU device string"):
        EdgeTpu.unlisted("cpu")
