"""Bad requests get the right status and the server keeps serving; fairness; graceful drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from benchmarks.hostile_media import gif_big_frame, solid_png

from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.models.flatbuffer import MAX_MODEL_BYTES
from custom_components.coral_vision.engine.server.app import AppSettings, drain
from custom_components.coral_vision.engine.server.guard import Limiter
from custom_components.coral_vision.engine.server.state import STATE
from custom_components.coral_vision.engine.vision.image_guard import MAX_IMAGE_BYTES
from tests.engine.fakes import FakeEdgeTpu
from tests.engine.hostile import hostile_model

from .conftest import CLASSIFIER, DETECTOR, KEY, app_client, auth, options_for

DETECT = f"/v1/models/{DETECTOR}/detect"


async def raw_request(client: TestClient, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a hand-written request (a length no real client would declare); status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    await writer.drain()
    response = await reader.read(65536)
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest


async def chunks(count: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
    block = b"\xff" * size
    for _ in range(count):
        yield block


async def assert_still_serving(client: TestClient, photos: dict[str, bytes]) -> None:
    response = await client.post(DETECT, data=photos["grace_hopper.bmp"], headers=auth())
    assert (await response.json())["detections"][0]["label"] == "person"


async def test_bad_images(client: TestClient, photos: dict[str, bytes]) -> None:
    for body, status, code in (
        (b"", 400, "no_image"),
        (b"hello, not an image", 400, "bad_image"),
        (photos["grace_hopper.bmp"][:2000], 400, "bad_image"),  # truncated
        (solid_png(), 400, "bad_image"),  # 86 KB holding 88 million pixels
        (gif_big_frame(), 400, "bad_image"),
    ):
        response = await client.post(DETECT, data=body, headers=auth())
        assert response.status == status, await response.text()
        assert (await response.json())["error"]["code"] == code
    response = await client.post("/v1/models/nope/detect", data=b"x", headers=auth())
    assert (response.status, (await response.json())["error"]["code"]) == (404, "unknown_model")
    await assert_still_serving(client, photos)


async def test_huge_bodies(client: TestClient, photos: dict[str, bytes]) -> None:
    # Declared too long: refused before a byte of the body is read.
    for path in (DETECT, "/v1/vision/detection", "/v1/models/upload/big"):
        head = (
            f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {KEY}\n"
            f"Content-Length: {MAX_MODEL_BYTES * 2}\n"
        )
        status, body = await raw_request(
            client, head.replace("POST /v1/models/upload", "PUT /v1/models/upload")
        )
        assert status == 413, (path, body)
        assert b"too_large" in body or b"larger than" in body
    # Streamed without a length: cut off once it passes the limit.
    response = await client.post(
        DETECT, data=chunks(MAX_IMAGE_BYTES // (1 << 20) + 2), headers=auth()
    )
    assert response.status == 413
    form = aiohttp.FormData()
    form.add_field("image", chunks(MAX_IMAGE_BYTES // (1 << 20) + 2), filename="x.jpg")
    response = await client.post("/v1/vision/detection", data=form, headers=auth())
    assert response.status == 413
    assert (await response.json())["predictions"] == []
    await assert_still_serving(client, photos)


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"model": hostile_model("aliased tensor shape")}, "bad_model"),
        ({"model": b"TFL3 but not a flatbuffer" * 10}, "bad_model"),
        ({"model": b"x", "labels": b"\xff\xfe\x00"}, "bad_labels"),
    ],
)
async def test_hostile_uploads(
    client: TestClient,
    photos: dict[str, bytes],
    models_dir: Path,
    files: dict[str, bytes],
    code: str,
) -> None:
    form = aiohttp.FormData()
    for name, data in files.items():
        form.add_field(name, data, filename=name)
    if code == "bad_labels":  # a real model, labels that are not text
        form = aiohttp.FormData()
        model = (models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
        form.add_field("model", model, filename="m.tflite")
        form.add_field("labels", files["labels"], filename="l.txt")
    response = await client.put("/v1/models/upload/evil", data=form, headers=auth())
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] in {"bad_model", "bad_labels"}
    assert not any(
        p.name.startswith("evil") for p in (client.app[STATE].options.models_dir).iterdir()
    )
    unexpected = aiohttp.FormData()
    unexpected.add_field("other", b"x", filename="x")
    for data in (b"", unexpected):
        response = await client.put("/v1/models/upload/evil", data=data, headers=auth())
        assert response.status == 400
    await assert_still_serving(client, photos)


@pytest.fixture
async def stuck_tpu(
    socket_enabled: None, tmp_path: Path, models_dir: Path
) -> AsyncIterator[tuple[TestClient, FakeEdgeTpu]]:
    """The compiled classifier on a fake Edge TPU the test can hang, few places per client."""
    fake = FakeEdgeTpu(cpu_twin=(models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    tpu = EdgeTpu("usb", 0, "/fake/usb0", "usb:0")
    settings = AppSettings(
        limiter=Limiter(per_client=2, total=4),
        runtime=fake.runtime(),
        list_tpus=lambda: [tpu],
        drain_seconds=0.3,
    )
    options = options_for(tmp_path, models_dir, models=(CLASSIFIER,), devices=("all",))
    try:
        async with app_client(options, settings) as client:
            yield client, fake
    finally:
        fake.release()


async def test_one_client_cannot_take_every_place(
    stuck_tpu: tuple[TestClient, FakeEdgeTpu], photos: dict[str, bytes]
) -> None:
    client, fake = stuck_tpu
    path = f"/v1/models/{CLASSIFIER}/classify"
    image = photos["cat.bmp"]
    fake.hang()
    first = [asyncio.create_task(client.post(path, data=image)) for _ in range(2)]
    await asyncio.to_thread(fake.blocked.wait, 10)
    response = await client.post(path, data=image)
    assert (response.status, response.headers["Retry-After"]) == (429, "1")
    # Another client still gets its places, until the server's bound.
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        url = client.make_url(path)
        second = [asyncio.create_task(session.post(url, data=image)) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in second)
        response = await session.post(url, data=image)
        assert response.status == 503  # four in flight: the server's bound
        fake.release()
        for task in (*first, *second):
            response = await task
            assert response.status == 200
            assert (await response.json())["classes"]


async def test_shutdown_finishes_or_fails_requests_clearly(
    stuck_tpu: tuple[TestClient, FakeEdgeTpu], photos: dict[str, bytes]
) -> None:
    client, fake = stuck_tpu
    app = client.app
    path = f"/v1/models/{CLASSIFIER}/classify?source="
    image = photos["cat.bmp"]
    fake.hang()
    running = asyncio.create_task(client.post(path + "a", data=image))
    await asyncio.to_thread(fake.blocked.wait, 10)
    waiting = asyncio.create_task(client.post(path + "b", data=image))
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(drain(app))
    await asyncio.sleep(0)
    response = await client.get("/health")
    assert (response.status, (await response.json())["error"]["code"]) == (503, "stopping")
    # Past the drain bound the dispatchers close: what still waits fails with 503.
    response = await waiting
    assert (response.status, (await response.json())["error"]["code"]) == (503, "stopping")
    fake.release()
    response = await running
    assert response.status in (200, 503)
    await stopping
    assert app[STATE].host.loaded == ()
