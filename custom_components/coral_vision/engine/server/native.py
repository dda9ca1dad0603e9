"""The native API under /v1/ (and /health, /metrics): what the integration needs, in JSON.

Detect and classify take the image as the raw body (the camera's JPEG as is) and answer the
engine's FrameResult in wire form (wire.py). Query: `min_score` (default 0.5 for detection,
0.0 for classification; results under 0.05 are never kept), `top_k` (25 / 5, at most 100) and
`source`, the client's camera id: a source's frames run in order and a newer frame replaces
one still waiting (409). Without `source` each connection is its own source.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import BodyPartReader, web

from ..inference.devices import EdgeTpu, read_temperature
from ..models.catalog import CatalogEntry
from ..models.flatbuffer import MAX_MODEL_BYTES
from ..models.labels import MAX_LABELS_BYTES
from ..results import FrameResult, Task
from ..vision.image_guard import MAX_IMAGE_BYTES
from ..wire import to_wire
from . import metrics
from .errors import HttpError
from .guard import check_length, client_of, connection_of, read_body
from .host import MAX_TOP_K, Loaded, ModelHost, describe, narrowed, statistics_of
from .identity import API_VERSION
from .state import STATE

type Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]], str]

_DEFAULTS: dict[Task, tuple[float, int]] = {"detection": (0.5, 25), "classification": (0.0, 5)}
_MAX_SOURCE = 200
_MAX_JSON = 64 * 1024
# Room for a multipart form's boundaries and headers around its files.
_FORM_SLACK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Query:
    """How one detect or classify request narrows its result."""

    min_score: float
    top_k: int
    source: str | None


def parse_query(request: web.Request, task: Task) -> Query:
    """min_score, top_k and source from the query string; HttpError 400 when bad."""
    default_score, default_k = _DEFAULTS[task]
    query = request.query
    try:
        min_score = float(query.get("min_score", default_score))
        top_k = int(query.get("top_k", default_k))
    except ValueError:
        raise HttpError(
            400, "bad_query", "min_score must be a number, top_k a whole number"
        ) from None
    if not 0.0 <= min_score <= 1.0:
        raise HttpError(400, "bad_query", "min_score must be from 0 to 1")
    if not 1 <= top_k <= MAX_TOP_K:
        raise HttpError(400, "bad_query", f"top_k must be from 1 to {MAX_TOP_K}")
    source = query.get("source")
    if source is not None and not (0 < len(source) <= _MAX_SOURCE and source.isprintable()):
        raise HttpError(400, "bad_query", f"source must be 1 to {_MAX_SOURCE} printable characters")
    return Query(min_score, top_k, source)


async def run_image(
    request: web.Request, loaded: Loaded, image: bytes, source: str | None
) -> FrameResult:
    """Run an image as a client's source (default: its connection), the source id kept as sent."""
    if not image:
        raise HttpError(400, "no_image", "no image was sent")
    host = request.app[STATE].host
    # Sources are kept apart per client: one client cannot replace another's frames.
    own = source or connection_of(request)
    result = await host.run(loaded, f"{client_of(request)}/{own}", image)
    return replace(result, source_id=own)


async def health(request: web.Request) -> web.Response:
    """200 while the server runs; no key needed."""
    state = request.app[STATE]
    return web.json_response(
        {
            "status": "ok",
            "id": state.server_id,
            "version": state.version,
            "api": API_VERSION,
            "models": [m.id for m in state.host.loaded],
        }
    )


async def status(request: web.Request) -> web.Response:
    """The server, its devices, its models and their statistics."""
    state = request.app[STATE]
    host = state.host
    temperatures = await asyncio.to_thread(_temperatures, host.devices)
    return web.json_response(
        {
            "id": state.server_id,
            "version": state.version,
            "api": API_VERSION,
            "devices": _devices(host, temperatures),
            "models": [describe(m) for m in host.loaded],
            "failed_models": dict(host.failed),
            "requests_in_flight": state.limiter.in_flight,
        }
    )


async def detect(request: web.Request) -> web.Response:
    """Detect objects in the posted image."""
    return await _infer(request, "detection")


async def classify(request: web.Request) -> web.Response:
    """Classify the posted image."""
    return await _infer(request, "classification")


async def _infer(request: web.Request, task: Task) -> web.Response:
    loaded = request.app[STATE].host.get(request.match_info["model"])
    if loaded.task != task:
        verb = "detect" if loaded.task == "detection" else "classify"
        raise HttpError(400, "wrong_task", f"{loaded.id} is a {loaded.task} model: use /{verb}")
    query = parse_query(request, task)
    check_length(request, MAX_IMAGE_BYTES, "image")
    image = await read_body(request.content, MAX_IMAGE_BYTES, "image")
    result = await run_image(request, loaded, image, query.source)
    return web.json_response(
        {"model": loaded.id, **to_wire(narrowed(result, query.min_score, query.top_k))}
    )


async def list_models(request: web.Request) -> web.Response:
    """Loaded models, the models folder's files, and the catalog."""
    host = request.app[STATE].host
    stored = await asyncio.to_thread(host.stored)
    return web.json_response(
        {
            "loaded": [describe(m) for m in host.loaded],
            "failed": dict(host.failed),
            "stored": [s.as_dict() for s in stored],
            "catalog": [_catalog_entry(e, host.device_kind) for e in host.catalog.values()],
        }
    )


async def deploy(request: web.Request) -> web.Response:
    """Fetch a catalog model (catalog URLs or the mirror only) and load it: {"id": ...}."""
    state = request.app[STATE]
    check_length(request, _MAX_JSON, "request")
    body = await read_body(request.content, _MAX_JSON, "request")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    model_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(model_id, str):
        raise HttpError(400, "bad_request", 'expected a JSON object {"id": "<catalog id>"}')
    assert state.session is not None  # set on startup
    loaded = await state.host.deploy(model_id, state.session)
    return web.json_response(describe(loaded), status=201)


async def upload(request: web.Request) -> web.Response:
    """Keep a custom model: the raw .tflite body, or a form with `model` and `labels` files."""
    name = request.match_info["name"]
    check_length(request, MAX_MODEL_BYTES + MAX_LABELS_BYTES + _FORM_SLACK, "upload")
    labels: bytes | None = None
    if request.content_type.startswith("multipart/"):
        files = await read_form(request, {"model": MAX_MODEL_BYTES, "labels": MAX_LABELS_BYTES})
        content = files.get("model")
        labels = files.get("labels")
    else:
        content = await read_body(request.content, MAX_MODEL_BYTES, "model")
    if not content:
        raise HttpError(400, "no_model", "no model was sent")
    loaded = await request.app[STATE].host.upload(name, content, labels)
    return web.json_response(describe(loaded), status=201)


async def remove(request: web.Request) -> web.Response:
    """Unload a model and delete its files."""
    model_id = request.match_info["model"]
    await request.app[STATE].host.remove(model_id)
    return web.json_response({"removed": model_id})


async def metrics_text(request: web.Request) -> web.Response:
    """Prometheus metrics."""
    host = request.app[STATE].host
    temperatures = await asyncio.to_thread(_temperatures, host.devices)
    body = metrics.render(host.loaded, request.app[STATE].recorder, temperatures)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def read_form(request: web.Request, limits: dict[str, int]) -> dict[str, bytes]:
    """The named parts of a multipart form, each within its limit; other parts are refused."""
    reader = await request.multipart()
    found: dict[str, bytes] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name not in limits:
            name = getattr(part, "name", None)
            raise HttpError(400, "bad_form", f"unexpected form field {name!r}")
        found[part.name] = await read_part(part, limits[part.name], part.name)
    return found


async def read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    """One form part's bytes, at most `limit` of them (HttpError 413 beyond)."""
    data = bytearray()
    while chunk := await part.read_chunk(256 * 1024):
        if len(data) + len(chunk) > limit:
            raise HttpError(413, "too_large", f"the {what} is larger than {limit} bytes")
        data += chunk
    return bytes(data)


def _temperatures(devices: tuple[EdgeTpu | None, ...]) -> dict[str, float | None]:
    return {metrics.device_name(tpu): read_temperature(tpu) if tpu else None for tpu in devices}


def _devices(host: ModelHost, temperatures: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each device with the backend each model runs on there (the first model's at the top)."""
    devices = []
    for rank, tpu in enumerate(host.devices):
        name = metrics.device_name(tpu)
        backends = []
        for loaded in host.loaded:
            executor = next(
                (e for e in loaded.dispatcher.executors if e.name == f"{name}#{rank}"), None
            )
            info = executor.backend_info if executor else None
            backends.append(
                {
                    "model": loaded.id,
                    "backend": info.kind if info else None,
                    "fallback_reason": info.fallback_reason if info else None,
                    "detail": info.detail if info else "not running",
                    # What this device did for the model: a client shows each Edge TPU's own.
                    "statistics": statistics_of(executor.stats()) if executor else None,
                }
            )
        first = backends[0] if backends else {"backend": None, "fallback_reason": None}
        devices.append(
            {
                "name": name,
                "kind": tpu.kind if tpu else "cpu",
                "index": tpu.index if tpu else None,
                "label": tpu.label if tpu else "CPU",
                "temperature_c": temperatures.get(name),
                "backend": first["backend"],
                "fallback_reason": first["fallback_reason"],
                "models": backends,
            }
        )
    return devices


def _catalog_entry(entry: CatalogEntry, device_kind: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "label": entry.label,
        "task": entry.task,
        "dataset": entry.dataset,
        "input_size": list(entry.input_size),
        "variants": ["cpu", *(["edgetpu"] if entry.edgetpu else [])],
        "variant_here": "edgetpu" if entry.edgetpu and device_kind != "cpu" else "cpu",
    }


ROUTES: list[Route] = [
    ("GET", "/health", health, "open:health"),
    ("GET", "/metrics", metrics_text, "read:metrics"),
    ("GET", "/v1/status", status, "read:status"),
    ("GET", "/v1/models", list_models, "read:models"),
    ("POST", "/v1/models", deploy, "manage:deploy"),
    ("PUT", "/v1/models/upload/{name}", upload, "manage:upload"),
    ("DELETE", "/v1/models/{model}", remove, "manage:remove"),
    ("POST", "/v1/models/{model}/detect", detect, "infer:detect"),
    ("POST", "/v1/models/{model}/classify", classify, "infer:classify"),
]
