"""What a loaded entry holds: its accelerator, the statistics and the cameras fed to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .accelerator import Accelerator
from .coordinator import AcceleratorCoordinator
from .processor import CameraProcessor


@dataclass(frozen=True, slots=True)
class CoralVisionData:
    """A loaded entry's runtime data, built whole before the entry holds it."""

    accelerator: Accelerator
    coordinator: AcceleratorCoordinator
    processors: Mapping[str, CameraProcessor]  # by camera subentry id


type CoralVisionConfigEntry = ConfigEntry[CoralVisionData]
