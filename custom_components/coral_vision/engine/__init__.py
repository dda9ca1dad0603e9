"""Coral Vision's inference engine: find Edge TPUs, load models, run frames, decode results."""

from __future__ import annotations

from .classify import get_classes
from .delegate import Backend, BackendInfo, FallbackReason, edgetpu_library, open_backend
from .detect import decode_outputs, get_detections
from .devices import EdgeTpu, list_edge_tpus, read_temperature
from .errors import (
    CoralVisionError,
    DelegateError,
    EdgeTpuModelOnCpuError,
    ExecutorClosedError,
    FrameSupersededError,
    ImageError,
    InferenceError,
    LabelsError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
    RuntimeMissingError,
)
from .labels import Labels, labels_from_metadata, load_labels, parse_labels
from .models import DetectionLayout, InputSpec, Model, OutputSpec, load_model
from .preprocess import PreparedFrame, ResizeMode, decode_image, prepare_frame
from .results import BBox, Classification, Detection, FrameResult, Task
from .runtime import Runtime, load_runtime

__all__ = [
    "BBox",
    "Backend",
    "BackendInfo",
    "Classification",
    "CoralVisionError",
    "DelegateError",
    "Detection",
    "DetectionLayout",
    "EdgeTpu",
    "EdgeTpuModelOnCpuError",
    "ExecutorClosedError",
    "FallbackReason",
    "FrameResult",
    "FrameSupersededError",
    "ImageError",
    "InferenceError",
    "InputSpec",
    "Labels",
    "LabelsError",
    "Model",
    "ModelError",
    "OutputSpec",
    "PreparedFrame",
    "QueueFullError",
    "RequestTimeoutError",
    "ResizeMode",
    "Runtime",
    "RuntimeMissingError",
    "Task",
    "decode_image",
    "decode_outputs",
    "edgetpu_library",
    "get_classes",
    "get_detections",
    "labels_from_metadata",
    "list_edge_tpus",
    "load_labels",
    "load_model",
    "load_runtime",
    "open_backend",
    "parse_labels",
    "prepare_frame",
    "read_temperature",
]
