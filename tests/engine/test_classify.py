"""Classification end to end on real photos, and reading class scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.inference.delegate import Backend, open_backend
from custom_components.coral_vision.engine.models.labels import Labels
from custom_components.coral_vision.engine.models.model import (
    InputSpec,
    Model,
    OutputSpec,
    load_model,
)
from custom_components.coral_vision.engine.vision.classify import get_classes
from custom_components.coral_vision.engine.vision.detect import decode_outputs

from .conftest import classify_photo, infer


@pytest.fixture(scope="module")
def imagenet(mobilenet: Model) -> Backend:
    """MobileNet v2 ImageNet on the CPU."""
    return open_backend(mobilenet, None)


def test_cat_is_an_egyptian_cat(imagenet: Backend, image_bytes: dict[str, bytes]) -> None:
    top = classify_photo(imagenet, image_bytes["cat.bmp"])
    assert top[0].label == "Egyptian cat"
    assert top[0].id == 286
    assert top[0].score == pytest.approx(0.79, abs=0.03)
    assert len(top) == 5
    assert [c.score for c in top] == sorted((c.score for c in top), reverse=True)


def test_parrot_is_a_macaw(imagenet: Backend, image_bytes: dict[str, bytes]) -> None:
    top = classify_photo(imagenet, image_bytes["parrot.jpg"], top_k=1)
    assert top[0].label == "macaw"
    assert top[0].score > 0.9


def test_parrot_on_the_bird_model_is_a_scarlet_macaw(
    models_dir: Path, image_bytes: dict[str, bytes]
) -> None:
    model = load_model(
        models_dir / "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
        labels=models_dir / "inat_bird_labels.txt",
    )
    top = classify_photo(open_backend(model, None), image_bytes["parrot.jpg"], top_k=3)
    assert top[0].label == "Ara macao (Scarlet Macaw)"
    assert top[0].score == pytest.approx(0.70, abs=0.05)


@pytest.mark.parametrize(
    "name",
    [
        "tf2_mobilenet_v2_1.0_224_ptq",
        "mobilenet_v1_0.5_160_quant",
        "mobilenet_v1_0.75_192_quant",
    ],
)
def test_other_classifiers_see_a_cat(
    models_dir: Path, image_bytes: dict[str, bytes], name: str
) -> None:
    model = load_model(models_dir / f"{name}.tflite")  # labels from its metadata
    top = classify_photo(open_backend(model, None, num_threads=1), image_bytes["cat.bmp"])
    assert any(word in top[0].label for word in ("cat", "tabby"))


def test_sunflower_is_not_a_cat(imagenet: Backend, image_bytes: dict[str, bytes]) -> None:
    top = classify_photo(imagenet, image_bytes["sunflower.bmp"], top_k=3)
    assert "cat" not in " ".join(c.label for c in top)


def test_threshold_and_top_k(imagenet: Backend, image_bytes: dict[str, bytes]) -> None:
    _, outputs = infer(imagenet, image_bytes["cat.bmp"])
    assert [c.label for c in get_classes(imagenet.model, outputs, threshold=0.5)] == [
        "Egyptian cat"
    ]
    assert len(get_classes(imagenet.model, outputs, top_k=20)) == 20
    assert get_classes(imagenet.model, outputs, top_k=0) == ()
    assert len(get_classes(imagenet.model, outputs, top_k=5000)) == 1001


def test_dequantizes_with_the_output_scale(mobilenet: Model) -> None:
    scores = np.zeros((1, 1001), np.uint8)
    scores[0, 7] = 128
    model = dataclasses.replace(
        mobilenet, outputs=(OutputSpec(0, "o", np.dtype(np.uint8), 1 / 256, 0),)
    )
    top = get_classes(model, (scores,), top_k=1)
    assert (top[0].id, top[0].score) == (7, 0.5)


def test_float_scores_and_ties() -> None:
    scores = np.array([[0.1, 0.3, 0.3, 0.05]], np.float32)
    spec = InputSpec(2, 2, 3, np.dtype(np.float32), 0.0, 0, 0)
    output = OutputSpec(0, "o", np.dtype(np.float32), 0.0, 0)
    model = Model("f", b"", None, "classification", spec, (output,), Labels({1: "b"}), False)
    top = get_classes(model, (scores,), top_k=3)
    assert [(c.label, c.id) for c in top] == [("b", 1), ("id 2", 2), ("id 0", 0)]


def test_decode_outputs_dispatches(imagenet: Backend, image_bytes: dict[str, bytes]) -> None:
    frame, outputs = infer(imagenet, image_bytes["cat.bmp"])
    detections, classes = decode_outputs(imagenet.model, outputs, frame, threshold=0.5, top_k=3)
    assert detections == ()
    assert [c.label for c in classes] == ["Egyptian cat"]


def test_classes_need_a_classifier(ssd_model: Model) -> None:
    with pytest.raises(ModelError, match="not a classification model"):
        get_classes(ssd_model, (np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(1)))
