"""Find a TensorFlow Lite interpreter package: ai-edge-litert, tflite-runtime or TensorFlow."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RuntimeMissingError


@dataclass(frozen=True)
class Runtime:
    """An interpreter class and its delegate loader, from whichever package is installed."""

    name: str
    interpreter_factory: Callable[..., Any]
    load_delegate: Callable[..., Any] | None


@functools.cache
def load_runtime() -> Runtime:
    """The first importable runtime, imported once; RuntimeMissingError when there is none."""
    # Import only the interpreter modules: the packages' *_pb2 modules need a newer protobuf
    # than Home Assistant pins.
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        pass
    else:
        return Runtime("ai_edge_litert", litert.Interpreter, litert.load_delegate)
    try:
        from tflite_runtime import interpreter as tflite
    except ImportError:
        pass
    else:
        return Runtime("tflite_runtime", tflite.Interpreter, tflite.load_delegate)
    try:
        import tensorflow as tf
    except ImportError:
        pass
    else:
        experimental = getattr(tf.lite, "experimental", None)
        return Runtime("tensorflow", tf.lite.Interpreter, getattr(experimental, "load_delegate", None))
    raise RuntimeMissingError(
        "no TensorFlow Lite runtime is installed: pip install ai-edge-litert "
        "(or tflite-runtime, or tensorflow)"
    )
