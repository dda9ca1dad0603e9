"""The DeepStack / CodeProject.AI endpoints, field by field, on the real detector and photos."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from custom_components.coral_vision.engine.server.deepstack import MODULE_ID

from .conftest import DETECTOR, KEY, auth, image_form

COMMON = {
    "success": bool,
    "code": int,
    "command": str,
    "inferenceMs": int,
    "processMs": int,
    "analysisRoundTripMs": int,
    "moduleId": str,
    "moduleName": str,
    "executionProvider": str,
    "canUseGPU": bool,
    "inferenceDevice": str,
    "processedBy": str,
    "timestampUTC": str,
    "message": str,
    "count": int,
    "predictions": list,
}


def check_shape(body: dict[str, object]) -> None:
    for key, kind in COMMON.items():
        assert isinstance(body[key], kind), (key, body)


async def test_grace_hopper_is_a_person(client: TestClient, photos: dict[str, bytes]) -> None:
    response = await client.post(
        "/v1/vision/detection", data=image_form(photos["grace_hopper.bmp"], api_key=KEY)
    )
    assert response.status == 200
    body = await response.json()
    check_shape(body)
    assert (body["success"], body["code"], body["command"]) == (True, 200, "detect")
    assert (body["moduleId"], body["inferenceDevice"], body["canUseGPU"]) == (
        MODULE_ID,
        "CPU",
        False,
    )
    predictions = body["predictions"]
    assert body["count"] == len(predictions) >= 2
    assert predictions[0]["label"] == "person"
    assert body["message"].startswith("Found person")
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)
    assert min(confidences) >= 0.4  # DeepStack's default min_confidence
    for prediction in predictions:
        assert set(prediction) == {"label", "confidence", "x_min", "y_min", "x_max", "y_max"}
        for side in ("x_min", "y_min", "x_max", "y_max"):
            assert type(prediction[side]) is int
        # Pixels of the submitted 512x600 photo.
        assert 0 <= prediction["x_min"] < prediction["x_max"] <= 512
        assert 0 <= prediction["y_min"] < prediction["y_max"] <= 600
    assert {p["label"] for p in predictions} <= {"person", "tie"}


async def test_sunflower_has_no_predictions(client: TestClient, photos: dict[str, bytes]) -> None:
    # The SSD sees a 0.63 "teddy bear" in the flower: above 0.7 nothing is found.
    response = await client.post(
        "/v1/vision/detection",
        data=image_form(photos["sunflower.bmp"], min_confidence="0.7"),
        headers=auth(),
    )
    assert response.status == 200
    body = await response.json()
    check_shape(body)
    assert body["predictions"] == []
    assert (body["count"], body["message"], body["success"]) == (0, "No objects found", True)


async def test_custom_model_and_list(client: TestClient, photos: dict[str, bytes]) -> None:
    response = await client.post(
        f"/v1/vision/custom/{DETECTOR}",
        data=image_form(photos["grace_hopper.bmp"], min_confidence="0.6", api_key=KEY),
    )
    body = await response.json()
    assert (response.status, body["command"]) == (200, "custom")
    assert [p["label"] for p in body["predictions"]] == ["person", "tie"]
    response = await client.post("/v1/vision/custom/list", data=image_form(None, api_key=KEY))
    body = await response.json()
    assert (response.status, body["success"], body["models"]) == (200, True, [DETECTOR])
    assert body["predictions"] == []


async def test_failures_keep_the_shape(client: TestClient, photos: dict[str, bytes]) -> None:
    cases = [
        ("/v1/vision/detection", image_form(photos["cat.bmp"]), {}, 401),
        ("/v1/vision/detection", image_form(photos["cat.bmp"], api_key="wrong"), {}, 401),
        ("/v1/vision/detection", image_form(None, api_key=KEY), {}, 400),
        ("/v1/vision/detection", image_form(b"not an image", api_key=KEY), {}, 400),
        ("/v1/vision/detection", b"raw body", auth(), 400),
        ("/v1/vision/custom/nope", image_form(photos["cat.bmp"]), auth(), 404),
        ("/v1/vision/detection", image_form(photos["cat.bmp"], min_confidence="2"), auth(), 400),
        ("/v1/vision/detection", image_form(photos["cat.bmp"], extra="x"), auth(), 400),
    ]
    for path, data, headers, status in cases:
        response = await client.post(path, data=data, headers=headers)
        body = await response.json()
        assert response.status == status, (path, body)
        assert body["success"] is False
        assert body["code"] == status
        assert body["predictions"] == []
        assert isinstance(body["error"], str)
        assert body["error"]
    # Still serving.
    response = await client.post(
        "/v1/vision/detection", data=image_form(photos["grace_hopper.bmp"]), headers=auth()
    )
    assert (await response.json())["predictions"][0]["label"] == "person"
