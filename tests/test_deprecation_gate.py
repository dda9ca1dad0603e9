"""The gate that fails a test on any deprecation reported about Coral Vision."""

from __future__ import annotations

import logging
import warnings

import pytest

from .conftest import reports_deprecation


def record(name: str, message: str) -> logging.LogRecord:
    """A warning record as Home Assistant logs it."""
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)


def test_home_assistant_reports_about_coral_vision_are_caught() -> None:
    # helpers.frame.report_usage, helpers.deprecation, and a deprecated requirement.
    assert reports_deprecation(
        record(
            "homeassistant.helpers.frame",
            "Detected that custom integration 'coral_vision' calls `device_registry."
            "async_get_or_create` with a deprecated `via_device` parameter; use `via_device_id`"
            " instead at custom_components/coral_vision/entity.py, line 23",
        )
    )
    assert reports_deprecation(
        record(
            "homeassistant.config_entries",
            "Detected that custom integration 'coral_vision' has an update listener and should"
            " use it for scheduling a reload. This will stop working in Home Assistant 2026.12.0",
        )
    )
    assert reports_deprecation(
        record(
            "homeassistant.helpers.device_registry",
            "The deprecated constant X was used from coral_vision. Use Y instead",
        )
    )


def test_other_messages_pass() -> None:
    assert not reports_deprecation(
        record("homeassistant.helpers.frame", "Detected that custom integration 'other' ...")
    )
    assert not reports_deprecation(
        record("custom_components.coral_vision", "Edge TPU usb:0 is unavailable; on the CPU")
    )
    assert not reports_deprecation(
        record("homeassistant.setup", "Setup of integration 'coral_vision' took 1.2 seconds")
    )


def test_python_deprecation_warnings_from_coral_vision_are_errors() -> None:
    with pytest.raises(DeprecationWarning, match="old API"):
        warnings.warn_explicit(
            "old API", DeprecationWarning, "entity.py", 1, module="custom_components.coral_vision"
        )
    with pytest.raises(DeprecationWarning, match="old API"):
        warnings.warn_explicit(
            "old API",
            DeprecationWarning,
            "entity.py",
            1,
            module="custom_components.coral_vision.entity",
        )
    # A library's own deprecations stay warnings: they are not ours to fix.
    with pytest.warns(DeprecationWarning, match="old API"):
        warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="somelib.x")
