"""Fixtures shared by every test: where the real models and photos live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
