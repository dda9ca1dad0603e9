"""Load a TFLite model and learn what it needs and what it outputs, without running it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import LabelsError, ModelError
from .labels import Labels, labels_from_metadata, load_labels
from .results import Task
from .runtime import Runtime, load_runtime

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
_POSTPROCESS_OP = b"TFLite_Detection_PostProcess"
_INPUT_DTYPES = (np.uint8, np.int8, np.float32)
# pycoral's names for the SSD outputs in a TF2 model's signature.
_SIGNATURE_OUTPUTS = (
    ("detection_boxes", "detection_classes", "detection_scores", "num_detections"),
    ("output_3", "output_2", "output_1", "output_0"),
)


@dataclass(frozen=True)
class InputSpec:
    """The image tensor a model takes: size, element type and quantization."""

    width: int
    height: int
    channels: int
    dtype: np.dtype[Any]
    scale: float
    zero_point: int
    index: int


@dataclass(frozen=True)
class OutputSpec:
    """One output tensor: where to read it and how to dequantize it."""

    index: int
    name: str
    dtype: np.dtype[Any]
    scale: float
    zero_point: int

    def dequantize(self, values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Return the tensor's real values as float32."""
        if self.scale and np.issubdtype(values.dtype, np.integer):
            return (values.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return values.astype(np.float32, copy=False)


@dataclass(frozen=True)
class DetectionLayout:
    """Which output holds boxes, classes, scores and count (positions in the output tuple)."""

    boxes: int
    classes: int
    scores: int
    count: int
    # False: the order is decided per frame from the output shapes (TF1 vs TF2 exports).
    from_signature: bool = False


TF1_LAYOUT = DetectionLayout(boxes=0, classes=1, scores=2, count=3)
TF2_LAYOUT = DetectionLayout(scores=0, boxes=1, count=2, classes=3)


@dataclass(frozen=True)
class Model:
    """A model's bytes and what the engine learned about it."""

    name: str
    content: bytes = field(repr=False)
    path: Path | None
    task: Task
    input: InputSpec
    outputs: tuple[OutputSpec, ...]
    labels: Labels
    edgetpu: bool
    detection_layout: DetectionLayout | None = None
    # How many scores a classification model outputs; None for detection.
    num_classes: int | None = None


def is_edgetpu_model(content: bytes) -> bool:
    """Whether the model was compiled for the Edge TPU."""
    return EDGETPU_CUSTOM_OP in content


def load_model(
    source: Path | bytes,
    *,
    labels: Path | Labels | None = None,
    name: str | None = None,
    runtime: Runtime | None = None,
) -> Model:
    """Read a model and describe it; ModelError when it is missing, malformed or unsupported."""
    path = source if isinstance(source, Path) else None
    content = _read(source)
    model_name = name or (path.stem if path else "model")
    interpreter = _introspect(content, model_name, runtime or load_runtime())
    inputs = interpreter.get_input_details()
    outputs = tuple(_output_spec(d) for d in interpreter.get_output_details())
    spec = _input_spec(inputs, model_name)
    task, layout, num_classes = _guess_task(content, interpreter, outputs, model_name)
    model_labels = _labels(labels, content)
    if num_classes is not None and model_labels.by_id and max(model_labels.by_id) >= num_classes:
        raise LabelsError(
            f"{model_name}: the labels name class {max(model_labels.by_id)} "
            f"but the model outputs only {num_classes} classes"
        )
    return Model(
        name=model_name,
        content=content,
        path=path,
        task=task,
        input=spec,
        outputs=outputs,
        labels=model_labels,
        edgetpu=is_edgetpu_model(content),
        detection_layout=layout,
        num_classes=num_classes,
    )


def _read(source: Path | bytes) -> bytes:
    if isinstance(source, Path):
        try:
            content = source.read_bytes()
        except OSError as err:
            raise ModelError(f"cannot read model file {source}: {err.strerror or err}") from err
    else:
        content = bytes(source)
    where = f" {source}" if isinstance(source, Path) else ""
    # Every TFLite flatbuffer carries the file identifier "TFL3" at byte 4.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ModelError(f"model{where} is not a TensorFlow Lite file (no TFL3 identifier)")
    return content


def _introspect(content: bytes, name: str, runtime: Runtime) -> Any:
    """Build a CPU interpreter to read tensor details; never allocated (Edge TPU ops can't be)."""
    try:
        return runtime.interpreter_factory(model_content=content, num_threads=1)
    except (ValueError, RuntimeError) as err:
        raise ModelError(f"{name}: the interpreter rejected the model: {err}") from err


def _output_spec(details: dict[str, Any]) -> OutputSpec:
    scale, zero_point = details["quantization"]
    return OutputSpec(
        index=int(details["index"]),
        name=str(details["name"]),
        dtype=np.dtype(details["dtype"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _input_spec(inputs: list[dict[str, Any]], name: str) -> InputSpec:
    if len(inputs) != 1:
        raise ModelError(f"{name}: unsupported model: it takes {len(inputs)} inputs, not one image")
    details = inputs[0]
    shape = tuple(int(n) for n in details["shape"])
    dtype = np.dtype(details["dtype"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise ModelError(
            f"{name}: unsupported model: its input {list(shape)} is not one RGB or gray image"
        )
    if dtype not in _INPUT_DTYPES:
        raise ModelError(f"{name}: unsupported model: input type {dtype} (uint8/int8/float32 only)")
    scale, zero_point = details["quantization"]
    return InputSpec(
        width=shape[2],
        height=shape[1],
        channels=shape[3],
        dtype=dtype,
        scale=float(scale),
        zero_point=int(zero_point),
        index=int(details["index"]),
    )


def _guess_task(
    content: bytes, interpreter: Any, outputs: tuple[OutputSpec, ...], name: str
) -> tuple[Task, DetectionLayout | None, int | None]:
    """Guess detection (SSD post-processing op) or classification (score vector), or refuse."""
    if _POSTPROCESS_OP in content and len(outputs) == 4:
        return "detection", _signature_layout(interpreter, outputs), None
    details = interpreter.get_output_details()
    shapes = [tuple(int(n) for n in d["shape"]) for d in details]
    if len(outputs) == 1 and len(shapes[0]) == 2 and shapes[0][0] == 1 and shapes[0][1] >= 2:
        return "classification", None, shapes[0][1]
    described = ", ".join(f"{o.name} {list(s)}" for o, s in zip(outputs, shapes, strict=True))
    raise ModelError(
        f"{name}: unsupported model: outputs {described} are neither SSD detections "
        "(a TFLite_Detection_PostProcess op with 4 outputs) nor one vector of class scores"
    )


def _signature_layout(interpreter: Any, outputs: tuple[OutputSpec, ...]) -> DetectionLayout:
    """Read the output roles from the model's signature, else leave the order to each frame."""
    getter = getattr(interpreter, "_get_full_signature_list", None)
    try:
        signatures = getter() if getter else {}
    except (ValueError, RuntimeError):
        signatures = {}
    if len(signatures) == 1:
        by_name: dict[str, int] = next(iter(signatures.values())).get("outputs", {})
        position = {o.index: i for i, o in enumerate(outputs)}
        for names in _SIGNATURE_OUTPUTS:
            if all(n in by_name and by_name[n] in position for n in names):
                boxes, classes, scores, count = (position[by_name[n]] for n in names)
                return DetectionLayout(boxes, classes, scores, count, from_signature=True)
    return TF1_LAYOUT


def _labels(labels: Path | Labels | None, content: bytes) -> Labels:
    if isinstance(labels, Labels):
        return labels
    if labels is not None:
        return load_labels(labels)
    return labels_from_metadata(content) or Labels()
