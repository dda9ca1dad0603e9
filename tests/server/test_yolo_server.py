"""A YOLO model on the server: uploaded like any model, answering both APIs as SSD does."""

from __future__ import annotations

from pathlib import Path

from custom_components.coral_vision.engine.wire import from_wire

from .conftest import app_client, auth, image_form, options_for

YOLO = Path("yolo") / "yolov8n_int8.tflite"


async def test_an_uploaded_yolo_model_detects_on_both_apis(
    socket_enabled: None, tmp_path: Path, models_dir: Path, photos: dict[str, bytes]
) -> None:
    async with app_client(options_for(tmp_path, models_dir, api_key="k")) as client:
        # Class names come from the metadata Ultralytics embeds: no labels file is sent.
        response = await client.put(
            "/v1/models/upload/yolov8n", data=(models_dir / YOLO).read_bytes(), headers=auth("k")
        )
        assert response.status == 201, await response.text()
        model = await response.json()
        assert (model["task"], model["input_size"]) == ("detection", [320, 320])
        assert "person" in model["labels"]

        response = await client.post(
            "/v1/models/yolov8n/detect", data=photos["grace_hopper.bmp"], headers=auth("k")
        )
        result = from_wire(await response.json())
        person = next(d for d in result.detections if d.label == "person")
        assert person.score > 0.9
        width, height = result.image_size
        assert 0 <= person.box.xmin < person.box.xmax <= width
        assert 0 <= person.box.ymin < person.box.ymax <= height

        response = await client.post(
            "/v1/vision/custom/yolov8n", data=image_form(photos["cat.bmp"], api_key="k")
        )
        body = await response.json()
        assert body["success"] is True
        assert body["predictions"][0]["label"] == "cat"
        response = await client.post(
            "/v1/vision/custom/yolov8n", data=image_form(photos["sunflower.bmp"], api_key="k")
        )
        assert (await response.json())["predictions"] == []
