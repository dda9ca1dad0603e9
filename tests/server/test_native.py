"""The native /v1/ API in-process: results as the engine gives them, status, model management."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from custom_components.coral_vision.engine.results import FrameResult
from custom_components.coral_vision.engine.server.host import STATE_FILE
from custom_components.coral_vision.engine.wire import from_wire
from tests.engine.conftest import DETECT_DIR

from .conftest import CLASSIFIER, DETECTOR, KEY, app_client, auth, image_form, options_for


async def detect(client: TestClient, image: bytes, query: str = "") -> FrameResult:
    response = await client.post(f"/v1/models/{DETECTOR}/detect{query}", data=image, headers=auth())
    assert response.status == 200, await response.text()
    return from_wire(await response.json())


async def test_detect_gives_the_engines_result(
    client: TestClient, photos: dict[str, bytes]
) -> None:
    result = await detect(client, photos["grace_hopper.bmp"], "?source=cam.front")
    assert result.source_id == "cam.front"
    assert (result.task, result.image_size, result.backend) == ("detection", (512, 600), "CPU")
    assert result.inference_ms > 0
    assert result.preprocess_ms > 0
    assert [d.label for d in result.detections] == ["person", "tie", "tie"]  # min_score 0.5
    person = result.detections[0]
    assert 0.7 < person.score < 0.72
    assert person.box.xmax <= 512
    assert person.box.ymax <= 600
    assert person.box.area > 200_000
    narrow = await detect(client, photos["grace_hopper.bmp"], "?min_score=0.1&top_k=2")
    assert len(narrow.detections) == 2
    assert not (await detect(client, photos["sunflower.bmp"], "?min_score=0.7")).detections
    # Without a source, the connection is the source.
    assert (await detect(client, photos["cat.bmp"])).source_id.startswith("127.0.0.1:")


async def test_bad_queries_and_tasks(client: TestClient, photos: dict[str, bytes]) -> None:
    image = photos["cat.bmp"]
    for query in ("?min_score=x", "?min_score=1.5", "?top_k=0", "?top_k=101", "?source=%0A"):
        response = await client.post(
            f"/v1/models/{DETECTOR}/detect{query}", data=image, headers=auth()
        )
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (400, "bad_query"), query
    response = await client.post(f"/v1/models/{DETECTOR}/classify", data=image, headers=auth())
    assert (response.status, (await response.json())["error"]["code"]) == (400, "wrong_task")


async def test_status_health_and_metrics(client: TestClient, photos: dict[str, bytes]) -> None:
    await detect(client, photos["grace_hopper.bmp"])
    health = await client.get("/health")  # no key needed
    body = await health.json()
    assert (health.status, body["status"], body["api"], body["models"]) == (
        200,
        "ok",
        "1",
        [DETECTOR],
    )
    status = await (await client.get("/v1/status", headers=auth())).json()
    assert status["id"] == body["id"]
    assert status["version"] == body["version"] != "unknown"
    (device,) = status["devices"]
    assert (device["name"], device["kind"], device["backend"], device["fallback_reason"]) == (
        "cpu",
        "cpu",
        "cpu",
        None,
    )
    (model,) = status["models"]
    assert (model["id"], model["task"], model["variant"], model["input_size"]) == (
        DETECTOR,
        "detection",
        "cpu",
        [300, 300],
    )
    assert model["labels"][0] == "person"
    assert len(model["labels"]) == 80
    stats = model["statistics"]
    assert stats["frames_done"] == 1
    assert stats["inference_ms_p50"] > 0
    assert stats["frames_per_s"] > 0
    assert stats["queue_depth"] == 0
    metrics = await client.get("/metrics", headers=auth())
    assert metrics.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(await metrics.text())}
    pair = {"model": DETECTOR, "device": "cpu"}

    def value(family: str, sample: str, **labels: str) -> float:
        (found,) = (
            s.value
            for s in families[family].samples
            if s.name == sample and s.labels == pair | labels
        )
        return found

    assert families["coral_vision_frames"].type == "counter"
    assert value("coral_vision_frames", "coral_vision_frames_total") == 1
    for kind in ("failed", "dropped", "rejected", "timed_out"):
        errors = value("coral_vision_frame_errors", "coral_vision_frame_errors_total", kind=kind)
        assert errors == 0
    assert value("coral_vision_backend_changes", "coral_vision_backend_changes_total") == 0
    assert value("coral_vision_fallback", "coral_vision_fallback") == 0
    assert value("coral_vision_queue_depth", "coral_vision_queue_depth") == 0
    assert value("coral_vision_inference_ms", "coral_vision_inference_ms", quantile="0.5") > 0
    latency = "coral_vision_request_latency_seconds"
    assert families[latency].type == "histogram"
    assert value(latency, f"{latency}_count") == 1
    assert value(latency, f"{latency}_bucket", le="+Inf") == 1
    assert value(latency, f"{latency}_sum") > 0
    assert not families["coral_vision_request_errors"].samples  # no call failed
    assert not families["coral_vision_temperature_celsius"].samples  # the CPU has none


async def test_the_key_guards_everything_but_health(client: TestClient) -> None:
    for method, path in (
        ("GET", "/v1/status"),
        ("GET", "/v1/models"),
        ("GET", "/metrics"),
        ("POST", "/v1/models"),
        ("PUT", "/v1/models/upload/x"),
        ("DELETE", f"/v1/models/{DETECTOR}"),
        ("POST", f"/v1/models/{DETECTOR}/detect"),
    ):
        for headers in ({}, auth("wrong"), {"Authorization": f"Basic {KEY}"}):
            response = await client.request(method, path, headers=headers, data=b"x")
            assert response.status == 401, (method, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"]["code"] == "unauthorized"
    response = await client.get("/nowhere", headers=auth())
    assert (response.status, (await response.json())["error"]["status"]) == (404, 404)


async def test_without_a_key_detection_is_open_but_models_are_not(
    socket_enabled: None, tmp_path: Path, models_dir: Path, photos: dict[str, bytes]
) -> None:
    async with app_client(options_for(tmp_path, models_dir)) as client:
        # Open: status, listing and detection.
        assert (await client.get("/v1/status")).status == 200
        assert (await client.get("/v1/models")).status == 200
        response = await client.post(
            f"/v1/models/{DETECTOR}/detect", data=photos["grace_hopper.bmp"]
        )
        assert response.status == 200
        # Guarded: deploy, upload, remove, even with a made-up key.
        for headers in ({}, auth("made-up")):
            for method, path in (
                ("POST", "/v1/models"),
                ("PUT", "/v1/models/upload/x"),
                ("DELETE", f"/v1/models/{DETECTOR}"),
            ):
                response = await client.request(method, path, headers=headers, data=b"x")
                assert response.status == 401, (method, path)
        key_file = tmp_path / "data" / "management_key"
        assert key_file.stat().st_mode & 0o077 == 0  # its owner's only
        key = key_file.read_text().strip()
        assert len(key) >= 32
        response = await client.post("/v1/models", json={"id": CLASSIFIER}, headers=auth(key))
        assert response.status == 201
    # The same key after a restart; a damaged file gets a new one.
    async with app_client(options_for(tmp_path, models_dir)) as client:
        assert key_file.read_text().strip() == key
    key_file.write_text("short\n")
    async with app_client(options_for(tmp_path, models_dir)) as client:
        assert len(key_file.read_text().strip()) >= 32
        assert key_file.read_text().strip() != key


async def test_model_management(
    socket_enabled: None, tmp_path: Path, models_dir: Path, photos: dict[str, bytes]
) -> None:
    options = options_for(tmp_path, models_dir, api_key=KEY)
    detector = (models_dir / DETECT_DIR / "detect.tflite").read_bytes()
    labels = (models_dir / DETECT_DIR / "labelmap.txt").read_bytes()
    async with app_client(options) as client:
        listing = await (await client.get("/v1/models", headers=auth())).json()
        assert [m["id"] for m in listing["loaded"]] == [DETECTOR]
        assert {e["id"] for e in listing["catalog"]} >= {DETECTOR, CLASSIFIER}
        assert any(s["path"].endswith("detect.tflite") and s["in_use"] for s in listing["stored"])

        # Deploy a catalog model: fetched from the mirror, verified, loaded.
        response = await client.post("/v1/models", json={"id": CLASSIFIER}, headers=auth())
        assert response.status == 201, await response.text()
        deployed = await response.json()
        assert (deployed["id"], deployed["task"], deployed["variant"]) == (
            CLASSIFIER,
            "classification",
            "cpu",
        )
        response = await client.post(
            f"/v1/models/{CLASSIFIER}/classify?top_k=3", data=photos["cat.bmp"], headers=auth()
        )
        result = from_wire(await response.json())
        assert len(result.classes) == 3
        assert "cat" in result.classes[0].label

        # Upload a custom model with labels (a form), then as a raw body without labels.
        form = FormData()
        form.add_field("model", detector, filename="ssd.tflite")
        form.add_field("labels", labels, filename="labels.txt")
        response = await client.put("/v1/models/upload/my_ssd", data=form, headers=auth())
        assert response.status == 201, await response.text()
        assert (await response.json())["labels"][0] == "person"
        response = await client.post(
            "/v1/vision/custom/my_ssd",
            data=image_form(photos["grace_hopper.bmp"]),
            headers=auth(),
        )
        assert (await response.json())["predictions"][0]["label"] == "person"
        response = await client.put("/v1/models/upload/raw_ssd", data=detector, headers=auth())
        assert response.status == 201
        assert (options.models_dir / "my_ssd.tflite").read_bytes() == detector
        assert (options.models_dir / "my_ssd.labels.txt").read_bytes() == labels
        for bad_name, status in (("tf_coco_ssd_mobilenet_v1", 409), ("a.b", 409)):
            response = await client.put(
                f"/v1/models/upload/{bad_name}", data=detector, headers=auth()
            )
            assert response.status == status, bad_name
        remembered = json.loads((options.data_dir / STATE_FILE).read_text())
        assert remembered == {"models": [CLASSIFIER, "my_ssd.tflite", "raw_ssd.tflite"]}

        response = await client.delete("/v1/models/raw_ssd", headers=auth())
        assert (response.status, await response.json()) == (200, {"removed": "raw_ssd"})
        assert not (options.models_dir / "raw_ssd.tflite").exists()
        assert (await client.delete("/v1/models/raw_ssd", headers=auth())).status == 404
        assert (await client.delete("/v1/models/..%2Fx", headers=auth())).status == 404
        response = await client.post("/v1/models", json={"id": "nope"}, headers=auth())
        assert response.status == 404
        response = await client.post("/v1/models", data=b"{", headers=auth())
        assert response.status == 400

    # A restart loads the configured model and those deployed or uploaded since.
    async with app_client(options) as client:
        health = await (await client.get("/health")).json()
        assert health["models"] == [DETECTOR, CLASSIFIER, "my_ssd"]
        # A stored model that is not loaded can be removed by its id.
        await client.delete("/v1/models/my_ssd", headers=auth())
        shutil.copy(models_dir / DETECT_DIR / "detect.tflite", options.models_dir / "spare.tflite")
        assert (await client.delete("/v1/models/spare", headers=auth())).status == 200
        assert not (options.models_dir / "spare.tflite").exists()
        await client.delete(f"/v1/models/{DETECTOR}", headers=auth())
        # No detector left: DeepStack's detection says so.
        response = await client.post(
            "/v1/vision/detection", data=image_form(photos["cat.bmp"]), headers=auth()
        )
        assert response.status == 404


async def test_file_models_and_failed_ones(
    socket_enabled: None, tmp_path: Path, models_dir: Path, photos: dict[str, bytes]
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", folder)
    shutil.copy(models_dir / "mobilenet_v1_0.25_128_quant.tflite", folder)
    shutil.copy(
        models_dir / "imagenet_labels.txt", folder / "mobilenet_v1_0.25_128_quant.labels.txt"
    )
    options = options_for(
        tmp_path,
        models_dir,
        models=("mobilenet_v1_0.25_128_quant_edgetpu.tflite", "missing.tflite", "no_such_id"),
    )
    async with app_client(options) as client:
        status = await (await client.get("/v1/status")).json()  # no key configured
        (model,) = status["models"]
        # On the CPU the compiled model's twin runs.
        assert (model["id"], model["variant"], model["origin"]) == (
            "mobilenet_v1_0.25_128_quant_edgetpu",
            "edgetpu",
            "file",
        )
        assert set(status["failed_models"]) == {"missing", "no_such_id"}
        response = await client.post(f"/v1/models/{model['id']}/classify", data=photos["cat.bmp"])
        assert response.status == 200
        assert (await response.json())["classes"][0]["label"] != ""
        response = await client.post("/v1/vision/detection", data=image_form(photos["cat.bmp"]))
        assert response.status == 404  # no detection model loaded
        response = await client.post(
            f"/v1/vision/custom/{model['id']}", data=image_form(photos["cat.bmp"])
        )
        assert response.status == 400  # a classifier is no DeepStack model


async def test_default_model_with_no_options(
    socket_enabled: None, tmp_path: Path, models_dir: Path, photos: dict[str, bytes]
) -> None:
    async with app_client(options_for(tmp_path, models_dir, models=(), devices=("all",))) as client:
        response = await client.post(
            "/v1/vision/detection", data=image_form(photos["grace_hopper.bmp"])
        )
        body = await response.json()
        assert body["predictions"][0]["label"] == "person"
        health = await (await client.get("/health")).json()
        assert health["models"] == [DETECTOR]
    await asyncio.sleep(0)
