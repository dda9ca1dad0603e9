"""The Coral Vision server's native API from the other side: typed calls and typed failures.

aiohttp only (no numpy, no Pillow): the integration runs its frames on a server through this.
Nothing the server answers is trusted: a response is read up to a size bound, its JSON checked
field by field (a frame's result by `wire.from_wire`), and every failure is one of the errors
below, each a CoralVisionError that says what the caller can do about it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import aiohttp

from .errors import (
    CoralVisionError,
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    QueueFullError,
)
from .models.labels import Labels
from .results import FrameResult, Task
from .wire import WireError, from_wire

# A status lists every model's labels (up to 100,000 names each): generous, but bounded.
MAX_RESPONSE_BYTES = 16 * 2**20
STATUS_TIMEOUT = 10.0
INFER_TIMEOUT = 30.0
# A deploy downloads and verifies the model on the server; an upload carries up to 200 MB.
MANAGE_TIMEOUT = 600.0
_TASKS = ("detection", "classification")
_CHUNK = 256 * 1024


class ServerError(CoralVisionError):
    """The server could not do what was asked."""


class ServerUnreachable(ServerError, ExecutorClosedError):
    """No answer: refused, reset, timed out, or not an HTTP server; try again later.

    To a frame's caller it is an executor that has gone: the frame is lost, and the one that
    owns the connection (the remote accelerator) reports the server's absence once.
    """


class ServerAuthError(ServerError, ExecutorClosedError):
    """The server refuses the API key (401): a new key is needed, not a retry.

    To a frame's caller it too is an executor gone, reported once by the connection's owner.
    """


class ServerBusy(ServerError, QueueFullError):
    """The server is at its limit or shutting down (429, 503): retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep the server's hint of when to retry (seconds)."""
        super().__init__(message)
        self.retry_after = retry_after


class FrameSuperseded(ServerError, FrameSupersededError):
    """A newer frame of the same source replaced this one on the server (409)."""


class ServerAnswerError(ServerError):
    """The server answered with an error status, a code and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        """Keep the server's status, code and message."""
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message


class ServerRequestError(ServerAnswerError):
    """The server refused the request (a 4xx status)."""


class ServerImageError(ServerRequestError, ImageError):
    """The server could not read the image sent."""


class ServerFailure(ServerAnswerError):
    """The server failed (a 5xx status): its engine, a download, or a timeout on its side."""


class ServerProtocolError(ServerError):
    """The answer is not what a Coral Vision server sends (wrong shape, too large, not JSON)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Statistics:
    """A model's (or one device's) counters on the server."""

    inference_ms_p50: float | None
    inference_ms_p95: float | None
    frames_done: int
    frames_dropped: int
    frames_failed: int
    frames_rejected: int
    frames_timed_out: int
    queue_depth: int
    queue_limit: int
    frames_per_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceBackend:
    """Where one model runs on one device: "edgetpu-usb", "edgetpu-pci", "cpu" or None."""

    model: str
    backend: str | None
    fallback_reason: str | None
    detail: str
    statistics: Statistics | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStatus:
    """One of the server's devices: an Edge TPU or the CPU."""

    name: str  # the device string ("usb:0", "pci:0") or "cpu"
    kind: str
    index: int | None
    label: str
    temperature_c: float | None
    models: tuple[DeviceBackend, ...]

    def backend_of(self, model_id: str) -> DeviceBackend | None:
        """Where `model_id` runs on this device (None when it does not run here)."""
        return next((m for m in self.models if m.model == model_id), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerModel:
    """A model loaded on the server: what a client reads from a model, nothing loaded here."""

    id: str
    name: str
    origin: str
    task: Task
    variant: str
    input_size: tuple[int, int]
    labels: Labels = field(repr=False)
    statistics: Statistics | None = None

    @property
    def edgetpu(self) -> bool:
        """Whether the server runs the Edge TPU build."""
        return self.variant == "edgetpu"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatus:
    """GET /v1/status: who the server is, its devices and its loaded models."""

    id: str
    version: str
    api: str
    devices: tuple[DeviceStatus, ...]
    models: tuple[ServerModel, ...]
    failed_models: Mapping[str, str]

    def model(self, model_id: str) -> ServerModel | None:
        """The loaded model with this id."""
        return next((m for m in self.models if m.id == model_id), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogModel:
    """A catalog model the server can deploy."""

    id: str
    name: str
    task: str
    variant_here: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A file in the server's models folder and the loaded models that use it."""

    path: str
    size: int
    used_by: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerModels:
    """GET /v1/models: loaded models, failed ones, the stored files and the catalog."""

    loaded: tuple[ServerModel, ...]
    failed: Mapping[str, str]
    stored: tuple[StoredFile, ...]
    catalog: tuple[CatalogModel, ...]


class ServerClient:
    """Calls one server's native API over a session the caller owns (and closes)."""

    def __init__(
        self, session: aiohttp.ClientSession, host: str, port: int, api_key: str | None = None
    ) -> None:
        """Talk to http://host:port, sending `api_key` as a bearer token when there is one."""
        self._session = session
        self.host = host
        self.port = port
        # An IPv6 literal needs brackets in a URL.
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def status(self, *, timeout: float = STATUS_TIMEOUT) -> ServerStatus:  # noqa: ASYNC109
        """The server's id, version, devices and loaded models."""
        return parse_status(await self._json("GET", "/v1/status", timeout=timeout))

    async def detect(
        self,
        model_id: str,
        image: bytes,
        *,
        source: str | None = None,
        min_score: float | None = None,
        top_k: int | None = None,
        timeout: float = INFER_TIMEOUT,  # noqa: ASYNC109 - a per-request bound
    ) -> FrameResult:
        """Objects in an image (the bytes as they are: a camera's JPEG is not re-encoded)."""
        return await self._infer("detect", model_id, image, source, min_score, top_k, timeout)

    async def classify(
        self,
        model_id: str,
        image: bytes,
        *,
        source: str | None = None,
        min_score: float | None = None,
        top_k: int | None = None,
        timeout: float = INFER_TIMEOUT,  # noqa: ASYNC109 - a per-request bound
    ) -> FrameResult:
        """The classes of an image."""
        return await self._infer("classify", model_id, image, source, min_score, top_k, timeout)

    async def models(self, *, timeout: float = STATUS_TIMEOUT) -> ServerModels:  # noqa: ASYNC109
        """Loaded, failed and stored models, and the catalog."""
        return parse_models(await self._json("GET", "/v1/models", timeout=timeout))

    async def deploy(self, catalog_id: str, *, timeout: float = MANAGE_TIMEOUT) -> ServerModel:  # noqa: ASYNC109
        """Have the server download, verify and load a catalog model."""
        document = await self._json(
            "POST", "/v1/models", json_body={"id": catalog_id}, timeout=timeout
        )
        return _model(document)

    async def upload(
        self,
        name: str,
        model_bytes: bytes,
        labels: bytes | None = None,
        *,
        timeout: float = MANAGE_TIMEOUT,  # noqa: ASYNC109 - a per-request bound
    ) -> ServerModel:
        """Send a custom model (and labels) for the server to check, keep and load as `name`."""
        form = aiohttp.FormData()
        form.add_field("model", model_bytes, filename=f"{name}.tflite")
        if labels is not None:
            form.add_field("labels", labels, filename=f"{name}.labels.txt")
        document = await self._json(
            "PUT", f"/v1/models/upload/{quote(name, safe='')}", data=form, timeout=timeout
        )
        return _model(document)

    async def remove(self, model_id: str, *, timeout: float = STATUS_TIMEOUT) -> None:  # noqa: ASYNC109
        """Unload a model and delete its files on the server."""
        await self._json("DELETE", f"/v1/models/{quote(model_id, safe='')}", timeout=timeout)

    async def _infer(
        self,
        verb: str,
        model_id: str,
        image: bytes,
        source: str | None,
        min_score: float | None,
        top_k: int | None,
        timeout: float,  # noqa: ASYNC109
    ) -> FrameResult:
        params: dict[str, str] = {}
        if source is not None:
            params["source"] = source
        if min_score is not None:
            params["min_score"] = repr(float(min_score))
        if top_k is not None:
            params["top_k"] = str(int(top_k))
        document = await self._json(
            "POST",
            f"/v1/models/{quote(model_id, safe='')}/{verb}",
            data=image,
            params=params,
            timeout=timeout,
            content_type="application/octet-stream",
        )
        try:
            return from_wire(document)
        except WireError as err:
            raise ServerProtocolError(f"{self.url} answered a malformed result: {err}") from err

    async def _json(
        self,
        method: str,
        path: str,
        *,
        timeout: float,  # noqa: ASYNC109
        data: Any = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Any:
        """One request; its JSON answer, or the error its status means."""
        headers = dict(self._headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method,
                self.url + path,
                data=data,
                json=json_body,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                body = await _read_bounded(response, self.url)
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as err:
            raise ServerUnreachable(f"{self.url} does not answer: {_describe(err)}") from err
        except aiohttp.ClientResponseError as err:  # a malformed HTTP answer
            raise ServerProtocolError(f"{self.url} answered badly: {_describe(err)}") from err
        document = _decode(body, self.url, status)
        if status < 300:
            return document
        raise _failure(status, document, retry_after)


async def _read_bounded(response: aiohttp.ClientResponse, url: str) -> bytes:
    """The response body, refused beyond MAX_RESPONSE_BYTES before more is read."""
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise ServerProtocolError(f"{url} sent {response.content_length} bytes: too large")
    body = bytearray()
    while len(body) <= MAX_RESPONSE_BYTES and (chunk := await response.content.read(_CHUNK)):
        body += chunk
    if len(body) > MAX_RESPONSE_BYTES:
        raise ServerProtocolError(f"{url} sent more than {MAX_RESPONSE_BYTES} bytes")
    return bytes(body)


def _decode(body: bytes, url: str, status: int) -> Any:
    """A body's JSON; a non-JSON success is a protocol error, a non-JSON failure has no detail."""
    try:
        return json.loads(body)
    except ValueError:
        if status < 300:
            raise ServerProtocolError(
                f"{url} did not answer JSON: is it a Coral Vision server?"
            ) from None
        return None


def _failure(status: int, document: Any, retry_after: str | None) -> ServerError:
    """The error a failure status (and the native API's error document) means."""
    error = document.get("error") if isinstance(document, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, str) else "http_error"
    message = " ".join(str(error.get("message") or f"HTTP {status}").split())[:500]
    if status == 401:
        return ServerAuthError(f"the server refuses the API key: {message}")
    if status == 503 and code == "stopping":
        # Shutting down: it is going away, not merely busy.
        return ServerUnreachable(message)
    if status in (429, 503):
        return ServerBusy(message, _seconds(retry_after))
    if status == 409 and code == "superseded":
        return FrameSuperseded(message)
    if status in (400, 413) and code in ("bad_image", "no_image", "too_large"):
        return ServerImageError(status, code, message)
    if 400 <= status < 500:
        return ServerRequestError(status, code, message)
    return ServerFailure(status, code, message)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _describe(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


# -- the documents, checked --------------------------------------------------------------------


def parse_status(document: Any) -> ServerStatus:
    """A /v1/status answer; ServerProtocolError when it is not one."""
    try:
        data = _mapping(document)
        return ServerStatus(
            id=_str(data, "id"),
            version=_str(data, "version"),
            api=_str(data, "api"),
            devices=tuple(_device(d) for d in _list(data, "devices")),
            models=tuple(_model(m) for m in _list(data, "models")),
            failed_models=_failed(data.get("failed_models", {})),
        )
    except WireError as err:
        raise ServerProtocolError(f"not a Coral Vision server's status: {err}") from err


def parse_models(document: Any) -> ServerModels:
    """A /v1/models answer; ServerProtocolError when it is not one."""
    try:
        data = _mapping(document)
        return ServerModels(
            loaded=tuple(_model(m) for m in _list(data, "loaded")),
            failed=_failed(data.get("failed", {})),
            stored=tuple(_stored(s) for s in _list(data, "stored")),
            catalog=tuple(_catalog(c) for c in _list(data, "catalog")),
        )
    except WireError as err:
        raise ServerProtocolError(f"not a Coral Vision server's model list: {err}") from err


def _model(raw: Any) -> ServerModel:
    try:
        data = _mapping(raw)
        task = _str(data, "task")
        if task not in _TASKS:
            raise WireError(f"unknown task {task!r}")
        size = _list(data, "input_size")
        if len(size) != 2 or not all(_is_int(v) for v in size):
            raise WireError("input_size must be [width, height]")
        names = _list(data, "labels")
        if not all(isinstance(n, str) for n in names):
            raise WireError("labels must be names")
        statistics = data.get("statistics")
        return ServerModel(
            id=_str(data, "id"),
            name=_str(data, "name"),
            origin=_str(data, "origin"),
            task=cast("Task", task),
            variant=_str(data, "variant"),
            input_size=(int(size[0]), int(size[1])),
            # The server lists names in class id order; a client needs only the names.
            labels=Labels(dict(enumerate(cast("list[str]", names)))),
            statistics=_statistics(statistics) if statistics is not None else None,
        )
    except WireError as err:
        raise ServerProtocolError(f"not a Coral Vision server's model: {err}") from err


def _device(raw: Any) -> DeviceStatus:
    data = _mapping(raw)
    index = data.get("index")
    return DeviceStatus(
        name=_str(data, "name"),
        kind=_str(data, "kind"),
        index=index if _is_int(index) else None,
        label=_str(data, "label"),
        temperature_c=_optional_number(data, "temperature_c"),
        models=tuple(_backend(m) for m in _list(data, "models")),
    )


def _backend(raw: Any) -> DeviceBackend:
    data = _mapping(raw)
    statistics = data.get("statistics")
    return DeviceBackend(
        model=_str(data, "model"),
        backend=_optional_str(data, "backend"),
        fallback_reason=_optional_str(data, "fallback_reason"),
        detail=_optional_str(data, "detail") or "",
        statistics=_statistics(statistics) if statistics is not None else None,
    )


def _statistics(raw: Any) -> Statistics:
    data = _mapping(raw)
    return Statistics(
        inference_ms_p50=_optional_number(data, "inference_ms_p50"),
        inference_ms_p95=_optional_number(data, "inference_ms_p95"),
        frames_done=_count(data, "frames_done"),
        frames_dropped=_count(data, "frames_dropped"),
        frames_failed=_count(data, "frames_failed"),
        frames_rejected=_count(data, "frames_rejected"),
        frames_timed_out=_count(data, "frames_timed_out"),
        queue_depth=_count(data, "queue_depth"),
        queue_limit=_count(data, "queue_limit"),
        frames_per_s=_optional_number(data, "frames_per_s"),
    )


def _stored(raw: Any) -> StoredFile:
    data = _mapping(raw)
    used = _list(data, "used_by")
    return StoredFile(
        path=_str(data, "path"),
        size=_count(data, "size"),
        used_by=tuple(str(u) for u in used if isinstance(u, str)),
    )


def _catalog(raw: Any) -> CatalogModel:
    data = _mapping(raw)
    return CatalogModel(
        id=_str(data, "id"),
        name=_str(data, "name"),
        task=_str(data, "task"),
        variant_here=_str(data, "variant_here"),
    )


def _failed(raw: Any) -> dict[str, str]:
    data = _mapping(raw)
    return {str(k): str(v) for k, v in data.items()}


def _mapping(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise WireError("expected a JSON object")
    return raw


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise WireError(f"{key!r} must be a list")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise WireError(f"{key!r} must be a string")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise WireError(f"{key!r} must be a string or null")
    return value


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        raise WireError(f"{key!r} must be a finite number or null")
    return float(value)


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WireError(f"{key!r} must be a count")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
