"""Fixtures for engine tests: real models, photos and a fake Edge TPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt
import pytest

from custom_components.coral_vision.engine.inference.delegate import Backend
from custom_components.coral_vision.engine.models.model import Model, load_model
from custom_components.coral_vision.engine.results import Classification, Detection
from custom_components.coral_vision.engine.runtime import Runtime, load_runtime
from custom_components.coral_vision.engine.vision.classify import get_classes
from custom_components.coral_vision.engine.vision.detect import get_detections
from custom_components.coral_vision.engine.vision.preprocess import (
    PreparedFrame,
    ResizeMode,
    prepare_frame,
)

DETECT_DIR = "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"


@pytest.fixture(scope="session")
def ssd_model(models_dir: Path) -> Model:
    """SSD MobileNet v1 COCO with its TF label map (??? on line 0)."""
    return load_model(
        models_dir / DETECT_DIR / "detect.tflite", labels=models_dir / DETECT_DIR / "labelmap.txt"
    )


@pytest.fixture(scope="session")
def mobilenet(models_dir: Path) -> Model:
    """MobileNet v2 ImageNet classifier with imagenet_labels.txt."""
    return load_model(
        models_dir / "mobilenet_v2_1.0_224_quant.tflite",
        labels=models_dir / "imagenet_labels.txt",
    )


@pytest.fixture(scope="session")
def tiny(models_dir: Path) -> Model:
    """The smallest classifier, for tests where the model does not matter."""
    return load_model(
        models_dir / "mobilenet_v1_0.25_128_quant.tflite", labels=models_dir / "imagenet_labels.txt"
    )


@pytest.fixture(scope="session")
def tiny_tpu(models_dir: Path) -> Model:
    """The same classifier compiled for the Edge TPU (run through a fake TPU)."""
    return load_model(
        models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        labels=models_dir / "imagenet_labels.txt",
    )


@pytest.fixture
def photo(image_bytes: dict[str, bytes]) -> bytes:
    """A photo any classifier or detector can take."""
    return image_bytes["cat.bmp"]


@pytest.fixture(scope="session")
def image_bytes(images_dir: Path) -> dict[str, bytes]:
    """Every shared photo's bytes by file name."""
    return {p.name: p.read_bytes() for p in images_dir.iterdir() if p.name != "COPYRIGHT"}


@pytest.fixture(scope="session")
def cpu_runtime() -> Runtime:
    """The real installed runtime."""
    return load_runtime()


def infer(
    backend: Backend, data: bytes, resize: ResizeMode = "stretch"
) -> tuple[PreparedFrame, tuple[npt.NDArray[Any], ...]]:
    """Prepare one photo for the backend's model and run it."""
    frame = prepare_frame(data, backend.model.input, resize=resize)
    return frame, backend.invoke(frame)


def classify_photo(backend: Backend, data: bytes, top_k: int = 5) -> tuple[Classification, ...]:
    """Run a photo through a classifier and decode its top classes."""
    _, outputs = infer(backend, data)
    return get_classes(backend.model, outputs, top_k=top_k)


def detect_photo(
    backend: Backend, data: bytes, resize: ResizeMode = "stretch", threshold: float = 0.5
) -> tuple[PreparedFrame, tuple[Detection, ...]]:
    """Run a photo through a detector and decode its objects."""
    frame, outputs = infer(backend, data, resize)
    return frame, get_detections(backend.model, outputs, frame, threshold=threshold)
