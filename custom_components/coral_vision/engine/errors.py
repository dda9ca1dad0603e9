"""Typed errors raised by the engine; the Home Assistant layer translates them at one border."""

from __future__ import annotations

from typing import Literal

# Why a download failed; the Home Assistant layer maps each to a translation key.
type DownloadReason = Literal[
    "http_status",  # the server answered with an error status
    "network",  # connection refused, reset or DNS failure
    "timeout",  # no data for too long, or the whole transfer outran its deadline
    "redirects",  # too many redirects (a redirect loop)
    "invalid_url",  # not a usable http(s) address, or redirected to one
    "incomplete",  # the transfer ended before Content-Length bytes arrived
    "size_mismatch",  # the file is not the size the catalog or manifest records
    "hash_mismatch",  # the sha256 differs from the pinned or first-seen one
    "not_tflite",  # the file is not a TensorFlow Lite flatbuffer
    "archive",  # the ZIP is unreadable or lacks the expected member
    "too_large",  # the transfer exceeded the size cap
    "storage",  # the models folder cannot be written
]


class CoralVisionError(Exception):
    """Base class of every error the engine raises on purpose."""


class RuntimeMissingError(CoralVisionError):
    """No TensorFlow Lite interpreter package can be imported."""


class ModelError(CoralVisionError):
    """A model file is missing, malformed, unsupported or fails to run."""


class EdgeTpuModelOnCpuError(ModelError):
    """A model compiled for the Edge TPU was asked to run on the CPU."""


class LabelsError(CoralVisionError):
    """A labels file cannot be read or does not fit the model."""


class ImageError(CoralVisionError):
    """An image is empty, corrupt, truncated, too large or of an unknown format."""


class DelegateError(CoralVisionError):
    """The Edge TPU delegate failed to load or failed while running."""


class InferenceError(CoralVisionError):
    """The interpreter failed while running a frame."""


class FrameSupersededError(CoralVisionError):
    """A newer frame from the same source replaced this one before it ran."""


class QueueFullError(CoralVisionError):
    """The executor's queue is full; the frame was not accepted."""


class RequestTimeoutError(CoralVisionError):
    """A request did not finish within its timeout."""


class ExecutorClosedError(CoralVisionError):
    """The executor was shut down before or while the request ran."""


class DownloadError(CoralVisionError):
    """A model or labels file could not be fetched, verified or stored; nothing was left behind."""

    def __init__(self, message: str, *, reason: DownloadReason, url: str | None = None) -> None:
        super().__init__(message)
        self.reason: DownloadReason = reason
        self.url = url
