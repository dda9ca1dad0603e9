"""DeepStack / CodeProject.AI compatible endpoints: the same engine call, in their JSON.

What their clients parse (Frigate's `deepstack` detector, Blue Iris, Agent DVR, the Home
Assistant DeepStack and CodeProject.AI integrations), and so what this adapter keeps:
- a multipart form with the file field `image`, optional `min_confidence` (default 0.4, as
  DeepStack) and `api_key` (the key may come as this field instead of a Bearer header);
- `success`, and `predictions` ALWAYS present, an empty list when nothing is found (a server
  that left it out broke clients), each `{label, confidence, x_min, y_min, x_max, y_max}` with
  integer pixels of the submitted image, sorted by confidence, highest first (Frigate stops at
  the first below its threshold and keeps at most 20), labels as COCO names;
- CodeProject.AI's extra fields: `count`, `message`, `inferenceMs`, `processMs`,
  `analysisRoundTripMs`, `code`, `command`, `moduleId`, `moduleName`, `executionProvider`,
  `canUseGPU`, `inferenceDevice`, `processedBy`, `timestampUTC`;
- on failure `success: false`, `error`, `code` (the HTTP status, also sent as the status) and
  `predictions: []`.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from ..results import FrameResult
from ..vision.image_guard import MAX_IMAGE_BYTES
from .errors import HttpError
from .guard import AUTHORIZED, check_length, key_matches, read_body, unauthorized
from .native import Route, read_form, run_image
from .state import STATE

MODULE_ID = "CoralVision"
MODULE_NAME = "Coral Vision"
DEFAULT_MIN_CONFIDENCE = 0.4
_FIELD_BYTES = 1024
_FORM_SLACK = 64 * 1024


def predictions(result: FrameResult, min_confidence: float) -> list[dict[str, Any]]:
    """The detections at or above `min_confidence`, best first, in integer image pixels."""
    found = sorted(
        (d for d in result.detections if d.score >= min_confidence), key=lambda d: -d.score
    )
    return [
        {
            "label": d.label,
            "confidence": float(d.score),
            "x_min": round(d.box.xmin),
            "y_min": round(d.box.ymin),
            "x_max": round(d.box.xmax),
            "y_max": round(d.box.ymax),
        }
        for d in found
    ]


def failure_body(err: HttpError) -> dict[str, Any]:
    """The JSON DeepStack clients expect from a failed request."""
    return {
        "success": False,
        "error": err.message,
        "code": err.status,
        "predictions": [],
        "count": 0,
        "message": err.message,
        "moduleId": MODULE_ID,
        "moduleName": MODULE_NAME,
    }


async def detection(request: web.Request) -> web.Response:
    """POST /v1/vision/detection: the first loaded detection model."""
    return await _detect(request, None)


async def custom(request: web.Request) -> web.Response:
    """POST /v1/vision/custom/{model}: a loaded detection model by id."""
    return await _detect(request, request.match_info["model"])


async def custom_list(request: web.Request) -> web.Response:
    """POST /v1/vision/custom/list: the loaded detection models' ids."""
    await _read(request)
    host = request.app[STATE].host
    models = [m.id for m in host.loaded if m.task == "detection"]
    return web.json_response(
        {
            **_common("list-custom", 0, 0, _device(None)),
            "message": f"{len(models)} model(s)",
            "models": models,
            "predictions": [],
            "count": 0,
        }
    )


async def _detect(request: web.Request, model_id: str | None) -> web.Response:
    started = time.perf_counter()
    image, min_confidence = await _read(request)
    host = request.app[STATE].host
    loaded = host.detector() if model_id is None else host.get(model_id)
    if loaded.task != "detection":
        raise HttpError(400, "wrong_task", f"{loaded.id} is a {loaded.task} model, not a detector")
    if image is None:
        raise HttpError(400, "no_image", "no valid image file was found in the request")
    result = await run_image(request, loaded, image, None)
    found = predictions(result, min_confidence)
    names = ", ".join(dict.fromkeys(p["label"] for p in found))
    process_ms = round((time.perf_counter() - started) * 1000)
    command = "detect" if model_id is None else "custom"
    return web.json_response(
        {
            **_common(command, round(result.inference_ms), process_ms, _device(result)),
            "message": f"Found {names}" if found else "No objects found",
            "count": len(found),
            "predictions": found,
        }
    )


async def _read(request: web.Request) -> tuple[bytes | None, float]:
    """The form's image and min_confidence, once its api_key (or the header) is checked."""
    state = request.app[STATE]
    check_length(request, MAX_IMAGE_BYTES + _FORM_SLACK, "image")
    fields: dict[str, bytes] = {}
    if request.content_type.startswith("multipart/"):
        limits = {"image": MAX_IMAGE_BYTES, "min_confidence": _FIELD_BYTES, "api_key": _FIELD_BYTES}
        fields = await read_form(request, limits)
    elif request.content_type == "application/x-www-form-urlencoded":
        # A form without a file (custom/list with an api_key) comes URL-encoded.
        check_length(request, _FORM_SLACK, "form")
        text = (await read_body(request.content, _FORM_SLACK, "form")).decode("utf-8", "replace")
        fields = {k: v.encode() for k, v in parse_qsl(text) if k in ("api_key", "min_confidence")}
    if not request[AUTHORIZED]:
        offered = fields.get("api_key")
        if offered is None or not key_matches(
            state.options.api_key, offered.decode("utf-8", "replace")
        ):
            raise unauthorized()
    return fields.get("image"), _min_confidence(fields.get("min_confidence"))


def _min_confidence(raw: bytes | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_MIN_CONFIDENCE
    try:
        value = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise HttpError(400, "bad_form", "min_confidence must be a number from 0 to 1")
    return value


def _device(result: FrameResult | None) -> str:
    """CodeProject.AI's name for where it ran: "TPU" or "CPU"."""
    return "TPU" if result is not None and result.backend.startswith("Edge TPU") else "CPU"


def _common(command: str, inference_ms: int, process_ms: int, device: str) -> dict[str, Any]:
    return {
        "success": True,
        "code": 200,
        "command": command,
        "inferenceMs": inference_ms,
        "processMs": process_ms,
        "analysisRoundTripMs": process_ms,
        "moduleId": MODULE_ID,
        "moduleName": MODULE_NAME,
        "executionProvider": device,
        "canUseGPU": False,
        "inferenceDevice": device,
        "processedBy": socket.gethostname(),
        "timestampUTC": format_datetime(datetime.now(UTC), usegmt=True),
    }


ROUTES: list[Route] = [
    ("POST", "/v1/vision/detection", detection, "deepstack:detection"),
    ("POST", "/v1/vision/custom/list", custom_list, "deepstack:list"),
    ("POST", "/v1/vision/custom/{model}", custom, "deepstack:custom"),
]
