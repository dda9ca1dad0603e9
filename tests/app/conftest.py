"""Where the Home Assistant app's files are, read as the Supervisor reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

APP_DIR = REPO / "coral_vision_server"


def read_yaml(path: Path) -> Any:
    """A YAML file's content (safe loader, like the Supervisor's)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def app_config() -> dict[str, Any]:
    """coral_vision_server/config.yaml."""
    config = read_yaml(APP_DIR / "config.yaml")
    assert isinstance(config, dict)
    return config
