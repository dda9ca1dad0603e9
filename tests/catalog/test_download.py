"""Fetching catalog models: verification, failures, mirrors, variants, ZIPs, trust on first use."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from custom_components.coral_vision.engine.errors import CoralVisionError, DownloadError
from custom_components.coral_vision.engine.models import store
from custom_components.coral_vision.engine.models.catalog import CatalogEntry
from custom_components.coral_vision.engine.models.download import (
    DEFAULT_DEADLINE,
    MAX_DOWNLOAD_BYTES,
    MIRROR_ENV,
    Deadline,
    LocalModel,
    download_to_folder,
    ensure_model,
    files_for,
    mirror_from_env,
)
from tests.links_server import serve_links

from .conftest import TF_DIR, TF_ZIP, FileServer, leftovers

SMALL = "mobilenet_v1_025_128_imagenet"
SMALL_CPU = "mobilenet_v1_0.25_128_quant.tflite"
SMALL_TPU = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
DETECT_SHA256 = "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_catalog_download_matches_pinned_sha256(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    entry = catalog[SMALL]
    seen: list[tuple[int, int | None]] = []
    local = await ensure_model(
        session, entry, "cpu", store_dir, progress=lambda done, total: seen.append((done, total))
    )
    assert local == LocalModel(
        entry_id=SMALL,
        variant="cpu",
        model=store_dir / SMALL_CPU,
        labels=store_dir / "imagenet_labels.txt",
        cpu_twin=None,
    )
    assert entry.cpu.sha256 is not None
    assert sha256(local.model) == entry.cpu.sha256
    assert leftovers(store_dir) == sorted([SMALL_CPU, "imagenet_labels.txt", store.MANIFEST_NAME])
    # Progress only grows and ends at the full size of both files.
    total = local.model.stat().st_size + (store_dir / "imagenet_labels.txt").stat().st_size
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    manifest = store.read_manifest(store_dir)
    assert manifest[SMALL_CPU].sha256 == entry.cpu.sha256
    assert manifest[SMALL_CPU].source == entry.cpu.url
    assert manifest[SMALL_CPU].variant == "cpu"
    assert manifest["imagenet_labels.txt"].variant == "labels"
    # Present and verified: a second call fetches nothing.
    hits = sum(upstream.hits.values())
    assert await ensure_model(session, entry, "cpu", store_dir) == local
    assert sum(upstream.hits.values()) == hits


async def test_wrong_hash_is_refused_and_leaves_nothing(
    session: aiohttp.ClientSession, catalog: dict[str, CatalogEntry], store_dir: Path
) -> None:
    entry = catalog[SMALL]
    bad = replace(entry, cpu=replace(entry.cpu, sha256="0" * 64))
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, bad, "cpu", store_dir)
    assert caught.value.reason == "hash_mismatch"
    assert caught.value.url == entry.cpu.url
    assert leftovers(store_dir) == []


async def test_wrong_size_is_refused(
    session: aiohttp.ClientSession, catalog: dict[str, CatalogEntry], store_dir: Path
) -> None:
    entry = catalog[SMALL]
    bad = replace(entry, cpu=replace(entry.cpu, size=12345))
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, bad, "cpu", store_dir)
    assert caught.value.reason == "size_mismatch"
    assert leftovers(store_dir) == []


async def test_truncated_transfer_leaves_nothing_and_a_retry_succeeds(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    entry = catalog[SMALL]
    upstream.truncate.add(SMALL_CPU)
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, entry, "cpu", store_dir)
    assert caught.value.reason == "incomplete"
    assert SMALL_CPU not in leftovers(store_dir)
    assert not [p for p in leftovers(store_dir) if p.endswith(".part")]
    upstream.truncate.clear()
    local = await ensure_model(session, entry, "cpu", store_dir)
    assert sha256(local.model) == entry.cpu.sha256


async def test_server_error_is_a_typed_error(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    upstream.status[SMALL_CPU] = 500
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, catalog[SMALL], "cpu", store_dir)
    assert caught.value.reason == "http_status"
    assert "HTTP 500" in str(caught.value)
    assert isinstance(caught.value, CoralVisionError)
    assert SMALL_CPU not in leftovers(store_dir)


async def test_unreachable_server_is_a_network_error(
    session: aiohttp.ClientSession, catalog: dict[str, CatalogEntry], store_dir: Path
) -> None:
    entry = catalog[SMALL]
    # Port 9 (discard) is closed on 127.0.0.1 here: the connection is refused.
    gone = replace(entry, cpu=replace(entry.cpu, url="http://127.0.0.1:9/" + SMALL_CPU))
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, gone, "cpu", store_dir)
    assert caught.value.reason == "network"


async def test_not_a_model_is_refused(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    # Unpinned file (not in the shared folder): only the TFL3 identifier can catch an HTML page.
    entry = catalog["ssd_mobilenet_v1_coco"]
    assert entry.cpu.sha256 is None
    upstream.content[entry.cpu.name] = b"<html>rate limited</html>"
    upstream.content["coco_labels.txt"] = b"person\n"
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, entry, "cpu", store_dir)
    assert caught.value.reason == "not_tflite"
    assert entry.cpu.name not in leftovers(store_dir)


async def test_cancelled_download_leaves_nothing(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    upstream.stall.add(SMALL_CPU)
    started = asyncio.Event()

    def progress(done: int, total: int | None) -> None:
        if done:
            started.set()

    task = asyncio.create_task(
        ensure_model(session, catalog[SMALL], "cpu", store_dir, progress=progress)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(store_dir) == []


async def test_mirror_folder_is_used_before_upstream(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    models_dir: Path,
    store_dir: Path,
) -> None:
    local = await ensure_model(session, catalog[SMALL], "usb", store_dir, mirror=str(models_dir))
    zipped = await ensure_model(
        session, catalog["tf_coco_ssd_mobilenet_v1"], "cpu", store_dir, mirror=str(models_dir)
    )
    assert sum(upstream.hits.values()) == 0
    assert sha256(local.model) == sha256(models_dir / SMALL_TPU)
    assert sha256(zipped.model) == DETECT_SHA256
    assert zipped.model == store_dir / TF_DIR / "detect.tflite"
    assert zipped.labels == store_dir / TF_DIR / "labelmap.txt"
    manifest = store.read_manifest(store_dir)
    assert manifest[SMALL_TPU].source == str(models_dir / SMALL_TPU)


async def test_mirror_base_url_is_used_before_upstream(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    mirror_server: FileServer,
    store_dir: Path,
) -> None:
    zipped = await ensure_model(
        session,
        catalog["tf_coco_ssd_mobilenet_v1"],
        "cpu",
        store_dir,
        mirror=mirror_server.base_url + "/",
    )
    assert sha256(zipped.model) == DETECT_SHA256
    assert sum(upstream.hits.values()) == 0
    assert mirror_server.hits == {f"{TF_DIR}/detect.tflite": 1, f"{TF_DIR}/labelmap.txt": 1}


async def test_mirror_without_the_file_falls_back_to_upstream(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    mirror_server: FileServer,
    tmp_path: Path,
    store_dir: Path,
) -> None:
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    await ensure_model(session, catalog[SMALL], "cpu", store_dir, mirror=str(empty))
    assert upstream.hits[SMALL_CPU] == 1
    # A mirror URL answering 500 is skipped the same way.
    mirror_server.status[SMALL_TPU] = 500
    await ensure_model(session, catalog[SMALL], "usb", store_dir, mirror=mirror_server.base_url)
    assert upstream.hits[SMALL_TPU] == 1


async def test_bad_mirror_copy_falls_back_to_upstream(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    tmp_path: Path,
    store_dir: Path,
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SMALL_CPU).write_bytes(b"\0\0\0\0TFL3 corrupted copy")
    local = await ensure_model(session, catalog[SMALL], "cpu", store_dir, mirror=str(mirror))
    assert sha256(local.model) == catalog[SMALL].cpu.sha256
    assert upstream.hits[SMALL_CPU] == 1


async def test_device_change_switches_variant(
    session: aiohttp.ClientSession, catalog: dict[str, CatalogEntry], store_dir: Path
) -> None:
    on_tpu = await ensure_model(session, catalog[SMALL], "usb", store_dir)
    assert on_tpu.variant == "edgetpu"
    assert on_tpu.model == store_dir / SMALL_TPU
    assert on_tpu.cpu_twin == store_dir / SMALL_CPU
    assert on_tpu.model.read_bytes()[4:8] == b"TFL3"
    assert on_tpu.cpu_twin.is_file()
    on_cpu = await ensure_model(session, catalog[SMALL], "cpu", store_dir)
    assert on_cpu.variant == "cpu"
    assert on_cpu.model == store_dir / SMALL_CPU
    assert on_cpu.cpu_twin is None
    assert on_tpu.files == (on_tpu.model, on_tpu.labels, on_tpu.cpu_twin)
    records = store.read_manifest(store_dir)
    assert records[SMALL_TPU].variant == "edgetpu"
    assert records[SMALL_CPU].variant == "cpu"


async def test_zip_upstream_is_extracted_once(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    local = await ensure_model(session, catalog["tf_coco_ssd_mobilenet_v1"], "pci", store_dir)
    # No Edge TPU build exists: the TPU gets the CPU model and there is no separate twin.
    assert local.variant == "cpu"
    assert local.cpu_twin is None
    assert sha256(local.model) == DETECT_SHA256
    assert local.labels is not None
    assert local.labels.read_text().splitlines()[:2] == ["???", "person"]
    assert upstream.hits == {TF_ZIP: 1}
    assert leftovers(store_dir) == sorted(
        [f"{TF_DIR}/detect.tflite", f"{TF_DIR}/labelmap.txt", store.MANIFEST_NAME]
    )


async def test_zip_without_the_member_is_an_archive_error(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    entry = catalog["tf_coco_ssd_mobilenet_v1"]
    bad = replace(entry, cpu=replace(entry.cpu, member="missing.tflite"))
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, bad, "cpu", store_dir)
    assert caught.value.reason == "archive"
    upstream.content[TF_ZIP] = b"not a zip at all"
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, entry, "cpu", store_dir)
    assert caught.value.reason == "archive"
    assert leftovers(store_dir) == []


async def test_unpinned_file_is_pinned_on_first_download_then_enforced(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    models_dir: Path,
    store_dir: Path,
) -> None:
    entry = catalog[SMALL]
    assert entry.labels is not None
    assert entry.labels.sha256 is None
    local = await ensure_model(session, entry, "cpu", store_dir)
    assert local.labels is not None
    first = store.read_manifest(store_dir)["imagenet_labels.txt"]
    assert first.sha256 == sha256(models_dir / "imagenet_labels.txt")
    # Upstream changes the file (same size) and the local copy is lost: the new bytes are refused.
    changed = local.labels.read_bytes().replace(b"goldfish", b"goldfisH")
    upstream.content["imagenet_labels.txt"] = changed
    local.labels.unlink()
    with pytest.raises(DownloadError) as caught:
        await ensure_model(session, entry, "cpu", store_dir)
    assert caught.value.reason == "hash_mismatch"
    assert not local.labels.exists()
    # A local copy that no longer matches its pin is fetched again, and refused the same way.
    local.labels.write_bytes(b"edited by hand\n")
    with pytest.raises(DownloadError):
        await ensure_model(session, entry, "cpu", store_dir)
    # Removing the file forgets its pin: the next download is trusted anew.
    store.remove_model(store_dir, local.labels)
    await ensure_model(session, entry, "cpu", store_dir)
    assert local.labels.read_bytes() == changed


async def test_corrupted_local_copy_is_fetched_again(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    local = await ensure_model(session, catalog[SMALL], "cpu", store_dir)
    data = bytearray(local.model.read_bytes())
    data[-1] ^= 0xFF
    local.model.write_bytes(bytes(data))
    await ensure_model(session, catalog[SMALL], "cpu", store_dir)
    assert upstream.hits[SMALL_CPU] == 2
    assert sha256(local.model) == catalog[SMALL].cpu.sha256


def test_files_for_lists_model_labels_and_twin(catalog: dict[str, CatalogEntry]) -> None:
    entry = catalog[SMALL]
    assert [f.path for f in files_for(entry, "usb")] == [
        SMALL_TPU,
        "imagenet_labels.txt",
        SMALL_CPU,
    ]
    assert [f.path for f in files_for(entry, "cpu")] == [SMALL_CPU, "imagenet_labels.txt"]


def test_mirror_from_env() -> None:
    assert mirror_from_env({MIRROR_ENV: " /srv/models "}) == "/srv/models"
    assert mirror_from_env({MIRROR_ENV: ""}) is None
    assert mirror_from_env({}) is None


def test_manifest_is_json(tmp_path: Path) -> None:
    record = store.FileRecord("a.tflite", "ab" * 32, 3, "http://x/a.tflite", "cpu", "e")
    store.record_files(tmp_path, [record])
    document = json.loads((tmp_path / store.MANIFEST_NAME).read_text())
    assert document["files"]["a.tflite"]["sha256"] == "ab" * 32
    assert store.read_manifest(tmp_path) == {"a.tflite": record}
    (tmp_path / store.MANIFEST_NAME).write_text("{broken")
    assert store.read_manifest(tmp_path) == {}


async def test_a_stalled_transfer_ends_at_the_total_deadline(
    session: aiohttp.ClientSession,
    catalog: dict[str, CatalogEntry],
    upstream: FileServer,
    store_dir: Path,
) -> None:
    # Half the file, then silence on an open connection: only a total deadline ends it.
    upstream.stall.add(SMALL_CPU)
    quick = Deadline(grace=0.5, min_rate=1e12, limit=0.5)
    with pytest.raises(DownloadError, match="did not finish in time") as caught:
        await asyncio.wait_for(
            ensure_model(session, catalog[SMALL], "cpu", store_dir, deadline=quick), 20
        )
    assert caught.value.reason == "timeout"
    assert leftovers(store_dir) == []
    upstream.stall.clear()
    local = await ensure_model(
        session, catalog[SMALL], "cpu", store_dir, deadline=Deadline(grace=10)
    )
    assert sha256(local.model) == catalog[SMALL].cpu.sha256


def test_the_default_deadline_scales_with_the_size() -> None:
    # A 30 MB model on a 64 KiB/s link: a minute of grace plus 7.6 minutes; never over an hour.
    assert DEFAULT_DEADLINE.seconds(0) == 60
    assert DEFAULT_DEADLINE.seconds(30 * 2**20) == pytest.approx(60 + 480)
    assert DEFAULT_DEADLINE.seconds(MAX_DOWNLOAD_BYTES) == 3600


async def test_redirect_loops_and_bad_urls_are_readable(
    session: aiohttp.ClientSession, store_dir: Path, socket_enabled: None, models_dir: Path
) -> None:
    async with serve_links(models_dir) as server:
        with pytest.raises(DownloadError, match="too many redirects") as caught:
            await download_to_folder(session, server.url("loop"), store_dir)
        assert caught.value.reason == "redirects"
        with pytest.raises(DownloadError, match="HTTP 503 Service Unavailable"):
            await download_to_folder(session, server.url("status/503"), store_dir)
    with pytest.raises(DownloadError, match="not a valid http") as caught:
        await download_to_folder(session, "http://[::1", store_dir)
    assert caught.value.reason == "invalid_url"
    assert leftovers(store_dir) == []
