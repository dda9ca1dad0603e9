"""Model links: URL forms, bounded downloads and unpacking, and `coral-vision inspect URL`."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from custom_components.coral_vision.engine.cli import run_inspect as main
from custom_components.coral_vision.engine.errors import DownloadError, ModelError
from custom_components.coral_vision.engine.models import links
from custom_components.coral_vision.engine.models.download import Deadline
from custom_components.coral_vision.engine.models.inspect import inspect_model
from custom_components.coral_vision.engine.models.links import (
    fetch_model,
    resolve_model_url,
    unpack_model,
)
from tests.links_server import HTML, MODEL, LinkServer, serve_links, tar_gz

# Every hostile transfer must end well within this: a hang detector, not a timing.
HANG = 20.0
QUICK = Deadline(grace=0.5, min_rate=1e9, limit=0.5)


@pytest.fixture
async def server(socket_enabled: None, models_dir: Path) -> AsyncIterator[LinkServer]:
    """The hostile link server."""
    async with serve_links(models_dir) as running:
        yield running


def files_in(folder: Path) -> list[str]:
    """Every file under a folder, hidden and partial ones too."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_resolve_model_urls() -> None:
    assert (
        resolve_model_url("https://tfhub.dev/google/lite-model/spice/1")
        == "https://tfhub.dev/google/lite-model/spice/1?lite-format=tflite"
    )
    assert resolve_model_url("https://tfhub.dev/x/1?lite-format=tflite&a=b").endswith("a=b")
    assert resolve_model_url("https://tfhub.dev/x/1?a=b") == (
        "https://tfhub.dev/x/1?a=b&lite-format=tflite"
    )
    assert resolve_model_url(
        "https://www.kaggle.com/models/google/mobilenet-v2/tfLite/100-224-classification/1"
    ) == (
        "https://www.kaggle.com/api/v1/models/google/mobilenet-v2/tfLite/"
        "100-224-classification/1/download"
    )
    assert (
        resolve_model_url("https://github.com/google-coral/test_data/blob/master/a.tflite")
        == "https://github.com/google-coral/test_data/raw/master/a.tflite"
    )
    direct = "https://example.org/model.tflite"
    assert resolve_model_url(f"  {direct} ") == direct


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://[::1]:99999/m.tflite", "Port"),
        ("file:///etc/passwd", "only http"),
        ("http:///no-host.tflite", "only http"),
        ("https://www.kaggle.com/models/google/mobilenet-v2", "Kaggle model link"),
    ],
)
def test_malformed_links_are_readable_errors(url: str, why: str) -> None:
    with pytest.raises(DownloadError, match=why) as caught:
        resolve_model_url(url)
    assert caught.value.reason == "invalid_url"
    assert "is not a usable model link" in str(caught.value)


async def test_a_direct_link_and_an_archive_are_fetched(
    server: LinkServer, models_dir: Path, tmp_path: Path
) -> None:
    expected = (models_dir / MODEL).read_bytes()
    async with aiohttp.ClientSession() as session:
        for url in (server.url(f"models/{MODEL}"), server.url("model.tar.gz")):
            model = await fetch_model(session, url, tmp_path)
            assert model.read_bytes() == expected
            assert model.name.startswith(".")
            assert model.name.endswith(".part"), "hidden and partial until the caller keeps it"
            assert inspect_model(model).task == "classification"
            assert files_in(tmp_path) == [model.name], "the archive itself is gone"
            model.unlink()


@pytest.mark.parametrize(
    ("path", "reason", "message"),
    [
        ("status/404", "http_status", "HTTP 404 Not Found"),
        ("status/503", "http_status", "HTTP 503 Service Unavailable"),
        ("loop", "redirects", "too many redirects"),
        ("declared.tflite", "too_large", "1073741824 bytes is over"),
        ("broken.tar.gz", None, "not a readable model archive"),
    ],
)
async def test_refused_links_are_readable_and_leave_nothing(
    server: LinkServer, tmp_path: Path, path: str, reason: str | None, message: str
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises((DownloadError, ModelError), match=message) as caught:
            await fetch_model(session, server.url(path), tmp_path)
    assert getattr(caught.value, "reason", None) == reason
    assert "message=''" not in str(caught.value)
    assert files_in(tmp_path) == []


async def test_a_trickling_server_meets_the_total_deadline(
    server: LinkServer, tmp_path: Path
) -> None:
    # Each byte comes well within the socket read timeout; only a total deadline ends this.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="did not finish in time") as caught:
            await asyncio.wait_for(
                fetch_model(session, server.url("trickle.tflite"), tmp_path, deadline=QUICK),
                HANG,
            )
    assert caught.value.reason == "timeout"
    assert files_in(tmp_path) == []


async def test_the_deadline_grows_with_the_bytes_received(
    server: LinkServer, tmp_path: Path
) -> None:
    # 60 KB/s is below this deadline's floor: the grace period is all the trickle gets.
    slow = Deadline(grace=0.3, min_rate=1e6, limit=30)
    async with aiohttp.ClientSession() as session:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DownloadError, match="did not finish in time"):
            await fetch_model(session, server.url("trickle.tflite"), tmp_path, deadline=slow)
        assert asyncio.get_running_loop().time() - started < HANG
    assert slow.seconds(0) == 0.3
    assert slow.seconds(10**12) == 30


async def test_an_endless_stream_is_streamed_to_disk_and_capped(
    server: LinkServer, tmp_path: Path
) -> None:
    cap = 48 * 2**20
    async with aiohttp.ClientSession() as session:
        tracemalloc.start()
        try:
            with pytest.raises(DownloadError, match="more than") as caught:
                await asyncio.wait_for(
                    fetch_model(session, server.url("endless.tflite"), tmp_path, max_bytes=cap),
                    HANG,
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert caught.value.reason == "too_large"
    assert peak < cap // 4, "the body went to a file, not to memory"
    assert files_in(tmp_path) == []


async def test_an_html_page_is_fetched_for_the_caller_to_refuse(
    server: LinkServer, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        page = await fetch_model(session, server.url("page.tflite"), tmp_path)
    assert page.read_bytes() == HTML
    with pytest.raises(ModelError):
        inspect_model(page)


def write(folder: Path, data: bytes) -> Path:
    """A downloaded file."""
    path = folder / ".download.part"
    path.write_bytes(data)
    return path


def test_archives_are_unpacked_or_refused(models_dir: Path, tmp_path: Path) -> None:
    data = (models_dir / MODEL).read_bytes()
    model = unpack_model(write(tmp_path, tar_gz({"a/readme.txt": b"hi", "a/1.tflite": data})))
    assert model.read_bytes() == data
    model.unlink()
    plain = write(tmp_path, data)
    assert unpack_model(plain) == plain, "no archive: the file itself"
    plain.unlink()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:  # an uncompressed tar
        info = tarfile.TarInfo("m.tflite")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    assert unpack_model(write(tmp_path, buffer.getvalue())).read_bytes() == data
    for path in tmp_path.iterdir():
        path.unlink()

    refused = {
        b"\x1f\x8b garbage": "not a readable model archive",
        tar_gz({"readme.txt": b"hi"}): "no .tflite file",
        tar_gz({"a.tflite": data, "b.tflite": data}): "more than one .tflite",
        tar_gz({f"{i}.txt": b"" for i in range(1001)}): "more than 1000 entries",
    }
    for archive_bytes, message in refused.items():
        with pytest.raises(ModelError, match=message):
            unpack_model(write(tmp_path, archive_bytes))
        assert files_in(tmp_path) == [".download.part"], "only the caller's download is left"


def test_a_model_over_the_cap_is_refused_from_its_header(tmp_path: Path) -> None:
    archive = tar_gz({"big.tflite": b"\0" * 4096})
    with pytest.raises(ModelError, match="over 1024 bytes"):
        unpack_model(write(tmp_path, archive), max_bytes=1024)


def test_a_gzip_bomb_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 MiB of zeros in one member before the model: a few KB compressed.
    bomb = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=9) as packed,
        tarfile.open(fileobj=packed, mode="w|") as archive,
    ):
        info = tarfile.TarInfo("padding.bin")
        info.size = 64 * 2**20
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    assert len(bomb.getvalue()) < 200_000
    monkeypatch.setattr(links, "MAX_ARCHIVE_BYTES", 16 * 2**20)
    with pytest.raises(ModelError, match="unpacks to more than 16777216 bytes"):
        unpack_model(write(tmp_path, bomb.getvalue()))


def test_an_oversized_tar_header_is_refused(tmp_path: Path) -> None:
    # A pax header that tarfile would read whole into memory.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("m.tflite")
        info.pax_headers = {"comment": "x" * (2 * 2**20)}
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(ModelError, match="oversized header"):
        unpack_model(write(tmp_path, buffer.getvalue()))
    long_name = io.BytesIO()
    with tarfile.open(fileobj=long_name, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo("d/" * 1_200_000 + "m.tflite"), io.BytesIO(b""))
    with pytest.raises(ModelError, match="oversized header"):
        unpack_model(write(tmp_path, long_name.getvalue()))


def test_the_bounded_reader_counts_every_seek(tmp_path: Path) -> None:
    view = links._Bounded(io.BufferedReader(io.BytesIO(b"0123456789")))  # type: ignore[arg-type]
    assert view.readable()
    assert view.seekable()
    assert view.seek(4) == 4
    assert view.read(2) == b"45"
    assert view.seek(-6, io.SEEK_CUR) == 0
    assert view.tell() == 0
    with pytest.raises(OSError, match="end"):
        view.seek(0, io.SEEK_END)
    with pytest.raises(ModelError):
        view.read()


# -- the command line: coral-vision inspect URL -----------------------------------------------


async def inspect_cli(*argv: str) -> int:
    """Run `coral-vision inspect` in a thread (it runs its own event loop)."""
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), HANG)


async def test_cli_inspects_a_link_and_keeps_nothing(
    server: LinkServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await inspect_cli("inspect", "--json", server.url("model.tar.gz")) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "classification"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("page.tflite", "TFL3"),
        ("loop", "too many redirects"),
        ("status/404", "HTTP 404 Not Found"),
        ("trickle.tflite", "did not finish in time"),
    ],
)
async def test_cli_link_failures_are_one_line(
    server: LinkServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    message: str,
) -> None:
    monkeypatch.setattr(links, "LINK_DEADLINE", QUICK)
    assert await inspect_cli("inspect", server.url(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


async def test_cli_refuses_a_malformed_link(capsys: pytest.CaptureFixture[str]) -> None:
    assert await inspect_cli("inspect", "--json", "http://[::1") == 2
    assert "not a usable model link" in json.loads(capsys.readouterr().out)["error"]
