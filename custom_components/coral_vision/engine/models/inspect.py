"""Check a user-supplied model before it is used: what it does, what it needs, where it runs.

The model is read with our own bounded flatbuffer reader, never run, so a broken or hostile file
can only produce a ModelError with a reason; what it is comes from `describe_model`, the same
decision `load_model` makes. Supported sources are a local file, raw bytes, and URLs:
direct .tflite links, tfhub.dev model pages (``?lite-format=tflite`` is added), Kaggle model
pages ``kaggle.com/models/<owner>/<model>/<framework>/<variation>/<version>`` (fetched through
Kaggle's public download API, a .tar.gz holding the .tflite) and GitHub ``blob`` links.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import LabelsError
from .flatbuffer import Tensor
from .labels import load_labels, sample, sample_names
from .model import (
    EDGETPU_OP,
    DetectionLayout,
    ModelDescription,
    ResizeMode,
    YoloLayout,
    describe_model,
    labels_misfit,
    read_model,
)

type ModelKind = Literal["classification", "ssd_postprocess", "yolo", "unsupported"]

# What each kind of model does, in words (the engine's task is "detection" for both detectors).
KIND_NAMES: dict[ModelKind, str] = {
    "ssd_postprocess": "object detection (SSD)",
    "yolo": "object detection (YOLO)",
    "classification": "image classification",
    "unsupported": "not supported",
}

METADATA_NAME = "TFLITE_METADATA"
_SHOWN_OPS = 10  # distinct CPU operators a report names before "and N more"


@dataclass(frozen=True, slots=True)
class ModelReport:
    """What the model check found; `task` is "unsupported" with a `reason` when it cannot run."""

    task: ModelKind
    reason: str | None
    input: Tensor | None
    outputs: tuple[Tensor, ...]
    input_size: tuple[int, int] | None  # width, height
    quantized: bool
    edgetpu_compiled: bool
    operators: int
    cpu_operators: int  # every operator when not compiled; the ones left off the TPU when it is
    cpu_ops: tuple[tuple[str, int], ...]
    num_classes: int | None
    labels: tuple[str, ...] = ()
    labels_source: Literal["file", "metadata"] | None = None
    has_metadata: bool = False
    description: str = ""
    size: int = 0
    sha256: str = ""
    warnings: tuple[str, ...] = field(default=())
    detection_layout: DetectionLayout | YoloLayout | None = None
    resize: ResizeMode | None = None  # how frames are fitted to the input

    @property
    def task_name(self) -> str:
        """What the model does, in words: "object detection (YOLO)"."""
        return KIND_NAMES[self.task]

    @property
    def supported(self) -> bool:
        """Whether the engine can run the model."""
        return self.task != "unsupported"

    def cpu_ops_text(self) -> str:
        """The operators left on the CPU with their counts, the first few only."""
        return _ops_text([f"{name} x{count}" for name, count in self.cpu_ops])

    def labels_sample(self, count: int = 3) -> str:
        """The first few labels, each cut short: forms and logs echo no more."""
        return sample_names(self.labels, count)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "task": self.task,
            "task_name": self.task_name,
            "supported": self.supported,
            "reason": self.reason,
            "input": _tensor_dict(self.input) if self.input else None,
            "outputs": [_tensor_dict(t) for t in self.outputs],
            "input_size": list(self.input_size) if self.input_size else None,
            "quantized": self.quantized,
            "edgetpu_compiled": self.edgetpu_compiled,
            "operators": self.operators,
            "cpu_operators": self.cpu_operators,
            "cpu_ops": dict(self.cpu_ops),
            "num_classes": self.num_classes,
            "labels_count": len(self.labels),
            "labels_sample": [sample(name) for name in self.labels[:5]],
            "labels_source": self.labels_source,
            "has_metadata": self.has_metadata,
            "description": self.description,
            "size": self.size,
            "sha256": self.sha256,
            "warnings": list(self.warnings),
            "detection_layout": asdict(self.detection_layout) if self.detection_layout else None,
            "resize": self.resize,
        }


def _tensor_dict(tensor: Tensor) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def inspect_model(source: Path | bytes, *, labels: Path | None = None) -> ModelReport:
    """Read a model file or its bytes and report what it is; ModelError when it is not a model."""
    data = read_model(source)
    return _report(describe_model(data), data, labels)


def _report(described: ModelDescription, data: bytes, labels_path: Path | None) -> ModelReport:
    model = described.parsed
    names = described.operators
    compiled = described.edgetpu
    cpu_names = [n for n in names if n != EDGETPU_OP]
    inputs = [model.tensor(i) for i in model.inputs]
    outputs = tuple(model.tensor(i) for i in model.outputs)
    image = inputs[0] if len(inputs) == 1 else None
    task = _kind(described)
    warnings = []
    if model.subgraph_count > 1:
        warnings.append(f"{model.subgraph_count} subgraphs: only the first one is checked")
    quantized = image is not None and image.dtype in {"uint8", "int8"}
    if not compiled and task != "unsupported" and not quantized:
        warnings.append("not 8-bit quantized: it runs on the CPU only (the Edge TPU needs int8)")
    if compiled and cpu_names:
        warnings.append(
            f"{len(cpu_names)} operator(s) stay on the CPU: {_ops_text(sorted(set(cpu_names)))}"
        )
    warnings.extend(described.warnings)
    classes = described.num_classes
    labels, labels_source = _labels(described, labels_path, warnings)
    if classes is not None and labels and len(labels) not in {classes, classes - 1}:
        warnings.append(f"{len(labels)} labels for {classes} classes")
    input_size = None
    if image is not None and len(image.shape) == 4 and min(image.shape[1:3]) > 0:
        input_size = (image.shape[2], image.shape[1])
    return ModelReport(
        task=task,
        reason=described.reason,
        input=image or (inputs[0] if inputs else None),
        outputs=outputs,
        input_size=input_size,
        quantized=quantized,
        edgetpu_compiled=compiled,
        operators=len(names),
        cpu_operators=len(cpu_names),
        cpu_ops=tuple(sorted(Counter(cpu_names).items())),
        num_classes=classes,
        labels=labels,
        labels_source=labels_source,
        has_metadata=METADATA_NAME in model.metadata,
        description=model.description,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(warnings),
        detection_layout=described.detection_layout,
        resize=described.input.resize if described.input else None,
    )


def _kind(described: ModelDescription) -> ModelKind:
    if described.task is None:
        return "unsupported"
    if described.task == "classification":
        return "classification"
    return "yolo" if isinstance(described.detection_layout, YoloLayout) else "ssd_postprocess"


def _task_detail(report: ModelReport) -> str:
    """The task in words, with a YOLO head's classes, candidates and how frames are fitted."""
    layout = report.detection_layout
    if not isinstance(layout, YoloLayout):
        return report.task_name
    order = "[1, 4 + C, N]" if layout.channels_first else "[1, N, 4 + C]"
    return (
        f"{report.task_name}: {layout.classes} class{'es' if layout.classes != 1 else ''}, "
        f"{layout.candidates} candidates "
        f"as {order}, frames {report.resize}ed"
    )


def _ops_text(names: list[str]) -> str:
    shown = names[:_SHOWN_OPS]
    more = f" and {len(names) - _SHOWN_OPS} more" if len(names) > _SHOWN_OPS else ""
    return ", ".join(sample(name) for name in shown) + more


def _labels(
    described: ModelDescription, path: Path | None, warnings: list[str]
) -> tuple[tuple[str, ...], Literal["file", "metadata"] | None]:
    """The labels file's names when it is readable (loading refuses them if they do not fit)."""
    if path is not None:
        try:
            found = load_labels(path)
        except LabelsError as err:
            warnings.append(f"labels file unusable: {err}")
        else:
            problem = labels_misfit(found, described.num_classes)
            if problem is not None:
                warnings.append(f"labels file does not fit: {problem}")
            return tuple(found.names()), "file"
    if described.labels is not None:
        return tuple(described.labels.names()), "metadata"
    return (), None


def format_report(report: ModelReport) -> str:
    """A short human-readable report."""
    lines = []
    if report.supported:
        lines.append(f"task: {report.task} ({_task_detail(report)})")
    else:
        lines.append(f"task: unsupported ({report.reason})")
    if report.input is not None:
        tensor = report.input
        quant = (
            f", scale {tensor.scale:g}, zero point {tensor.zero_point}"
            if tensor.scale is not None
            else ""
        )
        lines.append(f"input: {list(tensor.shape)} {tensor.dtype}{quant}")
    if report.input_size is not None:
        lines.append(f"input size: {report.input_size[0]}x{report.input_size[1]}")
    lines.append("outputs: " + "; ".join(f"{list(t.shape)} {t.dtype}" for t in report.outputs))
    lines.append(f"quantized: {'yes' if report.quantized else 'no'}")
    if report.edgetpu_compiled:
        ops = report.cpu_ops_text() or "none"
        lines.append(f"Edge TPU: compiled; {report.cpu_operators} operator(s) on the CPU: {ops}")
    else:
        lines.append(f"Edge TPU: not compiled; all {report.operators} operators run on the CPU")
    if report.num_classes is not None:
        lines.append(f"classes: {report.num_classes}")
    if report.labels:
        lines.append(
            f"labels ({report.labels_source}): {len(report.labels)}: {report.labels_sample(5)}, ..."
        )
    else:
        lines.append("labels: none found")
    lines.append(f"size: {report.size} bytes, sha256 {report.sha256}")
    lines.extend(f"warning: {w}" for w in report.warnings)
    return "\n".join(lines)
