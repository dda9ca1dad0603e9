"""The server as a real process on loopback: many clients, SIGTERM, options.json, discovery, TPUs."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from .conftest import CLASSIFIER, DETECTOR, KEY, LISTENING, ServerProcess, auth, image_form

type Start = Callable[..., ServerProcess]


async def detect_native(session: aiohttp.ClientSession, url: str, image: bytes, source: str) -> str:
    async with session.post(
        f"{url}/v1/models/{DETECTOR}/detect?source={source}", data=image, headers=auth()
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["source_id"] == source
    return str(body["detections"][0]["label"])


async def detect_deepstack(session: aiohttp.ClientSession, url: str, image: bytes) -> str:
    async with session.post(
        f"{url}/v1/vision/detection", data=image_form(image, api_key=KEY)
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["success"] is True
    assert body["count"] == len(body["predictions"])
    return str(body["predictions"][0]["label"])


async def test_eight_clients_then_sigterm_with_requests_in_flight(
    socket_enabled: None, start_server: Start, photos: dict[str, bytes]
) -> None:
    server = await asyncio.to_thread(
        start_server, "--port", "0", "--no-zeroconf", "--devices", "cpu", "--api-key", KEY
    )
    image = photos["grace_hopper.bmp"]

    async def client(number: int) -> list[str]:
        labels = []
        async with aiohttp.ClientSession() as session:
            for i in range(50):
                if (number + i) % 2:
                    labels.append(await detect_native(session, server.url, image, f"cam{number}"))
                else:
                    labels.append(await detect_deepstack(session, server.url, image))
        return labels

    results = await asyncio.gather(*(client(n) for n in range(8)))
    assert [label for labels in results for label in labels] == ["person"] * 400

    async with aiohttp.ClientSession() as session:
        status = await (await session.get(f"{server.url}/v1/status", headers=auth())).json()
        stats = status["models"][0]["statistics"]
        assert stats["frames_done"] == 400
        assert stats["frames_failed"] == 0
        signalled = asyncio.Event()

        async def late(source: str) -> tuple[str, bool]:
            async with session.post(
                f"{server.url}/v1/models/{DETECTOR}/detect?source={source}",
                data=image,
                headers=auth(),
            ) as response:
                body = await response.json()
                after = signalled.is_set()
                if response.status == 503:  # not yet taken when the signal came: said clearly
                    assert body["error"]["code"] == "stopping"
                    return "stopping", after
                assert response.status == 200, body
                return body["detections"][0]["label"], after

        in_flight = [asyncio.create_task(late(f"late{i}")) for i in range(16)]
        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        server.signal(signal.SIGTERM)
        signalled.set()
        outcomes = await asyncio.gather(*in_flight)
    assert {label for label, _ in outcomes} <= {"person", "stopping"}
    # Requests the server had taken finished after the signal instead of failing.
    assert any(label == "person" and after for label, after in outcomes), outcomes
    assert await asyncio.to_thread(server.wait, 30) == 0
    assert sum(bool(LISTENING.search(line)) for line in server.lines) == 1
    assert "Traceback" not in "\n".join(server.lines)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"{server.url}/health")


class FakeSupervisor:
    """The Supervisor's discovery API and /addons/self/info, on loopback."""

    def __init__(self) -> None:
        self.posted: list[dict[str, object]] = []
        self.deleted: list[str] = []
        self.tokens: list[str] = []
        self.url = ""
        self.registered = asyncio.Event()

    async def info(self, request: web.Request) -> web.Response:
        self.tokens.append(request.headers.get("Authorization", ""))
        return web.json_response({"result": "ok", "data": {"hostname": "abcd1234-coral-vision"}})

    async def discovery(self, request: web.Request) -> web.Response:
        self.tokens.append(request.headers.get("Authorization", ""))
        self.posted.append(await request.json())
        self.registered.set()
        return web.json_response({"result": "ok", "data": {"uuid": "0123abcd"}})

    async def remove(self, request: web.Request) -> web.Response:
        self.deleted.append(request.match_info["uuid"])
        return web.json_response({"result": "ok", "data": {}})


@pytest.fixture
async def supervisor(socket_enabled: None) -> AsyncIterator[FakeSupervisor]:
    fake = FakeSupervisor()
    app = web.Application()
    app.router.add_get("/addons/self/info", fake.info)
    app.router.add_post("/discovery", fake.discovery)
    app.router.add_delete("/discovery/{uuid}", fake.remove)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


async def test_the_app_config_and_supervisor_discovery(
    start_server: Start,
    supervisor: FakeSupervisor,
    tmp_path: Path,
    photos: dict[str, bytes],
) -> None:
    config = tmp_path / "data" / "options.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps(
            {"api_key": KEY, "devices": "cpu", "models": [DETECTOR], "log_level": "info", "port": 0}
        )
    )
    env = {"SUPERVISOR_TOKEN": "supervisor-token", "CORAL_VISION_SUPERVISOR_URL": supervisor.url}
    server = await asyncio.to_thread(
        start_server, "--config", str(config), "--no-zeroconf", env=env
    )
    server_id = (config.parent / "server_id").read_text().strip()
    async with asyncio.timeout(20):  # registered just after the listening line
        await supervisor.registered.wait()
    assert supervisor.posted == [
        {
            "service": "coral_vision",
            "config": {
                "host": "abcd1234-coral-vision",
                "port": server.port,
                "id": server_id,
                "api_key": KEY,
            },
        }
    ]
    assert set(supervisor.tokens) == {"Bearer supervisor-token"}
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{server.url}/v1/status", headers=auth())
        assert (await response.json())["id"] == server_id
    server.signal(signal.SIGINT)
    assert await asyncio.to_thread(server.wait, 30) == 0
    assert supervisor.deleted == ["0123abcd"]


async def test_two_fake_edge_tpus(
    socket_enabled: None, start_server: Start, models_dir: Path, photos: dict[str, bytes]
) -> None:
    launcher = [str(Path(__file__).with_name("launcher.py"))]
    twin = str(models_dir / "mobilenet_v1_0.25_128_quant.tflite")
    arguments = ["--fake-tpus", "2", "--twin", twin, "--", "--port", "0", "--no-zeroconf"]
    arguments += ["--model", CLASSIFIER, "--model", DETECTOR]
    server = await asyncio.to_thread(lambda: start_server(*arguments, launcher=launcher))
    url = server.url
    async with aiohttp.ClientSession() as session:
        status = await (await session.get(f"{url}/v1/status")).json()
        assert [d["name"] for d in status["devices"]] == ["usb:0", "usb:1"]
        for device in status["devices"]:
            assert (device["kind"], device["backend"], device["fallback_reason"]) == (
                "usb",
                "edgetpu-usb",
                None,
            )
            # The detector has no Edge TPU build: it runs on the CPU, and says why.
            detector = next(m for m in device["models"] if m["model"] == DETECTOR)
            assert (detector["backend"], detector["fallback_reason"]) == (
                "cpu",
                "model_not_compiled",
            )
        assert [m["variant"] for m in status["models"]] == ["edgetpu", "cpu"]

        async def classify(source: str) -> str:
            async with session.post(
                f"{url}/v1/models/{CLASSIFIER}/classify?source={source}", data=photos["cat.bmp"]
            ) as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["backend"] == "Edge TPU (USB)"
                return str(body["classes"][0]["label"])

        async def camera(number: int) -> list[str]:
            # One frame at a time per source: a newer frame would replace a waiting one (409).
            return [await classify(f"cam{number}") for _ in range(5)]

        labels = [x for xs in await asyncio.gather(*(camera(n) for n in range(8))) for x in xs]
        assert len(set(labels)) == 1
        assert "cat" in labels[0]
        status = await (await session.get(f"{url}/v1/status")).json()
        stats = status["models"][0]["statistics"]
        assert (stats["frames_done"], stats["on_tpu"]) == (40, 2)
        metrics = await (await session.get(f"{url}/metrics")).text()
        frames = {
            s.labels["device"]: s.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "coral_vision_frames"
            for s in family.samples
            if s.labels["model"] == CLASSIFIER
        }
        assert set(frames) == {"usb:0", "usb:1"}
        assert all(count > 0 for count in frames.values())  # both Edge TPUs took frames
        assert sum(frames.values()) == 40
        response = await session.post(
            f"{url}/v1/vision/detection", data=image_form(photos["grace_hopper.bmp"])
        )
        assert (await response.json())["inferenceDevice"] == "CPU"
