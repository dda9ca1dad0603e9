"""HTTP failures: the engine's errors mapped to a status once, and the JSON each face answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    CoralVisionError,
    DownloadError,
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    LabelsError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
    RuntimeMissingError,
)
from .host import ModelConflictError, UnknownModelError


class HttpError(Exception):
    """A request ends with this status, a short machine code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Describe the failure."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# Most specific first: ModelError's subclasses, then the rest.
_STATUS: tuple[tuple[type[CoralVisionError], int, str], ...] = (
    (UnknownModelError, 404, "unknown_model"),
    (ModelConflictError, 409, "conflict"),
    (ImageError, 400, "bad_image"),
    (LabelsError, 422, "bad_labels"),
    (ModelError, 422, "bad_model"),
    (FrameSupersededError, 409, "superseded"),
    (QueueFullError, 503, "busy"),
    (ExecutorClosedError, 503, "stopping"),
    (RequestTimeoutError, 504, "timeout"),
    (DownloadError, 502, "download_failed"),
    (RuntimeMissingError, 500, "no_runtime"),
)


def http_error(err: CoralVisionError) -> HttpError:
    """The HTTP failure an engine error means (500 for failures of the engine itself)."""
    for kind, status, code in _STATUS:
        if isinstance(err, kind):
            headers = {"Retry-After": "1"} if status == 503 else None
            return HttpError(status, code, _one_line(err), headers)
    return HttpError(500, "engine_error", _one_line(err))


def native_body(err: HttpError) -> dict[str, Any]:
    """The native API's error document."""
    return {"error": {"status": err.status, "code": err.code, "message": err.message}}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
