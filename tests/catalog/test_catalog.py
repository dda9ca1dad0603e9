"""The shipped catalog: entries, pinned hashes against the shared models, variant choice."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.models.catalog import (
    is_edgetpu_kind,
    load_catalog,
    parse_catalog,
    variant_for,
)

CORAL = "https://github.com/google-coral/test_data/raw/master/"
REQUIRED = {
    "ssd_mobilenet_v1_coco",
    "ssd_mobilenet_v2_coco",
    "ssdlite_mobiledet_coco",
    "efficientdet_lite0",
    "efficientdet_lite1",
    "efficientdet_lite2",
    "mobilenet_v1_imagenet",
    "mobilenet_v2_imagenet",
    "inat_bird",
    "inat_insect",
    "inat_plant",
    "ssd_mobilenet_v2_face",
    "tf_coco_ssd_mobilenet_v1",
}


def test_catalog_has_the_common_models() -> None:
    catalog = load_catalog()
    assert set(catalog) >= REQUIRED
    assert catalog["ssd_mobilenet_v2_face"].task == "face_detection"
    assert catalog["efficientdet_lite2"].input_size == (448, 448)
    assert catalog["inat_bird"].task == "classification"
    for entry in catalog.values():
        assert entry.cpu.path.endswith(".tflite")
        assert entry.labels is not None
        if entry.edgetpu is not None:
            # Coral's convention: the compiled twin is the CPU file's stem + "_edgetpu".
            assert entry.edgetpu.path == entry.cpu.path.replace(".tflite", "_edgetpu.tflite")
            assert entry.edgetpu.url == CORAL + entry.edgetpu.path
            assert entry.cpu.url == CORAL + entry.cpu.path


def test_the_model_picker_reads_as_words() -> None:
    catalog = load_catalog()
    labels = [entry.label for entry in catalog.values()]
    assert len(set(labels)) == len(labels), "two entries a person cannot tell apart"
    assert len({entry.name for entry in catalog.values()}) == len(catalog)
    for entry in catalog.values():
        assert "_" not in entry.label, f"a raw identifier in {entry.label!r}"
    assert catalog["ssd_mobilenet_v2_face"].label == "SSD MobileNet v2 (faces) — face detection"
    assert catalog["inat_bird"].label.endswith(" — image classification")
    # The two SSD MobileNet v1 entries say where each comes from and where it runs.
    coral, tensorflow = catalog["ssd_mobilenet_v1_coco"], catalog["tf_coco_ssd_mobilenet_v1"]
    assert "Coral" in coral.name
    assert "Edge TPU" in coral.label
    assert coral.edgetpu is not None
    assert "TensorFlow" in tensorflow.name
    assert "CPU only" in tensorflow.label
    assert tensorflow.edgetpu is None


def test_pinned_hashes_match_the_shared_models(models_dir: Path) -> None:
    checked = 0
    for entry in load_catalog().values():
        for file in entry.files():
            local = models_dir / file.path
            if file.sha256 is None:
                continue
            assert local.is_file(), f"{file.path} is pinned but not in the shared mirror"
            data = local.read_bytes()
            assert hashlib.sha256(data).hexdigest() == file.sha256, file.path
            assert len(data) == file.size, file.path
            checked += 1
    assert checked >= 10


def test_tf_zip_entry() -> None:
    entry = load_catalog()["tf_coco_ssd_mobilenet_v1"]
    assert entry.edgetpu is None
    assert entry.cpu.member == "detect.tflite"
    assert entry.cpu.sha256 == "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"
    assert entry.cpu.url.endswith("coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip")
    assert entry.labels is not None
    assert entry.labels.member == "labelmap.txt"


def test_variant_follows_the_device() -> None:
    catalog = load_catalog()
    entry = catalog["ssd_mobilenet_v2_coco"]
    for kind in ("usb", "pci", "edgetpu", "USB"):
        assert variant_for(entry, kind) == entry.edgetpu
    assert variant_for(entry, "cpu") == entry.cpu
    assert (
        variant_for(catalog["tf_coco_ssd_mobilenet_v1"], "usb")
        == catalog["tf_coco_ssd_mobilenet_v1"].cpu
    )
    assert not is_edgetpu_kind("cpu")
    with pytest.raises(ValueError, match="unknown device kind"):
        variant_for(entry, "gpu")


def _document(**changes: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "id": "m",
        "name": "M",
        "task": "detection",
        "dataset": "coco",
        "input_size": [300, 300],
        "cpu": {"path": "m.tflite", "url": "http://x/m.tflite"},
    }
    model.update(changes)
    return {"models": [model]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cpu": {"path": "../m.tflite", "url": "http://x"}}, "unsafe path"),
        ({"cpu": {"path": "/etc/m.tflite", "url": "http://x"}}, "unsafe path"),
        ({"cpu": None}, "cpu file is required"),
        ({"task": "pose"}, "unknown task"),
        ({"input_size": [300]}, "input_size"),
        ({"cpu": {"path": "m.tflite", "url": "http://x", "sha256": "abc"}}, "sha256"),
        ({"cpu": {"path": "m.tflite", "url": "http://x", "size": -1}}, "size"),
        ({"name": ""}, "'name'"),
        ({"description": ""}, "'description'"),
    ],
)
def test_bad_catalogs_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_catalog(_document(**changes))


def test_duplicate_ids_and_bad_documents(tmp_path: Path) -> None:
    document = _document()
    document["models"] *= 2
    with pytest.raises(ModelError, match="duplicate"):
        parse_catalog(document)
    with pytest.raises(ModelError, match="models"):
        parse_catalog([])
    broken = tmp_path / "catalog.json"
    broken.write_text("{")
    with pytest.raises(ModelError, match="cannot read"):
        load_catalog(broken)
