"""Open a model on an Edge TPU through libedgetpu, or on the CPU, and say which and why."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DelegateError, EdgeTpuModelOnCpuError, InferenceError, ModelError
from ..runtime import Runtime, load_runtime
from .devices import EdgeTpu

if TYPE_CHECKING:  # numpy and Pillow load with the executor, not with the backend's types
    import numpy.typing as npt

    from ..models.model import Model
    from ..vision.preprocess import PreparedFrame

_LIBEDGETPU = {"Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


class FallbackReason(StrEnum):
    """Why a model asked to run on an Edge TPU runs on the CPU instead."""

    NO_RUNTIME_LIBRARY = "no_runtime_library"
    NO_DEVICE = "no_device"
    DEVICE_BUSY = "device_busy"
    MODEL_NOT_COMPILED = "model_not_compiled"
    DELEGATE_FAILED = "delegate_failed"
    HUNG = "hung"


@dataclass(frozen=True)
class BackendInfo:
    """Where a model runs, with which runtime, and why not on the TPU when it was asked to."""

    kind: Literal["edgetpu-usb", "edgetpu-pci", "cpu"]
    device: str | None
    runtime: str
    fallback_reason: FallbackReason | None
    detail: str
    model_name: str

    @property
    def label(self) -> str:
        """A name for people: "Edge TPU (USB)", "Edge TPU (PCIe)" or "CPU"."""
        return {"edgetpu-usb": "Edge TPU (USB)", "edgetpu-pci": "Edge TPU (PCIe)"}.get(
            self.kind, "CPU"
        )


class Backend:
    """One allocated interpreter; only ever used by one thread."""

    def __init__(self, interpreter: Any, model: Model, info: BackendInfo) -> None:
        """Wrap an allocated interpreter of model."""
        self._interpreter: Any = interpreter
        self.model = model
        self.info = info
        self._shape = (1, model.input.height, model.input.width, model.input.channels)

    def invoke(self, frame: PreparedFrame) -> tuple[npt.NDArray[Any], ...]:
        """Run one frame; copies of the outputs in the model's output order."""
        interpreter = self._interpreter
        if interpreter is None:
            raise InferenceError(f"the backend of {self.model.name} is closed")
        tensor = frame.tensor
        if tensor.shape != self._shape or tensor.dtype != self.model.input.dtype:
            raise InferenceError(
                f"{self.model.name} takes {self.model.input.dtype} {list(self._shape)}, "
                f"got {tensor.dtype} {list(tensor.shape)}"
            )
        try:
            interpreter.set_tensor(self.model.input.index, tensor)
            interpreter.invoke()
            # get_tensor copies, so the outputs survive the next invoke.
            return tuple(interpreter.get_tensor(o.index) for o in self.model.outputs)
        except (RuntimeError, ValueError) as err:
            if self.info.kind != "cpu":
                raise DelegateError(
                    f"the Edge TPU {self.info.device} failed running {self.model.name}: {err}"
                ) from err
            raise InferenceError(f"{self.model.name} failed to run: {err}") from err

    def close(self) -> None:
        """Release the interpreter and with it the Edge TPU; idempotent."""
        self._interpreter = None


def edgetpu_library() -> str:
    """Return the file name of libedgetpu on this platform."""
    return _LIBEDGETPU.get(platform.system(), "libedgetpu.so.1")


def open_backend(
    model: Model,
    tpu: EdgeTpu | None,
    *,
    cpu_model: Model | None = None,
    num_threads: int | None = None,
    runtime: Runtime | None = None,
    unavailable: tuple[FallbackReason, str] | None = None,
) -> Backend:
    """Open the model on the Edge TPU when possible, else on the CPU with the reason recorded.

    `unavailable` says why the caller gives no `tpu` although one was asked for (e.g. it hung).
    """
    runtime = runtime or load_runtime()
    threads = num_threads or os.cpu_count() or 1
    if tpu is None:
        if unavailable is None:
            return _open_cpu(model, cpu_model, threads, runtime, None, f"CPU, {threads} threads")
        reason, why = unavailable
        detail = f"{why}; running on CPU, {threads} threads"
        return _open_cpu(model, cpu_model, threads, runtime, reason, detail)
    if not model.edgetpu:
        detail = (
            f"{model.name} is not compiled for the Edge TPU (use its *_edgetpu.tflite version); "
            f"running on CPU, {threads} threads"
        )
        return _open_cpu(
            model, cpu_model, threads, runtime, FallbackReason.MODEL_NOT_COMPILED, detail
        )
    library = edgetpu_library()
    if runtime.load_delegate is None:
        detail = f"{runtime.name} cannot load delegates; running on CPU"
        return _open_cpu(
            model, cpu_model, threads, runtime, FallbackReason.NO_RUNTIME_LIBRARY, detail
        )
    try:
        delegate = runtime.load_delegate(library, {"device": tpu.device})
    except OSError as err:
        detail = f"{library} could not be loaded ({err}); is the Edge TPU runtime installed?"
        return _open_cpu(
            model, cpu_model, threads, runtime, FallbackReason.NO_RUNTIME_LIBRARY, detail
        )
    except ValueError as err:
        reason, why = _delegate_failure(tpu, err)
        detail = f"{library} could not open {tpu.device}: {why}"
        return _open_cpu(model, cpu_model, threads, runtime, reason, detail)
    try:
        interpreter = _allocate(model, threads, runtime, [delegate])
    except ModelError as err:
        detail = f"the Edge TPU {tpu.device} could not load {model.name}: {err}"
        return _open_cpu(model, cpu_model, threads, runtime, FallbackReason.DELEGATE_FAILED, detail)
    info = BackendInfo(
        kind="edgetpu-usb" if tpu.kind == "usb" else "edgetpu-pci",
        device=tpu.device,
        runtime=runtime.name,
        fallback_reason=None,
        detail=f"{tpu.label} ({tpu.device}) via {library}",
        model_name=model.name,
    )
    return Backend(interpreter, model, info)


def _delegate_failure(tpu: EdgeTpu, err: ValueError) -> tuple[FallbackReason, str]:
    """Why libedgetpu loaded but gave no delegate: the device left, is taken, or else."""
    message = " ".join(str(err).split())
    if not Path(tpu.path).exists():
        return FallbackReason.NO_DEVICE, f"the device is gone ({message})"
    if any(word in message.lower() for word in ("busy", "in use")):
        return FallbackReason.DEVICE_BUSY, f"the device is in use by another process ({message})"
    return FallbackReason.DELEGATE_FAILED, (
        f"{message or 'no reason given'} (is it used by another process, or missing udev rules?)"
    )


def _open_cpu(
    model: Model,
    cpu_model: Model | None,
    threads: int,
    runtime: Runtime,
    reason: FallbackReason | None,
    detail: str,
) -> Backend:
    """Open the model, or its CPU twin when it is compiled for the Edge TPU, on the CPU."""
    chosen = model
    if model.edgetpu:
        if cpu_model is None or cpu_model.edgetpu:
            why = f" ({detail})" if reason else ""
            raise EdgeTpuModelOnCpuError(
                f"{model.name} is compiled for the Edge TPU and cannot run on the CPU{why}; "
                "configure its CPU version too"
            )
        if (cpu_model.task, cpu_model.input.width, cpu_model.input.height) != (
            model.task,
            model.input.width,
            model.input.height,
        ):
            raise ModelError(
                f"{cpu_model.name} cannot stand in for {model.name}: different task or input size"
            )
        chosen = cpu_model
        detail = f"{detail}; using {cpu_model.name}"
    interpreter = _allocate(chosen, threads, runtime, [])
    info = BackendInfo("cpu", None, runtime.name, reason, detail, chosen.name)
    return Backend(interpreter, chosen, info)


def _allocate(model: Model, threads: int, runtime: Runtime, delegates: list[Any]) -> Any:
    """Build an interpreter and allocate its tensors; ModelError with the runtime's reason."""
    try:
        interpreter = runtime.interpreter_factory(
            model_content=model.content,
            num_threads=threads,
            experimental_delegates=delegates or None,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise ModelError(f"{model.name} cannot be loaded by the interpreter: {reason}") from err
    return interpreter
