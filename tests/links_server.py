"""A hostile "model link" server on 127.0.0.1: slow, endless, redirecting and HTML answers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

MODEL = "mobilenet_v1_0.25_128_quant.tflite"
UNSUPPORTED = "movenet_single_pose_lightning_ptq.tflite"
HTML = b"<!doctype html><html><body>Sign in to download this model</body></html>\n"


@dataclass
class LinkServer:
    """What the server offers; `base` is its URL once it runs."""

    models_dir: Path
    base: str = ""
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The URL of a path on this server."""
        return f"{self.base}/{path}"

    async def model(self, request: web.Request) -> web.StreamResponse:
        """A real model file from the shared folder."""
        return web.FileResponse(self.models_dir / request.match_info["name"])

    async def archive(self, request: web.Request) -> web.Response:
        """The model in a .tar.gz, as Kaggle serves it."""
        data = await asyncio.to_thread((self.models_dir / MODEL).read_bytes)
        return web.Response(body=tar_gz({"model/1.tflite": data}))

    async def broken_archive(self, request: web.Request) -> web.Response:
        """Gzip magic, then garbage."""
        return web.Response(body=b"\x1f\x8b" + b"garbage" * 100)

    async def declared(self, request: web.Request) -> web.StreamResponse:
        """A response announcing 1 GiB (the cap refuses it before any byte is read)."""
        response = web.StreamResponse()
        response.content_length = 2**30
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b"\0" * 1024)
        return response

    async def page(self, request: web.Request) -> web.Response:
        """An HTML page where a model was expected (a login wall, a model page)."""
        return web.Response(body=HTML, content_type="text/html")

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        """One byte every 50 ms for ever: each read is quick, the whole never ends."""
        return await self._stream(request, b"T", 0.05)

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """Bytes as fast as the client takes them, for ever."""
        return await self._stream(request, b"\0" * 65536, 0)

    async def loop(self, request: web.Request) -> web.Response:
        """A redirect to itself."""
        raise web.HTTPFound("/loop")

    async def status(self, request: web.Request) -> web.Response:
        """Answers the status named in the path."""
        return web.Response(status=int(request.match_info["code"]), text="arranged failure")

    async def _stream(self, request: web.Request, piece: bytes, pause: float) -> web.StreamResponse:
        name = request.path
        self.hits[name] = self.hits.get(name, 0) + 1
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(piece)
                await asyncio.sleep(pause)
        return response


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzipped tar holding `members`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextlib.asynccontextmanager
async def serve_links(models_dir: Path) -> AsyncIterator[LinkServer]:
    """Run a LinkServer on a free 127.0.0.1 port."""
    server = LinkServer(models_dir)
    app = web.Application()
    app.router.add_get("/models/{name}", server.model)
    app.router.add_get("/model.tar.gz", server.archive)
    app.router.add_get("/page.tflite", server.page)
    app.router.add_get("/broken.tar.gz", server.broken_archive)
    app.router.add_get("/declared.tflite", server.declared)
    app.router.add_get("/trickle.tflite", server.trickle)
    app.router.add_get("/endless.tflite", server.endless)
    app.router.add_get("/loop", server.loop)
    app.router.add_get("/status/{code}", server.status)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()
