"""Fixtures shared by every test: where the real models and photos live, and the deprecation gate."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "coral_vision"


def reports_deprecation(record: logging.LogRecord) -> bool:
    """Whether Home Assistant reports a deprecated (or soon broken) use by Coral Vision."""
    message = record.getMessage()
    if DOMAIN not in message:
        return False
    # frame.report_usage and deprecated requirements: "Detected that custom integration
    # 'coral_vision' ..."; helpers.deprecation: "The deprecated function ... from coral_vision".
    return (
        "Detected that" in message and f"integration '{DOMAIN}'" in message
    ) or "deprecated" in message.lower()


class _DeprecationCollector(logging.Handler):
    """Keeps the records in which Home Assistant reports a deprecated use by Coral Vision."""

    def __init__(self) -> None:
        """Collect at every level."""
        super().__init__(logging.NOTSET)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a report."""
        if reports_deprecation(record):
            self.reports.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(autouse=True)
def no_deprecation_reported() -> Iterator[None]:
    """Fail a test in which Home Assistant reports a deprecated use by Coral Vision."""
    # Set up before Home Assistant (no dependency on it), so it sees the teardown's unloads too.
    collector = _DeprecationCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    if collector.reports:
        pytest.fail("Home Assistant reported a deprecation:\n" + "\n".join(collector.reports))


def shared_path() -> Path:
    """The shared data folder: $CORAL_VISION_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder with real models and photos; fails loudly when it is absent."""
    path = shared_path()
    if not (path / "models").is_dir() or not (path / "images").is_dir():
        pytest.fail(
            f"real models and photos are missing: expected {path}/models and {path}/images "
            "(put the project's shared/ folder beside the repository or set CORAL_VISION_SHARED)"
        )
    return path


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    """../shared/models."""
    return shared_dir / "models"


@pytest.fixture(scope="session")
def images_dir(shared_dir: Path) -> Path:
    """../shared/images."""
    return shared_dir / "images"
