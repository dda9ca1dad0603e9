"""The engine's client against a real server process, and against answers no server should give."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from custom_components.coral_vision.engine import client as client_module
from custom_components.coral_vision.engine.client import (
    FrameSuperseded,
    ServerAuthError,
    ServerBusy,
    ServerClient,
    ServerFailure,
    ServerImageError,
    ServerProtocolError,
    ServerRequestError,
    ServerUnreachable,
    parse_models,
    parse_status,
)
from custom_components.coral_vision.engine.errors import (
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    QueueFullError,
)
from tests.server_process import ServerProcess, ServerStarter

from .conftest import CLASSIFIER, DETECTOR, KEY

GOWN = "academic gown, academic robe, judge's robe"  # Grace Hopper, on MobileNet v1 0.25


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server process for the module: the CPU, the default detector, the key set."""
    folder = tmp_path_factory.mktemp("client")
    starter = ServerStarter(models_dir, folder)
    try:
        yield starter(
            "--port", "0", "--no-zeroconf", "--devices", "cpu", "--api-key", KEY,
            "--data-dir", str(folder / "data"),
        )  # fmt: skip
    finally:
        starter.stop_all()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session, closed after the test."""
    async with aiohttp.ClientSession() as opened:
        yield opened


def client_of(
    session: aiohttp.ClientSession, server: ServerProcess, key: str | None = KEY
) -> ServerClient:
    return ServerClient(session, "127.0.0.1", server.port, key)


async def test_status_and_detect(
    session: aiohttp.ClientSession, server: ServerProcess, photos: dict[str, bytes]
) -> None:
    client = client_of(session, server)
    status = await client.status()
    assert status.api == "1"
    assert [d.name for d in status.devices] == ["cpu"]
    model = status.model(DETECTOR)
    assert model is not None
    assert (model.task, model.input_size, model.edgetpu) == ("detection", (300, 300), False)
    assert "person" in model.labels.names()
    assert status.devices[0].backend_of(DETECTOR).backend == "cpu"  # type: ignore[union-attr]
    # Each device's own counters, beside the model's total.
    assert status.devices[0].backend_of(DETECTOR).statistics is not None  # type: ignore[union-attr]

    result = await client.detect(
        DETECTOR, photos["grace_hopper.bmp"], source="cam", min_score=0.3, top_k=1
    )
    assert result.source_id == "cam"
    assert result.image_size == (512, 600)
    assert [d.label for d in result.detections] == ["person"]
    assert result.detections[0].score > 0.6
    nothing = await client.detect(DETECTOR, photos["sunflower.bmp"], min_score=0.5)
    assert [d.label for d in nothing.detections if d.label in ("person", "cat")] == []


async def test_the_servers_refusals_are_typed(
    session: aiohttp.ClientSession, server: ServerProcess, photos: dict[str, bytes]
) -> None:
    with pytest.raises(ServerAuthError):
        await client_of(session, server, "wrong").status()
    with pytest.raises(ServerAuthError):
        await client_of(session, server, None).detect(DETECTOR, photos["cat.bmp"])
    client = client_of(session, server)
    with pytest.raises(ServerImageError) as bad_image:
        await client.detect(DETECTOR, b"not an image at all")
    assert isinstance(bad_image.value, ImageError)
    with pytest.raises(ServerRequestError) as unknown:
        await client.detect("no_such_model", photos["cat.bmp"])
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_model")
    with pytest.raises(ServerRequestError) as wrong_task:
        await client.classify(DETECTOR, photos["cat.bmp"])
    assert wrong_task.value.code == "wrong_task"


async def test_models_deploy_upload_remove(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    photos: dict[str, bytes],
    models_dir: Path,
) -> None:
    client = client_of(session, server)
    listed = await client.models()
    assert [m.id for m in listed.loaded] == [DETECTOR]
    assert CLASSIFIER in {c.id for c in listed.catalog}

    deployed = await client.deploy(CLASSIFIER)
    assert (deployed.id, deployed.task) == (CLASSIFIER, "classification")
    result = await client.classify(CLASSIFIER, photos["grace_hopper.bmp"], top_k=1)
    assert result.classes[0].label == GOWN

    model = (models_dir / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    labels = (models_dir / "imagenet_labels.txt").read_bytes()
    uploaded = await client.upload("my_classifier", model, labels)
    assert (uploaded.id, uploaded.origin, uploaded.task) == (
        "my_classifier",
        "upload",
        "classification",
    )
    assert GOWN in uploaded.labels.names()
    with pytest.raises(ServerRequestError) as hostile:
        await client.upload("broken", b"TFL3" + b"\0" * 64)
    assert hostile.value.status == 422

    await client.remove(CLASSIFIER)
    await client.remove("my_classifier")
    assert [m.id for m in (await client.models()).loaded] == [DETECTOR]
    with pytest.raises(ServerRequestError):
        await client.remove(CLASSIFIER)


async def test_nothing_listening_is_unreachable(session: aiohttp.ClientSession) -> None:
    async with TestServer(web.Application(), host="127.0.0.1") as gone:
        port = gone.port
    with pytest.raises(ServerUnreachable) as err:
        await ServerClient(session, "127.0.0.1", port).status()
    # To a frame's caller, a server gone is an executor gone: the frame is lost, nothing more.
    assert isinstance(err.value, ExecutorClosedError)


def _answer(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


async def test_what_no_server_should_answer(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, web.StreamResponse] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("source") == "slow":
            await asyncio.sleep(5)
        return answers[request.match_info["model"]]

    app = web.Application()
    app.router.add_post("/v1/models/{model}/detect", handle)
    monkeypatch.setattr(client_module, "MAX_RESPONSE_BYTES", 1000)
    error = {"error": {"status": 0, "code": "", "message": "m"}}
    answers.update(
        {
            "superseded": _answer(409, {"error": {**error["error"], "code": "superseded"}}),
            "conflict": _answer(409, {"error": {**error["error"], "code": "conflict"}}),
            "busy": _answer(429, error, {"Retry-After": "2"}),
            "busy_later": _answer(503, error, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}),
            "stopping": _answer(503, {"error": {**error["error"], "code": "stopping"}}),
            "broken": _answer(500, error),
            "html": web.Response(status=502, text="<html>bad gateway</html>"),
            "html_ok": web.Response(text="<html>a router's login page</html>"),
            "malformed": _answer(200, {"task": "detection", "detections": "lots"}),
            "huge": web.Response(body=b"[" + b"0," * 2000 + b"0]"),
            "huge_declared": web.Response(body=b" " * 2000),
        }
    )
    async with TestServer(app, host="127.0.0.1") as fake:
        client = ServerClient(session, "127.0.0.1", fake.port)

        async def detect(model: str) -> None:
            await client.detect(model, b"jpeg", timeout=5)

        with pytest.raises(FrameSuperseded) as superseded:
            await detect("superseded")
        assert isinstance(superseded.value, FrameSupersededError)
        with pytest.raises(ServerRequestError):
            await detect("conflict")
        with pytest.raises(ServerBusy) as busy:
            await detect("busy")
        assert busy.value.retry_after == 2.0
        assert isinstance(busy.value, QueueFullError)
        with pytest.raises(ServerBusy) as later:
            await detect("busy_later")
        assert later.value.retry_after is None  # a date: not read
        with pytest.raises(ServerUnreachable):
            await detect("stopping")
        with pytest.raises(ServerFailure) as failed:
            await detect("broken")
        assert failed.value.status == 500
        with pytest.raises(ServerFailure):
            await detect("html")
        for model in ("html_ok", "malformed", "huge", "huge_declared"):
            with pytest.raises(ServerProtocolError):
                await detect(model)
        with pytest.raises(ServerUnreachable):
            await client.detect("busy", b"jpeg", source="slow", timeout=0.3)


GOOD_MODEL = {
    "id": "m",
    "name": "M",
    "origin": "catalog",
    "task": "detection",
    "variant": "cpu",
    "input_size": [300, 300],
    "labels": ["person"],
}
GOOD_STATUS = {"id": "s", "version": "1", "api": "1", "devices": [], "models": [GOOD_MODEL]}


@pytest.mark.parametrize(
    "document",
    [
        [],
        {**GOOD_STATUS, "id": 5},
        {**GOOD_STATUS, "devices": {}},
        {**GOOD_STATUS, "failed_models": []},
        {**GOOD_STATUS, "models": [{**GOOD_MODEL, "task": "pose"}]},
        {**GOOD_STATUS, "models": [{**GOOD_MODEL, "input_size": [300]}]},
        {**GOOD_STATUS, "models": [{**GOOD_MODEL, "labels": [1, 2]}]},
        {**GOOD_STATUS, "models": [{**GOOD_MODEL, "statistics": {"frames_done": -1}}]},
        {
            **GOOD_STATUS,
            "devices": [
                {
                    "name": "cpu",
                    "kind": "cpu",
                    "label": "CPU",
                    "models": [{"model": "m", "backend": 3}],
                }
            ],
        },
        {
            **GOOD_STATUS,
            "devices": [
                {"name": "cpu", "kind": "cpu", "label": "CPU", "temperature_c": "hot", "models": []}
            ],
        },
    ],
)
def test_a_status_is_checked_field_by_field(document: object) -> None:
    with pytest.raises(ServerProtocolError):
        parse_status(document)


def test_a_model_list_is_checked() -> None:
    listed = parse_models(
        {
            "loaded": [GOOD_MODEL],
            "failed": {"x": "broken"},
            "stored": [{"path": "a.tflite", "size": 3, "used_by": ["m", 5]}],
            "catalog": [{"id": "c", "name": "C", "task": "detection", "variant_here": "cpu"}],
        }
    )
    assert (listed.failed, listed.stored[0].used_by, listed.catalog[0].id) == (
        {"x": "broken"},
        ("m",),
        "c",
    )
    with pytest.raises(ServerProtocolError):
        parse_models({"loaded": [], "failed": {}, "stored": [{"path": 1}], "catalog": []})
