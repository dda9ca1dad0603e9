"""A local HTTP "upstream" serving the shared models, and a catalog pointed at it."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from custom_components.coral_vision.engine.models.catalog import (
    CatalogEntry,
    ModelFile,
    load_catalog,
)

TF_ZIP = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip"
TF_DIR = "detection/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29"


@dataclass
class FileServer:
    """A 127.0.0.1 server over a folder; tests change what it answers and count requests."""

    files: dict[str, Path]
    base_url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    content: dict[str, bytes] = field(default_factory=dict)  # replaces a file's bytes
    status: dict[str, int] = field(default_factory=dict)  # answers this status instead
    truncate: set[str] = field(default_factory=set)  # sends half, then closes
    stall: set[str] = field(default_factory=set)  # sends half, then waits for `release`
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str) -> str:
        """The URL of a file on this server."""
        return f"{self.base_url}/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one file as the test arranged."""
        name = request.match_info["name"]
        self.hits[name] += 1
        if name in self.status:
            return web.Response(status=self.status[name], text="arranged failure")
        if name in self.content:
            body = self.content[name]
        elif name in self.files:
            body = await asyncio.to_thread(self.files[name].read_bytes)
        elif name == TF_ZIP and f"{TF_DIR}/detect.tflite" in self.files:
            body = await asyncio.to_thread(self._tf_zip)
        else:
            return web.Response(status=404)
        if name not in self.truncate and name not in self.stall:
            return web.Response(body=body, content_type="application/octet-stream")
        response = web.StreamResponse()
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if name in self.stall:
            await self.release.wait()
        assert request.transport is not None
        request.transport.close()
        return response

    def _tf_zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in ("detect.tflite", "labelmap.txt"):
                archive.write(self.files[f"{TF_DIR}/{member}"], member)
        return buffer.getvalue()


def _walk(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


async def _serve(server: FileServer) -> AsyncIterator[FileServer]:
    app = web.Application()
    app.router.add_get("/{name:.+}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def upstream(socket_enabled: None, models_dir: Path) -> AsyncIterator[FileServer]:
    """Upstream: every shared model by its upstream file name (flat), plus TF's zip."""
    files = _walk(models_dir)
    flat = {Path(key).name: path for key, path in files.items()}
    flat.update(files)  # keeps TF_DIR paths for building the zip
    async for server in _serve(FileServer(flat)):
        yield server


@pytest.fixture
async def mirror_server(socket_enabled: None, models_dir: Path) -> AsyncIterator[FileServer]:
    """A mirror base URL laid out like the shared folder."""
    async for server in _serve(FileServer(_walk(models_dir))):
        yield server


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session, closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


def point_at(file: ModelFile, server: FileServer) -> ModelFile:
    """The file with its upstream URL moved onto the test server (same file name)."""
    return replace(file, url=server.url(Path(urlsplit(file.url).path).name))


@pytest.fixture
def catalog(upstream: FileServer) -> dict[str, CatalogEntry]:
    """The shipped catalog with every upstream URL served by the local server."""
    entries = {}
    for ident, entry in load_catalog().items():
        entries[ident] = replace(
            entry,
            cpu=point_at(entry.cpu, upstream),
            edgetpu=point_at(entry.edgetpu, upstream) if entry.edgetpu else None,
            labels=point_at(entry.labels, upstream) if entry.labels else None,
        )
    return entries


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """An empty models folder."""
    path = tmp_path / "models"
    path.mkdir()
    return path


def leftovers(folder: Path) -> list[str]:
    """Every file under a folder, relative, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
