"""Decide what a TFLite model is, once, for the model check and for loading it to run.

`describe_model` reads the file with the bounded flatbuffer reader and decides the task, the
detection output layout (SSD post-processed or a raw anchor-free YOLO head), the input and how
frames are prepared for it, the outputs, the embedded labels and the Edge TPU ops.
`inspect_model` (the config flow's and the CLI's check) and `load_model` both use it, so a model
the check calls supported is a model that loads, unless the interpreter itself rejects the file.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import LabelsError, ModelError
from ..results import Task
from ..runtime import Runtime, load_runtime
from .flatbuffer import MAX_MODEL_BYTES, Tensor, TfliteModel, parse_model
from .labels import Labels, load_labels, read_metadata_labels, sample

_LOGGER = logging.getLogger(__name__)

EDGETPU_OP = "edgetpu-custom-op"
SSD_POSTPROCESS_OP = "TFLite_Detection_PostProcess"
_INPUT_TYPES = ("uint8", "int8", "float32")
# Element types whose values dequantize to scores, boxes and counts.
_OUTPUT_TYPES = frozenset({"uint8", "int8", "int16", "int32", "float16", "float32"})
# pycoral's names for the SSD outputs in a TF2 model's signature (boxes, classes, scores, count).
_SIGNATURE_OUTPUTS = (
    ("detection_boxes", "detection_classes", "detection_scores", "num_detections"),
    ("output_3", "output_2", "output_1", "output_0"),
)
_DESCRIBED_OUTPUTS = 6  # outputs a refusal lists before "and N more"
# An anchor-free YOLO head predicts one candidate per cell of the stride 8, 16 and 32 grids.
YOLO_STRIDES = (8, 16, 32)
YOLO_BOX_ROWS = 4  # cx, cy, w, h before the class scores
# Values a YOLO output may hold: 8 M is 12 times YOLOv8 at 640 px with COCO's 80 classes.
MAX_YOLO_VALUES = 8 * 1024 * 1024
_MIN_YOLO_CANDIDATES = 64  # fewer, off the stride grid, is not a YOLO head
_END_TO_END_ROWS = 6  # x1, y1, x2, y2, score, class: an export with NMS built in

type ResizeMode = Literal["stretch", "letterbox"]
# What pixel values 0..255 become before quantization: -1..1 (TF's SSD and classifiers) or
# 0..1 (Ultralytics).
type PixelRange = Literal["symmetric", "unit"]


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
    # How frames are prepared: two models alike in tensor but not in these take other frames.
    resize: ResizeMode = "stretch"
    pixels: PixelRange = "symmetric"


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
class YoloLayout:
    """An anchor-free YOLO head: one output of 4 box rows and `classes` score rows per candidate."""

    classes: int
    candidates: int
    # True for [1, 4 + C, N] (Ultralytics' export), False for [1, N, 4 + C].
    channels_first: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        """The output's shape."""
        rows = YOLO_BOX_ROWS + self.classes
        return (1, rows, self.candidates) if self.channels_first else (1, self.candidates, rows)


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
    detection_layout: DetectionLayout | YoloLayout | None = None
    # How many scores a classification or YOLO model outputs; None for SSD.
    num_classes: int | None = None


@dataclass(frozen=True)
class ModelDescription:
    """What a model file is; `task` is None with a `reason` when the engine cannot run it."""

    parsed: TfliteModel = field(repr=False)
    task: Task | None
    reason: str | None
    input: InputSpec | None
    outputs: tuple[OutputSpec, ...]
    detection_layout: DetectionLayout | YoloLayout | None
    num_classes: int | None
    operators: tuple[str, ...] = field(repr=False)
    edgetpu: bool
    labels: Labels | None  # embedded in the model, when they fit it
    warnings: tuple[str, ...] = ()


class _Unsupported(Exception):
    """Why the engine cannot run a model (becomes ModelDescription.reason)."""


def read_model(source: Path | bytes) -> bytes:
    """A model's bytes, from a regular file no larger than MAX_MODEL_BYTES (checked first)."""
    if not isinstance(source, Path):
        if len(source) > MAX_MODEL_BYTES:
            raise ModelError(f"{len(source)} bytes is larger than any supported model")
        return bytes(source)
    try:
        info = source.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(f"cannot read model file {source}: not a regular file")
        if info.st_size > MAX_MODEL_BYTES:
            raise ModelError(f"{source}: {info.st_size} bytes is larger than any supported model")
        with source.open("rb") as handle:
            return handle.read(info.st_size)  # what it held when checked, if it grows meanwhile
    except OSError as err:
        raise ModelError(f"cannot read model file {source}: {err.strerror or err}") from err


def describe_model(content: bytes) -> ModelDescription:
    """Read a model's bytes and decide what it is; ModelError when it is not a readable model."""
    parsed = parse_model(content)
    operators = tuple(parsed.operator_name(op) for op in parsed.operators)
    inputs = [parsed.tensor(i) for i in parsed.inputs]
    outputs = [parsed.tensor(i) for i in parsed.outputs]
    task: Task | None = None
    reason = None
    spec = None
    layout: DetectionLayout | YoloLayout | None = None
    num_classes = None
    out_specs: tuple[OutputSpec, ...] = ()
    notes: list[str] = []
    try:
        spec = _input_spec(inputs, parsed.inputs)
        task, num_classes = _task(outputs, operators)
        out_specs = tuple(_output_spec(t, i) for t, i in zip(outputs, parsed.outputs, strict=True))
        if task == "detection":
            layout = _signature_layout(parsed) or TF1_LAYOUT
        elif task is None:
            layout = _yolo_layout(outputs, spec, notes)
            task, num_classes = "detection", layout.classes
            # Ultralytics trains on letterboxed frames of pixels scaled to 0..1.
            spec = replace(spec, resize="letterbox", pixels="unit")
    except _Unsupported as err:
        task, reason, spec, num_classes, layout = None, str(err), None, None, None
    labels, warnings = _embedded_labels(content, num_classes)
    warnings = (*notes, *warnings)
    return ModelDescription(
        parsed=parsed,
        task=task,
        reason=reason,
        input=spec,
        outputs=out_specs,
        detection_layout=layout,
        num_classes=num_classes,
        operators=operators,
        edgetpu=EDGETPU_OP in operators,
        labels=labels,
        warnings=warnings,
    )


def _input_spec(inputs: Sequence[Tensor], indices: Sequence[int]) -> InputSpec:
    if len(inputs) != 1:
        raise _Unsupported(f"it takes {len(inputs)} inputs; only one image is supported")
    image = inputs[0]
    shape = list(image.shape)
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise _Unsupported(f"its input {shape} is not one RGB image or one gray image")
    if shape[1] <= 0 or shape[2] <= 0:
        raise _Unsupported(f"its input {shape} has no fixed size")
    if image.dtype not in _INPUT_TYPES:
        raise _Unsupported(f"its input type {image.dtype} is not uint8, int8 or float32")
    return InputSpec(
        width=shape[2],
        height=shape[1],
        channels=shape[3],
        dtype=np.dtype(image.dtype),
        scale=image.scale or 0.0,
        zero_point=image.zero_point or 0,
        index=indices[0],
    )


def _task(outputs: Sequence[Tensor], operators: Sequence[str]) -> tuple[Task | None, int | None]:
    """Detection (SSD op, 4 outputs), classification (one score vector), None: maybe YOLO."""
    for tensor in outputs:
        if tensor.dtype not in _OUTPUT_TYPES:
            raise _Unsupported(f"its output {sample(tensor.name)} is {tensor.dtype}, not numbers")
    if SSD_POSTPROCESS_OP in operators:
        if len(outputs) != 4:
            raise _Unsupported(
                f"it has {SSD_POSTPROCESS_OP} but {len(outputs)} outputs, not boxes, classes, "
                "scores and count"
            )
        return "detection", None
    if len(outputs) == 1:
        shape = outputs[0].shape
        # [N], [1, N] and [1, 1, 1, N] are all one vector of class scores.
        if shape and all(d == 1 for d in shape[:-1]) and shape[-1] >= 2:
            return "classification", shape[-1]
        if len(shape) == 3 and shape[0] == 1:
            return None, None  # a raw detection head: _yolo_layout decides
    raise _refusal(outputs)


def _refusal(outputs: Sequence[Tensor]) -> _Unsupported:
    """Why outputs that are neither SSD, class scores nor a YOLO head cannot be decoded."""
    described = _describe_outputs(outputs)
    if any(len(t.shape) == 3 and t.shape[1] > 100 for t in outputs):
        return _Unsupported(
            f"its outputs ({described}) are raw anchor predictions without a "
            f"{SSD_POSTPROCESS_OP} operator to decode them into boxes"
        )
    return _Unsupported(
        f"its outputs ({described}) are neither class scores, SSD detections nor a YOLO head "
        "(pose, segmentation and other tasks are not supported)"
    )


def _yolo_layout(outputs: Sequence[Tensor], spec: InputSpec, notes: list[str]) -> YoloLayout:
    """The layout of a one-output [1, 4 + C, N] or [1, N, 4 + C] head, or why it is not one."""
    shape = outputs[0].shape
    grid = sum(-(-spec.width // s) * -(-spec.height // s) for s in YOLO_STRIDES)
    first, second = shape[1], shape[2]
    # The candidates are the axis matching the grid, else the longer one (YOLO has N >> 4 + C).
    channels_first = second == grid or (first != grid and second >= first)
    rows, candidates = (first, second) if channels_first else (second, first)
    if candidates == 3 * grid:
        raise _Unsupported(
            f"its output {list(shape)} has 3 anchors per grid cell: an anchor-based YOLO "
            "(v5, v7) head with objectness; export a YOLOv5u, v8, v9 or v11 model instead"
        )
    if not channels_first and rows == _END_TO_END_ROWS and candidates != grid:
        raise _Unsupported(
            f"its output {list(shape)} looks like an end-to-end export with NMS built in "
            "(x1, y1, x2, y2, score, class); export without nms / end2end"
        )
    if candidates != grid and (candidates < _MIN_YOLO_CANDIDATES or candidates <= rows):
        raise _refusal(outputs)
    if rows <= YOLO_BOX_ROWS:
        raise _Unsupported(
            f"its output {list(shape)} holds {rows} values per candidate: boxes (4) "
            "but no class scores"
        )
    if rows * candidates > MAX_YOLO_VALUES:
        raise _Unsupported(
            f"its output {list(shape)} holds {rows * candidates} values, "
            f"more than the {MAX_YOLO_VALUES} a YOLO head is allowed"
        )
    if candidates != grid:
        notes.append(
            f"{candidates} candidates, not the {grid} of a {spec.width}x{spec.height} input "
            f"on strides {', '.join(map(str, YOLO_STRIDES))}: decoded as a YOLO head anyway"
        )
    return YoloLayout(rows - YOLO_BOX_ROWS, candidates, channels_first)


def _describe_outputs(outputs: Sequence[Tensor]) -> str:
    shown = [f"{sample(t.name)} {list(t.shape)}" for t in outputs[:_DESCRIBED_OUTPUTS]]
    if len(outputs) > _DESCRIBED_OUTPUTS:
        shown.append(f"and {len(outputs) - _DESCRIBED_OUTPUTS} more")
    return ", ".join(shown) or "none"


def _output_spec(tensor: Tensor, index: int) -> OutputSpec:
    return OutputSpec(
        index=index,
        name=tensor.name,
        dtype=np.dtype(tensor.dtype),
        scale=tensor.scale or 0.0,
        zero_point=tensor.zero_point or 0,
    )


def _signature_layout(parsed: TfliteModel) -> DetectionLayout | None:
    """The output roles a single signature names (TF2 exports), else None."""
    if len(parsed.signatures) != 1:
        return None
    by_name = parsed.signatures[0].outputs
    position = {index: i for i, index in enumerate(parsed.outputs)}
    for names in _SIGNATURE_OUTPUTS:
        if all(n in by_name and by_name[n] in position for n in names):
            boxes, classes, scores, count = (position[by_name[n]] for n in names)
            return DetectionLayout(boxes, classes, scores, count, from_signature=True)
    return None


def _embedded_labels(
    content: bytes, num_classes: int | None
) -> tuple[Labels | None, tuple[str, ...]]:
    """The metadata's labels, or None and why not when they are unusable or do not fit."""
    try:
        labels = read_metadata_labels(content)
    except LabelsError as err:
        return None, (f"embedded labels ignored: {err}",)
    problem = labels_misfit(labels, num_classes) if labels is not None else None
    if problem is not None:
        return None, (f"embedded labels ignored: {problem}",)
    return labels, ()


def labels_misfit(labels: Labels, num_classes: int | None) -> str | None:
    """Why labels cannot belong to a model with `num_classes` scores, or None when they fit."""
    if num_classes is not None and labels.by_id and max(labels.by_id) >= num_classes:
        return (
            f"the labels name class {max(labels.by_id)} "
            f"but the model outputs only {num_classes} classes"
        )
    return None


def load_model(
    source: Path | bytes,
    *,
    labels: Path | Labels | None = None,
    name: str | None = None,
    runtime: Runtime | None = None,
) -> Model:
    """Read a model and describe it; ModelError when it is missing, malformed or unsupported."""
    path = source if isinstance(source, Path) else None
    model_name = name or (path.stem if path else "model")
    content = read_model(source)
    try:
        described = describe_model(content)
    except ModelError as err:
        raise ModelError(f"{model_name}: {err}") from err
    if described.task is None or described.input is None:
        raise ModelError(f"{model_name}: unsupported model: {described.reason}")
    if labels is None:  # the embedded labels are the ones used: say why they are not
        for warning in described.warnings:
            _LOGGER.warning("%s: %s", model_name, warning)
    # Only now, with its tables bounded, does the interpreter see the file.
    outputs = [o.index for o in described.outputs]
    _check_interpreter(content, model_name, runtime or load_runtime(), described.input, outputs)
    model_labels = _labels(labels, described, model_name)
    layout = described.detection_layout
    if isinstance(layout, DetectionLayout) and not layout.from_signature:
        _LOGGER.info(
            "%s: no signature names the detection outputs; their order (TF1 or TF2 export) "
            "is decided from their shapes",
            model_name,
        )
    return Model(
        name=model_name,
        content=content,
        path=path,
        task=described.task,
        input=described.input,
        outputs=described.outputs,
        labels=model_labels,
        edgetpu=described.edgetpu,
        detection_layout=layout,
        num_classes=described.num_classes,
    )


def _check_interpreter(
    content: bytes, name: str, runtime: Runtime, spec: InputSpec, outputs: list[int]
) -> None:
    """Build a CPU interpreter to validate the file; never allocated (Edge TPU ops can't be)."""
    try:
        interpreter = runtime.interpreter_factory(model_content=content, num_threads=1)
    except (ValueError, RuntimeError) as err:
        raise ModelError(f"{name}: the interpreter rejected the model: {err}") from err
    read = (
        [int(d["index"]) for d in interpreter.get_input_details()],
        [int(d["index"]) for d in interpreter.get_output_details()],
    )
    if read != ([spec.index], outputs):
        raise ModelError(
            f"{name}: the interpreter reads other inputs and outputs {read} than the file "
            f"{([spec.index], outputs)}"
        )


def _labels(labels: Path | Labels | None, described: ModelDescription, name: str) -> Labels:
    if labels is None:
        return described.labels or Labels()
    chosen = labels if isinstance(labels, Labels) else load_labels(labels)
    problem = labels_misfit(chosen, described.num_classes)
    if problem is not None:
        raise LabelsError(f"{name}: {problem}")
    return chosen
