"""The models folder: listing with users, removing unused files, the manifest."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import aiohttp
import pytest

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.models import store
from custom_components.coral_vision.engine.models.catalog import CatalogEntry
from custom_components.coral_vision.engine.models.download import ensure_model

from .conftest import TF_DIR, leftovers


async def test_list_and_remove_unused(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    models_dir: Path,
    store_dir: Path,
) -> None:
    kept = await ensure_model(
        session, catalog["mobilenet_v1_025_128_imagenet"], "usb", store_dir, mirror=str(models_dir)
    )
    await ensure_model(
        session, catalog["tf_coco_ssd_mobilenet_v1"], "cpu", store_dir, mirror=str(models_dir)
    )
    (store_dir / "my_model.tflite").write_bytes(b"copied by hand")
    references = {path: ["Garden camera"] for path in kept.files}
    references[kept.model] = ["Garden camera", "Porch camera"]

    listed = {m.path: m for m in store.list_models(store_dir, references)}
    assert set(listed) == {
        "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        "mobilenet_v1_0.25_128_quant.tflite",
        "imagenet_labels.txt",
        f"{TF_DIR}/detect.tflite",
        f"{TF_DIR}/labelmap.txt",
        "my_model.tflite",
    }
    tpu = listed["mobilenet_v1_0.25_128_quant_edgetpu.tflite"]
    assert tpu.used_by == ("Garden camera", "Porch camera")
    assert tpu.in_use
    assert tpu.variant == "edgetpu"
    assert tpu.entry == "mobilenet_v1_025_128_imagenet"
    assert tpu.size == (models_dir / tpu.path).stat().st_size
    assert tpu.sha256 == catalog["mobilenet_v1_025_128_imagenet"].edgetpu.sha256  # type: ignore[union-attr]
    assert tpu.source == str(models_dir / tpu.path)
    assert tpu.as_dict()["in_use"] is True
    detect = listed[f"{TF_DIR}/detect.tflite"]
    assert not detect.in_use
    assert detect.variant == "cpu"
    assert listed["my_model.tflite"].sha256 is None  # not fetched by us: unknown to the manifest

    removed = store.remove_unused(store_dir, references)
    assert sorted(removed) == [
        f"{TF_DIR}/detect.tflite",
        f"{TF_DIR}/labelmap.txt",
        "my_model.tflite",
    ]
    assert leftovers(store_dir) == sorted(
        [
            "mobilenet_v1_0.25_128_quant_edgetpu.tflite",
            "mobilenet_v1_0.25_128_quant.tflite",
            "imagenet_labels.txt",
            store.MANIFEST_NAME,
        ]
    )
    assert not (store_dir / "detection").exists()  # emptied folders go too
    assert f"{TF_DIR}/detect.tflite" not in store.read_manifest(store_dir)


def test_relative_references_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "a.tflite").write_bytes(b"x")
    listed = store.list_models(tmp_path, {"a.tflite": ["Cam"]})
    assert listed[0].used_by == ("Cam",)
    with pytest.raises(ModelError):
        store.remove_model(tmp_path, "../outside.tflite")
    with pytest.raises(ModelError):
        store.remove_model(tmp_path, store.MANIFEST_NAME)
    assert store.list_models(tmp_path / "missing") == []


def test_stale_partial_downloads_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".a.tflite.x1.part"
    fresh = tmp_path / ".b.tflite.x2.part"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert store.list_models(tmp_path) == []  # partial files are never listed
    store.remove_unused(tmp_path)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a download still running


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        '["a list"]',
        '{"files": "not a mapping"}',
    ],
)
def test_a_damaged_manifest_reads_as_empty(
    tmp_path: Path, manifest: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / store.MANIFEST_NAME).write_text(manifest)
    assert store.read_manifest(tmp_path) == {}
    assert store.read_manifest(tmp_path) == {}
    # Once, however often it is read, naming the file: its pins no longer protect anything.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(tmp_path / store.MANIFEST_NAME) in warnings[0].getMessage()
    assert "damaged" in warnings[0].getMessage()


def test_untrustworthy_records_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / store.MANIFEST_NAME).write_text(
        '{"files": {"good.tflite": {"sha256": "ab", "size": 3},'
        ' "no_hash.tflite": {"size": 3},'
        ' "bad_size.tflite": {"sha256": "ab", "size": "three"}}}'
    )
    assert list(store.read_manifest(tmp_path)) == ["good.tflite"]
    assert "2 unusable record(s), first 'no_hash.tflite'" in caplog.text


def test_a_damaged_manifest_is_set_aside_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = '{"files": {"a.tflite": {"sha256": "ab", "size": 3}, "b": 1'
    (tmp_path / store.MANIFEST_NAME).write_text(damaged)
    record = store.FileRecord("c.tflite", "cd", 4, "upstream", "cpu")
    store.record_files(tmp_path, [record])
    assert store.read_manifest(tmp_path) == {"c.tflite": record}
    assert (tmp_path / store.DAMAGED_MANIFEST_NAME).read_text() == damaged
    assert caplog.text.count("is damaged") == 1
    assert store.list_models(tmp_path) == [], "the copy is not a model"
    # An intact manifest is never set aside.
    store.forget_files(tmp_path, ["c.tflite"])
    assert (tmp_path / store.DAMAGED_MANIFEST_NAME).read_text() == damaged
    assert caplog.text.count("is damaged") == 1


def test_a_manifest_symlink_loop_is_damaged_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / store.MANIFEST_NAME).symlink_to(tmp_path / store.MANIFEST_NAME)
    assert store.read_manifest(tmp_path) == {}
    assert "is damaged (unreadable" in caplog.text


def test_an_absent_manifest_is_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert store.read_manifest(tmp_path) == {}
    assert not caplog.records


def test_the_folder_itself_and_the_manifest_are_not_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="models folder itself"):
        store.relative_path(tmp_path, tmp_path)
    with pytest.raises(ModelError, match="manifest"):
        store.remove_model(tmp_path, store.MANIFEST_NAME)
    assert store.list_models(tmp_path / "absent") == []
