"""Trying a model on a device: one frame through a backend opened for the purpose, then closed."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from ..vision.detect import decode_outputs
from ..vision.preprocess import prepare_frame
from .delegate import BackendInfo, open_backend

if TYPE_CHECKING:
    from ..models.model import Model
    from .devices import EdgeTpu


def blank_frame() -> bytes:
    """A small grey JPEG, which every model can be given."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 130, 140)).save(out, format="JPEG")
    return out.getvalue()


def try_model(model: Model, tpu: EdgeTpu | None, cpu_model: Model | None = None) -> BackendInfo:
    """Run one frame of `model` on `tpu` (None: the CPU); where it ran (raises CoralVisionError)."""
    backend = open_backend(model, tpu, cpu_model=cpu_model)
    try:
        frame = prepare_frame(blank_frame(), backend.model.input)
        decode_outputs(backend.model, backend.invoke(frame), frame, threshold=0.5, top_k=5)
        return backend.info
    finally:
        backend.close()
