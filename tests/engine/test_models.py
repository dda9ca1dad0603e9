"""Loading models and learning their task, input and outputs without running them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custom_components.coral_vision.engine.errors import LabelsError, ModelError
from custom_components.coral_vision.engine.labels import Labels
from custom_components.coral_vision.engine.models import TF1_LAYOUT, Model, load_model

from .conftest import DETECT_DIR


def test_classifier(mobilenet: Model) -> None:
    assert mobilenet.task == "classification"
    assert mobilenet.name == "mobilenet_v2_1.0_224_quant"
    assert (mobilenet.input.width, mobilenet.input.height, mobilenet.input.channels) == (
        224,
        224,
        3,
    )
    assert mobilenet.input.dtype == np.uint8
    assert (mobilenet.input.scale, mobilenet.input.zero_point) == (0.0078125, 128)
    assert mobilenet.num_classes == 1001
    assert mobilenet.detection_layout is None
    assert not mobilenet.edgetpu
    assert mobilenet.labels.name(286) == "Egyptian cat"
    assert len(mobilenet.outputs) == 1
    assert mobilenet.outputs[0].scale == pytest.approx(1 / 256)


def test_detector(ssd_model: Model, models_dir: Path) -> None:
    assert ssd_model.task == "detection"
    assert ssd_model.detection_layout == TF1_LAYOUT
    assert (ssd_model.input.width, ssd_model.input.height) == (300, 300)
    assert ssd_model.labels.name(0) == "person"
    assert ssd_model.path == models_dir / DETECT_DIR / "detect.tflite"
    assert ssd_model.num_classes is None
    assert len(ssd_model.outputs) == 4


def test_labels_default_to_metadata(models_dir: Path) -> None:
    model = load_model(models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite")
    assert len(model.labels) == 965
    assert any(name.endswith("(Scarlet Macaw)") for name in model.labels.names())


def test_no_labels_anywhere_means_ids(models_dir: Path) -> None:
    model = load_model(models_dir / DETECT_DIR / "detect.tflite")
    assert len(model.labels) == 0
    assert model.labels.name(0) == "id 0"


def test_labels_object_and_name_and_bytes(models_dir: Path) -> None:
    content = (models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    model = load_model(content, labels=Labels({1: "one"}), name="tiny")
    assert (model.name, model.path, model.labels.name(1)) == ("tiny", None, "one")
    assert (model.input.width, model.input.height) == (128, 128)
    assert load_model(content).name == "model"


def test_edgetpu_model_is_recognised(models_dir: Path) -> None:
    model = load_model(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert model.edgetpu
    assert model.task == "classification"
    assert model.labels.name(0) == "background"


def test_tf2_model_input(models_dir: Path) -> None:
    model = load_model(models_dir / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert model.input.dtype == np.uint8
    assert model.input.scale == pytest.approx(1 / 127.5)
    assert model.input.zero_point == 127


def test_labels_that_do_not_fit(models_dir: Path) -> None:
    with pytest.raises(LabelsError, match="outputs only 965 classes"):
        load_model(
            models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
            labels=models_dir / "imagenet_labels.txt",
        )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model file"):
        load_model(tmp_path / "missing.tflite")


@pytest.mark.parametrize(
    "content", [b"", b"not a model at all", bytes(range(256)) * 64], ids=["empty", "text", "junk"]
)
def test_garbage_is_not_a_model(content: bytes) -> None:
    with pytest.raises(ModelError, match="not a TensorFlow Lite file"):
        load_model(content)


def test_truncated_model_is_rejected_by_the_interpreter(ssd_model: Model) -> None:
    with pytest.raises(ModelError, match="rejected the model"):
        load_model(ssd_model.content[:5000])


def test_raw_output_face_detector_is_refused(models_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"unsupported model.*regressors \[1, 896, 16\]"):
        load_model(models_dir / "face" / "face_detection_short_range.tflite")


@pytest.mark.parametrize(
    "name", ["movenet_single_pose_lightning_ptq", "movenet_single_pose_lightning_ptq_edgetpu"]
)
def test_pose_model_is_refused(models_dir: Path, name: str) -> None:
    with pytest.raises(ModelError, match=r"unsupported model.*\[1, 1, 17, 3\]"):
        load_model(models_dir / f"{name}.tflite")


def test_invalid_model_is_refused(models_dir: Path) -> None:
    # Its one output is a scalar: neither detections nor class scores.
    with pytest.raises(ModelError, match="unsupported model"):
        load_model(models_dir / "invalid" / "model_invoking_error.tflite")
