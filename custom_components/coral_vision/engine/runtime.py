"""Find a TensorFlow Lite interpreter package: ai-edge-litert, tflite-runtime or TensorFlow."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from .errors import RuntimeMissingError

# Module, interpreter attribute, delegate loader attribute; the first importable one wins.
# Only the interpreter modules are imported: the packages' *_pb2 modules need a newer protobuf
# than Home Assistant pins.
_CANDIDATES = (
    ("ai_edge_litert", "ai_edge_litert.interpreter", "Interpreter", "load_delegate"),
    ("tflite_runtime", "tflite_runtime.interpreter", "Interpreter", "load_delegate"),
    ("tensorflow", "tensorflow", "lite.Interpreter", "lite.experimental.load_delegate"),
)


@dataclass(frozen=True)
class Runtime:
    """An interpreter class and its delegate loader, from whichever package is installed."""

    name: str
    interpreter_factory: Callable[..., Any]
    load_delegate: Callable[..., Any] | None


@functools.cache
def load_runtime() -> Runtime:
    """Import the first runtime installed, once; RuntimeMissingError when there is none."""
    for name, module_name, interpreter, loader in _CANDIDATES:
        try:
            module = import_module(module_name)
        except ImportError:
            continue
        factory = _attribute(module, interpreter)
        if factory is not None:
            return Runtime(name, factory, _attribute(module, loader))
    raise RuntimeMissingError(
        "no TensorFlow Lite runtime is installed: pip install ai-edge-litert "
        "(or tflite-runtime, or tensorflow)"
    )


def _attribute(module: Any, dotted: str) -> Any:
    """Follow a dotted attribute path; None where it breaks off."""
    for part in dotted.split("."):
        module = getattr(module, part, None)
    return module
