"""Check a user-supplied model before it is used: what it does, what it needs, where it runs.

The model is read with our own flatbuffer reader, never run, so a broken or hostile file can only
produce a ModelError with a reason. Supported sources are a local file, raw bytes, and URLs:
direct .tflite links, tfhub.dev model pages (``?lite-format=tflite`` is added), Kaggle model
pages ``kaggle.com/models/<owner>/<model>/<framework>/<variation>/<version>`` (fetched through
Kaggle's public download API, a .tar.gz holding the .tflite) and GitHub ``blob`` links.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .errors import LabelsError, ModelError
from .flatbuffer import TfliteModel, parse_model
from .labels import Labels, labels_from_metadata, load_labels

type ModelKind = Literal["classification", "ssd_postprocess", "unsupported"]

EDGETPU_OP = "edgetpu-custom-op"
SSD_POSTPROCESS_OP = "TFLite_Detection_PostProcess"
METADATA_NAME = "TFLITE_METADATA"
MAX_MODEL_BYTES = 512 * 1024 * 1024

_IMAGE_TYPES = frozenset({"uint8", "int8", "float32"})


@dataclass(frozen=True, slots=True)
class TensorSummary:
    """Shape, element type and (per-tensor) quantization of an input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True, slots=True)
class ModelReport:
    """What the model check found; `task` is "unsupported" with a `reason` when it cannot run."""

    task: ModelKind
    reason: str | None
    input: TensorSummary | None
    outputs: tuple[TensorSummary, ...]
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

    @property
    def supported(self) -> bool:
        """Whether the engine can run the model."""
        return self.task != "unsupported"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "task": self.task,
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
            "labels_sample": list(self.labels[:5]),
            "labels_source": self.labels_source,
            "has_metadata": self.has_metadata,
            "description": self.description,
            "size": self.size,
            "sha256": self.sha256,
            "warnings": list(self.warnings),
        }


def _tensor_dict(tensor: TensorSummary) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def inspect_model(source: Path | bytes, *, labels: Path | None = None) -> ModelReport:
    """Read a model file or its bytes and report what it is; ModelError when it is not a model."""
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > MAX_MODEL_BYTES:
                raise ModelError(f"{source}: {size} bytes is larger than any supported model")
            data = source.read_bytes()
        except OSError as err:
            raise ModelError(f"cannot read {source}: {err.strerror or err}") from err
    else:
        data = bytes(source)
    model = parse_model(data)
    return _report(model, data, labels)


def _report(model: TfliteModel, data: bytes, labels_path: Path | None) -> ModelReport:
    names = [model.operator_name(op) for op in model.operators]
    compiled = EDGETPU_OP in names
    cpu_names = [n for n in names if n != EDGETPU_OP]
    inputs = [_summary(model, i) for i in model.inputs]
    outputs = tuple(_summary(model, i) for i in model.outputs)
    image = inputs[0] if len(inputs) == 1 else None
    task, reason, classes = _guess_task(inputs, outputs, names)
    warnings = []
    if model.subgraph_count > 1:
        warnings.append(f"{model.subgraph_count} subgraphs: only the first one is checked")
    quantized = image is not None and image.dtype in {"uint8", "int8"}
    if not compiled and task != "unsupported" and not quantized:
        warnings.append("not 8-bit quantized: it runs on the CPU only (the Edge TPU needs int8)")
    if compiled and cpu_names:
        warnings.append(
            f"{len(cpu_names)} operator(s) stay on the CPU: {', '.join(sorted(set(cpu_names)))}"
        )
    labels, labels_source = _labels(data, labels_path, warnings)
    if classes is not None and labels and len(labels) not in {classes, classes - 1}:
        warnings.append(f"{len(labels)} labels for {classes} classes")
    input_size = None
    if image is not None and len(image.shape) == 4 and min(image.shape[1:3]) > 0:
        input_size = (image.shape[2], image.shape[1])
    return ModelReport(
        task=task,
        reason=reason,
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
        has_metadata=any(name == METADATA_NAME for name, _ in model.metadata),
        description=model.description,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(warnings),
    )


def _summary(model: TfliteModel, index: int) -> TensorSummary:
    tensor = model.tensor(index)
    # Per-channel quantization only happens on weights; inputs and outputs carry one pair.
    scale = tensor.scales[0] if len(tensor.scales) == 1 and tensor.scales[0] != 0 else None
    zero = tensor.zero_points[0] if scale is not None and len(tensor.zero_points) == 1 else None
    return TensorSummary(tensor.name, tensor.shape, tensor.dtype, scale, zero)


def _guess_task(
    inputs: Sequence[TensorSummary], outputs: Sequence[TensorSummary], ops: Sequence[str]
) -> tuple[ModelKind, str | None, int | None]:
    if len(inputs) != 1:
        return "unsupported", f"it takes {len(inputs)} inputs; only one image is supported", None
    image = inputs[0]
    if len(image.shape) != 4 or image.shape[0] != 1 or image.shape[3] != 3:
        return "unsupported", f"its input {list(image.shape)} is not one RGB image", None
    if image.shape[1] <= 0 or image.shape[2] <= 0:
        return "unsupported", f"its input {list(image.shape)} has no fixed size", None
    if image.dtype not in _IMAGE_TYPES:
        return "unsupported", f"its input type {image.dtype} is not uint8, int8 or float32", None
    if SSD_POSTPROCESS_OP in ops:
        if len(outputs) not in {3, 4}:
            return (
                "unsupported",
                f"it has {SSD_POSTPROCESS_OP} but {len(outputs)} outputs, not boxes, classes, "
                "scores and count",
                None,
            )
        return "ssd_postprocess", None, None
    if len(outputs) == 1:
        shape = outputs[0].shape
        classes = shape[-1] if shape else 0
        if len(shape) >= 1 and all(d == 1 for d in shape[:-1]) and classes >= 2:
            return "classification", None, classes
    shapes = ", ".join(str(list(o.shape)) for o in outputs) or "none"
    if any(len(o.shape) == 3 and o.shape[1] > 100 for o in outputs):
        return (
            "unsupported",
            f"its outputs ({shapes}) are raw anchor predictions without a {SSD_POSTPROCESS_OP} "
            "operator to decode them into boxes",
            None,
        )
    return (
        "unsupported",
        f"its outputs ({shapes}) are neither class scores nor SSD detections "
        "(pose, segmentation and other tasks are not supported)",
        None,
    )


def _labels(
    data: bytes, path: Path | None, warnings: list[str]
) -> tuple[tuple[str, ...], Literal["file", "metadata"] | None]:
    found: Labels | None
    if path is not None:
        try:
            found = load_labels(path)
        except LabelsError as err:
            warnings.append(f"labels file unusable: {err}")
        else:
            return tuple(found.names()), "file"
    try:
        found = labels_from_metadata(data)
    except Exception as err:  # untrusted bytes: a bad zip must not crash the check
        warnings.append(f"embedded labels unreadable: {err}")
        found = None
    if found is not None:
        return tuple(found.names()), "metadata"
    return (), None


def format_report(report: ModelReport) -> str:
    """A short human-readable report."""
    lines = []
    if report.supported:
        lines.append(f"task: {report.task}")
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
        ops = ", ".join(f"{name} x{count}" for name, count in report.cpu_ops) or "none"
        lines.append(f"Edge TPU: compiled; {report.cpu_operators} operator(s) on the CPU: {ops}")
    else:
        lines.append(f"Edge TPU: not compiled; all {report.operators} operators run on the CPU")
    if report.num_classes is not None:
        lines.append(f"classes: {report.num_classes}")
    if report.labels:
        sample = " | ".join(report.labels[:5])
        lines.append(f"labels ({report.labels_source}): {len(report.labels)}: {sample}, ...")
    else:
        lines.append("labels: none found")
    lines.append(f"size: {report.size} bytes, sha256 {report.sha256}")
    lines.extend(f"warning: {w}" for w in report.warnings)
    return "\n".join(lines)


def resolve_model_url(url: str) -> str:
    """A direct download URL for a model page link (TF Hub, Kaggle Models, GitHub blob)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ModelError(f"not an http(s) URL: {url!r}")
    host = parts.netloc.lower()
    path = parts.path.rstrip("/")
    segments = [s for s in path.split("/") if s]
    if host in {"tfhub.dev", "www.tfhub.dev"}:
        if "lite-format=" in parts.query:
            return url
        query = f"{parts.query}&lite-format=tflite" if parts.query else "lite-format=tflite"
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    if host in {"kaggle.com", "www.kaggle.com"} and segments[:1] == ["models"]:
        if len(segments) != 6:
            raise ModelError(
                "a Kaggle model link must name owner/model/framework/variation/version, "
                f"e.g. https://www.kaggle.com/models/google/mobilenet-v2/tfLite/... (got {url})"
            )
        return "https://www.kaggle.com/api/v1/models/" + "/".join(segments[1:]) + "/download"
    if host == "github.com" and len(segments) > 4 and segments[2] == "blob":
        segments[2] = "raw"
        return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))
    return url


async def fetch_model_bytes(session: aiohttp.ClientSession, url: str) -> bytes:
    """Download a model link into memory and return the .tflite bytes (unpacking .tar.gz)."""
    resolved = resolve_model_url(url)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        async with session.get(resolved, timeout=timeout, allow_redirects=True) as response:
            if response.status != 200:
                raise ModelError(f"{resolved}: the server answered HTTP {response.status}")
            buffer = bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                buffer += chunk
                if len(buffer) > MAX_MODEL_BYTES:
                    raise ModelError(f"{resolved}: larger than {MAX_MODEL_BYTES} bytes")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ModelError(f"{resolved}: download failed: {err or type(err).__name__}") from err
    return await asyncio.to_thread(unpack_model, bytes(buffer))


def unpack_model(data: bytes) -> bytes:
    """The .tflite inside a (gzipped) tar archive, or `data` itself when it is not one."""
    if data[:2] != b"\x1f\x8b" and not _is_tar(data):
        return data
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".tflite")]
            if len(members) != 1:
                raise ModelError(f"the archive holds {len(members)} .tflite files, expected one")
            if members[0].size > MAX_MODEL_BYTES:
                raise ModelError("the model in the archive is too large")
            handle = archive.extractfile(members[0])
            if handle is None:
                raise ModelError("the model in the archive cannot be read")
            return handle.read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as err:
        raise ModelError(f"not a readable model archive: {err}") from err


def _is_tar(data: bytes) -> bool:
    return len(data) > 262 and data[257:262] == b"ustar"


def main(argv: list[str]) -> int:
    """`inspect MODEL [--labels FILE] [--json]`: print the report; 0 if supported, 1 if not."""
    args = list(argv)
    if args[:1] == ["inspect"]:
        args = args[1:]
    parser = argparse.ArgumentParser(
        prog="coral-vision inspect", description="Check a TensorFlow Lite model."
    )
    parser.add_argument("model", help="a .tflite file or a model URL (TF Hub, Kaggle, direct)")
    parser.add_argument("--labels", type=Path, help="a labels file to check against the model")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(args)
    try:
        source: Path | bytes
        if options.model.startswith(("http://", "https://")):
            source = asyncio.run(_download(options.model))
        else:
            source = Path(options.model)
        report = inspect_model(source, labels=options.labels)
    except ModelError as err:
        if options.json:
            print(json.dumps({"supported": False, "error": str(err)}, indent=2))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if options.json else format_report(report))
    return 0 if report.supported else 1


async def _download(url: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        return await fetch_model_bytes(session, url)
